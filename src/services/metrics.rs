//! Prometheus metrics shared by the built-in services: request counts by route and status,
//! a latency histogram, and the `/metrics` text endpoint.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a finished HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// The route template (`/v1/sessions/{id}/entries`), never the raw path.
    pub route: Cow<'static, str>,
    /// `GET`, `POST`, …
    pub method: Cow<'static, str>,
    /// The status code.
    pub status: u16,
}

/// Labels of a route, for the latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    /// The route template.
    pub route: Cow<'static, str>,
}

/// Request counters and latency histograms; add service-specific metrics to `registry`.
#[derive(Debug)]
pub(crate) struct HttpMetrics {
    /// The registry rendered by `/metrics`.
    pub registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
}

/// Latency buckets from 50 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

impl HttpMetrics {
    /// A registry prefixed with `prefix` (`stack_model`), holding the HTTP metrics.
    pub(crate) fn new(prefix: &str) -> Self {
        let mut registry = Registry::with_prefix(prefix);
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route",
            latency.clone(),
        );
        Self {
            registry,
            requests,
            latency,
        }
    }

    /// Records one request.
    pub(crate) fn observe(
        &self,
        route: impl Into<Cow<'static, str>>,
        method: impl Into<Cow<'static, str>>,
        status: u16,
        seconds: f64,
    ) {
        // Static labels (the built-ins' own routes) cost no allocation.
        let route = route.into();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: method.into(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    /// The request counter of one route, method and status, to count without a lookup.
    pub(crate) fn requests_counter(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
    ) -> Counter {
        self.requests
            .get_or_create(&RequestLabels {
                route: Cow::Borrowed(route),
                method: Cow::Borrowed(method),
                status,
            })
            .clone()
    }

    /// The latency histogram of one route, to observe without a lookup.
    pub(crate) fn latency_histogram(&self, route: &'static str) -> Histogram {
        self.latency
            .get_or_create(&RouteLabels {
                route: Cow::Borrowed(route),
            })
            .clone()
    }

    /// The exposition, in the format the scraper asks for (`Accept`): OpenMetrics 1.0
    /// unless it asks only for the classic Prometheus text format (0.0.4).
    pub(crate) fn render(&self, headers: &axum::http::HeaderMap) -> Response {
        let mut body = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut body, &self.registry) {
            return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response();
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if wants_classic(accept) {
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                classic(&body),
            )
                .into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                body,
            )
                .into_response()
        }
    }
}

/// Whether `accept` asks for the classic text format and not for OpenMetrics.
fn wants_classic(accept: &str) -> bool {
    let has = |media: &str| {
        accept.split(',').any(|part| {
            let mut params = part.split(';').map(str::trim);
            let m = params.next().unwrap_or_default();
            // `q=0` declines a type.
            m.eq_ignore_ascii_case(media) && !params.any(|p| p == "q=0" || p == "q=0.0")
        })
    };
    !has("application/openmetrics-text") && has("text/plain")
}

/// OpenMetrics text as the classic Prometheus text format (0.0.4): a counter's family is
/// named after its samples (`x_total`), `# UNIT` lines and `# EOF` go, and `_created`
/// samples (which the classic format reads as a separate untyped metric) are dropped.
fn classic(open: &str) -> String {
    let mut counters: Vec<&str> = Vec::new();
    for line in open.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            counters.push(name);
        }
    }
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# TYPE ", "# HELP "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(&name) && !name.ends_with("_total") {
                out.push_str(&format!("{prefix}{name}_total {tail}\n"));
                continue;
            }
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            if name
                .strip_suffix("_created")
                .is_some_and(|base| counters.contains(&base))
            {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Axum middleware recording every request in `metrics`. Install it with
/// `Router::route_layer(axum::middleware::from_fn_with_state(metrics, track))`, so the
/// route template is known.
pub(crate) async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    metrics.observe(
        route,
        method,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert!(!wants_classic(""));
        assert!(!wants_classic("*/*"));
        assert!(wants_classic("text/plain;version=0.0.4"));
        assert!(wants_classic("text/plain; version=0.0.4; charset=utf-8"));
        // What Prometheus sends: OpenMetrics first.
        assert!(!wants_classic(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(wants_classic(
            "application/openmetrics-text;q=0,text/plain;version=0.0.4"
        ));
    }

    #[test]
    fn counters_are_named_after_their_samples() {
        let m = HttpMetrics::new("stack_test");
        m.observe("/x", "GET", 200, 0.001);
        let mut open = String::new();
        prometheus_client::encoding::text::encode(&mut open, &m.registry).expect("encode");
        assert!(
            open.contains("# TYPE stack_test_http_requests counter"),
            "{open}"
        );
        let text = classic(&open);
        assert!(
            text.contains("# TYPE stack_test_http_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP stack_test_http_requests_total "),
            "{text}"
        );
        assert!(text.contains("stack_test_http_requests_total{"), "{text}");
        assert!(text.contains("# TYPE stack_test_http_request_duration_seconds histogram"));
        assert!(
            !text.contains("# EOF") && !text.contains("_created"),
            "{text}"
        );
    }
}
