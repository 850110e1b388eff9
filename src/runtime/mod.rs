//! How to start, watch and stop one service: as a process ([`process`]) or a container.
//! The supervisor decides when; this module knows how.

pub(crate) mod docker;
pub(crate) mod inside;
pub(crate) mod process;
pub(crate) mod running;
pub(crate) mod shim;
pub(crate) mod unix;
