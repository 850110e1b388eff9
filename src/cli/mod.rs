//! Command-line declarations (clap derive). Doc comments are the help text; one module
//! per subcommand; no behaviour here beyond parsing.

mod global;
mod serve;

use clap::{Parser, Subcommand};

pub use global::GlobalArgs;
pub use serve::{LogFormat, ServeArgs};

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
    /// Run one built-in service directly (this is what the orchestrator runs).
    Serve(ServeArgs),
}
