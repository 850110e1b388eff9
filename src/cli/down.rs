//! `stack down`.

use clap::Args;

use super::parse_duration;

/// Stop everything of this project, from any shell (also when its supervisor died).
#[derive(Debug, Clone, Args)]
pub(crate) struct DownArgs {
    /// Also delete the project's data (`.stack/data`) and its container volumes
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// Grace period before SIGKILL, instead of each service's `stop_timeout`
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<std::time::Duration>,
}
