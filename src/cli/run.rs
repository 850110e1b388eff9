//! `stack run`, `stack env`, `stack completions`.

use clap::{Args, ValueEnum};

use super::parse_duration;
use crate::config::RuntimeKind;

/// An ephemeral environment: up, wait healthy, run CMD with every `STACK_*` variable, down
/// (always). The exit code is CMD's.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Give up when services are not healthy after this long
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<std::time::Duration>,
    /// Default runtime for services that do not set one
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeKind>,
    /// Enable services of this profile (repeatable; also `STACK_PROFILES=a,b`)
    #[arg(
        long = "profile",
        value_name = "PROFILE",
        env = "STACK_PROFILES",
        value_delimiter = ','
    )]
    pub profiles: Vec<String>,
    /// Where model calls go: mock (the default with a built-in model), live, record or
    /// replay
    #[arg(long, value_enum, env = "STACK_LLM", value_name = "MODE")]
    pub llm: Option<crate::services::cassette::Mode>,
    /// Seed the run's (otherwise empty) context store with these sessions: JSON lines, each
    /// as `GET /v1/sessions/{id}` answers
    #[arg(long, value_name = "FILE")]
    pub context_snapshot: Option<std::path::PathBuf>,
    /// Follow the services' `watch:` rules and the stack file while CMD runs
    #[arg(long)]
    pub watch: bool,
    /// With `--llm replay`, keep CMD's exit code when requests had no recording
    #[arg(long)]
    pub allow_misses: bool,
    /// The command and its arguments (after `--` when it has options of its own)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

/// Print the endpoints of the running stack.
#[derive(Debug, Clone, Args)]
pub(crate) struct EnvArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = EnvFormat::Dotenv)]
    pub format: EnvFormat,
}

/// Formats of `stack env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EnvFormat {
    /// KEY=value lines
    Dotenv,
    /// `export KEY='value'` lines, for `eval "$(stack env --format shell)"`
    Shell,
    /// One JSON object
    Json,
    /// Append KEY=value lines to the file `$GITHUB_ENV` names (GitHub Actions)
    Github,
}

/// Print a shell completion script.
#[derive(Debug, Clone, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
