//! `stack traces` and `stack dashboard`.

use clap::Args;

/// List the recent traces the supervisor received (its window: the last 10,000 spans of
/// the last 24 h), newest first.
#[derive(Debug, Clone, Args)]
pub(crate) struct TracesArgs {
    /// Only traces with a span from this service
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Only traces with a failed span
    #[arg(long)]
    pub errors: bool,
    /// How many traces
    #[arg(short = 'n', long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
    /// Print JSON (every trace with its spans)
    #[arg(long)]
    pub json: bool,
    /// One trace's spans as a waterfall (an id, or the start of one)
    #[arg(value_name = "TRACE_ID")]
    pub trace: Option<String>,
}

/// Print the dashboard's URL (it carries the stack's token); `--open` opens it.
#[derive(Debug, Clone, Args)]
pub(crate) struct DashboardArgs {
    /// Open it in the default browser
    #[arg(long)]
    pub open: bool,
}
