//! The built-ins' defence against DNS rebinding and cross-site requests (SPEC §4): a web
//! page whose name an attacker rebinds to 127.0.0.1 reaches a local server with its own
//! name in `Host`, and a page anywhere can make a browser post to a loopback port with
//! its own `Origin`. So every route of all three services (health included) answers only:
//!
//! - a `Host` that is a loopback name (`localhost`, `*.localhost`), an IP literal (no name
//!   was resolved, so nothing was rebound), `host.docker.internal` (how the stack's
//!   containers reach a process), or one of `allowed_hosts:` (`api.internal`,
//!   `*.corp.example`, or `*` for any); a request without one (HTTP/1.0) passes;
//! - an `Origin`, when a browser sends one, whose host is a loopback name or address, or
//!   one of `allowed_hosts:`.
//!
//! Anything else is a 403 in the route's API shape, naming the host and the fix.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api_error::{Api, ApiError};

/// The names a service answers to besides the loopback ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hosts {
    allowed: Arc<[String]>,
}

impl Hosts {
    /// Loopback names plus `allowed` (exact names, `*.suffix`, or `*`).
    pub(crate) fn new(allowed: &[String]) -> Hosts {
        Hosts {
            allowed: allowed.iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a request with this URI and these headers may be served; else the refusal.
    pub(crate) fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), String> {
        // HTTP/2 carries the host in the URI's authority, HTTP/1.1 in `Host`.
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()));
        if let Some(host) = host
            && !is_plain_loopback(host)
        {
            let name = name_of(host);
            if !(is_loopback_name(&name)
                || name.parse::<IpAddr>().is_ok()
                || name == "host.docker.internal"
                || self.listed(&name))
            {
                return Err(format!(
                    "host `{host}` is not allowed (a loopback name, an IP address or one of `allowed_hosts:`): add it to the service's `allowed_hosts:` if it is yours"
                ));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let text = origin.to_str().unwrap_or("");
            let allowed = text
                .split_once("://")
                .map(|(_, rest)| name_of(rest))
                .is_some_and(|name| {
                    is_loopback_name(&name)
                        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
                        || self.listed(&name)
                });
            if !allowed {
                return Err(format!(
                    "origin `{text}` is not allowed (a loopback origin or one of `allowed_hosts:`): add its host to the service's `allowed_hosts:` if it is yours"
                ));
            }
        }
        Ok(())
    }

    fn listed(&self, name: &str) -> bool {
        self.allowed.iter().any(|a| {
            a == "*"
                || a == name
                || a.strip_prefix("*.").is_some_and(|suffix| {
                    name.strip_suffix(suffix).is_some_and(|p| p.ends_with('.'))
                })
        })
    }
}

/// `127.0.0.1[:port]` or `localhost[:port]`, as nearly every request says: answered without
/// parsing (this runs on every request of the gateway's hot path).
fn is_plain_loopback(authority: &str) -> bool {
    ["127.0.0.1", "localhost"].iter().any(|name| {
        authority.strip_prefix(name).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(':')
                    .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

/// The host name of `host[:port]` (or `[v6]:port`), lowercased, without a trailing dot.
fn name_of(authority: &str) -> String {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => match authority.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => authority,
        },
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// The 403 for a refused host or origin, in the route's API shape.
pub(crate) fn refusal(uri: &Uri, headers: &HeaderMap, message: String) -> Response {
    let api = if uri.path().contains("messages") || headers.contains_key("anthropic-version") {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    ApiError::new(api, 403, message).into_response()
}

/// Middleware: [`Hosts::check`] on every route.
pub(crate) async fn guard(State(hosts): State<Hosts>, req: Request, next: Next) -> Response {
    match hosts.check(req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(message) => refusal(req.uri(), req.headers(), message),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn check(hosts: &Hosts, host: Option<&str>, origin: Option<&str>) -> bool {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(header::HOST, HeaderValue::from_str(v).expect("value"));
        }
        if let Some(v) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(v).expect("value"));
        }
        hosts.check(&Uri::from_static("/v1/sessions"), &h).is_ok()
    }

    #[test]
    fn loopback_names_and_addresses_pass_rebound_names_do_not() {
        let hosts = Hosts::new(&["api.internal".into(), "*.corp.example".into()]);
        for ok in [
            "localhost:8000",
            "LOCALHOST",
            "app.localhost:1",
            "127.0.0.1:8000",
            "[::1]:8000",
            "10.0.0.5",
            "host.docker.internal:9",
            "api.internal:80",
            "x.corp.example",
            "localhost.",
        ] {
            assert!(check(&hosts, Some(ok), None), "{ok} refused");
        }
        for bad in [
            "evil.example:8000",
            "localhost.evil.example",
            "corp.example",
            "xcorp.example",
        ] {
            assert!(!check(&hosts, Some(bad), None), "{bad} allowed");
        }
        assert!(check(&hosts, None, None), "no Host (HTTP/1.0) passes");
        assert!(check(
            &Hosts::new(&["*".into()]),
            Some("evil.example"),
            None
        ));
    }

    #[test]
    fn browser_origins_must_be_loopback_or_listed() {
        let hosts = Hosts::new(&["app.corp.example".into()]);
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1:5173",
            "http://[::1]:3000",
            "https://app.corp.example",
        ] {
            assert!(check(&hosts, Some("localhost"), Some(ok)), "{ok} refused");
        }
        for bad in ["https://evil.example", "http://1.2.3.4", "null", "file://"] {
            assert!(
                !check(&hosts, Some("localhost"), Some(bad)),
                "{bad} allowed"
            );
        }
    }
}
