//! The supervisor's window of spans (SPEC §6): the last [`MAX_SPANS`] spans of the last
//! [`MAX_AGE`], in memory for the dashboard and in `.stack/telemetry/spans.jsonl` for
//! `stack traces` (which reads the file, so it works with the stack down too).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Spans kept.
pub(crate) const MAX_SPANS: usize = 10_000;
/// How long a span is kept.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// One span as the window keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct SpanRecord {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// Empty for a root span.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_span_id: String,
    /// The span's name (`chat gpt-4o-mini`).
    pub name: String,
    /// The reporting service (`service.name`).
    pub service: String,
    /// `server`, `client`, `internal`, `producer`, `consumer`.
    pub kind: String,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds.
    pub end_ns: u64,
    /// Whether its status is an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    /// The status message, when it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_message: String,
    /// Its attributes, flattened to JSON scalars (arrays stay arrays).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub attributes: serde_json::Map<String, Value>,
}

impl SpanRecord {
    /// Duration in milliseconds.
    pub(crate) fn ms(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e6
    }

    /// An attribute as an integer.
    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }

    /// An attribute as text.
    pub(crate) fn text(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }
}

/// The window: spans in arrival order, and the file that mirrors it.
#[derive(Debug)]
pub(crate) struct Window {
    spans: VecDeque<SpanRecord>,
    file: PathBuf,
    /// Lines in the file (compacted to the window when it doubles).
    lines: usize,
}

/// The window's file in the state folder `dir`.
pub(crate) fn file(dir: &Path) -> PathBuf {
    dir.join("telemetry").join("spans.jsonl")
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The spans in `path` still within the window, oldest first (a missing file: none; a bad
/// line is skipped).
pub(crate) fn read(path: &Path) -> Vec<SpanRecord> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let cutoff = now_ns().saturating_sub(MAX_AGE.as_nanos() as u64);
    let mut spans: VecDeque<SpanRecord> = VecDeque::new();
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        let Ok(s) = serde_json::from_str::<SpanRecord>(&line) else {
            continue;
        };
        if s.end_ns >= cutoff {
            spans.push_back(s);
            if spans.len() > MAX_SPANS {
                spans.pop_front();
            }
        }
    }
    spans.into()
}

impl Window {
    /// The window of state folder `dir`, with what its file holds.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Window> {
        let file = file(dir);
        crate::state::private_dir(file.parent().unwrap_or(dir))?;
        let spans: VecDeque<SpanRecord> = read(&file).into();
        let mut w = Window {
            spans,
            file,
            lines: 0,
        };
        w.rewrite()?;
        Ok(w)
    }

    /// Adds spans (and drops what falls out of the window).
    pub(crate) fn add(&mut self, new: Vec<SpanRecord>) {
        if new.is_empty() {
            return;
        }
        if let Err(err) = self.append(&new) {
            tracing::warn!(%err, file = %self.file.display(), "cannot write spans");
        }
        self.spans.extend(new);
        let cutoff = now_ns().saturating_sub(MAX_AGE.as_nanos() as u64);
        while self.spans.len() > MAX_SPANS || self.spans.front().is_some_and(|s| s.end_ns < cutoff)
        {
            self.spans.pop_front();
        }
        if self.lines > 2 * MAX_SPANS
            && let Err(err) = self.rewrite()
        {
            tracing::warn!(%err, file = %self.file.display(), "cannot compact the spans");
        }
    }

    fn append(&mut self, new: &[SpanRecord]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for s in new {
            serde_json::to_writer(&mut buf, s)?;
            buf.push(b'\n');
        }
        let mut f = open_private(&self.file, true)?;
        f.write_all(&buf)?;
        self.lines += new.len();
        Ok(())
    }

    /// Writes the window to a new file and moves it into place.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let tmp = self.file.with_extension("jsonl.tmp");
        let mut buf = Vec::new();
        for s in &self.spans {
            serde_json::to_writer(&mut buf, s)?;
            buf.push(b'\n');
        }
        let mut f = open_private(&tmp, false)?;
        f.write_all(&buf)?;
        std::fs::rename(&tmp, &self.file)?;
        self.lines = self.spans.len();
        Ok(())
    }

    /// Every span, oldest first.
    pub(crate) fn spans(&self) -> impl DoubleEndedIterator<Item = &SpanRecord> {
        self.spans.iter()
    }

    /// The spans of one trace.
    pub(crate) fn trace(&self, id: &str) -> Vec<SpanRecord> {
        self.spans
            .iter()
            .filter(|s| s.trace_id == id)
            .cloned()
            .collect()
    }
}

/// Opens `path` owner-only (appending, or truncating).
fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .mode(0o600)
        .open(path)
}

/// One trace: its spans and what a list shows of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TraceSummary {
    /// The trace id.
    pub trace_id: String,
    /// The root span's name (or the earliest span's).
    pub root: String,
    /// The services with spans in it, in order of their first span.
    pub services: Vec<String>,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// From the first start to the last end.
    pub duration_ms: f64,
    /// Spans.
    pub span_count: usize,
    /// Spans that failed.
    pub errors: usize,
    /// The model asked for (`gen_ai.request.model`), when a span says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Input tokens (of the outermost GenAI span).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    /// Output tokens (of the outermost GenAI span).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    /// The spans, by start.
    pub spans: Vec<SpanRecord>,
}

/// `spans` grouped into traces, the most recent first.
pub(crate) fn traces<'a>(spans: impl Iterator<Item = &'a SpanRecord>) -> Vec<TraceSummary> {
    let mut by_trace: BTreeMap<&str, Vec<&SpanRecord>> = BTreeMap::new();
    for s in spans {
        by_trace.entry(&s.trace_id).or_default().push(s);
    }
    let mut out: Vec<TraceSummary> = by_trace
        .into_iter()
        .map(|(id, mut spans)| {
            spans.sort_by_key(|s| (s.start_ns, std::cmp::Reverse(s.end_ns)));
            let ids: std::collections::HashSet<&str> =
                spans.iter().map(|s| s.span_id.as_str()).collect();
            let root = spans
                .iter()
                .find(|s| s.parent_span_id.is_empty() || !ids.contains(s.parent_span_id.as_str()))
                .or(spans.first())
                .map(|s| s.name.clone())
                .unwrap_or_default();
            let mut services: Vec<String> = Vec::new();
            for s in &spans {
                if !services.contains(&s.service) {
                    services.push(s.service.clone());
                }
            }
            let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
            let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(start);
            let genai = spans
                .iter()
                .find(|s| s.attributes.contains_key("gen_ai.request.model"));
            TraceSummary {
                trace_id: id.to_string(),
                root,
                services,
                start_ns: start,
                duration_ms: end.saturating_sub(start) as f64 / 1e6,
                span_count: spans.len(),
                errors: spans.iter().filter(|s| s.error).count(),
                model: genai.and_then(|s| s.text("gen_ai.request.model").map(str::to_string)),
                input_tokens: genai.and_then(|s| s.int("gen_ai.usage.input_tokens")),
                output_tokens: genai.and_then(|s| s.int("gen_ai.usage.output_tokens")),
                spans: spans.into_iter().cloned().collect(),
            }
        })
        .collect();
    out.sort_by_key(|t| std::cmp::Reverse(t.start_ns));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: &str, id: &str, parent: &str, service: &str, start: u64) -> SpanRecord {
        SpanRecord {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: format!("op {id}"),
            service: service.into(),
            kind: "server".into(),
            start_ns: start,
            end_ns: start + 1_000_000,
            error: false,
            status_message: String::new(),
            attributes: serde_json::Map::new(),
        }
    }

    #[test]
    fn the_window_is_bounded_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = now_ns();
        let mut w = Window::open(dir.path()).expect("open");
        // An old span falls out at once.
        w.add(vec![span(
            "t0",
            "s0",
            "",
            "a",
            now - MAX_AGE.as_nanos() as u64 - 10_000_000,
        )]);
        for i in 0..(MAX_SPANS + 50) {
            w.add(vec![span(
                &format!("t{}", i % 7),
                &format!("s{i}"),
                "",
                "a",
                now,
            )]);
        }
        assert_eq!(w.spans().count(), MAX_SPANS);
        assert!(w.spans().all(|s| s.trace_id != "t0" || s.span_id != "s0"));
        drop(w);
        let again = Window::open(dir.path()).expect("reopen");
        assert_eq!(again.spans().count(), MAX_SPANS);
        assert_eq!(
            again.spans().last().map(|s| s.span_id.as_str()),
            Some("s10049")
        );
    }

    #[test]
    fn traces_group_spans_with_their_root() {
        let spans = [
            span("a", "2", "1", "model", 20),
            span("a", "1", "", "gateway", 10),
            span("b", "3", "", "app", 30),
        ];
        let t = traces(spans.iter());
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].trace_id, "b");
        assert_eq!(t[1].root, "op 1");
        assert_eq!(t[1].services, ["gateway", "model"]);
    }
}
