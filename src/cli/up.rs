//! `stack up`.

use clap::Args;

use crate::config::RuntimeKind;

/// Start the stack: free ports, dependency order, health checks, one log stream.
#[derive(Debug, Clone, Args)]
pub(crate) struct UpArgs {
    /// Only these services (and what they depend on)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Detach once every service is healthy, leaving a supervisor in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Wait until every service is healthy, then detach (implies `-d`)
    #[arg(long)]
    pub wait: bool,
    /// Give up when services are not healthy after this long (e.g. `60s`, `2m`)
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
    /// Print the `ps --json` document instead of the table once healthy
    #[arg(long)]
    pub json: bool,
    /// Where model calls go: mock (the default with a built-in model), live, record or
    /// replay
    #[arg(long, value_enum, env = "STACK_LLM", value_name = "MODE")]
    pub llm: Option<crate::services::cassette::Mode>,
    /// Follow the `watch:` rules and the stack file (the default for `up`)
    #[arg(long, conflicts_with = "no_watch")]
    pub watch: bool,
    /// Do not follow file changes: no `watch:` rules, no stack file reload
    #[arg(long)]
    pub no_watch: bool,
    /// On a running stack: print what `up` would change (`+ added`, `- removed`,
    /// `~ changed (fields)`, `= unchanged`) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// On a running stack: restart every service, changed or not
    #[arg(long)]
    pub force_recreate: bool,
    /// `stack run`'s context store of its own
    #[arg(skip)]
    pub hermetic: Option<crate::plan::llm::Hermetic>,
}

/// Parses `500ms`, `2s`, `1m30s` or a number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::config::raw::parse_duration(s)
}

/// The detached supervisor (internal: started by `up -d`).
#[derive(Debug, Clone, Args)]
pub(crate) struct SuperviseArgs {
    /// The resolved plan written by `up -d`
    #[arg(long)]
    pub plan: std::path::PathBuf,
    /// Deadline for every service to be healthy
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Stop everything when this process exits (`stack run`)
    #[arg(long)]
    pub owner: Option<u32>,
}
