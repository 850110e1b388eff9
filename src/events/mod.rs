//! What the supervisor tells: each service's statuses and events, and the `ps` document.
//! The data the supervisor emits and the control socket, `ps` and the UI read.

pub(crate) mod diff;
mod event;
pub(crate) mod report;

pub(crate) use event::*;
