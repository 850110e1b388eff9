//! The `model` built-in (SPEC §4.2): a deterministic mock of the OpenAI and Anthropic APIs
//! that the official SDKs cannot tell from the real ones, with fixtures, simulated
//! latency and injected faults.

mod answer;
mod anthropic;
mod body;
mod config;
mod memo;

mod openai;
mod pattern;
mod replay;
mod responses;
mod schema;
mod state;
mod stream;
mod strict;
mod text;
mod turn;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub(crate) use config::{Config, check_value};
use state::AppState;

use super::ServeError;

#[cfg(test)]
impl Config {
    /// Parses and checks a configuration given as text (a fixtures file resolves against
    /// the working folder).
    pub(crate) fn load_str(text: &str) -> Result<Config, super::config::ConfigError> {
        use std::path::Path;
        Config::from_text(Path::new("<config>"), text, Path::new("."))
    }
}

/// The HTTP routes over `config` (checked, with its fixtures inline); the tests drive it
/// in process.
#[cfg(test)]
pub(crate) fn router(config: Config) -> Result<Router, super::config::ConfigError> {
    Ok(routes(Arc::new(AppState::new(config)?)))
}

fn routes(state: Arc<AppState>) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{id}", get(openai::model))
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/responses", post(responses::create))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            replay::intercept,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            super::metrics::track,
        ))
        .fallback(super::api_error::fallback)
        .method_not_allowed_fallback(super::api_error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            super::hosts::Hosts::new(&state.config.allowed_hosts),
            super::hosts::guard,
        ))
        // Bodies are read with the configured limit, answering 413 in each API's shape.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn health(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    axum::Json(s.uptime.health())
}

async fn metrics_text(
    State(s): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    s.metrics.render(&headers)
}

/// Serves until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let tls = match &config.tls {
        Some(files) => {
            Some(super::tls::server_config(&files.cert, &files.key).map_err(ServeError::Other)?)
        }
        None => None,
    };
    let state = Arc::new(AppState::new(config)?);
    match tls {
        Some(tls) => super::http::serve_tls(listener, tls, routes(state), shutdown).await,
        None => super::http::serve(listener, routes(state), shutdown).await,
    }
}
