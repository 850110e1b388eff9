//! `stack`: a local multi-service development orchestrator for AI stacks.
//!
//! Data flows one way: [`config`] (parse → validate → model) → [`plan`] (graph, order,
//! ports) → [`supervisor`] (when) → [`runtime`] (how) → events → [`ui`]. The built-in
//! services live in [`services`] and run as `stack serve <kind>`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod error;
pub mod health;
pub mod logs;
pub mod plan;
pub mod procfs;
pub mod runtime;
pub mod services;
pub mod state;
pub mod supervisor;
pub mod ui;

use std::process::ExitCode;

use clap::Parser;

pub use error::{Error, Result};

/// Parses the command line, runs the command and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    // The process-group shim runs before anything else: it must start fast.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == runtime::shim::ARG) {
        let code = runtime::shim::run(&args[2..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    if args.get(1).is_some_and(|a| a == runtime::inside::GATE) {
        return ExitCode::from(u8::try_from(runtime::inside::gate(&args[2..])).unwrap_or(1));
    }
    if args.get(1).is_some_and(|a| a == runtime::inside::PROBE) {
        return ExitCode::from(u8::try_from(runtime::inside::probe(&args[2..])).unwrap_or(1));
    }
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            err.report();
            ExitCode::from(err.exit_code())
        }
    }
}
