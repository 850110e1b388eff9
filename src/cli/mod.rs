//! Command-line declarations (clap derive). Doc comments are the help text; one module
//! per subcommand; no behaviour here beyond parsing.

mod config;
mod global;
mod serve;
mod up;

use clap::{Parser, Subcommand};

pub use config::{ConfigArgs, Format, SchemaArgs, ValidateArgs};
pub use global::GlobalArgs;
pub use serve::{LogFormat, ServeArgs};
pub use up::{UpArgs, parse_duration};

/// Run a local stack of services (an MCP context server, a mock model, an AI gateway and
/// your own processes or containers) on free ports, in dependency order, with one log stream.
#[derive(Debug, Parser)]
#[command(
    name = "stack",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the stack: free ports, dependency order, health checks, one log stream
    Up(UpArgs),
    /// Check the stack file; exit 0 when valid, 2 with every problem otherwise
    Validate(ValidateArgs),
    /// Print the resolved stack (interpolated, defaults filled in)
    Config(ConfigArgs),
    /// Print the JSON Schema of the stack file
    Schema(SchemaArgs),
    /// Run one built-in service directly (this is what the orchestrator runs)
    Serve(ServeArgs),
}
