//! `stack cassettes`.

use clap::{Args, Subcommand};

/// The recorded model exchanges (`--llm record` writes them, `--llm replay` answers from
/// them).
#[derive(Debug, Clone, Args)]
pub(crate) struct CassettesArgs {
    /// What to do
    #[command(subcommand)]
    pub action: CassettesAction,
    /// The cassette folder (default: the gateway's `cassettes:`, else `./cassettes` beside
    /// the stack file)
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

/// `stack cassettes list|check|prune`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum CassettesAction {
    /// One line per recording: file, route, status, stream or document
    List,
    /// Every file parses and would be found by its own request; exit 2 otherwise
    Check,
    /// Delete the recordings the last `--llm replay` run did not use
    Prune {
        /// Only say what would be deleted
        #[arg(long)]
        dry_run: bool,
    },
}
