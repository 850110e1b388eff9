//! The stack file: parse → validate → model. Pure: nothing here starts anything.

mod builtin;
pub(crate) mod cycles;
pub(crate) mod diagnostic;
pub(crate) mod dotenv;
mod fields;
pub(crate) mod interpolate;
pub(crate) mod model;
pub(crate) mod raw;
pub(crate) mod render;
pub(crate) mod source;
pub(crate) mod validate;

pub(crate) use builtin::BuiltinKind;
pub(crate) use diagnostic::ConfigErrors;
pub(crate) use model::*;
pub(crate) use validate::{BuiltinProblem, LoadOptions, Loaded, Written, env_key, locate, parse};
