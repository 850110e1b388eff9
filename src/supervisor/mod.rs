//! The supervisor decides *when*: dependency order, health gating, restarts and shutdown.
//! One actor per service ([`service`]); one event loop ([`dispatcher`]).

pub(crate) mod dispatcher;
pub(crate) mod service;

pub(crate) use dispatcher::{Observer, Options, run};
