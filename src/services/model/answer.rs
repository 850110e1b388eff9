//! What to answer a prompt with: a fixture's reply, tool call or error, else the
//! deterministic reply; plus the ids and timestamps answers carry.

use std::sync::atomic::{AtomicU64, Ordering};

use super::config::ToolCall;
use super::state::{AppState, Canned};
use super::text::{Reply, mix, reply_to};
use crate::services::api_error::{Api, ApiError};

/// The answer to one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Text.
    Text(Reply),
    /// A tool call.
    Tool(ToolCall),
}

/// Decides the answer to `prompt` (at most `limit` tokens), or the fixture's error.
pub fn answer(
    state: &AppState,
    api: Api,
    prompt: &str,
    limit: Option<u32>,
) -> Result<Answer, ApiError> {
    match state.fixture(prompt) {
        Some(Canned::Reply(text)) => Ok(Answer::Text(Reply::from_text(text, limit))),
        Some(Canned::ToolCall(t)) => Ok(Answer::Tool(t.clone())),
        Some(Canned::Error(e)) => {
            let message = e
                .message
                .clone()
                .unwrap_or_else(|| format!("error {} from a fixture", e.status));
            let mut err = ApiError::new(api, e.status, message);
            if matches!(e.status, 429 | 503 | 529) {
                err.retry_after = Some(1.0);
            }
            Err(err)
        }
        None => Ok(Answer::Text(reply_to(prompt, limit))),
    }
}

impl ToolCall {
    /// The arguments as a JSON string (`{}` when none were given).
    pub fn arguments_json(&self) -> String {
        match &self.arguments {
            serde_json::Value::Null => "{}".to_string(),
            v => v.to_string(),
        }
    }

    /// The arguments as an object.
    pub fn arguments_object(&self) -> serde_json::Value {
        match &self.arguments {
            serde_json::Value::Null => serde_json::json!({}),
            v => v.clone(),
        }
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A fresh id with `prefix` (`chatcmpl-…`, `msg_…`).
pub fn id(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:016x}{:08x}", mix(n ^ 0x5eed), n as u32)
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Splits a JSON string into a few pieces, as providers stream tool arguments.
pub fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}
