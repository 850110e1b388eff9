//! The `context` built-in (SPEC §4.1): an MCP context server (rmcp, Streamable HTTP at
//! `/mcp`, both the 2026-07-28 stateless protocol and the 2025-11-25 session era) and a
//! REST API over one durable store, handing back the best context for a token budget.

mod config;
mod mcp;
mod ops;
mod rest;
mod resume;
mod retrieve;
mod store;
mod subscribers;
mod tokens;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub(crate) use config::{Config, check_value};

use super::ServeError;
use super::http::Uptime;
use super::metrics::HttpMetrics;

/// What every request shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    config: Config,
    store: store::Backend,
    metrics: Arc<HttpMetrics>,
    uptime: Uptime,
    subscribers: subscribers::Subscribers,
}

/// One line of a snapshot: a session as `GET /v1/sessions/{id}` answers it.
#[derive(Debug, serde::Deserialize)]
struct SnapshotLine {
    session_id: String,
    entries: Vec<SnapshotEntry>,
}

#[derive(Debug, serde::Deserialize)]
struct SnapshotEntry {
    role: String,
    content: String,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Loads the sessions of `file` the store does not have yet.
async fn seed(store: &store::Backend, file: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the snapshot `{}`: {e}", file.display()))?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", file.display(), i + 1);
        let s: SnapshotLine = serde_json::from_str(line)
            .map_err(|e| format!("{}: not a session (`{{\"session_id\", \"entries\": [{{\"role\", \"content\"}}…]}}`): {e}", at()))?;
        ops::check_session(&s.session_id).map_err(|e| format!("{}: {e}", at()))?;
        let known = store
            .session(&s.session_id)
            .await
            .map_err(|e| format!("{}: {e}", at()))?;
        if known.is_some() {
            continue;
        }
        for e in s.entries {
            store
                .append(s.session_id.clone(), e.role, e.content, e.metadata)
                .await
                .map_err(|e| format!("{}: {e}", at()))?;
        }
    }
    Ok(())
}

/// Opens the store and builds the routes; `shutdown` ends open MCP sessions.
pub(crate) async fn router(
    config: Config,
    shutdown: CancellationToken,
) -> Result<Router, ServeError> {
    // Build the tokenizer off the request path.
    std::thread::spawn(tokens::warm_up);
    let store = store::Backend::open(&config.db, config.durability)
        .await
        .map_err(ServeError::Other)?;
    if let Some(file) = &config.snapshot {
        seed(&store, file).await.map_err(ServeError::Other)?;
    }
    let ctx = Arc::new(Ctx {
        store,
        metrics: Arc::new(HttpMetrics::new("stack_context")),
        uptime: Uptime::start("context"),
        subscribers: subscribers::Subscribers::default(),
        config,
    });
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_origins(ctx.config.allowed_origins.clone())
        .enforce_origin_validation()
        // The Host check is the guard's, for every route alike.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(ctx.config.max_content_bytes + 64 * 1024)
        .with_cancellation_token(shutdown.child_token());
    let factory_ctx = ctx.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(mcp::ContextMcp::new(factory_ctx.clone())),
        Arc::new(
            LocalSessionManager::default().with_event_store(Arc::new(resume::Events::default())),
        ),
        mcp_config,
    );
    let metrics = ctx.metrics.clone();
    let api = Router::new()
        .route("/v1/sessions", get(rest::list))
        .route(
            "/v1/sessions/{id}",
            axum::routing::delete(rest::delete).get(rest::session),
        )
        .route("/v1/sessions/{id}/entries", post(rest::add))
        .route(
            "/v1/sessions/{id}/entries/{entry_id}",
            axum::routing::patch(rest::update),
        )
        .route("/v1/sessions/{id}/context", get(rest::context))
        .route("/v1/sessions/{id}/prune", post(rest::prune))
        .merge(
            Router::new()
                .route_service("/mcp", mcp)
                .layer(axum::middleware::map_response(mcp::jsonrpc_refusal))
                .layer(axum::middleware::from_fn(mcp::session_deleted)),
        )
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), guard));
    Ok(Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .merge(api)
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            super::metrics::track,
        ))
        .fallback(rest::unknown_route)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(cors(&ctx.config.allowed_origins))
        .layer(axum::middleware::from_fn_with_state(
            super::hosts::Hosts::new(&ctx.config.allowed_hosts),
            super::hosts::guard,
        ))
        .with_state(ctx))
}

/// The bearer token (when configured) and, for REST, the Origin check (`/mcp` has rmcp's).
async fn guard(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &ctx.config.token {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            let mut resp = rest::RestError(
                StatusCode::UNAUTHORIZED,
                "send `Authorization: Bearer TOKEN`".into(),
            )
            .into_response();
            // RFC 6750 §3, and what MCP clients look for to know a token is wanted.
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(r#"Bearer realm="stack-context""#),
            );
            return resp;
        }
    }
    if req.uri().path() != "/mcp"
        && let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok())
        && !origin_allowed(&ctx.config.allowed_origins, origin)
    {
        return rest::RestError(
            StatusCode::FORBIDDEN,
            format!("origin `{origin}` is not allowed"),
        )
        .into_response();
    }
    next.run(req).await
}

/// CORS for browser clients (the MCP Inspector, a web app) on the allowed origins: the
/// preflight is answered before the token check (browsers send no credentials with it),
/// and the headers a client must read (`Mcp-Session-Id`, `WWW-Authenticate`) are exposed.
fn cors(allowed: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed = allowed.to_vec();
    let mcp = |name: &'static str| HeaderName::from_static(name);
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|o| origin_allowed(&allowed, o))
        }))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            mcp("mcp-session-id"),
            mcp("mcp-protocol-version"),
            mcp("mcp-method"),
            mcp("mcp-name"),
            mcp("last-event-id"),
        ])
        .expose_headers([
            mcp("mcp-session-id"),
            mcp("mcp-protocol-version"),
            header::WWW_AUTHENTICATE,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// `scheme://host[:port]` against entries like `http://localhost:*`.
fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    allowed.iter().any(|a| {
        if a == origin {
            return true;
        }
        match a.strip_suffix(":*") {
            Some(base) => {
                origin == base
                    || origin.strip_prefix(base).is_some_and(|rest| {
                        rest.strip_prefix(':')
                            .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                    })
            }
            None => false,
        }
    })
}

async fn health(State(ctx): State<Arc<Ctx>>) -> Response {
    let mut h = serde_json::to_value(ctx.uptime.health()).unwrap_or_default();
    let ok = ctx.store.ping().await;
    h["database"] = serde_json::json!(if ok { "ok" } else { "unavailable" });
    if !ok {
        h["status"] = serde_json::json!("degraded");
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(h)).into_response();
    }
    axum::Json(h).into_response()
}

async fn metrics_text(State(ctx): State<Arc<Ctx>>, headers: HeaderMap) -> Response {
    ctx.metrics.render(&headers)
}

/// Serves until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let app = router(config, shutdown.clone()).await?;
    super::http::serve(listener, app, shutdown).await
}
