//! One `run` per subcommand: each turns parsed arguments into work and an exit code.

mod cassettes;
mod config;
mod control;
mod doctor;
mod down;
mod export;
mod load;
mod logs;
mod mcp;
mod new;
mod project;
mod ps;
mod reconcile;
mod run;
mod serve;
mod traces;
mod up;
mod watching;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the parsed command line.
pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    if !matches!(cli.command, Command::Serve(_)) {
        cli.global.init_tracing();
    }
    match cli.command {
        Command::Up(args) => up::run(&cli.global, args),
        Command::Down(args) => down::run(&cli.global, args),
        Command::Ps(args) => ps::run(&cli.global, args),
        Command::Traces(args) => traces::run(&cli.global, &args),
        Command::Dashboard(args) => traces::dashboard(&cli.global, &args),
        Command::Logs(args) => logs::run(&cli.global, args),
        Command::Restart(args) => control::run(&cli.global, args, control::Action::Restart),
        Command::Stop(args) => control::run(&cli.global, args, control::Action::Stop),
        Command::Start(args) => control::run(&cli.global, args, control::Action::Start),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Env(args) => run::env(&cli.global, args),
        Command::Mcp(args) => mcp::run(&cli.global, args),
        Command::Completions(args) => run::completions(args),
        Command::New(args) => new::run(&cli.global, args),
        Command::Doctor(args) => doctor::run(&cli.global, args),
        Command::Cassettes(args) => cassettes::run(&cli.global, args),
        Command::Validate(args) => config::validate(&cli.global, args),
        Command::Config(args) => config::config(&cli.global, args),
        Command::Export(args) => export::run(&cli.global, args),
        Command::Schema(args) => config::schema(&cli.global, args),
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::Supervise(args) => up::supervise(args),
    }
}

/// A multi-threaded tokio runtime for commands that need one.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
