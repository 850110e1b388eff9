//! Upstreams: routing a model to an upstream, and forwarding with pooled connections
//! (TCP_NODELAY), timeouts, retries with back-off on connection errors, 5xx and 429, then
//! fallback to the upstream's next URL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
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

    /// Forwards to `upstream`, retrying and falling back. The response may be an error
    /// status when every attempt answered one.
    pub async fn forward(
        &self,
        upstream: &str,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(Response<Incoming>, Attempts), Unreachable> {
        let mut attempts = Attempts::default();
        let urls: &[Uri] = self.table.get(upstream).map_or(&[], Vec::as_slice);
        let mut last: Option<Response<Incoming>> = None;
        let mut reason = format!("no URL for upstream `{upstream}`");
        for (i, base) in urls.iter().enumerate() {
            if i > 0 {
                attempts.fallbacks += 1;
            }
            for attempt in 0..=self.retries {
                if attempt > 0 {
                    attempts.retries += 1;
                    tokio::time::sleep(self.backoff * 2u32.saturating_pow(attempt - 1)).await;
                }
                let req = build(base, method, path, headers, body.clone());
                match tokio::time::timeout(self.timeout, self.client.request(req)).await {
                    Ok(Ok(resp)) => {
                        let s = resp.status();
                        if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS {
                            reason = format!("{base} answered {s}");
                            last = Some(resp);
                            continue;
                        }
                        return Ok((resp, attempts));
                    }
                    Ok(Err(e)) => reason = format!("{base}: {}", describe(&e)),
                    Err(_) => {
                        reason = format!("{base}: no answer within {} ms", self.timeout.as_millis())
                    }
                }
            }
        }
        match last {
            Some(resp) => Ok((resp, attempts)),
            None => Err(Unreachable { reason, attempts }),
        }
    }

    /// Sends one request to `base` + `path` (no retries): the proxied MCP and session routes.
    pub async fn send(
        &self,
        base: &Uri,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response<Incoming>, String> {
        let req = build_streaming(base, method, path, headers, body);
        self.client.request(req).await.map_err(|e| describe(&e))
    }
}

/// Headers that describe one hop, or the client's credentials for the gateway.
const DROPPED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "x-api-key",
];

/// The request headers worth passing upstream.
pub fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        if !DROPPED.contains(&k.as_str())
            && !k.as_str().starts_with("x-stack-")
            && k != "x-session-id"
        {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

fn target(base: &Uri, path: &str) -> Uri {
    let prefix = base.path().trim_end_matches('/');
    let pq = format!("{prefix}{path}");
    let mut parts = base.clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| base.clone())
}

fn build(
    base: &Uri,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Request<Body> {
    let len = body.len();
    let mut req = build_streaming(base, method, path, headers, Body::from(body));
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        req.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    req
}

fn build_streaming(
    base: &Uri,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Request<Body> {
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = target(base, path);
    *req.headers_mut() = headers.clone();
    if let Some(a) = base.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        req.headers_mut().insert(HeaderName::from_static("host"), v);
    }
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
