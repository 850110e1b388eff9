//! The model routes: authenticate, limit, route by model, enrich with context, forward
//! (retries, fallback), and pass the answer through — streams frame by frame.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

use super::Gateway;
use super::enrich::{self, Prepended, Shape};
use super::keys::Refusal;
use super::reply::{self, Said, Tee};
use super::upstream::{names, strip_hop_headers};
use crate::services::api_error::{Api, ApiError};
use crate::services::otel;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;

/// Which route, for errors, enrichment and metrics.
#[derive(Debug, Clone, Copy)]
pub(super) struct RouteKind {
    /// Position in [`ROUTES`].
    pub index: usize,
    /// The path forwarded.
    pub path: &'static str,
    /// Error shape.
    pub api: Api,
    /// Enrichment shape, when the route carries a conversation.
    pub shape: Option<Shape>,
}

impl RouteKind {
    /// The GenAI operation (`gen_ai.operation.name`). A method, not a field: a route is
    /// copied into most of a request's futures.
    pub(super) fn op(self) -> &'static str {
        match self.path {
            "/v1/embeddings" => "embeddings",
            "/v1/messages/count_tokens" => "count_tokens",
            _ => "chat",
        }
    }
}

/// What a request's metrics and span need once its head is sent: the model's and the
/// key's label values, the prompt's tokens, and the span (which ends when the last clone
/// goes, once the answer's tokens are counted).
#[derive(Debug, Clone, Default)]
pub(super) struct Meter {
    /// The model asked for, as a label value.
    pub model: Arc<str>,
    /// The key's label (`key#N`), empty without keys.
    pub key: Arc<str>,
    /// Prompt tokens (estimate).
    pub prompt_tokens: u64,
    /// The request's span, when traces are exported.
    pub trace: Option<opentelemetry::Context>,
}

impl Meter {
    /// The GenAI metrics' labels of this call.
    pub(super) fn genai(&self, route: RouteKind) -> crate::services::metrics::GenAiLabels {
        crate::services::metrics::GenAiLabels {
            gen_ai_operation_name: route.op(),
            gen_ai_provider_name: crate::services::otel::provider_name(route.api),
            gen_ai_request_model: self.model.clone(),
        }
    }
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
pub(super) async fn handle(
    gw: Arc<Gateway>,
    route: RouteKind,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = headers
        .get(names::REQUEST_ID)
        .cloned()
        .unwrap_or_else(next_request_id);
    let trace = otel::tracer().map(|t| {
        otel::start(
            t,
            route.op(),
            SpanKind::Server,
            &otel::parent(&headers),
            vec![
                KeyValue::new("gen_ai.operation.name", route.op()),
                KeyValue::new("gen_ai.provider.name", otel::provider_name(route.api)),
                KeyValue::new("http.route", route.path),
            ],
        )
    });
    let mut log = Access {
        meter: Meter {
            trace,
            ..Meter::default()
        },
        request_id,
        route,
        status: 0,
        upstream: None,
        model: None,
        retries: 0,
        fallbacks: 0,
        stream: false,
        context_entries: 0,
        prompt_tokens: 0,
        error: None,
        limited: None,
        ms: 0.0,
    };
    let mut resp = match forward(&gw, route, &headers, body, &mut log).await {
        Ok(r) => r,
        Err(e) => {
            log.error = Some(e.message.clone());
            e.into_response()
        }
    };
    resp.headers_mut()
        .insert(names::REQUEST_ID, log.request_id.clone());
    log.status = resp.status().as_u16();
    log.ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(cx) = &log.meter.trace {
        annotate(cx, &log);
    }
    gw.observe(&log);
    resp
}

/// The request's span, once its head is known: `chat {model}` and the GenAI attributes.
fn annotate(cx: &opentelemetry::Context, log: &Access) {
    use opentelemetry::trace::TraceContextExt;
    let span = cx.span();
    let model = log.model.as_deref().unwrap_or_default();
    span.update_name(format!("{} {model}", log.route.op()));
    let mut attrs = vec![
        KeyValue::new("http.response.status_code", i64::from(log.status)),
        KeyValue::new("gen_ai.usage.input_tokens", log.prompt_tokens as i64),
        KeyValue::new("stack.retries", i64::from(log.retries)),
        KeyValue::new("stack.fallbacks", i64::from(log.fallbacks)),
        KeyValue::new("stack.context.entries", log.context_entries as i64),
    ];
    if !model.is_empty() {
        attrs.push(KeyValue::new("gen_ai.request.model", model.to_string()));
        attrs.push(KeyValue::new("gen_ai.response.model", model.to_string()));
    }
    if let Some(u) = &log.upstream {
        attrs.push(KeyValue::new("stack.upstream", u.to_string()));
    }
    if !log.meter.key.is_empty() {
        attrs.push(KeyValue::new("stack.key", log.meter.key.to_string()));
    }
    span.set_attributes(attrs);
    if log.status >= 400 {
        let message = log.error.as_deref().unwrap_or("the request failed");
        otel::fail(cx, log.status.to_string(), message);
    }
}

/// A request id unique to this process: its start time and a counter, in hex (cheaper
/// than a random UUID on every request).
pub(super) fn next_request_id() -> HeaderValue {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BOOT: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let boot = *BOOT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    });
    let mut id = [0u8; 33];
    let mut len = push_hex(&mut id, 0, boot);
    id[len] = b'-';
    len = push_hex(&mut id, len + 1, NEXT.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_bytes(&id[..len]).unwrap_or(HeaderValue::from_static("0"))
}

/// Writes `n` in lowercase hex at `buf[at..]`; returns the end.
pub(super) fn push_hex(buf: &mut [u8; 33], at: usize, n: u64) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let width = (16 - n.leading_zeros() as usize / 4).max(1);
    for i in 0..width {
        buf[at + width - 1 - i] = DIGITS[(n >> (4 * i)) as usize & 0xf];
    }
    at + width
}

/// One access-log line (JSON), also the source of the gateway's metrics.
#[derive(Debug, serde::Serialize)]
pub(super) struct Access {
    /// Request id (`x-request-id`, given or made).
    #[serde(serialize_with = "header_text")]
    pub request_id: HeaderValue,
    /// The route.
    #[serde(serialize_with = "route_path")]
    pub route: RouteKind,
    /// The answer's status.
    pub status: u16,
    /// The upstream used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Arc<str>>,
    /// The model asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
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
    /// Labels and span (the key's label, `key#N`, is logged as `key`: never the key).
    #[serde(flatten, serialize_with = "key_only")]
    pub meter: Meter,
}

/// The access log's `key` (when there is one) from the meter.
fn key_only<S: serde::Serializer>(m: &Meter, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(None)?;
    if !m.key.is_empty() {
        map.serialize_entry("key", &*m.key)?;
    }
    map.end()
}

fn route_path<S: serde::Serializer>(r: &RouteKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.path)
}

/// A header value in the access log (lossy when it is not visible ASCII).
fn header_text<S: serde::Serializer>(v: &HeaderValue, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(v.as_bytes()))
}

/// One model request: read, admit, route, enrich, send on, and answer.
async fn forward(
    gw: &Arc<Gateway>,
    route: RouteKind,
    headers: &HeaderMap,
    body: Body,
    log: &mut Access,
) -> Result<Response<Body>, ApiError> {
    let started = Instant::now();
    let api = route.api;
    let bytes = read_body(gw, api, body).await?;
    let peek: Peek = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(api, format!("malformed JSON in the request body: {e}"))
    })?;
    log.model = peek.model.as_deref().map(str::to_string);
    log.meter.model = gw
        .http
        .genai
        .models
        .label(peek.model.as_deref().unwrap_or(""));
    log.stream = peek.stream == Some(true);
    admit(gw, api, headers, &bytes, &peek, log)?;
    let stream = peek.stream == Some(true);
    let alias = peek.model.as_deref().and_then(|m| {
        gw.upstreams
            .alias(m)
            .map(|(upstream, real)| (upstream.clone(), real.clone(), Arc::<str>::from(m)))
    });
    let (upstream, bytes) = match &alias {
        // The app asks for the alias; the upstream is asked for the model it stands for.
        Some((upstream, real, _)) => (upstream.clone(), with_model(api, &bytes, real)?),
        None => (pick_upstream(gw, api, &peek)?, bytes.clone()),
    };
    log.upstream = Some(upstream.clone());
    let mut enriched = enrich(gw, route, headers, bytes, log.meter.trace.as_ref()).await?;
    log.context_entries = enriched.prepended.entries;
    let outgoing = outgoing(gw, route, &upstream, std::mem::take(&mut enriched.body))?;
    let recording = gw
        .recorder
        .as_ref()
        .and_then(|r| r.begin(route.path, &outgoing.body.plain, started));

    let sent = send_upstream(gw, route, headers, &upstream, &outgoing.body, log).await;
    log.meter.prompt_tokens = log.prompt_tokens;
    drop(outgoing.body);
    let (upstream_resp, translated) = sent?;
    let status = upstream_resp.status();
    let (mut parts, incoming) = upstream_resp.into_parts();
    answer_headers(&mut parts.headers, status, &enriched);
    let is_sse = content_is_sse(&parts.headers);
    let answer = Answer {
        route,
        meter: log.meter.clone(),
        status,
        streamed: stream && is_sse,
        upstream,
        enriched,
        recording,
    };
    let asked = alias.map(|(_, _, asked)| asked);
    let Some(dir) = translated else {
        if !status.is_success() {
            // An error goes back only in the caller's API shape.
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            let body = Box::pin(error_in_shape(api, status, incoming)).await;
            return finish_answer(gw, answer, asked, parts, body).await;
        }
        return finish_answer(gw, answer, asked, parts, incoming).await;
    };
    // The answer comes back in the caller's API's shape; its length changes.
    parts.headers.remove(header::CONTENT_LENGTH);
    if !is_sse {
        parts.headers.insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
    }
    let body = Box::pin(translate_answer(
        route,
        dir,
        status,
        is_sse,
        outgoing.include_usage,
        incoming,
    ))
    .await?;
    finish_answer(gw, answer, asked, parts, body).await
}

fn content_is_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"))
}

/// The answer recorded (`llm: record`), renamed to the alias asked for (if one was), then
/// delivered.
async fn finish_answer<B>(
    gw: &Arc<Gateway>,
    mut answer: Answer,
    asked: Option<Arc<str>>,
    parts: axum::http::response::Parts,
    incoming: B,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<axum::BoxError> + std::fmt::Display,
{
    // What the caller gets, before the alias's name goes in: a replay asks the mock for
    // the model behind the alias, and is renamed the same way.
    if let Some(pending) = answer.recording.take() {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let recorded =
            super::record::Recording::new(incoming, pending, parts.status.as_u16(), &content_type);
        // Boxed: a second copy of the delivery's state would double every request's future.
        return Box::pin(renamed(gw, answer, asked, parts, recorded)).await;
    }
    renamed(gw, answer, asked, parts, incoming).await
}

/// The answer renamed to the alias asked for, if one was, then delivered.
async fn renamed<B>(
    gw: &Arc<Gateway>,
    answer: Answer,
    asked: Option<Arc<str>>,
    mut parts: axum::http::response::Parts,
    incoming: B,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<axum::BoxError> + std::fmt::Display,
{
    match asked {
        // The answer names the alias the app asked for, not the model behind it.
        Some(asked) => {
            // Its length changes with the name.
            parts.headers.remove(header::CONTENT_LENGTH);
            let renamed = reply::RenameModel::new(incoming.into_data_stream(), asked);
            deliver(gw, answer, parts, Body::from_stream(renamed)).await
        }
        None => deliver(gw, answer, parts, incoming).await,
    }
}

/// What goes upstream, and what translating it back needs.
struct Outbound {
    body: super::upstream::Outgoing,
    /// The caller asked for usage at the end of its stream (OpenAI's `stream_options`).
    include_usage: bool,
}

/// The body for the upstream's URLs: as it is, and translated when a URL's provider
/// speaks the other API. A route no URL of the upstream can serve, or a parameter with
/// no counterpart, is a 400 naming it.
fn outgoing(
    gw: &Gateway,
    route: RouteKind,
    upstream: &str,
    body: Bytes,
) -> Result<Outbound, ApiError> {
    let directions = gw.upstreams.directions(upstream, route.path);
    if directions.clone().all(|d| d.is_err())
        && let Some(Err(why)) = directions.clone().next()
    {
        return Err(ApiError::bad_request(route.api, why));
    }
    let Some(dir) = directions.clone().find_map(|d| d.ok().flatten()) else {
        return Ok(Outbound {
            body: body.into(),
            include_usage: false,
        });
    };
    let translated = super::translate::request(dir, &body).map_err(|m| {
        let mut e = ApiError::bad_request(route.api, m.clone());
        e.param = m.split('`').nth(1).map(str::to_string);
        e
    })?;
    let include_usage = translated.include_usage;
    let translated = Bytes::from(translated.body);
    Ok(Outbound {
        body: super::upstream::Outgoing {
            plain: body,
            translated: Some((dir, translated)),
        },
        include_usage,
    })
}

/// An untranslated upstream's error as the caller's API shapes it: as it came when it is
/// that shape already, else wrapped (its message kept, or the start of its text).
async fn error_in_shape(
    api: crate::services::api_error::Api,
    status: StatusCode,
    incoming: super::pool::PooledBody,
) -> Body {
    use crate::services::api_error::Api;
    let bytes = incoming
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let shaped = match api {
        Api::OpenAi => v["error"]["message"].is_string(),
        Api::Anthropic => v["type"] == "error" && v["error"]["type"].is_string(),
    };
    if shaped {
        return Body::from(bytes);
    }
    let message = v["error"]["message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&bytes);
            let text: String = text.trim().chars().take(200).collect();
            if text.is_empty() {
                format!("the upstream answered {status}")
            } else {
                format!("the upstream answered {status}: {text}")
            }
        });
    Body::from(
        ApiError::new(api, status.as_u16(), message)
            .body()
            .to_string(),
    )
}

/// A translated upstream's answer in the caller's shape: an error document, an event
/// stream translated as it passes, or a document.
async fn translate_answer(
    route: RouteKind,
    dir: super::translate::Direction,
    status: StatusCode,
    is_sse: bool,
    include_usage: bool,
    incoming: super::pool::PooledBody,
) -> Result<Body, ApiError> {
    use super::translate;
    if status.is_success() && is_sse {
        let stream = translate::TranslatedStream::new(
            incoming.into_data_stream(),
            translate::StreamTranslator::new(dir, include_usage),
        );
        return Ok(Body::from_stream(stream));
    }
    let bytes = incoming
        .collect()
        .await
        .map_err(|e| {
            ApiError::new(
                route.api,
                502,
                format!("the upstream broke off its answer: {e}"),
            )
        })?
        .to_bytes();
    if !status.is_success() {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        return Ok(Body::from(
            translate::error(dir, status.as_u16(), &v).to_string(),
        ));
    }
    let out = translate::response(dir, &bytes).map_err(|e| {
        ApiError::new(
            route.api,
            502,
            format!("the upstream's answer is not a document of its API: {e}"),
        )
    })?;
    Ok(Body::from(out))
}

/// Sends the request to `upstream` (retries, fallback, translation per URL); the answer
/// and whether it was translated. Unreachable is a 502 that tells the caller not to retry.
async fn send_upstream(
    gw: &Gateway,
    route: RouteKind,
    headers: &HeaderMap,
    upstream: &str,
    body: &super::upstream::Outgoing,
    log: &mut Access,
) -> Result<
    (
        Response<super::pool::PooledBody>,
        Option<super::translate::Direction>,
    ),
    ApiError,
> {
    let result = gw
        .upstreams
        .forward(
            upstream,
            &Method::POST,
            route.path,
            headers,
            body,
            log.meter.trace.as_ref(),
        )
        .await;
    let attempts = match &result {
        Ok((_, a, _)) => a,
        Err(u) => &u.attempts,
    };
    log.retries = attempts.retries;
    log.fallbacks = attempts.fallbacks;
    match result {
        Ok((resp, _, translated)) => Ok((resp, translated)),
        Err(u) => {
            let mut e = ApiError::new(
                route.api,
                502,
                format!("upstream `{upstream}` is unreachable: {}", u.reason),
            );
            e.should_retry = Some(false);
            Err(e)
        }
    }
}

/// What the answer's delivery needs to know.
struct Answer {
    route: RouteKind,
    meter: Meter,
    status: StatusCode,
    /// A stream asked for and answered.
    streamed: bool,
    upstream: Arc<str>,
    enriched: Enriched,
    /// `llm: record`: the exchange being recorded.
    recording: Option<Box<super::record::Pending>>,
}

/// Passes the upstream's answer on: as it arrives when there is nothing to store (its
/// tokens counted as its end goes by), frame by frame for a stream (read on the way
/// through), else read whole; the turns stored afterwards, off the critical path.
async fn deliver<B>(
    gw: &Arc<Gateway>,
    answer: Answer,
    parts: axum::http::response::Parts,
    incoming: B,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<axum::BoxError> + std::fmt::Display,
{
    let Answer {
        route,
        meter,
        status,
        streamed,
        upstream,
        enriched,
        recording: _,
    } = answer;
    let needs_store = enriched.session.is_some() && gw.context.is_some();
    if !needs_store && !streamed {
        let gw = gw.clone();
        let counted = reply::Counted::new(incoming, move |tokens| {
            let said = Said {
                text: String::new(),
                completion_tokens: tokens,
            };
            gw.count_tokens(route, &said, meter);
        });
        return Ok(Response::from_parts(parts, Body::new(counted)));
    }
    if streamed {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tee = Tee::new(incoming.into_data_stream(), tx);
        let gw2 = gw.clone();
        gw.tasks.spawn(async move {
            if let Ok(said) = rx.await {
                store_turns(&gw2, route, meter, status, enriched, said).await;
            }
        });
        return Ok(Response::from_parts(parts, Body::from_stream(tee)));
    }
    let body = incoming
        .collect()
        .await
        .map_err(|e| {
            ApiError::new(
                route.api,
                502,
                format!("upstream `{upstream}` broke off its answer: {e}"),
            )
        })?
        .to_bytes();
    let said = reply::from_json(&body);
    let gw2 = gw.clone();
    gw.tasks.spawn(async move {
        store_turns(&gw2, route, meter, status, enriched, said).await;
    });
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// The request body with its `model` replaced.
fn with_model(api: Api, bytes: &Bytes, model: &str) -> Result<Bytes, ApiError> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(api, format!("malformed JSON in the request body: {e}"))
    })?;
    v["model"] = Value::String(model.to_string());
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(|e| ApiError::bad_request(api, e.to_string()))
}

/// The request body, up to `max_body_bytes`.
async fn read_body(gw: &Gateway, api: Api, body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, gw.config.max_body_bytes)
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
        })
}

/// The caller's key, checked and charged up front (~4 bytes a token for the prompt, plus
/// what the answer may take); its label.
fn admit(
    gw: &Gateway,
    api: Api,
    headers: &HeaderMap,
    bytes: &Bytes,
    peek: &Peek<'_>,
    log: &mut Access,
) -> Result<(), ApiError> {
    log.prompt_tokens = bytes.len() as u64 / 4;
    let estimate = log.prompt_tokens + peek.max_tokens.unwrap_or(0).min(4096);
    match gw.keys.admit(headers, estimate) {
        Ok(key) => {
            if let Some(k) = key {
                log.meter.key = Arc::from(k.label.as_str());
            }
            Ok(())
        }
        Err(Refusal::Unauthorized(m)) => Err(ApiError::new(api, 401, m)),
        Err(Refusal::Limited { what, retry_after }) => {
            log.limited = Some(what);
            let mut e = ApiError::new(
                api,
                429,
                format!("rate limit reached for {what}; retry after {retry_after:.1} s"),
            );
            e.retry_after = Some(retry_after);
            Err(e)
        }
    }
}

/// The upstream the model routes to.
fn pick_upstream(gw: &Gateway, api: Api, peek: &Peek<'_>) -> Result<Arc<str>, ApiError> {
    gw.upstreams.route(peek.model.as_deref()).ok_or_else(|| {
        ApiError::new(
            api,
            404,
            format!(
                "no upstream for model `{}`: add a route or a `default` upstream",
                peek.model.as_deref().unwrap_or("")
            ),
        )
    })
}

/// A request as it goes upstream, with what enrichment knows of it.
struct Enriched {
    /// The session (`x-session-id`), when given.
    session: Option<String>,
    /// The session's turn lock, held until its turns are stored (read your writes).
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// What was prepended.
    prepended: Prepended,
    /// The user's turn, to store.
    user_turn: String,
    /// The body sent upstream.
    body: Bytes,
}

/// With a session and a context server: the session's context prepended to the prompt.
/// A context server that does not answer leaves the request as it came.
async fn enrich(
    gw: &Gateway,
    route: RouteKind,
    headers: &HeaderMap,
    bytes: Bytes,
    trace: Option<&opentelemetry::Context>,
) -> Result<Enriched, ApiError> {
    let session = headers
        .get(names::SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let enriched = Enriched {
        session,
        held: None,
        prepended: Prepended::default(),
        user_turn: String::new(),
        body: bytes,
    };
    match (&enriched.session, route.shape, &gw.context) {
        // Boxed: the retrieval's state would otherwise grow every request's future.
        (Some(_), Some(shape), Some(_)) => {
            Box::pin(retrieve_into(gw, route, shape, enriched, trace)).await
        }
        _ => Ok(enriched),
    }
}

/// [`enrich`]'s work: hold the session, retrieve its context, prepend it.
async fn retrieve_into(
    gw: &Gateway,
    route: RouteKind,
    shape: Shape,
    mut enriched: Enriched,
    trace: Option<&opentelemetry::Context>,
) -> Result<Enriched, ApiError> {
    let (Some(sid), Some(ctx)) = (enriched.session.clone(), &gw.context) else {
        return Ok(enriched);
    };
    let guard = gw.sessions.hold(&sid).await;
    let mut v: Value = serde_json::from_slice(&enriched.body)
        .map_err(|e| ApiError::bad_request(route.api, e.to_string()))?;
    enriched.user_turn = enrich::last_user_text(shape, &v);
    match ctx
        .retrieve(
            &sid,
            gw.config.context_max_tokens,
            &enriched.user_turn,
            trace,
        )
        .await
    {
        Ok(Some(context)) => {
            enriched.prepended = enrich::prepend(shape, &mut v, &context);
            if enriched.prepended.entries > 0 {
                enriched.body = Bytes::from(v.to_string());
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
    enriched.held = Some(guard);
    Ok(enriched)
}

/// The answer's head: hop-by-hop headers gone, no retry on top of ours, what context was
/// added.
fn answer_headers(headers: &mut HeaderMap, status: StatusCode, enriched: &Enriched) {
    strip_hop_headers(headers);
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        // Every retry and fallback answered this: the caller should not retry on top.
        headers.insert(names::SHOULD_RETRY, HeaderValue::from_static("false"));
    }
    if enriched.prepended.entries > 0 || enriched.session.is_some() {
        insert_num(
            headers,
            names::CONTEXT_ENTRIES,
            enriched.prepended.entries as u64,
        );
        insert_num(headers, names::CONTEXT_TOKENS, enriched.prepended.tokens);
    }
}

/// Once the answer is read: its tokens counted, and (on success) the user's and the
/// assistant's turns stored in the session; then the session's lock is let go.
async fn store_turns(
    gw: &Gateway,
    route: RouteKind,
    meter: Meter,
    status: StatusCode,
    enriched: Enriched,
    said: Said,
) {
    let trace = meter.trace.clone();
    gw.count_tokens(route, &said, meter);
    if let (Some(sid), Some(ctx), true) = (&enriched.session, &gw.context, status.is_success()) {
        for (role, text) in [
            ("user", enriched.user_turn.as_str()),
            ("assistant", said.text.as_str()),
        ] {
            if text.is_empty() {
                continue;
            }
            if let Err(e) = ctx.store(sid, role, text, trace.as_ref()).await {
                tracing::warn!(session = %sid, error = %e, "cannot store the turn in the context server");
                gw.metrics
                    .context_failures
                    .get_or_create(&op("store"))
                    .inc();
            }
        }
    }
    drop(enriched.held);
}

fn op(name: &'static str) -> super::OpLabel {
    super::OpLabel { op: name }
}

fn insert_num(h: &mut HeaderMap, name: HeaderName, n: u64) {
    h.insert(name, HeaderValue::from(n));
}

/// The model routes.
pub(super) const ROUTES: [RouteKind; 5] = [
    RouteKind {
        index: 0,
        path: "/v1/chat/completions",
        api: Api::OpenAi,
        shape: Some(Shape::Chat),
    },
    RouteKind {
        index: 1,
        path: "/v1/messages",
        api: Api::Anthropic,
        shape: Some(Shape::Messages),
    },
    RouteKind {
        index: 2,
        path: "/v1/messages/count_tokens",
        api: Api::Anthropic,
        shape: None,
    },
    RouteKind {
        index: 3,
        path: "/v1/embeddings",
        api: Api::OpenAi,
        shape: None,
    },
    RouteKind {
        index: 4,
        path: "/v1/responses",
        api: Api::OpenAi,
        shape: Some(Shape::Responses),
    },
];
