//! Upstreams: routing a model to an upstream, and forwarding with pooled connections
//! (TCP_NODELAY), timeouts, retries with back-off on connection errors, 5xx and 429, then
//! fallback to the upstream's next URL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::uri::PathAndQuery;
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::config::{Config, Route, glob, parse_base};

/// The HTTP client and the upstream table.
#[derive(Debug, Clone)]
pub struct Upstreams {
    client: Client<HttpConnector, Body>,
    table: BTreeMap<Arc<str>, Vec<Uri>>,
    routes: Vec<Route>,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
}

/// How a forward went, for headers, metrics and logs.
#[derive(Debug, Default, Clone)]
pub struct Attempts {
    /// Retries made (all URLs).
    pub retries: u32,
    /// Moves to a later URL.
    pub fallbacks: u32,
}

/// A forward that produced no response.
#[derive(Debug)]
pub struct Unreachable {
    /// Why the last attempt failed.
    pub reason: String,
    /// What was tried.
    pub attempts: Attempts,
}

/// Builds the client used for every upstream (and the context server).
pub fn client(config: &Config) -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(connector)
}

impl Upstreams {
    /// The upstreams of `config`.
    pub fn new(config: &Config, client: Client<HttpConnector, Body>) -> Upstreams {
        let table = config
            .upstreams
            .iter()
            .map(|(name, urls)| {
                let list = urls
                    .list()
                    .iter()
                    .filter_map(|u| parse_base(u).ok())
                    .collect();
                (Arc::from(name.as_str()), list)
            })
            .collect();
        Upstreams {
            client,
            table,
            routes: config.routes.clone(),
            retries: config.retries,
            backoff: Duration::from_millis(config.retry_backoff_ms),
            timeout: Duration::from_millis(config.request_timeout_ms),
        }
    }

    /// The upstream for `model`: the first matching route, else `default`, else the only one.
    pub fn route(&self, model: Option<&str>) -> Option<Arc<str>> {
        let name: &str = match model.and_then(|m| self.routes.iter().find(|r| glob(&r.model, m))) {
            Some(r) => &r.upstream,
            None if self.table.contains_key("default") => "default",
            None if self.table.len() == 1 => self.table.keys().next()?,
            None => return None,
        };
        self.table.get_key_value(name).map(|(k, _)| k.clone())
    }

    /// Every upstream name with its URLs.
    pub fn all(&self) -> impl Iterator<Item = (&Arc<str>, &Vec<Uri>)> {
        self.table.iter()
    }

    /// Forwards a request with the caller's `headers` (what [`forwardable`] keeps) to
    /// `upstream`, retrying and falling back. The response may be an error status when
    /// every attempt answered one.
    pub async fn forward(
        &self,
        upstream: &str,
        method: &Method,
        path: &'static str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(Response<Incoming>, Attempts), Unreachable> {
        let mut attempts = Attempts::default();
        let urls: &[Uri] = self.table.get(upstream).map_or(&[], Vec::as_slice);
        let mut last: Option<Response<Incoming>> = None;
        let mut reason = None;
        for (i, base) in urls.iter().enumerate() {
            if i > 0 {
                attempts.fallbacks += 1;
            }
            for attempt in 0..=self.retries {
                if attempt > 0 {
                    attempts.retries += 1;
                    tokio::time::sleep(self.backoff * 2u32.saturating_pow(attempt - 1)).await;
                }
                let req = request(
                    base,
                    method,
                    target_static(base, path),
                    forwardable(headers),
                    Body::from(body.clone()),
                );
                match tokio::time::timeout(self.timeout, self.client.request(req)).await {
                    Ok(Ok(resp)) => {
                        let s = resp.status();
                        if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS {
                            reason = Some(format!("{base} answered {s}"));
                            last = Some(resp);
                            continue;
                        }
                        return Ok((resp, attempts));
                    }
                    Ok(Err(e)) => reason = Some(format!("{base}: {}", describe(&e))),
                    Err(_) => {
                        reason = Some(format!(
                            "{base}: no answer within {} ms",
                            self.timeout.as_millis()
                        ))
                    }
                }
            }
        }
        match last {
            Some(resp) => Ok((resp, attempts)),
            None => Err(Unreachable {
                reason: reason.unwrap_or_else(|| format!("no URL for upstream `{upstream}`")),
                attempts,
            }),
        }
    }

    /// Sends one request to `base` + `path` (no retries): the proxied MCP and session routes.
    pub async fn send(
        &self,
        base: &Uri,
        method: &Method,
        path: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response<Incoming>, String> {
        let req = request(base, method, target(base, path), headers, body);
        self.client.request(req).await.map_err(|e| describe(&e))
    }
}

/// Header names the gateway reads or writes, parsed once rather than on every request.
pub mod names {
    use axum::http::HeaderName;

    /// The request id, given by the caller or made by the gateway.
    pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    /// The conversation to enrich.
    pub const SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");
    /// Tells SDKs not to retry what the gateway already retried.
    pub const SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");
    /// Context entries prepended.
    pub const CONTEXT_ENTRIES: HeaderName = HeaderName::from_static("x-stack-context-entries");
    /// Context tokens prepended.
    pub const CONTEXT_TOKENS: HeaderName = HeaderName::from_static("x-stack-context-tokens");
    /// The Anthropic-style key header.
    pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");
}

/// Whether `name` describes one hop only (RFC 9110 §7.6.1), never forwarded either way.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// The request headers worth passing upstream: not hop-by-hop, not the caller's
/// credentials for the gateway, not the gateway's own (`x-stack-…`, `x-session-id`), and
/// not `content-length`: hyper sets it from the body forwarded, which enrichment may
/// have changed. The map has room for the `host` the request adds without growing.
pub fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len() + 1);
    for (k, v) in headers {
        let dropped = is_hop_by_hop(k)
            || k == header::HOST
            || k == header::CONTENT_LENGTH
            || k == header::AUTHORIZATION
            || k == names::API_KEY
            || k == names::SESSION_ID
            || k.as_str().starts_with("x-stack-");
        if !dropped {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

/// Drops the hop-by-hop headers of an upstream answer.
pub fn strip_hop_headers(h: &mut HeaderMap) {
    let hops: Vec<HeaderName> = h.keys().filter(|k| is_hop_by_hop(k)).cloned().collect();
    for name in hops {
        h.remove(name);
    }
}

fn target(base: &Uri, path: &str) -> Uri {
    let prefix = base.path().trim_end_matches('/');
    let pq = format!("{prefix}{path}");
    let mut parts = base.clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| base.clone())
}

/// `base` + `path`; a base without a path prefix (the usual case) costs no parsing.
fn target_static(base: &Uri, path: &'static str) -> Uri {
    if !matches!(base.path(), "" | "/") {
        return target(base, path);
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::from_static(path));
    Uri::from_parts(parts).unwrap_or_else(|_| base.clone())
}

/// A request to `uri` with `headers` and the `host` of `base`. The body's length is set by
/// hyper from the body itself.
fn request(
    base: &Uri,
    method: &Method,
    uri: Uri,
    mut headers: HeaderMap,
    body: Body,
) -> Request<Body> {
    if let Some(a) = base.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        headers.insert(header::HOST, v);
    }
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req
}

fn describe(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}
