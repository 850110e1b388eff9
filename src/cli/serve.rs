//! `stack serve context|model|gateway`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::config::BuiltinKind;

/// Run one built-in service.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Which service
    #[arg(value_enum)]
    pub kind: BuiltinKind,
    /// Port to listen on; 0 picks a free one (printed on stdout)
    #[arg(long, env = "PORT", default_value_t = 0)]
    pub port: u16,
    /// Address to bind; loopback by default
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The service's YAML configuration (SPEC §4); relative paths in it resolve against the
    /// current folder
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Worker threads [default: one per core]
    #[arg(long, env = "STACK_SERVE_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
}

/// How a built-in service writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line
    Json,
}
