//! How to start, watch and stop one service: as a process ([`process`]) or a container.
//! The supervisor decides when; this module knows how.

pub mod engine;
pub mod process;
pub mod shim;
pub mod unix;

pub use engine::engine_version;
