//! Upstreams: routing a model to an upstream, and forwarding over pooled keep-alive
//! connections (TCP_NODELAY) with timeouts, retries with back-off on connection errors, 5xx
//! and 429, then fallback to the upstream's next URL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::uri::PathAndQuery;
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use bytes::Bytes;

use super::config::{Config, Provider, Route, Target, glob, parse_base, without_userinfo};
use super::pool::{Endpoint, PooledBody};
use super::translate::{self, Direction};

/// The upstream table: each upstream's URLs, with their connections and credentials.
#[derive(Debug, Clone)]
pub(super) struct Upstreams {
    table: BTreeMap<Arc<str>, Vec<Hop>>,
    routes: Vec<Route>,
    /// Model aliases: the name asked for → the upstream and the model sent.
    aliases: BTreeMap<String, (Arc<str>, Arc<str>)>,
    /// No gateway keys: a hop without its own key passes the caller's credentials on.
    byok: bool,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
}

/// One URL of an upstream: its connections, the API it speaks, and the headers the
/// gateway adds (the provider key, `headers:`), made once.
#[derive(Debug, Clone)]
pub(super) struct Hop {
    /// The connections.
    pub endpoint: Arc<Endpoint>,
    /// The API it speaks.
    pub provider: Provider,
    /// Added to every request (values marked sensitive).
    added: HeaderMap,
    /// Whether the provider key is the gateway's (else the caller's may pass, BYOK).
    keyed: bool,
}

/// The `anthropic-version` sent when the caller gives none.
const ANTHROPIC_VERSION: HeaderValue = HeaderValue::from_static("2023-06-01");

impl Hop {
    fn new(t: &Target, endpoint: Arc<Endpoint>, userinfo: Option<(String, String)>) -> Hop {
        let mut added = HeaderMap::new();
        if let Some((user, password)) = userinfo {
            use base64::Engine;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            if let Ok(mut value) = HeaderValue::try_from(format!("Basic {basic}")) {
                value.set_sensitive(true);
                added.insert(header::AUTHORIZATION, value);
            }
        }
        for (k, v) in &t.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::try_from(k.as_str()),
                HeaderValue::try_from(v.as_str()),
            ) {
                added.insert(k, v);
            }
        }
        if let Some(key) = t.api_key.as_deref().filter(|k| !k.is_empty()) {
            let (name, value) = match t.provider {
                Provider::Anthropic => (names::API_KEY, HeaderValue::try_from(key)),
                Provider::Openai | Provider::OpenaiCompatible => (
                    header::AUTHORIZATION,
                    HeaderValue::try_from(format!("Bearer {key}")),
                ),
            };
            if let Ok(mut value) = value {
                value.set_sensitive(true);
                added.insert(name, value);
            }
        }
        Hop {
            endpoint,
            provider: t.provider,
            keyed: t.api_key.is_some(),
            added,
        }
    }

    /// The headers of a request to this hop: the caller's that may go on (its
    /// credentials only when it brings its own key), then the hop's own.
    fn headers(&self, caller: &HeaderMap, byok: bool) -> HeaderMap {
        let mut out = forwardable(caller, byok && !self.keyed);
        for (k, v) in &self.added {
            out.insert(k.clone(), v.clone());
        }
        if self.provider == Provider::Anthropic && !out.contains_key(ANTHROPIC_VERSION_HEADER) {
            out.insert(ANTHROPIC_VERSION_HEADER, ANTHROPIC_VERSION);
        }
        out
    }
}

const ANTHROPIC_VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");

/// A request body as it goes upstream: as the caller wrote it (enriched), and translated
/// for URLs whose provider speaks the other API.
#[derive(Debug, Clone, Default)]
pub(super) struct Outgoing {
    /// The caller's shape.
    pub plain: Bytes,
    /// The other API's shape, when some URL needs it.
    pub translated: Option<(Direction, Bytes)>,
}

impl From<Bytes> for Outgoing {
    fn from(plain: Bytes) -> Outgoing {
        Outgoing {
            plain,
            translated: None,
        }
    }
}

/// How a forward went, for headers, metrics and logs.
#[derive(Debug, Default, Clone)]
pub(super) struct Attempts {
    /// Retries made (all URLs).
    pub retries: u32,
    /// Moves to a later URL.
    pub fallbacks: u32,
}

/// A forward that produced no response.
#[derive(Debug)]
pub(super) struct Unreachable {
    /// Why the last attempt failed.
    pub reason: String,
    /// What was tried.
    pub attempts: Attempts,
}

impl Upstreams {
    /// The upstreams of `config`.
    pub(super) fn new(config: &Config, tls: Option<&Arc<rustls::ClientConfig>>) -> Upstreams {
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let idle_timeout = Duration::from_millis(config.pool_idle_timeout_ms);
        let table: BTreeMap<Arc<str>, Vec<Hop>> = config
            .upstreams
            .iter()
            .map(|(name, upstream)| {
                let list = upstream
                    .0
                    .iter()
                    .filter_map(|t| {
                        let (url, userinfo) = without_userinfo(&t.url);
                        let uri = parse_base(&url).ok()?;
                        let endpoint = Endpoint::start(uri, connect_timeout, idle_timeout, tls);
                        Some(Hop::new(t, endpoint, userinfo))
                    })
                    .collect();
                (Arc::from(name.as_str()), list)
            })
            .collect();
        let aliases = config
            .models
            .iter()
            .filter_map(|(name, a)| {
                let (upstream, _) = table.get_key_value(a.upstream.as_str())?;
                Some((
                    name.clone(),
                    (upstream.clone(), Arc::from(a.model.as_str())),
                ))
            })
            .collect();
        Upstreams {
            table,
            routes: config.routes.clone(),
            aliases,
            byok: config.keys.is_empty(),
            retries: config.retries,
            backoff: Duration::from_millis(config.retry_backoff_ms),
            timeout: Duration::from_millis(config.request_timeout_ms),
        }
    }

    /// Every alias, with the upstream and model it stands for.
    pub(super) fn aliases(&self) -> impl Iterator<Item = (&String, &(Arc<str>, Arc<str>))> {
        self.aliases.iter()
    }

    /// The upstream and model an alias stands for.
    pub(super) fn alias(&self, model: &str) -> Option<&(Arc<str>, Arc<str>)> {
        self.aliases.get(model)
    }

    /// The upstream for `model`: the first matching route, else `default`, else the only one.
    pub(super) fn route(&self, model: Option<&str>) -> Option<Arc<str>> {
        let name: &str = match model.and_then(|m| self.routes.iter().find(|r| glob(&r.model, m))) {
            Some(r) => &r.upstream,
            None if self.table.contains_key("default") => "default",
            None if self.table.len() == 1 => self.table.keys().next()?,
            None => return None,
        };
        self.table.get_key_value(name).map(|(k, _)| k.clone())
    }

    /// Every upstream name with its URLs.
    pub(super) fn all(&self) -> impl Iterator<Item = (&Arc<str>, &Vec<Hop>)> {
        self.table.iter()
    }

    /// How a request on `path` reaches each URL of `upstream` (see
    /// [`translate::direction`]).
    pub(super) fn directions<'a>(
        &'a self,
        upstream: &str,
        path: &'a str,
    ) -> impl Iterator<Item = Result<Option<Direction>, String>> + Clone + 'a {
        self.table
            .get(upstream)
            .into_iter()
            .flatten()
            .map(move |hop| translate::direction(path, hop.provider))
    }

    /// Forwards a request with the caller's `headers` (what [`forwardable`] keeps) to
    /// `upstream`, retrying and falling back; a URL whose provider speaks the other API
    /// gets the translated body on its own path, and the answer says so. The response may
    /// be an error status when every attempt answered one.
    pub(super) async fn forward(
        &self,
        upstream: &str,
        method: &Method,
        path: &'static str,
        headers: &HeaderMap,
        body: &Outgoing,
        trace: Option<&opentelemetry::Context>,
    ) -> Result<(Response<PooledBody>, Attempts, Option<Direction>), Unreachable> {
        let mut attempts = Attempts::default();
        let urls: &[Hop] = self.table.get(upstream).map_or(&[], Vec::as_slice);
        let mut last: Option<(Response<PooledBody>, Option<Direction>)> = None;
        let mut reason = None;
        for (i, hop) in urls.iter().enumerate() {
            if i > 0 {
                attempts.fallbacks += 1;
            }
            let (path, bytes, translated) = match translate::direction(path, hop.provider) {
                Ok(None) => (path, &body.plain, None),
                Ok(Some(d)) => match &body.translated {
                    Some((td, bytes)) if *td == d => (d.upstream_path(), bytes, Some(d)),
                    _ => continue,
                },
                Err(why) => {
                    reason = Some(why);
                    continue;
                }
            };
            let base = &hop.endpoint;
            for attempt in 0..=self.retries {
                if attempt > 0 {
                    attempts.retries += 1;
                    tokio::time::sleep(self.backoff * 2u32.saturating_pow(attempt - 1)).await;
                }
                let mut req = request(
                    base,
                    method,
                    target_static(base.uri(), path),
                    hop.headers(headers, self.byok),
                    Body::from(bytes.clone()),
                );
                // A retry or a fallback is a child span of the request's, which its
                // upstream continues. The first attempt is the request's span itself
                // (one span less per request); when it fails, it gets a span of its own
                // afterwards, so every failed attempt shows.
                let first = i == 0 && attempt == 0;
                let span = trace
                    .filter(|_| !first)
                    .map(|cx| attempt_span(cx, base, path, i, attempt, None));
                if let Some(cx) = span.as_ref().or(trace) {
                    crate::services::otel::inject(cx, req.headers_mut());
                }
                let sent_at = trace.map(|_| std::time::SystemTime::now());
                let outcome = tokio::time::timeout(self.timeout, base.send(req)).await;
                match (&span, trace) {
                    (Some(cx), _) => end_attempt(cx, &outcome),
                    (None, Some(cx)) if !answered(&outcome) => {
                        end_attempt(&attempt_span(cx, base, path, i, attempt, sent_at), &outcome);
                    }
                    (None, Some(cx)) => server_attributes(cx, base),
                    (None, None) => {}
                }
                match outcome {
                    Ok(Ok(resp)) => {
                        let s = resp.status();
                        if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS {
                            reason = Some(format!("{} answered {s}", base.uri()));
                            last = Some((resp, translated));
                            continue;
                        }
                        return Ok((resp, attempts, translated));
                    }
                    Ok(Err(e)) => reason = Some(format!("{}: {e}", base.uri())),
                    Err(_) => {
                        reason = Some(format!(
                            "{}: no answer within {} ms",
                            base.uri(),
                            self.timeout.as_millis()
                        ))
                    }
                }
            }
        }
        match last {
            Some((resp, translated)) => Ok((resp, attempts, translated)),
            None => Err(Unreachable {
                reason: reason.unwrap_or_else(|| format!("no URL for upstream `{upstream}`")),
                attempts,
            }),
        }
    }
}

/// Whether an attempt was answered with something the caller gets (not a 5xx, not a 429,
/// not a connect failure or a timeout).
fn answered<T>(outcome: &Result<Result<Response<T>, String>, tokio::time::error::Elapsed>) -> bool {
    matches!(outcome, Ok(Ok(r)) if !r.status().is_server_error() && r.status() != StatusCode::TOO_MANY_REQUESTS)
}

/// `server.address` and `server.port` of the upstream URL.
fn server(base: &Endpoint) -> Vec<opentelemetry::KeyValue> {
    use opentelemetry::KeyValue;
    let uri = base.uri();
    let mut attrs = vec![KeyValue::new(
        "server.address",
        uri.host().unwrap_or_default().to_string(),
    )];
    if let Some(port) = uri.port_u16() {
        attrs.push(KeyValue::new("server.port", i64::from(port)));
    }
    attrs
}

/// The request's span answered by its first attempt: where the answer came from.
fn server_attributes(cx: &opentelemetry::Context, base: &Endpoint) {
    use opentelemetry::trace::TraceContextExt;
    cx.span().set_attributes(server(base));
}

/// The span of one attempt at an upstream URL (a client span under the request's), from
/// `started` when it is made afterwards.
fn attempt_span(
    parent: &opentelemetry::Context,
    base: &Endpoint,
    path: &str,
    fallback: usize,
    attempt: u32,
    started: Option<std::time::SystemTime>,
) -> opentelemetry::Context {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{TraceContextExt, Tracer};
    let Some(tracer) = crate::services::otel::tracer() else {
        return parent.clone();
    };
    let uri = base.uri();
    let mut attrs = server(base);
    attrs.extend([
        KeyValue::new("http.request.method", "POST"),
        KeyValue::new("url.full", format!("{uri}{}", path.trim_start_matches('/'))),
        KeyValue::new("stack.fallback", fallback as i64),
    ]);
    if attempt > 0 {
        attrs.push(KeyValue::new(
            "http.request.resend_count",
            i64::from(attempt),
        ));
    }
    let name = match (fallback, attempt) {
        (0, 0) => format!("POST {path}"),
        (_, 0) => format!("POST {path} (fallback {fallback})"),
        _ => format!("POST {path} (retry {attempt})"),
    };
    let mut builder = tracer
        .span_builder(name)
        .with_kind(opentelemetry::trace::SpanKind::Client)
        .with_attributes(attrs);
    if let Some(t) = started {
        builder = builder.with_start_time(t);
    }
    parent.with_span(builder.start_with_context(tracer, parent))
}

/// Ends an attempt's span with its outcome.
fn end_attempt<T>(
    cx: &opentelemetry::Context,
    outcome: &Result<Result<Response<T>, String>, tokio::time::error::Elapsed>,
) {
    use opentelemetry::trace::TraceContextExt;
    match outcome {
        Ok(Ok(resp)) => {
            let s = resp.status().as_u16();
            cx.span().set_attribute(opentelemetry::KeyValue::new(
                "http.response.status_code",
                i64::from(s),
            ));
            if s >= 500 || s == 429 {
                crate::services::otel::fail(cx, s.to_string(), "the upstream failed");
            }
        }
        Ok(Err(e)) => crate::services::otel::fail(cx, "connect", e),
        Err(_) => crate::services::otel::fail(cx, "timeout", "no answer in time"),
    }
    cx.span().end();
}

/// Sends one request to `endpoint` + `path` (no retries): the proxied MCP and session
/// routes, and the context server's API.
pub(super) async fn send(
    endpoint: &Arc<Endpoint>,
    method: &Method,
    path: &str,
    headers: HeaderMap,
    body: Body,
) -> Result<Response<PooledBody>, String> {
    let req = request(
        endpoint,
        method,
        target(endpoint.uri(), path),
        headers,
        body,
    );
    endpoint.send(req).await
}

/// Header names the gateway reads or writes, parsed once rather than on every request.
pub(super) mod names {
    use axum::http::HeaderName;

    /// The request id, given by the caller or made by the gateway.
    pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    /// The conversation to enrich.
    pub(crate) const SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");
    /// Tells SDKs not to retry what the gateway already retried.
    pub(crate) const SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");
    /// Context entries prepended.
    pub(crate) const CONTEXT_ENTRIES: HeaderName =
        HeaderName::from_static("x-stack-context-entries");
    /// Context tokens prepended.
    pub(crate) const CONTEXT_TOKENS: HeaderName = HeaderName::from_static("x-stack-context-tokens");
    /// The Anthropic-style key header.
    pub(crate) const API_KEY: HeaderName = HeaderName::from_static("x-api-key");
}

/// Whether `name` describes one hop only (RFC 9110 §7.6.1), never forwarded either way.
pub(super) fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// The request headers worth passing upstream: not hop-by-hop, not the caller's
/// credentials (unless `credentials`: the caller brings its own provider key), not the
/// gateway's own (`x-stack-…`, `x-session-id`), and not `content-length`: hyper sets it
/// from the body forwarded, which enrichment may have changed. The map has room for the
/// `host` the request adds without growing.
pub(super) fn forwardable(headers: &HeaderMap, credentials: bool) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len() + 1);
    for (k, v) in headers {
        let dropped = is_hop_by_hop(k)
            || k == header::HOST
            || k == header::CONTENT_LENGTH
            || (!credentials && (k == header::AUTHORIZATION || k == names::API_KEY))
            || k == names::SESSION_ID
            || k.as_str().starts_with("x-stack-");
        if !dropped {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

/// Drops the hop-by-hop headers of an upstream answer.
pub(super) fn strip_hop_headers(h: &mut HeaderMap) {
    let hops: Vec<HeaderName> = h.keys().filter(|k| is_hop_by_hop(k)).cloned().collect();
    for name in hops {
        h.remove(name);
    }
}

/// The origin-form target: `base`'s path prefix, then `path`.
fn target(base: &Uri, path: &str) -> Uri {
    let prefix = base.path().trim_end_matches('/');
    format!("{prefix}{path}")
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"))
}

/// [`target`]; a base without a path prefix (the usual case) costs no formatting.
fn target_static(base: &Uri, path: &'static str) -> Uri {
    if matches!(base.path(), "" | "/") {
        Uri::from(PathAndQuery::from_static(path))
    } else {
        target(base, path)
    }
}

/// A request to `uri` on `endpoint` with `headers` and its `host`. The body's length is set
/// by hyper from the body itself.
fn request(
    endpoint: &Endpoint,
    method: &Method,
    uri: Uri,
    mut headers: HeaderMap,
    body: Body,
) -> Request<Body> {
    if let Some(v) = endpoint.host_header() {
        headers.insert(header::HOST, v.clone());
    }
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req
}
