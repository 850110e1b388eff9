//! The supervisor decides *when*: dependency order, health gating, restarts and shutdown.
//! One actor per service ([`service`]); one event loop ([`dispatcher`]).

pub mod dispatcher;
pub mod service;

pub use dispatcher::{Observer, Options, run};
