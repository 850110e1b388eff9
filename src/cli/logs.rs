//! `stack logs`.

use clap::Args;

/// Show the services' logs, merged by time (works after the stack stopped, too).
#[derive(Debug, Clone, Args)]
pub(crate) struct LogsArgs {
    /// Only these services
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Keep printing new lines as they are written
    #[arg(short, long)]
    pub follow: bool,
    /// Lines to show from the end of each service's log
    #[arg(short = 'n', long = "tail", value_name = "N")]
    pub tail: Option<usize>,
    /// Only lines newer than this: a duration (`5m`, `1h30m`) or an RFC 3339 time
    #[arg(long, value_name = "SINCE")]
    pub since: Option<String>,
    /// One JSON object per line: {service, time, stream, text}
    #[arg(long)]
    pub json: bool,
}
