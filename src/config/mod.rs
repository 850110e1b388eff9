//! The stack file: parse → validate → model. Pure: nothing here starts anything.

mod builtin;
pub mod cycles;
pub mod diagnostic;
pub mod dotenv;
mod fields;
pub mod interpolate;
pub mod model;
pub mod raw;
pub mod render;
pub mod source;
pub mod validate;

pub use builtin::BuiltinKind;
pub use diagnostic::{ConfigErrors, Diagnostic};
pub use model::*;
pub use validate::{BuiltinCheck, BuiltinProblem, LoadOptions, Loaded, env_key, locate, parse};
