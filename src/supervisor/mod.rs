//! The supervisor decides *when*: dependency order, health gating, restarts and shutdown.
//! One actor per service ([`service`]); one event loop ([`dispatcher`]); when to probe
//! ([`checks`]). How a service runs is the runtime's business, behind
//! [`crate::runtime::Runtime`].

mod checks;
pub(crate) mod dispatcher;
pub(crate) mod service;
#[cfg(test)]
mod tests;

pub(crate) use dispatcher::{Observer, Options, run};
