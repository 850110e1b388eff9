//! OTLP/HTTP payloads (protobuf or JSON) read into the window's records.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde_json::Value;

use super::spans::SpanRecord;

/// How a payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// From a `Content-Type` (OTLP/HTTP allows only these two).
    pub(crate) fn from_content_type(ct: &str) -> Option<Encoding> {
        let media = ct.split(';').next().unwrap_or_default().trim();
        match media.to_ascii_lowercase().as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The media type of an answer in this encoding.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

fn decode<T>(body: &[u8], enc: Encoding) -> Result<T, String>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    match enc {
        Encoding::Protobuf => {
            T::decode(body).map_err(|e| format!("not an OTLP protobuf message: {e}"))
        }
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|e| format!("not an OTLP JSON document: {e}"))
        }
    }
}

/// The spans of a traces payload.
pub(crate) fn spans(body: &[u8], enc: Encoding) -> Result<Vec<SpanRecord>, String> {
    let req: ExportTraceServiceRequest = decode(body, enc)?;
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref())
            .map(scalar)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown_service".to_string());
        for ss in rs.scope_spans {
            for s in ss.spans {
                let status = s.status.unwrap_or_default();
                out.push(SpanRecord {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    service: service.clone(),
                    kind: kind(s.kind).to_string(),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano.max(s.start_time_unix_nano),
                    // STATUS_CODE_ERROR
                    error: status.code == 2,
                    status_message: status.message,
                    attributes: attributes(&s.attributes),
                });
            }
        }
    }
    Ok(out)
}

/// Data points of a metrics payload.
pub(crate) fn metric_points(body: &[u8], enc: Encoding) -> Result<usize, String> {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let req: ExportMetricsServiceRequest = decode(body, enc)?;
    Ok(req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum())
}

/// Records of a logs payload.
pub(crate) fn log_records(body: &[u8], enc: Encoding) -> Result<usize, String> {
    let req: ExportLogsServiceRequest = decode(body, enc)?;
    Ok(req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn kind(k: i32) -> &'static str {
    match k {
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "internal",
    }
}

fn attributes(kvs: &[KeyValue]) -> serde_json::Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Value::Null, scalar),
            )
        })
        .collect()
}

fn scalar(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(scalar).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => Value::Object(attributes(&l.values)),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex(b)),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_spans_are_read() {
        let doc = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"app"}}]},
          "scopeSpans":[{"scope":{"name":"t"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
          "spanId":"eee19b7ec3c1b174","parentSpanId":"","name":"hello","kind":2,
          "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
          "attributes":[{"key":"n","value":{"intValue":"3"}}],"status":{"code":2,"message":"boom"}}]}]}]}"#;
        let spans = spans(doc.as_bytes(), Encoding::Json).expect("valid");
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(s.service, "app");
        assert_eq!(s.kind, "server");
        assert!(s.error);
        assert_eq!(s.int("n"), Some(3));
        assert!((s.ms() - 1000.0).abs() < 1e-6);
        assert!(spans_err("{").contains("not an OTLP JSON document"));
    }

    fn spans_err(doc: &str) -> String {
        spans(doc.as_bytes(), Encoding::Json)
            .err()
            .unwrap_or_default()
    }
}
