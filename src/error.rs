//! The tool's own failures (bad input, environment problems) and their exit codes.
//!
//! A service crashing is not an `Error`: it is an event the supervisor handles. Errors are
//! the cases where `stack` itself cannot go on; each knows its exit code (SPEC §2).

use std::io;
use std::path::PathBuf;

use crate::config::ConfigErrors;
use crate::exit;
use crate::plan::ports::PortInUse;
use crate::services::ServeError;

/// Result alias for the tool's own failures.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure of `stack` itself.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The stack file is invalid (every problem, located).
    #[error("{0}")]
    Config(ConfigErrors),
    /// Bad input that is not in the stack file (usage, a missing stack file…).
    #[error("{message}")]
    Input {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: Option<String>,
    },
    /// Fixed ports are already taken.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    PortsInUse(Vec<PortInUse>),
    /// An environment problem (Docker unreachable, …).
    #[error("{message}")]
    Environment {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: Option<String>,
    },
    /// A built-in service could not run.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// An I/O failure with the path it concerned.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What was being done ("cannot read", "cannot create").
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Any other failure of the runtime itself.
    #[error("{0}")]
    Runtime(#[from] io::Error),
}

impl From<crate::runtime::docker::DockerError> for Error {
    fn from(e: crate::runtime::docker::DockerError) -> Error {
        Error::Environment {
            hint: e.hint().map(str::to_string),
            message: e.to_string(),
        }
    }
}

impl Error {
    /// The process exit code for this error (SPEC §2).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Input { .. } => exit::INVALID_INPUT,
            Error::PortsInUse(_) | Error::Environment { .. } => exit::ENVIRONMENT,
            Error::Serve(e) => e.exit_code(),
            Error::Io { .. } | Error::Runtime(_) => exit::ENVIRONMENT,
        }
    }

    /// Bad input with a hint.
    pub(crate) fn input(message: impl Into<String>, hint: Option<&str>) -> Error {
        Error::Input {
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    /// The hint printed under the error, if any.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            Error::Input { hint, .. } | Error::Environment { hint, .. } => hint.clone(),
            Error::PortsInUse(_) => Some(
                "stop the process holding the port, or use `port: auto` to get a free one".into(),
            ),
            _ => None,
        }
    }
}
