//! Command-line declarations (clap derive). Doc comments are the help text; one module
//! per subcommand; no behaviour here beyond parsing.

mod cassettes;
mod config;
mod control;
mod doctor;
mod down;
mod export;
mod global;
mod logs;
mod mcp;
mod new;
mod ps;
mod run;
mod serve;
mod traces;
mod up;

use clap::{Parser, Subcommand};

pub(crate) use cassettes::{CassettesAction, CassettesArgs};
pub(crate) use config::{ConfigArgs, Format, SchemaArgs, ValidateArgs};
pub(crate) use control::ServicesArgs;
pub(crate) use doctor::DoctorArgs;
pub(crate) use down::DownArgs;
pub(crate) use export::{ExportArgs, ExportTarget};
pub(crate) use global::GlobalArgs;
pub(crate) use logs::LogsArgs;
pub(crate) use mcp::{Agent, McpArgs, Scope};
pub(crate) use new::NewArgs;
pub(crate) use ps::PsArgs;
pub(crate) use run::{CompletionsArgs, EnvArgs, EnvFormat, RunArgs};
pub(crate) use serve::{LogFormat, ServeArgs};
pub(crate) use traces::{DashboardArgs, TracesArgs};
pub(crate) use up::{SuperviseArgs, UpArgs, parse_duration};

/// Run a local stack of services (an MCP context server, a mock model, an AI gateway and
/// your own processes or containers) on free ports, in dependency order, with one log stream.
#[derive(Debug, Parser)]
#[command(
    name = "stack",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the stack: free ports, dependency order, health checks, one log stream
    Up(UpArgs),
    /// Stop everything of this project, from any shell
    Down(DownArgs),
    /// Show each service: state, health, pid, ports, restarts
    Ps(PsArgs),
    /// Show the services' logs, merged by time
    Logs(LogsArgs),
    /// Restart services of the running stack
    Restart(ServicesArgs),
    /// Stop services of the running stack
    Stop(ServicesArgs),
    /// Start stopped services of the running stack
    Start(ServicesArgs),
    /// Ephemeral environment: up, wait healthy, run CMD, down (always); CMD's exit code
    Run(RunArgs),
    /// Print the endpoints of the running stack (dotenv, shell, json, github)
    Env(EnvArgs),
    /// Start a project from a built-in template (`--list` shows them)
    New(NewArgs),
    /// Diagnose "cannot connect": processes, ports and their holders, health, logs, Docker
    Doctor(DoctorArgs),
    /// List, check and prune the recorded model exchanges (`--llm record|replay`)
    Cassettes(CassettesArgs),
    /// MCP server on stdio for coding agents to operate the stack (`--config AGENT`:
    /// the snippet that registers it)
    Mcp(McpArgs),
    /// List recent traces (`TRACE_ID`: one as a waterfall); `--json` for scripts
    Traces(TracesArgs),
    /// Print the live dashboard's URL (`--open`: open it in a browser)
    Dashboard(DashboardArgs),
    /// Translate the stack for docker compose or Kubernetes (a kustomization)
    Export(ExportArgs),
    /// Print a shell completion script (bash, zsh, fish, …)
    Completions(CompletionsArgs),
    /// Check the stack file; exit 0 when valid, 2 with every problem otherwise
    Validate(ValidateArgs),
    /// Print the resolved stack (interpolated, defaults filled in)
    Config(ConfigArgs),
    /// Print the JSON Schema of the stack file
    Schema(SchemaArgs),
    /// Run one built-in service directly (this is what the orchestrator runs)
    Serve(ServeArgs),
    /// The detached supervisor (internal)
    #[command(name = "__supervise", hide = true)]
    Supervise(SuperviseArgs),
}
