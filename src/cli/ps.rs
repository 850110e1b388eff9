//! `stack ps`.

use clap::Args;

/// Show each service: runtime, state, pid or container, ports, health, restarts, uptime.
#[derive(Debug, Clone, Args)]
pub(crate) struct PsArgs {
    /// Print the stable JSON document (SPEC §2)
    #[arg(long)]
    pub json: bool,
}
