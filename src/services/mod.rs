//! The built-in services: `stack serve context|model|gateway`.
//!
//! Each is a plain `router(state)` (an `axum::Router`; the gateway's is a front over one)
//! plus a `serve(listener, config, shutdown)`, so it runs as a child process of the
//! orchestrator and is testable in-process.

pub(crate) mod api_error;
pub(crate) mod cassette;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod gateway;
pub(crate) mod hosts;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod otel;
pub(crate) mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

pub(crate) use crate::config::BuiltinKind;

/// What is wrong with a built-in's `config:` map from a stack file (relative paths in it
/// against `dir`): what `stack serve` would refuse, found before anything starts.
pub(crate) fn check_config(
    kind: BuiltinKind,
    value: &serde_json::Value,
    dir: &std::path::Path,
) -> Vec<crate::config::BuiltinProblem> {
    match kind {
        BuiltinKind::Model => model::check_value(value, dir),
        BuiltinKind::Context => context::check_value(value),
        BuiltinKind::Gateway => gateway::check_value(value, dir),
    }
}

/// Where and with what configuration a built-in service runs.
#[derive(Debug, Clone)]
pub(crate) struct ServeOptions {
    /// Address to bind (loopback by default).
    pub host: IpAddr,
    /// Port; 0 lets the OS choose.
    pub port: u16,
    /// The YAML configuration file, if any.
    pub config: Option<PathBuf>,
}

/// Why a built-in service could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// The configuration file is unreadable or invalid.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Serving failed after start.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A failure the service reports in its own words.
    #[error("{0}")]
    Other(String),
}

impl ServeError {
    /// The exit code (SPEC §2): bad config → 2, cannot bind → 3.
    pub(crate) fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            ServeError::Config(_) => exit::INVALID_INPUT,
            ServeError::Bind { .. } => exit::ENVIRONMENT,
            ServeError::Io(_) | ServeError::Other(_) => exit::SERVICE_FAILED,
        }
    }
}

/// Binds the listener, announces it on stdout and runs the service until `shutdown`.
///
/// The announcement `listening on http://ADDR` is the readiness line tests and the
/// orchestrator may wait for.
pub(crate) async fn run(
    kind: BuiltinKind,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let path = opts.config.as_deref();
    // Load the configuration before binding, so a bad file never holds a port.
    let service = match kind {
        BuiltinKind::Context => Loaded::Context(context::Config::load(path)?),
        BuiltinKind::Model => Loaded::Model(model::Config::load(path)?),
        BuiltinKind::Gateway => Loaded::Gateway(gateway::Config::load(path)?),
    };
    let listener = http::bind(SocketAddr::new(opts.host, opts.port)).await?;
    let addr = listener.local_addr()?;
    // One line, on stdout (the readiness line); no tracing event repeating it.
    println!("listening on http://{addr}");
    // Traces when the environment asks (the supervisor sets the OTLP endpoint); the
    // guard flushes what is queued when the service stops.
    let traces = otel::init(kind.as_str());
    let served = match service {
        Loaded::Context(c) => context::serve(listener, c, shutdown).await,
        Loaded::Model(c) => model::serve(listener, c, shutdown).await,
        Loaded::Gateway(c) => gateway::serve(listener, c, shutdown).await,
    };
    if let Some(t) = traces {
        // Flushing blocks; off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || drop(t)).await;
    }
    served
}

enum Loaded {
    Context(context::Config),
    Model(model::Config),
    Gateway(gateway::Config),
}
