//! How to start, watch and stop one service: as a process ([`process`]) or a container.
//! The supervisor decides when; this module knows how.

pub mod docker;
pub mod inside;
pub mod process;
pub mod running;
pub mod shim;
pub mod unix;
