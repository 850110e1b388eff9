//! `stack`: a local multi-service development orchestrator for AI stacks.
//!
//! Data flows one way: [`config`] (parse → validate → model) → [`plan`] (graph, order,
//! ports) → [`supervisor`] (when) → [`runtime`] (how) → events → [`ui`]. The built-in
//! services live in [`services`] and run as `stack serve <kind>`.

mod causes;
mod cli;
mod commands;
mod config;
mod control;
mod error;
mod events;
mod exit;
mod export;
mod llm_schema;
mod logs;
mod plan;
mod procfs;
mod runtime;
mod services;
mod state;
mod supervisor;
mod telemetry;
mod ui;
mod watch;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    // The process-group shim runs before anything else: it must start fast.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // So do the two commands of the built-in image (`runtime::inside`).
    let early: Option<fn(&[std::ffi::OsString]) -> i32> = match args.get(1).and_then(|a| a.to_str())
    {
        Some(runtime::shim::ARG) => Some(runtime::shim::run),
        Some(runtime::reaper::ARG) => Some(runtime::reaper::run),
        Some(runtime::inside::GATE) => Some(runtime::inside::gate),
        Some(runtime::inside::PROBE) => Some(runtime::inside::probe),
        _ => None,
    };
    if let Some(command) = early {
        return ExitCode::from(u8::try_from(command(&args[2..])).unwrap_or(1));
    }
    let cli = cli::Cli::parse();
    let console = ui::Console::new(&cli.global);
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            ui::report(&console, &err);
            ExitCode::from(err.exit_code())
        }
    }
}
