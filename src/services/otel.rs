//! OpenTelemetry traces of the built-ins (SPEC §6): spans over OTLP/HTTP (protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set — as the supervisor
//! sets it for every service — following the GenAI semantic conventions, and continuing
//! the caller's W3C `traceparent`.
//!
//! Without an endpoint nothing is installed: [`tracer`] is `None`, and a request pays one
//! atomic load for tracing.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};

static TRACER: OnceLock<Tracer> = OnceLock::new();

/// The W3C trace context header.
pub(crate) const TRACEPARENT: axum::http::HeaderName =
    axum::http::HeaderName::from_static("traceparent");

/// Flushes the spans still queued when dropped (at the service's exit).
#[derive(Debug)]
pub(crate) struct Installed(SdkTracerProvider);

impl Drop for Installed {
    fn drop(&mut self) {
        if let Err(err) = self.0.shutdown() {
            tracing::debug!(%err, "the span exporter did not shut down cleanly");
        }
    }
}

/// Whether the environment asks for traces: an OTLP endpoint, and the SDK not disabled.
fn wanted() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let off = |k: &str, v: &str| std::env::var(k).is_ok_and(|x| x.trim().eq_ignore_ascii_case(v));
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !off("OTEL_SDK_DISABLED", "true")
        && !off("OTEL_TRACES_EXPORTER", "none")
}

/// Installs the tracer of built-in `service` when the environment asks for traces; keep
/// the guard until the service stops. A protocol other than `http/protobuf` is warned
/// about and protobuf is sent.
pub(crate) fn init(service: &str) -> Option<Installed> {
    if !wanted() {
        return None;
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    if let Ok(p) = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL")
        && p != "http/protobuf"
    {
        tracing::warn!(protocol = %p, "only OTLP over http/protobuf is sent; using it");
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
    {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(%err, "cannot export traces; running without them");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(format!("stack-{service}"));
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "stack");
    TRACER.set(tracer).ok()?;
    Some(Installed(provider))
}

/// The tracer, when traces are exported.
pub(crate) fn tracer() -> Option<&'static Tracer> {
    TRACER.get()
}

/// The caller's trace context from its `traceparent` header (version 00), if valid.
pub(crate) fn parent(headers: &HeaderMap) -> Context {
    let Some(span) = headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent)
    else {
        return Context::new();
    };
    Context::new().with_remote_span_context(span)
}

fn parse_traceparent(v: &str) -> Option<SpanContext> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// `traceparent` for the span of `cx`, to send on.
pub(crate) fn traceparent(cx: &Context) -> Option<HeaderValue> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let text = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    HeaderValue::from_str(&text).ok()
}

/// Sets `traceparent` in `headers` to the span of `cx` (replacing the caller's).
pub(crate) fn inject(cx: &Context, headers: &mut HeaderMap) {
    if let Some(v) = traceparent(cx) {
        headers.insert(TRACEPARENT, v);
    }
}

/// Starts a span `name` of `kind` under `parent`; the context holding it.
pub(crate) fn start(
    tracer: &Tracer,
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
    attributes: Vec<KeyValue>,
) -> Context {
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    parent.with_span(span)
}

/// Names the current request's span `name` and adds `attributes` (made only when traces
/// are exported).
pub(crate) fn annotate_current(name: &'static str, attributes: impl FnOnce() -> Vec<KeyValue>) {
    if tracer().is_none() {
        return;
    }
    opentelemetry::trace::get_active_span(|span| {
        span.update_name(name);
        span.set_attributes(attributes());
    });
}

/// Marks the span of `cx` failed with `error_type` (`error.type`) and `message`.
pub(crate) fn fail(cx: &Context, error_type: impl Into<opentelemetry::Value>, message: &str) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("error.type", error_type));
    span.set_status(opentelemetry::trace::Status::error(message.to_string()));
}

/// The GenAI provider name (`gen_ai.provider.name`) of an API.
pub(crate) fn provider_name(api: super::api_error::Api) -> &'static str {
    match api {
        super::api_error::Api::OpenAi => "openai",
        super::api_error::Api::Anthropic => "anthropic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse_traceparent(v).expect("valid");
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        let cx = Context::new().with_remote_span_context(sc);
        assert_eq!(traceparent(&cx).expect("valid").to_str().ok(), Some(v));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-xyz-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
