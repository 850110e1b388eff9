//! `replay:` (SPEC §4.4): model requests answered from the cassettes the gateway recorded
//! (see [`crate::services::cassette`]), matched on the route and the canonical request. A
//! stream is played frame by frame at its recorded pace (scaled by `speed`); a plain
//! request replayed from a streamed recording is assembled, and the reverse split, as the
//! real API would. A request with no recording is a 400 `no_recording` in the caller's API
//! shape naming the nearest recording and how the request differs from it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;
use tokio::time::Instant;

use super::config::ReplayConfig;
use super::state::AppState;
use crate::services::api_error::{Api, ApiError};
use crate::services::cassette::{self, Library, Lookup, Note, Notes, Recorded, shape};
use crate::services::config::ConfigError;

/// `replay_answers{result="hit"|"miss", route}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReplayLabels {
    result: &'static str,
    route: String,
}

/// The cassettes and what replaying them needs.
#[derive(Debug)]
pub(super) struct Replay {
    library: Library,
    speed: f64,
    notes: Notes,
    dir: std::path::PathBuf,
    /// Answers by result.
    pub answers: Family<ReplayLabels, Counter>,
}

impl Replay {
    /// Loads the cassettes of `config`.
    pub(super) fn load(config: &ReplayConfig) -> Result<Replay, ConfigError> {
        let library =
            Library::load(&config.cassettes).map_err(|e| ConfigError::new(&config.cassettes, e))?;
        let notes = Notes::open(config.notes.as_deref()).map_err(|e| {
            ConfigError::new(
                config.notes.as_deref().unwrap_or(std::path::Path::new("")),
                format!("cannot open the replay notes: {e}"),
            )
        })?;
        tracing::info!(
            cassettes = library.len(),
            dir = %config.cassettes.display(),
            "replaying"
        );
        Ok(Replay {
            library,
            speed: config.speed,
            notes,
            dir: config.cassettes.clone(),
            answers: Family::default(),
        })
    }

    /// Waits until `started` plus the recorded `ms` at this replay's speed (not at all at
    /// speed 0: even an elapsed timer costs a turn of the timer wheel).
    async fn wait(&self, started: Instant, ms: u64) {
        let at = started + self.scaled(ms);
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
    }

    /// A recorded offset at this replay's speed.
    fn scaled(&self, ms: u64) -> Duration {
        if self.speed == 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(ms as f64 / 1000.0 / self.speed)
        }
    }
}

/// The API shape of a model route, if it is one.
fn api_of(path: &str) -> Option<Api> {
    match path {
        "/v1/chat/completions" | "/v1/responses" | "/v1/embeddings" => Some(Api::OpenAi),
        "/v1/messages" | "/v1/messages/count_tokens" => Some(Api::Anthropic),
        _ => None,
    }
}

/// Answers model routes from the cassettes (a middleware: everything else passes on).
pub(super) async fn intercept(
    State(s): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let (Some(replay), Some(api)) = (&s.replay, api_of(req.uri().path())) else {
        return next.run(req).await;
    };
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let route = req.uri().path().to_string();
    let bytes = match axum::body::to_bytes(req.into_body(), s.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(api, format!("cannot read the body: {e}"))
                .into_response();
        }
    };
    let asked: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::bad_request(api, format!("malformed JSON in the request body: {e}"))
                .into_response();
        }
    };
    let stream = asked["stream"] == true;
    let include_usage = asked["stream_options"]["include_usage"] == true;
    let request = cassette::canonical_value(asked);
    let count = |result: &'static str| {
        replay
            .answers
            .get_or_create(&ReplayLabels {
                result,
                route: route.clone(),
            })
            .inc();
    };
    match replay.library.lookup(&route, &request) {
        Lookup::Hit(entry) => {
            count("hit");
            replay.notes.note(&Note::Hit(entry.name.clone()));
            answer(
                replay,
                api,
                &route,
                &entry.cassette.response,
                stream,
                include_usage,
            )
            .await
        }
        Lookup::Miss { nearest, diff } => {
            count("miss");
            let message = miss_message(&replay.dir, &route, nearest.as_deref(), &diff);
            replay.notes.note(&Note::Miss {
                route: route.clone(),
                nearest,
                diff,
            });
            let mut e = ApiError::bad_request(api, message);
            e.code = Some("no_recording");
            e.into_response()
        }
    }
}

/// `no recording of this request …; nearest: FILE (FIELD: recorded …, asked …)`.
pub(crate) fn miss_message(
    dir: &std::path::Path,
    route: &str,
    nearest: Option<&str>,
    diff: &[String],
) -> String {
    let mut m = format!(
        "no recording of this {route} request in {} (record it with `--llm record`)",
        dir.display()
    );
    if let Some(n) = nearest {
        m.push_str(&format!("; nearest: {n}"));
        if !diff.is_empty() {
            m.push_str(&format!(" ({})", diff.join("; ")));
        }
    }
    m
}

/// The recorded answer, in the form asked for.
async fn answer(
    replay: &Replay,
    api: Api,
    route: &str,
    rec: &Recorded,
    stream: bool,
    include_usage: bool,
) -> Response {
    let started = Instant::now();
    let status = StatusCode::from_u16(rec.status).unwrap_or(StatusCode::OK);
    let ok = status.is_success();
    match (rec.streamed(), stream && ok) {
        (true, true) => {
            let frames = rec
                .frames
                .iter()
                .map(|f| (f.at_ms, f.data.clone()))
                .collect();
            sse(replay, started, frames)
        }
        (false, true) => {
            let doc: Value =
                serde_json::from_str(rec.body.as_deref().unwrap_or("")).unwrap_or(Value::Null);
            match shape::split(route, &doc, include_usage) {
                Ok(frames) => {
                    // Spread over the recorded time, as a stream of that answer would be.
                    let n = frames.len().max(1) as u64;
                    let frames = frames
                        .into_iter()
                        .enumerate()
                        .map(|(i, f)| (rec.latency_ms * (i as u64 + 1) / n, f))
                        .collect();
                    sse(replay, started, frames)
                }
                Err(e) => ApiError::bad_request(
                    api,
                    format!("cannot replay a plain recording as a stream: {e}"),
                )
                .into_response(),
            }
        }
        (true, false) => match shape::assemble(route, &rec.frames) {
            Ok(doc) => {
                let end = rec.frames.last().map_or(0, |f| f.at_ms);
                replay.wait(started, end).await;
                json(status, doc.to_string())
            }
            Err(e) => ApiError::bad_request(
                api,
                format!("cannot replay a streamed recording as a document: {e}"),
            )
            .into_response(),
        },
        (false, false) => {
            replay.wait(started, rec.latency_ms).await;
            let mut r = json(status, rec.body.clone().unwrap_or_default());
            if let Ok(v) = HeaderValue::from_str(&rec.content_type) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
    }
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An event stream of `frames` (offset in ms, text), each sent at its offset.
fn sse(replay: &Replay, started: Instant, frames: Vec<(u64, String)>) -> Response {
    let timed: Vec<(Instant, Bytes)> = frames
        .into_iter()
        .map(|(at, text)| {
            (
                started + replay.scaled(at),
                Bytes::from(format!("{text}\n\n")),
            )
        })
        .collect();
    let stream = futures::stream::unfold(timed.into_iter(), |mut rest| async move {
        let (at, bytes) = rest.next()?;
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        Some((Ok::<_, std::convert::Infallible>(bytes), rest))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
