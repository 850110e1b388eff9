//! `stack`: a local multi-service development orchestrator for AI stacks.
//!
//! Data flows one way: [`config`] (parse → validate → model) → [`plan`] (graph, order,
//! ports) → [`supervisor`] (when) → [`runtime`] (how) → events → [`ui`]. The built-in
//! services live in [`services`] and run as `stack serve <kind>`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod health;
pub mod logs;
pub mod plan;
pub mod procfs;
pub mod runtime;
pub mod services;
pub mod supervisor;
pub mod ui;

use std::process::ExitCode;

use clap::Parser;

pub use error::{Error, Result};

/// Parses the command line, runs the command and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            err.report();
            ExitCode::from(err.exit_code())
        }
    }
}
