//! The plan: which services run, in what order, on which ports, with what environment.

pub mod graph;
