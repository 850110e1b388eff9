//! Server-sent events with simulated latency: frames are computed up front; with no
//! latency they go out in one write, otherwise the body paces them as it is read.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;

use super::config::Latency;

/// Frames to send, each after its delay.
#[derive(Debug, Default)]
pub(super) struct Frames {
    frames: Vec<(Duration, String)>,
}

impl Frames {
    /// Adds a frame sent right after the previous one.
    pub(super) fn push(&mut self, frame: String) {
        self.frames.push((Duration::ZERO, frame));
    }

    /// Adds a frame sent `delay` after the previous one.
    pub(super) fn push_after(&mut self, delay: Duration, frame: String) {
        self.frames.push((delay, frame));
    }

    /// The `text/event-stream` response.
    pub(super) fn into_response(self) -> Response {
        let body = if self.frames.iter().all(|(d, _)| d.is_zero()) {
            let all: String = self.frames.into_iter().map(|(_, f)| f).collect();
            Body::from(all)
        } else {
            // Paced by the body itself: no task, so nothing outlives a client that goes.
            let paced = futures::stream::iter(self.frames).then(|(delay, frame)| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, std::io::Error>(Bytes::from(frame))
            });
            Body::from_stream(paced)
        };
        let mut resp = body.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

/// The delay before token `i` (0-based): the time to first token, then one token period.
pub(super) fn token_delay(latency: &Latency, i: usize) -> Duration {
    if i == 0 {
        Duration::from_millis(latency.first_token_ms)
    } else if latency.tokens_per_second > 0.0 {
        Duration::from_secs_f64(1.0 / latency.tokens_per_second)
    } else {
        Duration::ZERO
    }
}

/// The whole time to generate `n` tokens (for non-streamed answers).
pub(super) fn total_delay(latency: &Latency, n: usize) -> Duration {
    (0..n.max(1)).map(|i| token_delay(latency, i)).sum()
}

/// An `event: NAME` frame (Anthropic, Responses).
pub(super) fn event(name: &str, data: &serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A `data:` frame (OpenAI chat).
pub(super) fn data(data: &serde_json::Value) -> String {
    format!("data: {data}\n\n")
}
