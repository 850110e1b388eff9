//! `stack doctor`.

use clap::Args;

/// Diagnose "cannot connect": is it running, who holds its port, is it bound where
/// expected, what does its health check answer, errors in its logs, the Docker engine.
#[derive(Debug, Clone, Args)]
pub(crate) struct DoctorArgs {
    /// Only this service
    #[arg(value_name = "SERVICE")]
    pub service: Option<String>,
    /// One JSON document with every finding
    #[arg(long)]
    pub json: bool,
}
