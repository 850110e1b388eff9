//! Cassettes (SPEC §4.4): model exchanges recorded by the gateway (`llm: record`) and
//! answered again by the mock (`replay:`), so a session recorded once against a real
//! provider replays in CI byte for byte, never leaving the machine.
//!
//! One YAML file per exchange, `<route>/<slug of the prompt>-<hash>.yaml`: the route, the
//! request in canonical form (keys sorted; `stream`, `stream_options`, `user` and
//! `metadata` left out, as they do not change the answer), and the answer — its status,
//! content type, and its body or, for a stream, every frame with its time offset. The hash
//! is of the route and the canonical request, so a re-recording lands in the same file and
//! a replayed request finds it; nothing matched holds a wall-clock time. Requests carry no
//! credentials (those travel in headers, which are never written).

mod library;
pub(crate) mod shape;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use library::{Library, Lookup, Notes, files};

/// Where every model request of a gateway goes (`--llm`, `STACK_LLM`, `llm:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// To the built-in mock, whatever the routes say.
    Mock,
    /// Routes and providers as configured.
    #[default]
    Live,
    /// `live`, and every exchange written to the cassettes.
    Record,
    /// Answered from the cassettes by the mock; nothing leaves the machine.
    Replay,
}

impl Mode {
    /// Its name, as written in the stack file and on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Mock => "mock",
            Mode::Live => "live",
            Mode::Record => "record",
            Mode::Replay => "replay",
        }
    }

    /// Whether model requests go to the mock rather than the configured upstreams.
    pub(crate) fn to_mock(self) -> bool {
        matches!(self, Mode::Mock | Mode::Replay)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Top-level request fields that do not take part in matching.
const IGNORED: [&str; 4] = ["stream", "stream_options", "user", "metadata"];

/// One recorded exchange (fields in alphabetical order: the file's keys are sorted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cassette {
    /// The request, canonical.
    pub request: Value,
    /// The answer.
    pub response: Recorded,
    /// The API route (`/v1/chat/completions`).
    pub route: String,
}

/// A recorded answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recorded {
    /// The whole body of a plain answer, as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The content type.
    pub content_type: String,
    /// A stream's frames (each without its blank line), with their time offsets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Frame>,
    /// Milliseconds from the request to a plain answer's end.
    #[serde(default)]
    pub latency_ms: u64,
    /// The HTTP status.
    pub status: u16,
}

/// One frame of a recorded stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Frame {
    /// Milliseconds since the request was sent.
    pub at_ms: u64,
    /// The frame (`data: …`, or `event: …\ndata: …`).
    pub data: String,
}

impl Recorded {
    /// Whether the answer was a stream.
    pub(crate) fn streamed(&self) -> bool {
        self.content_type.starts_with("text/event-stream")
    }
}

/// The canonical form of a request body: parsed, the [`IGNORED`] fields left out, keys
/// sorted at every level.
pub(crate) fn canonical(body: &[u8]) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    Ok(canonical_value(v))
}

/// [`canonical`] of a parsed body.
pub(crate) fn canonical_value(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        for k in IGNORED {
            m.shift_remove(k);
        }
    }
    sorted(v)
}

/// `v` with its objects' keys in order.
pub(crate) fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The short hash of a route and a canonical request: what names and finds a cassette.
pub(crate) fn fingerprint(route: &str, request: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update(b"\n");
    h.update(request.to_string().as_bytes());
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The folder of a route's cassettes: `/v1/chat/completions` → `chat-completions`.
pub(crate) fn route_dir(route: &str) -> String {
    route
        .trim_start_matches("/v1/")
        .trim_matches('/')
        .replace('/', "-")
}

/// Where the cassette of `request` on `route` lives, relative to the cassette folder.
pub(crate) fn file_name(route: &str, request: &Value) -> PathBuf {
    let slug = slug(&prompt(request));
    let hash = fingerprint(route, request);
    let name = if slug.is_empty() {
        format!("{hash}.yaml")
    } else {
        format!("{slug}-{hash}.yaml")
    };
    Path::new(&route_dir(route)).join(name)
}

/// The text of the request's last user turn (or its `input`), for the file name.
fn prompt(request: &Value) -> String {
    fn text(content: &Value) -> Option<String> {
        match content {
            Value::String(s) => Some(s.clone()),
            Value::Array(parts) => parts.iter().rev().find_map(|p| {
                p.get("text")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| p.get("content").and_then(text))
            }),
            _ => None,
        }
    }
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
        if let Some(t) = last_user.and_then(|m| m.get("content")).and_then(text) {
            return t;
        }
    }
    request.get("input").and_then(text).unwrap_or_default()
}

/// Up to six words of `text`, lowercase ASCII letters and digits joined by `-`.
fn slug(text: &str) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(6)
        .map(str::to_ascii_lowercase)
        .collect();
    let mut s = words.join("-");
    s.truncate(48);
    s.trim_end_matches('-').to_string()
}

/// The text of a cassette file.
pub(crate) fn to_yaml(c: &Cassette) -> Result<String, String> {
    serde_yaml::to_string(c).map_err(|e| e.to_string())
}

/// Parses a cassette file's text.
pub(crate) fn from_yaml(text: &str) -> Result<Cassette, String> {
    let mut c: Cassette = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    c.request = sorted(std::mem::take(&mut c.request));
    Ok(c)
}

/// Writes `c` under `dir` (atomically: a reader never sees half a file); its path.
pub(crate) fn write(dir: &Path, c: &Cassette) -> std::io::Result<PathBuf> {
    let path = dir.join(file_name(&c.route, &c.request));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = to_yaml(c).map_err(std::io::Error::other)?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("yaml.{}-{n}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// How `asked` differs from `recorded`: one line per differing field (at most `limit`),
/// `messages[1].content: recorded "hi", asked "hello"`.
pub(crate) fn diff(recorded: &Value, asked: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    walk(recorded, asked, &mut String::new(), &mut out, limit);
    out
}

fn walk(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    let at = |path: &str| {
        if path.is_empty() {
            "the body".to_string()
        } else {
            path.to_string()
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => walk(p, q, path, out, limit),
                    (Some(p), None) => push(
                        out,
                        limit,
                        format!("{path}: recorded {}, absent now", short(p)),
                    ),
                    (None, Some(q)) => push(
                        out,
                        limit,
                        format!("{path}: absent from the recording, asked {}", short(q)),
                    ),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(p, q, path, out, limit);
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) => push(
            out,
            limit,
            format!(
                "{}: recorded {} items, asked {}",
                at(path),
                x.len(),
                y.len()
            ),
        ),
        _ => push(
            out,
            limit,
            format!("{}: recorded {}, asked {}", at(path), short(a), short(b)),
        ),
    }
}

fn push(out: &mut Vec<String>, limit: usize, line: String) {
    if out.len() < limit {
        out.push(line);
    }
}

/// A value in a diff line: its JSON, cut to 60 characters.
fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 60 {
        text
    } else {
        format!("{}…", text.chars().take(59).collect::<String>())
    }
}

/// Notes kept while replaying, one JSON line per answer, for `stack run`'s summary and
/// `stack cassettes prune`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Note {
    /// Answered from this file (relative to the cassette folder).
    Hit(String),
    /// No recording matched.
    Miss {
        /// The route.
        route: String,
        /// The nearest recording, if any.
        nearest: Option<String>,
        /// How the request differs from it.
        diff: Vec<String>,
    },
}

/// Reads the notes file (lines that do not parse are skipped).
pub(crate) fn read_notes(path: &Path) -> Vec<Note> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests;
