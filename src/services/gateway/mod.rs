//! The `gateway` built-in (SPEC §4.3): one front door for applications — keys, per-key
//! limits, routing by model with retries and fallback, streams passed through frame by
//! frame, MCP and session routes proxied to the context server, and context enrichment.

mod config;
mod enrich;
mod keys;
mod passthrough;
mod pool;
mod proxy;
mod record;
mod reply;
mod translate;
mod upstream;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::services::cassette::Mode;
use config::Upstream;
pub(crate) use config::{Config, check_value};

use super::ServeError;
use super::http::Uptime;
use super::metrics::HttpMetrics;

/// Labels of a gateway request (static route names, shared upstream and model names).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    route: &'static str,
    status: u16,
    upstream: Arc<str>,
    model: Arc<str>,
}

/// A route, a token kind, the model and the key's label (`key#N`, never the key).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TokenLabels {
    route: &'static str,
    kind: &'static str,
    model: Arc<str>,
    key: Arc<str>,
}

/// What failed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OpLabel {
    op: &'static str,
}

/// The gateway's own metrics (besides the HTTP and GenAI ones).
#[derive(Debug, Default)]
pub(crate) struct GatewayMetrics {
    requests: Family<RequestLabels, Counter>,
    retries: Counter,
    fallbacks: Counter,
    tokens: Family<TokenLabels, Counter>,
    rate_limited: Family<OpLabel, Counter>,
    context_failures: Family<OpLabel, Counter>,
}

/// The metrics one model route touches on every request, resolved at start: a request
/// bumps these directly instead of hashing its labels into a family. Answers other than
/// 200 go through the families.
#[derive(Debug)]
struct RouteHandles {
    /// `http_requests{route, method="POST", status="200"}`.
    http_ok: Counter,
    latency: Histogram,
}

impl RouteHandles {
    fn new(route: &'static str, http: &HttpMetrics) -> RouteHandles {
        RouteHandles {
            http_ok: http.requests_counter(route, "POST", 200),
            latency: http.latency_histogram(route),
        }
    }
}

/// The TLS client for `https://` upstreams, made once and only when one is configured:
/// the system's roots plus `ca_file` (checked with the configuration, so failing here is
/// unexpected; the system's roots then serve alone, and a private upstream fails its
/// handshake with a clear error).
fn tls_config(config: &Config) -> Option<Arc<rustls::ClientConfig>> {
    let https = |u: &str| u.starts_with("https://");
    let wanted = config
        .upstreams
        .values()
        .flat_map(|u| &u.0)
        .any(|t| https(&t.url))
        || config.context_url.as_deref().is_some_and(https);
    if !wanted {
        return None;
    }
    match super::tls::client_config(config.ca_file.as_deref()) {
        Ok(c) => Some(c),
        Err(err) => {
            tracing::error!(%err, "cannot use ca_file; trusting the system's roots only");
            super::tls::client_config(None).ok()
        }
    }
}

/// Shared state.
#[derive(Debug)]
pub(crate) struct Gateway {
    config: Config,
    keys: keys::Keys,
    upstreams: upstream::Upstreams,
    context: Option<enrich::ContextClient>,
    sessions: enrich::SessionLocks,
    metrics: GatewayMetrics,
    http: Arc<HttpMetrics>,
    /// Per model route, indexed like [`proxy::ROUTES`].
    hot: Vec<RouteHandles>,
    tasks: TaskTracker,
    uptime: Uptime,
    /// `llm: record`: where exchanges are written.
    recorder: Option<record::Recorder>,
}

impl Gateway {
    fn new(mut config: Config) -> Gateway {
        let mode = config.llm.unwrap_or_default();
        if let (true, Some(mock)) = (mode.to_mock(), config.mock.clone()) {
            // Every upstream is the mock, whatever it was: routes and aliases still name
            // them, and nothing reaches a provider.
            let mock = Upstream(vec![
                <config::Target as crate::config::raw::ShortForm>::from_short(&mock),
            ]);
            for u in config.upstreams.values_mut() {
                *u = mock.clone();
            }
            config.upstreams.entry("default".into()).or_insert(mock);
        }
        let recorder =
            (mode == Mode::Record).then(|| record::Recorder::new(config.cassettes.clone()));
        let tls = tls_config(&config);
        let upstreams = upstream::Upstreams::new(&config, tls.as_ref());
        let context = config
            .context_url
            .as_deref()
            .and_then(|u| config::parse_base(u).ok())
            .map(|base| {
                let endpoint = pool::Endpoint::start(
                    base,
                    Duration::from_millis(config.connect_timeout_ms),
                    Duration::from_millis(config.pool_idle_timeout_ms),
                    tls.as_ref(),
                );
                enrich::ContextClient::new(endpoint, config.context_token.as_deref())
            });
        let metrics = GatewayMetrics::default();
        let mut http = HttpMetrics::new("stack_gateway");
        let r = &mut http.registry;
        r.register(
            "requests",
            "Model requests by route, status, upstream and model",
            metrics.requests.clone(),
        );
        r.register(
            "upstream_retries",
            "Retries of an upstream URL",
            metrics.retries.clone(),
        );
        r.register(
            "upstream_fallbacks",
            "Moves to an upstream's next URL",
            metrics.fallbacks.clone(),
        );
        r.register(
            "tokens",
            "Tokens by route, kind (prompt estimate, completion), model and key label",
            metrics.tokens.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by a per-key limit",
            metrics.rate_limited.clone(),
        );
        r.register(
            "context_failures",
            "Context server calls that failed",
            metrics.context_failures.clone(),
        );
        // Every family has its samples from the start (a dashboard's query finds them
        // before the first request).
        for what in ["retrieve", "store"] {
            let _ = metrics
                .context_failures
                .get_or_create(&OpLabel { op: what });
        }
        for what in keys::LIMITS {
            let _ = metrics.rate_limited.get_or_create(&OpLabel { op: what });
        }
        http.declare(
            "stack_gateway_requests",
            "counter",
            "Model requests by route, status, upstream and model",
        );
        http.declare(
            "stack_gateway_tokens",
            "counter",
            "Tokens by route, kind (prompt estimate, completion), model and key label",
        );
        let hot = proxy::ROUTES
            .iter()
            .map(|r| RouteHandles::new(r.path, &http))
            .collect();
        Gateway {
            keys: keys::Keys::new(&config.keys),
            upstreams,
            context,
            sessions: enrich::SessionLocks::default(),
            metrics,
            http: Arc::new(http),
            hot,
            tasks: TaskTracker::new(),
            uptime: Uptime::start("gateway"),
            recorder,
            config,
        }
    }

    /// Records a finished request: metrics and the JSON access log.
    fn observe(&self, a: &proxy::Access) {
        let route = a.route.path;
        let hot = &self.hot[a.route.index];
        let seconds = a.ms / 1000.0;
        let model = a.meter.model.clone();
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                route,
                status: a.status,
                upstream: a.upstream.clone().unwrap_or_else(|| Arc::from("")),
                model: model.clone(),
            })
            .inc();
        if a.status == 200 {
            hot.http_ok.inc();
            hot.latency.observe(seconds);
            self.http
                .genai
                .timing(&a.meter.genai(a.route), seconds, a.stream);
        } else {
            self.http.observe(route, "POST", a.status, seconds);
        }
        if a.retries > 0 {
            self.metrics.retries.inc_by(u64::from(a.retries));
        }
        if a.fallbacks > 0 {
            self.metrics.fallbacks.inc_by(u64::from(a.fallbacks));
        }
        self.metrics
            .tokens
            .get_or_create(&TokenLabels {
                route,
                kind: "prompt",
                model,
                key: a.meter.key.clone(),
            })
            .inc_by(a.prompt_tokens);
        if let Some(what) = a.limited {
            self.metrics
                .rate_limited
                .get_or_create(&OpLabel {
                    op: keys::limit_label(what),
                })
                .inc();
        }
        // The JSON line is only built when someone reads it.
        if tracing::enabled!(target: "access", tracing::Level::INFO)
            && let Ok(line) = serde_json::to_string(a)
        {
            tracing::info!(target: "access", "{line}");
        }
    }

    /// Records the completion tokens of an answer (and charges them to the key): the
    /// counters, the GenAI token usage, and the request's span, which ends here.
    fn count_tokens(&self, route: proxy::RouteKind, said: &reply::Said, meter: proxy::Meter) {
        self.metrics
            .tokens
            .get_or_create(&TokenLabels {
                route: route.path,
                kind: "completion",
                model: meter.model.clone(),
                key: meter.key.clone(),
            })
            .inc_by(said.completion_tokens);
        self.http.genai.tokens(
            &meter.genai(route),
            &meter.key,
            meter.prompt_tokens,
            said.completion_tokens,
        );
        if !meter.key.is_empty() {
            self.keys.charge(&meter.key, said.completion_tokens);
        }
        if let Some(cx) = meter.trace {
            use opentelemetry::trace::TraceContextExt;
            cx.span().set_attribute(opentelemetry::KeyValue::new(
                "gen_ai.usage.output_tokens",
                said.completion_tokens as i64,
            ));
        }
    }
}

/// The gateway over `config`: what [`serve`] serves (the tests drive it in process).
#[cfg(test)]
pub(crate) fn router(config: Config) -> Front {
    front(Arc::new(Gateway::new(config)))
}

fn front(gw: Arc<Gateway>) -> Front {
    Front {
        router: routes(gw.clone()),
        hosts: super::hosts::Hosts::new(&gw.config.allowed_hosts),
        gw,
    }
}

/// Every route but the model routes, which [`Front`] answers itself.
fn routes(gw: Arc<Gateway>) -> Router {
    let http = gw.http.clone();
    Router::new()
        .route("/v1/models", get(passthrough::models))
        .route("/v1/models/{id}", get(passthrough::model))
        .route("/mcp", any(passthrough::context))
        .route("/v1/sessions", any(passthrough::context))
        .route("/v1/sessions/{*rest}", any(passthrough::context))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route_layer(axum::middleware::from_fn_with_state(
            http,
            super::metrics::track,
        ))
        .fallback(super::api_error::fallback)
        .method_not_allowed_fallback(super::api_error::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(gw)
}

/// `/health`: the gateway, and whether each upstream URL and the context server answer a
/// TCP connect (the gateway stays `ok` for its own liveness; `upstreams_ok` says the rest).
async fn health(State(gw): State<Arc<Gateway>>) -> Response {
    let mut upstreams = serde_json::Map::new();
    let mut all = true;
    for (name, urls) in gw.upstreams.all() {
        let mut m = serde_json::Map::new();
        for hop in urls {
            let ok = hop.endpoint.reachable(REACHABLE_WITHIN).await;
            all &= ok;
            m.insert(hop.endpoint.uri().to_string(), json!(ok));
        }
        upstreams.insert(name.to_string(), json!(m));
    }
    let context = match &gw.context {
        Some(c) => json!(c.endpoint().reachable(REACHABLE_WITHIN).await),
        None => json!(null),
    };
    let mut h = serde_json::to_value(gw.uptime.health()).unwrap_or_default();
    h["upstreams"] = json!(upstreams);
    h["upstreams_ok"] = json!(all);
    h["context_server"] = context;
    axum::Json(h).into_response()
}

/// How long `/health` waits for a TCP connect to an upstream or the context server.
const REACHABLE_WITHIN: Duration = Duration::from_millis(300);

async fn metrics_text(State(gw): State<Arc<Gateway>>, headers: axum::http::HeaderMap) -> Response {
    gw.http.render(&headers)
}

/// The gateway's front: a model route goes straight to its handler, without a router's
/// per-request work (route lookup, boxed handler, extensions), and records its own metrics
/// (`Gateway::observe`); everything else goes through the axum router.
#[derive(Clone)]
pub(crate) struct Front {
    gw: Arc<Gateway>,
    router: Router,
    hosts: super::hosts::Hosts,
}

type FrontFuture = futures::future::Either<
    futures::future::BoxFuture<'static, Result<Response, Infallible>>,
    <Router as tower::Service<Request>>::Future,
>;

impl tower::Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = FrontFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> FrontFuture {
        use futures::future::{Either, FutureExt, ready};
        if let Err(message) = self.hosts.check(req.uri(), req.headers()) {
            let refused = super::hosts::refusal(req.uri(), req.headers(), message);
            return Either::Left(ready(Ok(refused)).boxed());
        }
        let Some(route) = proxy::ROUTES.iter().find(|r| r.path == req.uri().path()) else {
            return Either::Right(tower::Service::call(&mut self.router, req));
        };
        if req.method() != Method::POST {
            let message = format!("`{} {}` is not served: use POST", req.method(), route.path);
            let mut refused =
                super::api_error::ApiError::new(route.api, 405, message).into_response();
            refused
                .headers_mut()
                .insert(header::ALLOW, axum::http::HeaderValue::from_static("POST"));
            return Either::Left(ready(Ok(refused)).boxed());
        }
        let (gw, route) = (self.gw.clone(), *route);
        let (parts, body) = req.into_parts();
        Either::Left(async move { Ok(proxy::handle(gw, route, parts.headers, body).await) }.boxed())
    }
}

/// Serves until `shutdown`, then lets pending context writes finish (up to 5 s).
pub(crate) async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let gw = Arc::new(Gateway::new(config));
    let result = super::http::serve_service(listener, front(gw.clone()), shutdown).await;
    gw.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), gw.tasks.wait()).await;
    result
}
