//! One `run` per subcommand: each turns parsed arguments into work and an exit code.

mod serve;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, args),
    }
}

/// A multi-threaded tokio runtime for commands that need one.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
