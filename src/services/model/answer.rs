//! What to answer a turn with: a fixture's reply, tool calls or error, a forced tool call,
//! a structured document, a final answer after tool results, else the deterministic
//! reply; plus the ids and timestamps answers carry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::config::ToolCall;
use super::schema::{Unsatisfiable, generate};
use super::state::{AppState, Canned};
use super::text::{Reply, count_tokens, fnv, mix, reply_to};
use super::turn::{Format, ToolChoice, Turn};
use crate::services::api_error::{Api, ApiError};

/// The answer to one request.
#[derive(Debug, Clone)]
pub(super) enum Answer {
    /// Text (for a structured output, the JSON document).
    Text(Reply),
    /// Tool calls, in order (several when the fixture lists several and the request
    /// allows parallel calls).
    Tools(Vec<ToolCall>),
}

impl Answer {
    /// Tokens generated.
    pub(super) fn tokens(&self) -> u32 {
        match self {
            Answer::Text(r) => r.len() as u32,
            Answer::Tools(calls) => calls
                .iter()
                .map(|t| count_tokens(&t.arguments_json()) + 1)
                .sum(),
        }
    }

    /// Steps of simulated latency a non-streamed answer waits for.
    pub(super) fn steps(&self) -> usize {
        match self {
            Answer::Text(r) => r.len(),
            Answer::Tools(_) => 1,
        }
    }
}

/// Decides the answer to `turn`, or the fixture's error (SPEC §4.2, "Agents and
/// structured outputs"): a fixture for the turn wins; a forced tool choice makes a call
/// with generated arguments; a structured output format gets a document valid against
/// it; the turn after tool results gets a final answer quoting them; else the
/// deterministic reply.
pub(super) fn decide(state: &AppState, api: Api, turn: &Turn) -> Result<Answer, ApiError> {
    let seed = turn.seed();
    match state.fixture(turn) {
        Some(Canned::Reply(text)) => return Ok(Answer::Text(Reply::from_text(text, turn.limit))),
        Some(Canned::ToolCalls(calls)) if turn.choice != ToolChoice::None => {
            let mut calls: Vec<ToolCall> = calls
                .iter()
                .filter(|c| match &turn.choice {
                    ToolChoice::Named(n) => &c.name == n,
                    _ => true,
                })
                .cloned()
                .collect();
            if !turn.parallel {
                calls.truncate(1);
            }
            if !calls.is_empty() {
                for c in &mut calls {
                    if c.arguments.is_null() {
                        c.arguments = arguments(state, api, turn, &c.name, seed)?;
                    }
                }
                return Ok(Answer::Tools(calls));
            }
        }
        Some(Canned::Error(e)) => {
            let message = e
                .message
                .clone()
                .unwrap_or_else(|| format!("error {} from a fixture", e.status));
            let mut err = ApiError::new(api, e.status, message);
            if matches!(e.status, 429 | 503 | 529) {
                err.retry_after = Some(1.0);
            }
            return Err(err);
        }
        _ => {}
    }
    let forced = match &turn.choice {
        ToolChoice::Named(n) => Some(n.as_str()),
        ToolChoice::Required => turn.tools.first().map(|t| t.name),
        ToolChoice::Auto | ToolChoice::None => None,
    };
    if let Some(name) = forced {
        let call = ToolCall {
            name: name.to_string(),
            arguments: arguments(state, api, turn, name, seed)?,
        };
        return Ok(Answer::Tools(vec![call]));
    }
    if let Some(format) = &turn.format {
        let made = |schema: &Value| {
            generate(schema, seed, &state.samples)
                .map(|doc| doc.to_string())
                .map_err(|e| unsatisfiable(api, "the output schema", &e))
        };
        let doc: Arc<str> = match format {
            Format::JsonSchema(schema) => state
                .memo
                .document(turn.format_key, seed, || made(schema))?,
            Format::JsonObject(Some(schema)) => made(schema)?.into(),
            Format::JsonObject(None) => json!({"reply": reply_to(&turn.prompt, None).text()})
                .to_string()
                .into(),
        };
        return Ok(Answer::Text(Reply::from_json(&doc, turn.limit)));
    }
    if let Some(results) = &turn.tool_results {
        return Ok(Answer::Text(Reply::from_text(&quote(results), turn.limit)));
    }
    Ok(Answer::Text(reply_to(&turn.prompt, turn.limit)))
}

/// Arguments for a call of `name`, valid against its parameter schema (`{}` for a tool
/// the request does not describe).
fn arguments(
    state: &AppState,
    api: Api,
    turn: &Turn,
    name: &str,
    seed: u64,
) -> Result<Value, ApiError> {
    let Some(tool) = turn.tool(name) else {
        return Ok(json!({}));
    };
    let seed = seed ^ fnv(name.as_bytes());
    let text = state.memo.document(
        turn.tools_key ^ fnv(name.as_bytes()).rotate_left(1),
        seed,
        || {
            let doc = generate(tool.parameters, seed, &state.samples)
                .map_err(|e| unsatisfiable(api, &format!("the parameters of tool `{name}`"), &e))?;
            // A tool's arguments are an object, even when its schema says nothing.
            Ok::<_, ApiError>(if doc.is_object() {
                doc.to_string()
            } else {
                "{}".to_string()
            })
        },
    )?;
    Ok(serde_json::from_str(&text).unwrap_or_else(|_| json!({})))
}

fn unsatisfiable(api: Api, what: &str, e: &Unsatisfiable) -> ApiError {
    ApiError::bad_request(
        api,
        format!("the mock cannot make a document for {what}: {e}"),
    )
}

/// The final answer after tool results: deterministic, quoting them.
fn quote(results: &[String]) -> String {
    const MAX: usize = 400;
    let cut = |r: &String| -> String {
        let r = r.trim();
        match r.char_indices().nth(MAX) {
            Some((i, _)) => format!("{}…", &r[..i]),
            None => r.to_string(),
        }
    };
    let quoted: Vec<String> = results.iter().map(cut).collect();
    let what = if results.len() == 1 {
        "the tool result"
    } else {
        "the tool results"
    };
    format!("Based on {what}: {}", quoted.join("; "))
}

impl ToolCall {
    /// The arguments as a JSON string (`{}` when none were given).
    pub(crate) fn arguments_json(&self) -> String {
        match &self.arguments {
            serde_json::Value::Null => "{}".to_string(),
            v => v.to_string(),
        }
    }

    /// The arguments as an object.
    pub(crate) fn arguments_object(&self) -> serde_json::Value {
        match &self.arguments {
            serde_json::Value::Null => serde_json::json!({}),
            v => v.clone(),
        }
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A fresh id with `prefix` (`chatcmpl-…`, `msg_…`).
pub(super) fn id(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:016x}{:08x}", mix(n ^ 0x5eed), n as u32)
}

/// Seconds since the epoch.
pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Splits a JSON string into a few pieces, as providers stream tool arguments.
pub(super) fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}
