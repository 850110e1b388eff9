//! The stack file: parse → validate → model. Pure: nothing here starts anything.

pub mod diagnostic;
pub mod dotenv;
mod fields;
pub mod interpolate;
pub mod model;
pub mod raw;
pub mod render;
pub mod source;
pub mod validate;

pub use diagnostic::{ConfigErrors, Diagnostic};
pub use model::*;
pub use validate::{LoadOptions, Loaded, env_key, locate, parse};
