//! The dashboard (SPEC §6): one page (server-rendered shell, a small script of our own
//! compiled into the binary, no build step) and the JSON and server-sent events it reads.
//! Everything sits under `/d/<token>/` and answers only to a loopback `Host`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::spans::{SpanRecord, traces};
use super::{Hub, Update};
use crate::config::BuiltinKind;
use crate::control::server::Incoming;
use crate::control::{Message, Request as Ask};

const PAGE: &str = include_str!("dashboard.html");

/// The page, at `/d/<token>/` (a nested router's `/` would only match without the slash,
/// and the page's links are relative to the folder).
pub(super) fn page_route(token: &str) -> Router<Arc<Hub>> {
    Router::new()
        .route(&format!("/d/{token}/"), get(page))
        .layer(axum::middleware::from_fn(loopback_host))
}

/// The dashboard's API and events (nested under `/d/<token>`).
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/events", get(events))
        .route("/api/ps", get(ps))
        .route("/api/services/{name}/{action}", post(act))
        .route("/api/logs", get(logs))
        .route("/api/traces", get(trace_list))
        .route("/api/traces/{id}", get(trace))
        .route("/api/gateway", get(gateway))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", get(session))
        .route("/api/stats", get(stats))
        .layer(axum::middleware::from_fn(loopback_host))
}

/// Only a loopback `Host` (a page elsewhere cannot reach the dashboard by rebinding a name
/// to 127.0.0.1).
async fn loopback_host(req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    if matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        return next.run(req).await;
    }
    (
        StatusCode::FORBIDDEN,
        format!("the dashboard answers only on loopback, not to Host `{host}`"),
    )
        .into_response()
}

async fn page(State(hub): State<Arc<Hub>>) -> Html<String> {
    Html(PAGE.replace("{{PROJECT}}", &escape(&hub.plan.project)))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Asks the supervisor.
async fn ask(hub: &Hub, request: Ask) -> Result<Message, String> {
    let (tx, rx) = oneshot::channel();
    hub.control
        .send(Incoming { request, reply: tx })
        .await
        .map_err(|_| "the supervisor is stopping".to_string())?;
    let answer = tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .map_err(|_| "the supervisor did not answer within 30 s".to_string())?
        .map_err(|_| "the supervisor is stopping".to_string())?;
    answer
        .messages
        .into_iter()
        .next()
        .ok_or_else(|| "no answer".to_string())
}

async fn ps(State(hub): State<Arc<Hub>>) -> Response {
    match ask(&hub, Ask::Ps).await {
        Ok(Message::Ps(doc)) => axum::Json(doc).into_response(),
        Ok(other) => error(
            StatusCode::BAD_GATEWAY,
            format!("unexpected answer: {other:?}"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// `POST /api/services/{name}/start|stop|restart`.
async fn act(
    State(hub): State<Arc<Hub>>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let services = vec![name];
    let request = match action.as_str() {
        "start" => Ask::Start { services },
        "stop" => Ask::Stop { services },
        "restart" => Ask::Restart { services },
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no action `{other}`: use start, stop or restart"),
            );
        }
    };
    match ask(&hub, request).await {
        Ok(Message::Ok) => axum::Json(json!({"ok": true})).into_response(),
        Ok(Message::Error { message }) => error(StatusCode::BAD_REQUEST, message),
        Ok(other) => error(
            StatusCode::BAD_GATEWAY,
            format!("unexpected answer: {other:?}"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// Log lines as the page reads them: `[[seq, service, time, stream, text], …]`, written
/// straight to text (no JSON tree for a batch of thousands).
fn lines_json(lines: &[(u64, crate::logs::Line)]) -> String {
    let mut out = String::with_capacity(lines.len() * 96 + 2);
    out.push('[');
    for (i, (n, l)) in lines.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let row = (n, &l.service, &l.time, l.stream.tag(), &l.text);
        if let Ok(text) = serde_json::to_string(&row) {
            out.push_str(&text);
        }
    }
    out.push(']');
    out
}

async fn logs(State(hub): State<Arc<Hub>>, Query(q): Query<LogsQuery>) -> Response {
    let lines = hub.logs_after(q.after, q.limit.unwrap_or(super::LOG_LINES));
    (
        [(header::CONTENT_TYPE, "application/json")],
        lines_json(&lines),
    )
        .into_response()
}

/// Server-sent events: `logs` (new lines), `spans` (new spans), `services` (a state
/// changed); a client that fell behind gets `resync`.
async fn events(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    let rx = tokio_stream::wrappers::BroadcastStream::new(hub.updates.subscribe());
    let stream = rx.map(|u| {
        let event = match u {
            Ok(Update::Logs(lines)) => Event::default().event("logs").data(lines_json(&lines)),
            Ok(Update::Spans(n)) => Event::default().event("spans").data(n.to_string()),
            Ok(Update::Services) => Event::default().event("services").data("{}"),
            Err(_) => Event::default().event("resync").data("{}"),
        };
        Ok::<_, std::convert::Infallible>(event)
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Debug, Deserialize)]
struct TraceQuery {
    service: Option<String>,
    #[serde(default)]
    errors: bool,
    limit: Option<usize>,
}

async fn trace_list(State(hub): State<Arc<Hub>>, Query(q): Query<TraceQuery>) -> Response {
    let list = hub
        .with_window(|w| traces(w.spans()))
        .unwrap_or_default()
        .into_iter()
        .filter(|t| q.service.as_ref().is_none_or(|s| t.services.contains(s)))
        .filter(|t| !q.errors || t.errors > 0)
        .take(q.limit.unwrap_or(200))
        .map(|mut t| {
            t.spans.clear();
            t
        })
        .collect::<Vec<_>>();
    axum::Json(list).into_response()
}

async fn trace(State(hub): State<Arc<Hub>>, Path(id): Path<String>) -> Response {
    let spans = hub.with_window(|w| w.trace(&id)).unwrap_or_default();
    match traces(spans.iter()).into_iter().next() {
        Some(t) => axum::Json(t).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no trace `{id}` in the window"),
        ),
    }
}

/// The gateway's spans (its model requests) in the window.
fn gateway_spans(hub: &Hub) -> Vec<SpanRecord> {
    let names: Vec<String> = hub
        .plan
        .services
        .iter()
        .filter(|s| s.builtin == Some(BuiltinKind::Gateway))
        .map(|s| s.name.clone())
        .collect();
    hub.with_window(|w| {
        w.spans()
            .filter(|s| {
                s.kind == "server"
                    && names.contains(&s.service)
                    && s.attributes.contains_key("gen_ai.operation.name")
            })
            .cloned()
            .collect()
    })
    .unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The gateway's traffic over the last minute (rate, latency) and the window (tokens by
/// model and key label, errors, retries, fallbacks).
async fn gateway(State(hub): State<Arc<Hub>>) -> Response {
    let spans = gateway_spans(&hub);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let minute: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.end_ns + 60_000_000_000 >= now)
        .collect();
    let mut ms: Vec<f64> = minute.iter().map(|s| s.ms()).collect();
    ms.sort_by(f64::total_cmp);
    let mut tokens: BTreeMap<(String, String), (i64, i64, u64)> = BTreeMap::new();
    for s in &spans {
        let key = (
            s.text("gen_ai.request.model").unwrap_or("").to_string(),
            s.text("stack.key").unwrap_or("").to_string(),
        );
        let e = tokens.entry(key).or_default();
        e.0 += s.int("gen_ai.usage.input_tokens").unwrap_or(0);
        e.1 += s.int("gen_ai.usage.output_tokens").unwrap_or(0);
        e.2 += 1;
    }
    let by_model: Vec<Value> = tokens
        .into_iter()
        .map(|((model, key), (i, o, n))| {
            json!({"model": model, "key": key, "requests": n, "input_tokens": i, "output_tokens": o})
        })
        .collect();
    let sum = |k: &str| spans.iter().filter_map(|s| s.int(k)).sum::<i64>();
    axum::Json(json!({
        "requests": spans.len(),
        "requests_per_second": minute.len() as f64 / 60.0,
        "p50_ms": percentile(&ms, 0.5),
        "p99_ms": percentile(&ms, 0.99),
        "errors": spans.iter().filter(|s| s.error).count(),
        "retries": sum("stack.retries"),
        "fallbacks": sum("stack.fallbacks"),
        "tokens": by_model,
    }))
    .into_response()
}

/// The context server's base URL and token, when the stack has one.
fn context_server(hub: &Hub) -> Option<(String, Option<String>)> {
    let svc = hub
        .plan
        .services
        .iter()
        .find(|s| s.builtin == Some(BuiltinKind::Context))?;
    let port = svc.ports.first()?.host;
    let token = svc
        .builtin_config
        .as_ref()
        .and_then(|c| crate::services::context::Config::load(Some(&c.path)).ok())
        .and_then(|c| c.token);
    Some((format!("http://127.0.0.1:{port}"), token))
}

async fn from_context(hub: &Hub, path: &str) -> Result<Value, Response> {
    let Some((base, token)) = context_server(hub) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "the stack has no context server".into(),
        ));
    };
    let mut req = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .timeout(Duration::from_secs(5));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("the context server: {e}")))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(error(
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            format!("the context server answered {status}: {v}"),
        ));
    }
    Ok(v)
}

async fn sessions(State(hub): State<Arc<Hub>>) -> Response {
    match from_context(&hub, "/v1/sessions").await {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

/// A session's entries, and each enriched request of it: when, which trace, and the
/// entries that were prepended.
async fn session(State(hub): State<Arc<Hub>>, Path(id): Path<String>) -> Response {
    let encoded =
        percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC).to_string();
    let doc = match from_context(&hub, &format!("/v1/sessions/{encoded}")).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let enriched: Vec<Value> = hub
        .with_window(|w| {
            w.spans()
                .rev()
                .filter(|s| {
                    s.text("stack.context.session") == Some(id.as_str())
                        && s.attributes.contains_key("stack.context.entry_ids")
                })
                .take(50)
                .map(|s| {
                    json!({
                        "trace_id": s.trace_id,
                        "time_ns": s.start_ns,
                        "entries": s.int("stack.context.entries"),
                        "tokens": s.int("stack.context.tokens"),
                        "entry_ids": s.attributes.get("stack.context.entry_ids"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    axum::Json(json!({"session": doc, "enriched": enriched})).into_response()
}

async fn stats(State(hub): State<Arc<Hub>>) -> Response {
    let r = &hub.received;
    axum::Json(json!({
        "spans_received": r.spans.load(Ordering::Relaxed),
        "spans_held": hub.with_window(|w| w.spans().count()).unwrap_or(0),
        "metric_points_received": r.metric_points.load(Ordering::Relaxed),
        "log_records_received": r.log_records.load(Ordering::Relaxed),
        "forward_failures": r.forward_failures.load(Ordering::Relaxed),
        "rss_bytes": crate::procfs::rss_bytes(std::process::id()),
    }))
    .into_response()
}
