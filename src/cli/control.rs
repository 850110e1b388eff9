//! `stack restart|stop|start SERVICE…`.

use clap::Args;

use super::parse_duration;

/// Services of the running stack to act on.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServicesArgs {
    /// The services
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
    /// How long to wait for them to be healthy again (start, restart)
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "60s")]
    pub timeout: std::time::Duration,
}
