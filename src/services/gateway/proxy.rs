//! The model routes: authenticate, limit, route by model, enrich with context, forward
//! (retries, fallback), and pass the answer through — streams frame by frame.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

use super::Gateway;
use super::enrich::{self, Prepended, Shape};
use super::keys::Refusal;
use super::reply::{self, Said, Tee};
use crate::services::api_error::{Api, ApiError};

/// Which route, for errors, enrichment and metrics.
#[derive(Debug, Clone, Copy)]
pub struct RouteKind {
    /// The path forwarded.
    pub path: &'static str,
    /// Error shape.
    pub api: Api,
    /// Enrichment shape, when the route carries a conversation.
    pub shape: Option<Shape>,
}

/// The fields routing needs; the body is forwarded as it came.
#[derive(Debug, Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    stream: Option<bool>,
    max_tokens: Option<u64>,
}

/// Handles one model request.
pub async fn handle(
    gw: Arc<Gateway>,
    route: RouteKind,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(next_request_id, str::to_string);
    let mut log = Access {
        request_id: request_id.clone(),
        route: route.path,
        ..Access::default()
    };
    let mut resp = match forward(&gw, route, &headers, body, &mut log).await {
        Ok(r) => r,
        Err(e) => {
            log.error = Some(e.message.clone());
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    log.status = resp.status().as_u16();
    log.ms = started.elapsed().as_secs_f64() * 1000.0;
    gw.observe(&log);
    resp
}

/// A request id unique to this process: its start time and a counter (cheaper than a
/// random UUID on every request).
fn next_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BOOT: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let boot = BOOT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    });
    format!("{boot:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One access-log line (JSON), also the source of the gateway's metrics.
#[derive(Debug, Default, serde::Serialize)]
pub struct Access {
    /// Request id (`x-request-id`, given or made).
    pub request_id: String,
    /// The route.
    pub route: &'static str,
    /// The answer's status.
    pub status: u16,
    /// The upstream used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Arc<str>>,
    /// The model asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The key's label (`key#N`), never the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Retries made.
    pub retries: u32,
    /// Fallbacks to a later URL.
    pub fallbacks: u32,
    /// Whether the answer streamed.
    pub stream: bool,
    /// Context entries prepended.
    pub context_entries: usize,
    /// Prompt tokens (estimate) charged.
    pub prompt_tokens: u64,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rate-limit refusal reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited: Option<&'static str>,
    /// Time to the response head.
    pub ms: f64,
}

async fn forward(
    gw: &Arc<Gateway>,
    route: RouteKind,
    headers: &HeaderMap,
    body: Body,
    log: &mut Access,
) -> Result<Response<Body>, ApiError> {
    let api = route.api;
    let bytes = axum::body::to_bytes(body, gw.config.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                api,
                413,
                format!(
                    "request body is larger than {} bytes",
                    gw.config.max_body_bytes
                ),
            )
        })?;
    let peek: Peek = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(api, format!("malformed JSON in the request body: {e}"))
    })?;
    log.model = peek.model.as_deref().map(str::to_string);
    log.stream = peek.stream == Some(true);
    // Charged up front: ~4 bytes a token for the prompt, plus what the answer may take.
    log.prompt_tokens = bytes.len() as u64 / 4;
    let estimate = log.prompt_tokens + peek.max_tokens.unwrap_or(0).min(4096);
    let key = match gw.keys.admit(headers, estimate) {
        Ok(k) => k,
        Err(Refusal::Unauthorized(m)) => return Err(ApiError::new(api, 401, m)),
        Err(Refusal::Limited { what, retry_after }) => {
            log.limited = Some(what);
            let mut e = ApiError::new(
                api,
                429,
                format!("rate limit reached for {what}; retry after {retry_after:.1} s"),
            );
            e.retry_after = Some(retry_after);
            return Err(e);
        }
    };
    log.key = key.map(|k| k.label.clone());
    let upstream: Arc<str> = gw.upstreams.route(peek.model.as_deref()).ok_or_else(|| {
        ApiError::new(
            api,
            404,
            format!(
                "no upstream for model `{}`: add a route or a `default` upstream",
                peek.model.as_deref().unwrap_or("")
            ),
        )
    })?;
    log.upstream = Some(upstream.clone());
    let stream = peek.stream == Some(true);

    // Context enrichment.
    let session = headers
        .get("x-session-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut held = None;
    let mut prepended = Prepended::default();
    let mut user_turn = String::new();
    let mut out_body = bytes.clone();
    if let (Some(sid), Some(shape), Some(ctx)) = (&session, route.shape, &gw.context) {
        let guard = gw.sessions.hold(sid).await;
        let mut v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(api, e.to_string()))?;
        user_turn = enrich::last_user_text(shape, &v);
        match ctx
            .retrieve(sid, gw.config.context_max_tokens, &user_turn)
            .await
        {
            Ok(Some(context)) => {
                prepended = enrich::prepend(shape, &mut v, &context);
                if prepended.entries > 0 {
                    out_body = Bytes::from(v.to_string());
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(session = %sid, error = %e, "context server unavailable: answering without context");
                gw.metrics
                    .context_failures
                    .get_or_create(&op("retrieve"))
                    .inc();
            }
        }
        held = Some(guard);
    }
    log.context_entries = prepended.entries;

    let fwd_headers = super::upstream::forwardable(headers);
    let result = gw
        .upstreams
        .forward(&upstream, &Method::POST, route.path, &fwd_headers, out_body)
        .await;
    let (upstream_resp, attempts) = match result {
        Ok(r) => r,
        Err(u) => {
            log.retries = u.attempts.retries;
            log.fallbacks = u.attempts.fallbacks;
            let mut e = ApiError::new(
                api,
                502,
                format!("upstream `{upstream}` is unreachable: {}", u.reason),
            );
            e.should_retry = Some(false);
            return Err(e);
        }
    };
    log.retries = attempts.retries;
    log.fallbacks = attempts.fallbacks;
    let status = upstream_resp.status();
    let (mut parts, incoming) = upstream_resp.into_parts();
    strip_hop_headers(&mut parts.headers);
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        // Every retry and fallback answered this: the caller should not retry on top.
        parts
            .headers
            .insert("x-should-retry", HeaderValue::from_static("false"));
    }
    if prepended.entries > 0 || session.is_some() {
        insert_num(
            &mut parts.headers,
            "x-stack-context-entries",
            prepended.entries as u64,
        );
        insert_num(
            &mut parts.headers,
            "x-stack-context-tokens",
            prepended.tokens,
        );
    }
    let is_sse = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));

    let needs_store = session.is_some() && gw.context.is_some();
    let gw2 = gw.clone();
    let key_label = key.map(|k| k.label.clone());
    let store = move |said: Said| {
        let gw = gw2;
        let route_path = route.path;
        async move {
            gw.count_tokens(route_path, &said, key_label.as_deref());
            if let (Some(sid), Some(ctx), true) = (&session, &gw.context, status.is_success()) {
                for (role, text) in [
                    ("user", user_turn.as_str()),
                    ("assistant", said.text.as_str()),
                ] {
                    if text.is_empty() {
                        continue;
                    }
                    if let Err(e) = ctx.store(sid, role, text).await {
                        tracing::warn!(session = %sid, error = %e, "cannot store the turn in the context server");
                        gw.metrics
                            .context_failures
                            .get_or_create(&op("store"))
                            .inc();
                    }
                }
            }
            drop(held);
        }
    };

    if stream && is_sse {
        // Frame by frame: nothing is buffered; the reply is read on the way through.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tee = Tee::new(incoming.into_data_stream(), tx);
        gw.tasks.spawn(async move {
            if let Ok(said) = rx.await {
                store(said).await;
            }
        });
        return Ok(Response::from_parts(parts, Body::from_stream(tee)));
    }
    let body = incoming
        .collect()
        .await
        .map_err(|e| {
            ApiError::new(
                api,
                502,
                format!("upstream `{upstream}` broke off its answer: {e}"),
            )
        })?
        .to_bytes();
    if needs_store {
        gw.tasks.spawn(store(reply::from_json(&body)));
    } else {
        // Nothing to store: count the tokens here, without a task or the reply text.
        let said = reply::Said {
            text: String::new(),
            completion_tokens: reply::completion_tokens(&body),
        };
        gw.count_tokens(route.path, &said, key.map(|k| k.label.as_str()));
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn op(name: &'static str) -> super::OpLabel {
    super::OpLabel { op: name }
}

fn insert_num(h: &mut HeaderMap, name: &'static str, n: u64) {
    if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
        h.insert(name, v);
    }
}

/// Drops hop-by-hop headers of an upstream answer.
pub fn strip_hop_headers(h: &mut HeaderMap) {
    for name in [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    ] {
        h.remove(name);
    }
}

/// `POST` handlers for each model route.
pub async fn chat(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    handle(
        gw,
        RouteKind {
            path: "/v1/chat/completions",
            api: Api::OpenAi,
            shape: Some(Shape::Chat),
        },
        headers,
        body,
    )
    .await
}

/// `POST /v1/messages`.
pub async fn messages(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    handle(
        gw,
        RouteKind {
            path: "/v1/messages",
            api: Api::Anthropic,
            shape: Some(Shape::Messages),
        },
        headers,
        body,
    )
    .await
}

/// `POST /v1/messages/count_tokens`.
pub async fn count_tokens(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    handle(
        gw,
        RouteKind {
            path: "/v1/messages/count_tokens",
            api: Api::Anthropic,
            shape: None,
        },
        headers,
        body,
    )
    .await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    handle(
        gw,
        RouteKind {
            path: "/v1/embeddings",
            api: Api::OpenAi,
            shape: None,
        },
        headers,
        body,
    )
    .await
}

/// `POST /v1/responses`.
pub async fn responses(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    handle(
        gw,
        RouteKind {
            path: "/v1/responses",
            api: Api::OpenAi,
            shape: Some(Shape::Responses),
        },
        headers,
        body,
    )
    .await
}
