//! The `gateway` built-in service (SPEC §4). Placeholder until its issue lands: it answers
//! `/health` and `/metrics` only.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::ServeError;
use super::config::{ConfigError, load_yaml};
use super::http::Uptime;
use super::metrics::HttpMetrics;

/// The service's configuration (SPEC §4).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Config {
    /// Keys are accepted as they are until the service lands.
    #[serde(flatten)]
    pub rest: serde_yaml::Mapping,
}

impl Config {
    /// Reads the configuration file; none gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        load_yaml(path)
    }
}

/// The HTTP routes.
pub fn router() -> Router {
    let uptime = Uptime::start("gateway");
    let metrics = Arc::new(HttpMetrics::new("stack_gateway"));
    Router::new()
        .route(
            "/health",
            get(move || async move { axum::Json(uptime.health()) }),
        )
        .route("/metrics", get(move || async move { metrics.render() }))
}

/// Serves until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    _config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    super::http::serve(listener, router(), shutdown).await
}
