//! `stack validate`, `stack config`, `stack schema`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::config::RuntimeKind;

/// Check the stack file; exit 0 when valid, 2 with every problem otherwise.
#[derive(Debug, Clone, Args)]
pub(crate) struct ValidateArgs {
    /// Validate as if this were the default runtime
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeKind>,
}

/// Print the resolved stack (interpolated, defaults filled in).
#[derive(Debug, Clone, Args)]
pub(crate) struct ConfigArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Resolve as if this were the default runtime
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeKind>,
    /// Print keys, tokens and secret-looking variables as they are (masked by default)
    #[arg(long)]
    pub show_secrets: bool,
}

/// Output formats of `stack config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// YAML
    Yaml,
    /// JSON
    Json,
}

/// Print the JSON Schema of the stack file (generated from the types).
#[derive(Debug, Clone, Args)]
pub(crate) struct SchemaArgs {
    /// Write it to this file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}
