//! The supervisor's telemetry port (SPEC §6): an OTLP/HTTP receiver (traces, metrics and
//! logs; protobuf and JSON) that keeps a bounded window of spans and forwards everything
//! to `otlp_forward:` when set, and the live dashboard under `/d/<token>/`. It listens on
//! 127.0.0.1 only.

mod dashboard;
pub(crate) mod otlp;
pub(crate) mod spans;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::control::server::{Incoming, Numbered};
use crate::logs::{Follower, Line};
use crate::plan::Plan;
use otlp::Encoding;

/// Log lines the supervisor keeps for the dashboard (a browser keeps more).
const LOG_LINES: usize = 20_000;
/// Log lines per event to the dashboards.
const LOG_BATCH: usize = 2_000;

/// What changed, for the dashboard's event stream.
#[derive(Debug, Clone)]
pub(crate) enum Update {
    /// New log lines (with their sequence numbers).
    Logs(Arc<Vec<(u64, Line)>>),
    /// New spans arrived.
    Spans(usize),
    /// A service's state changed.
    Services,
}

/// Counts of what was received.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// Spans.
    pub spans: AtomicU64,
    /// Metric data points.
    pub metric_points: AtomicU64,
    /// Log records.
    pub log_records: AtomicU64,
    /// Forwards that failed.
    pub forward_failures: AtomicU64,
}

/// The telemetry port's shared state.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) plan: Arc<Plan>,
    window: Mutex<spans::Window>,
    pub(crate) received: Arc<Received>,
    forward: Option<(reqwest::Client, String)>,
    pub(crate) updates: broadcast::Sender<Update>,
    logs: Mutex<VecDeque<(u64, Line)>>,
    next_line: AtomicU64,
    pub(crate) control: mpsc::Sender<Incoming>,
}

impl Hub {
    /// The hub of `plan`'s stack; `control` reaches the supervisor.
    pub(crate) fn new(plan: Arc<Plan>, control: mpsc::Sender<Incoming>) -> std::io::Result<Hub> {
        let window = spans::Window::open(&plan.state_dir)?;
        let forward = plan
            .telemetry
            .as_ref()
            .and_then(|t| t.forward.clone())
            .map(|url| (reqwest::Client::new(), url));
        Ok(Hub {
            plan,
            window: Mutex::new(window),
            received: Arc::default(),
            forward,
            updates: broadcast::channel(256).0,
            logs: Mutex::new(VecDeque::new()),
            next_line: AtomicU64::new(1),
            control,
        })
    }

    /// Runs `f` over the window.
    pub(crate) fn with_window<T>(&self, f: impl FnOnce(&spans::Window) -> T) -> Option<T> {
        self.window.lock().ok().map(|w| f(&w))
    }

    /// The kept log lines after sequence number `after` (at most `limit`, the newest).
    pub(crate) fn logs_after(&self, after: u64, limit: usize) -> Vec<(u64, Line)> {
        let Ok(logs) = self.logs.lock() else {
            return Vec::new();
        };
        let skip = logs.partition_point(|(n, _)| *n <= after);
        let take = logs.len() - skip;
        logs.iter()
            .skip(skip + take.saturating_sub(limit))
            .cloned()
            .collect()
    }

    /// Keeps `lines` and tells the dashboards, in batches of at most [`LOG_BATCH`] lines
    /// (a burst of a hundred thousand never becomes one event).
    fn add_lines(&self, lines: Vec<Line>) {
        let mut lines = lines.into_iter().peekable();
        while lines.peek().is_some() {
            let numbered: Vec<(u64, Line)> = lines
                .by_ref()
                .take(LOG_BATCH)
                .map(|l| (self.next_line.fetch_add(1, Ordering::Relaxed), l))
                .collect();
            if let Ok(mut logs) = self.logs.lock() {
                logs.extend(numbered.iter().cloned());
                while logs.len() > LOG_LINES {
                    logs.pop_front();
                }
            }
            let _ = self.updates.send(Update::Logs(Arc::new(numbered)));
        }
    }

    /// Sends `body` on to the collector of `otlp_forward:`, off the request's path.
    fn forward(&self, signal: &str, content_type: &str, body: Bytes) {
        let Some((client, base)) = &self.forward else {
            return;
        };
        let req = client
            .post(format!("{base}/v1/{signal}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .timeout(Duration::from_secs(10));
        let received = self.received.clone();
        tokio::spawn(async move {
            let failed = match req.send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => format!("the collector answered {}", r.status()),
                Err(err) => format!("cannot reach the collector: {err}"),
            };
            received.forward_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("otlp_forward: {failed}");
        });
    }
}

/// Binds the telemetry port of `plan` (none: no telemetry).
pub(crate) async fn bind(plan: &Plan) -> Option<TcpListener> {
    let t = plan.telemetry.as_ref()?;
    match TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, t.port)).await {
        Ok(l) => Some(l),
        Err(err) => {
            tracing::warn!(%err, port = t.port, "cannot serve telemetry and the dashboard");
            None
        }
    }
}

/// Serves the receiver and the dashboard until `stop`, following the services' logs and
/// events for the dashboard.
pub(crate) async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    events: broadcast::Sender<Numbered>,
    stop: CancellationToken,
) {
    let token = hub
        .plan
        .telemetry
        .as_ref()
        .map(|t| t.token.clone())
        .unwrap_or_default();
    let app = Router::new()
        .route("/v1/{signal}", post(receive))
        .nest(&format!("/d/{token}"), dashboard::routes())
        .merge(dashboard::page_route(&token))
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .with_state(hub.clone());
    let tails = tokio::spawn(follow_logs(hub.clone(), stop.clone()));
    let relay = tokio::spawn(relay_events(hub.clone(), events.subscribe(), stop.clone()));
    let shutdown = stop.clone();
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::warn!(%err, "the telemetry port failed");
    }
    tails.abort();
    relay.abort();
}

/// `POST /v1/traces|metrics|logs`: OTLP/HTTP.
async fn receive(
    State(hub): State<Arc<Hub>>,
    Path(signal): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(enc) = Encoding::from_content_type(&ct) else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("OTLP/HTTP takes application/x-protobuf or application/json, not `{ct}`"),
        )
            .into_response();
    };
    let outcome = match signal.as_str() {
        "traces" => otlp::spans(&body, enc).map(|spans| {
            let n = spans.len();
            hub.received.spans.fetch_add(n as u64, Ordering::Relaxed);
            if let Ok(mut w) = hub.window.lock() {
                w.add(spans);
            }
            let _ = hub.updates.send(Update::Spans(n));
        }),
        "metrics" => otlp::metric_points(&body, enc).map(|n| {
            hub.received
                .metric_points
                .fetch_add(n as u64, Ordering::Relaxed);
        }),
        "logs" => otlp::log_records(&body, enc).map(|n| {
            hub.received
                .log_records
                .fetch_add(n as u64, Ordering::Relaxed);
        }),
        other => {
            return (
                StatusCode::NOT_FOUND,
                format!("no OTLP signal `{other}`: use /v1/traces, /v1/metrics or /v1/logs"),
            )
                .into_response();
        }
    };
    if let Err(message) = outcome {
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    hub.forward(&signal, &ct, body);
    // An empty Export…ServiceResponse: full success.
    let answer: &'static [u8] = match enc {
        Encoding::Protobuf => b"",
        Encoding::Json => b"{}",
    };
    ([(header::CONTENT_TYPE, enc.content_type())], answer).into_response()
}

/// Follows every service's log file, keeping the newest lines for the dashboard.
async fn follow_logs(hub: Arc<Hub>, stop: CancellationToken) {
    let dir: PathBuf = hub.plan.state_dir();
    let mut followers: Vec<Follower> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        // Services added by a reconcile are followed from their start.
        for name in crate::logs::services_in(&dir.join("logs")) {
            if !followers.iter().any(|f| f.service == name) {
                followers.push(Follower::new(&name, &crate::logs::path(&dir, &name), 0));
            }
        }
        let mut lines: Vec<Line> = followers.iter_mut().flat_map(Follower::read_new).collect();
        lines.sort_by(|a, b| a.time.cmp(&b.time));
        hub.add_lines(lines);
    }
}

/// Tells the dashboard when a service's state changes.
async fn relay_events(
    hub: Arc<Hub>,
    mut events: broadcast::Receiver<Numbered>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            msg = events.recv() => match msg {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = hub.updates.send(Update::Services);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = stop.cancelled() => return,
        }
    }
}
