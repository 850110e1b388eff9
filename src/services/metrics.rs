//! Prometheus metrics shared by the built-in services: request counts by route and status,
//! a latency histogram, the GenAI metrics (OpenTelemetry's semantic conventions, under
//! their Prometheus names), and the `/metrics` text endpoint. The middleware [`track`]
//! also opens each request's server span when traces are exported.

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
    /// The registry rendered by `/metrics` (its names prefixed with the service's).
    pub registry: Registry,
    /// The GenAI metrics, under their conventional names (no prefix).
    pub genai: GenAiMetrics,
    genai_registry: Registry,
    /// Families with labels, described even before their first sample.
    declared: Vec<(String, &'static str, &'static str)>,
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
        let genai = GenAiMetrics::default();
        let mut genai_registry = Registry::default();
        genai.register(&mut genai_registry);
        let mut m = Self {
            registry,
            genai,
            genai_registry,
            declared: Vec::new(),
            requests,
            latency,
        };
        m.declare(
            &format!("{prefix}_http_requests"),
            "counter",
            "HTTP requests by route, method and status",
        );
        m.declare(
            &format!("{prefix}_http_request_duration_seconds"),
            "histogram",
            "Time to the response head, by route",
        );
        for (name, help) in [
            (
                "gen_ai_client_token_usage",
                "Tokens used per call, by operation, provider, model, token type (input, output) and key label",
            ),
            (
                "gen_ai_server_request_duration_seconds",
                "Time to answer a model call, by operation, provider and model",
            ),
            (
                "gen_ai_server_time_to_first_token_seconds",
                "Time to the first token of a streamed answer (its head), by operation, provider and model",
            ),
        ] {
            m.declare(name, "histogram", help);
        }
        m
    }

    /// Describes the labelled family `name` (with its prefix) of `kind`, so `/metrics`
    /// names it before its first sample (a dashboard's query finds it from the start).
    pub(crate) fn declare(&mut self, name: &str, kind: &'static str, help: &'static str) {
        self.declared.push((name.to_string(), kind, help));
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
        if let Err(err) = self.encode(&mut body) {
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

impl HttpMetrics {
    /// Both registries, as OpenMetrics text.
    fn encode(&self, out: &mut String) -> std::fmt::Result {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        encode_registry(out, &self.registry)?;
        encode_registry(out, &self.genai_registry)?;
        for (name, kind, help) in &self.declared {
            if !out.contains(&format!("# TYPE {name} {kind}\n")) {
                out.push_str(&format!("# HELP {name} {help}.\n# TYPE {name} {kind}\n"));
            }
        }
        encode_eof(out)
    }
}

/// The GenAI operation, provider and model of a call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GenAiLabels {
    /// `chat`, `embeddings`, `text_completion`…
    pub gen_ai_operation_name: &'static str,
    /// `openai`, `anthropic`.
    pub gen_ai_provider_name: &'static str,
    /// The model asked for (see [`ModelNames`]).
    pub gen_ai_request_model: Arc<str>,
}

/// [`GenAiLabels`] plus the token type and the caller's key label (`key#N`; empty without
/// keys).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TokenUsageLabels {
    /// The call.
    #[prometheus(flatten)]
    pub call: GenAiLabels,
    /// `input` or `output`.
    pub gen_ai_token_type: &'static str,
    /// The key's label, never the key.
    pub key: Arc<str>,
}

/// Bucket boundaries the GenAI semantic conventions advise.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// `gen_ai_client_token_usage`, `gen_ai_server_request_duration_seconds`,
/// `gen_ai_server_time_to_first_token_seconds`.
#[derive(Debug, Clone)]
pub(crate) struct GenAiMetrics {
    token_usage: HistogramFamily<TokenUsageLabels>,
    duration: HistogramFamily<GenAiLabels>,
    first_token: HistogramFamily<GenAiLabels>,
    /// Model names as label values.
    pub models: Arc<ModelNames>,
}

impl Default for GenAiMetrics {
    fn default() -> Self {
        GenAiMetrics {
            token_usage: Family::new_with_constructor(|| Histogram::new(TOKEN_BUCKETS)),
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            first_token: Family::new_with_constructor(|| Histogram::new(TTFT_BUCKETS)),
            models: Arc::default(),
        }
    }
}

impl GenAiMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "gen_ai_client_token_usage",
            "Tokens used per call, by operation, provider, model, token type (input, output) and key label",
            self.token_usage.clone(),
        );
        r.register_with_unit(
            "gen_ai_server_request_duration",
            "Time to answer a model call, by operation, provider and model",
            prometheus_client::registry::Unit::Seconds,
            self.duration.clone(),
        );
        r.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time to the first token of a streamed answer (its head), by operation, provider and model",
            prometheus_client::registry::Unit::Seconds,
            self.first_token.clone(),
        );
    }

    /// Records the tokens of one call.
    pub(crate) fn tokens(&self, call: &GenAiLabels, key: &Arc<str>, input: u64, output: u64) {
        for (kind, n) in [("input", input), ("output", output)] {
            self.token_usage
                .get_or_create(&TokenUsageLabels {
                    call: call.clone(),
                    gen_ai_token_type: kind,
                    key: key.clone(),
                })
                .observe(n as f64);
        }
    }

    /// Records how long one call took to answer (and, streamed, to its first token).
    pub(crate) fn timing(&self, call: &GenAiLabels, seconds: f64, streamed: bool) {
        self.duration.get_or_create(call).observe(seconds);
        if streamed {
            self.first_token.get_or_create(call).observe(seconds);
        }
    }
}

/// Model names as label values: whitespace and controls become `_`, at most 128 bytes,
/// and past [`ModelNames::MAX`] distinct names the rest are `other` (a client cannot
/// grow `/metrics` without bound).
#[derive(Debug, Default)]
pub(crate) struct ModelNames {
    seen: std::sync::RwLock<std::collections::HashMap<Box<str>, Arc<str>>>,
}

impl ModelNames {
    /// Distinct names kept.
    pub(crate) const MAX: usize = 100;

    /// The label value of model `name` (empty: no model named).
    pub(crate) fn label(&self, name: &str) -> Arc<str> {
        if let Ok(seen) = self.seen.read()
            && let Some(v) = seen.get(name)
        {
            return v.clone();
        }
        let Ok(mut seen) = self.seen.write() else {
            return Arc::from("other");
        };
        if seen.len() >= Self::MAX {
            return Arc::from("other");
        }
        let value: Arc<str> = Arc::from(label_value(name, 128));
        seen.insert(name.into(), value.clone());
        value
    }
}

/// `text` fit for a label value: no whitespace or control characters, at most `max` bytes.
pub(crate) fn label_value(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(if c.is_whitespace() || c.is_control() {
            '_'
        } else {
            c
        });
    }
    out
}

tokio::task_local! {
    /// The model call a request made, for [`track`] to record once it is answered.
    static CALL: std::cell::RefCell<Option<(GenAiLabels, bool)>>;
}

/// Tells [`track`] which model call this request is (its labels, and whether it streams),
/// for the GenAI duration metrics. Outside `track`, nothing happens.
pub(crate) fn note_call(call: GenAiLabels, streamed: bool) {
    let _ = CALL.try_with(|c| *c.borrow_mut() = Some((call, streamed)));
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
    let traced = match super::otel::tracer() {
        Some(t) if route != "/health" && route != "/metrics" => Some(super::otel::start(
            t,
            format!("{method} {route}"),
            opentelemetry::trace::SpanKind::Server,
            &super::otel::parent(req.headers()),
            vec![
                opentelemetry::KeyValue::new("http.request.method", method.clone()),
                opentelemetry::KeyValue::new("http.route", route.clone()),
            ],
        )),
        _ => None,
    };
    let run = CALL.scope(std::cell::RefCell::new(None), async {
        let response = match &traced {
            Some(cx) => {
                opentelemetry::trace::FutureExt::with_context(next.run(req), cx.clone()).await
            }
            None => next.run(req).await,
        };
        let call = CALL.with(|c| c.borrow_mut().take());
        (response, call)
    });
    let (response, call) = run.await;
    let seconds = start.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    if let Some((call, streamed)) = call {
        metrics.genai.timing(&call, seconds, streamed);
    }
    if let Some(cx) = traced {
        use opentelemetry::trace::TraceContextExt;
        let span = cx.span();
        span.set_attribute(opentelemetry::KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        // A server span fails on a 5xx only (the semantic conventions' rule).
        if status >= 500 {
            super::otel::fail(&cx, status.to_string(), "the request failed");
        }
        span.end();
    }
    metrics.observe(route, method, status, seconds);
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
