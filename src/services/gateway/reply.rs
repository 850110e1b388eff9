//! Reading what the model said: the reply text and token usage of a plain JSON response,
//! or of a stream as it passes through (a tee that forwards every frame untouched).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use serde_json::Value;
use tokio::sync::oneshot;

/// What a response told about the model's answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Said {
    /// The reply text (assembled from deltas when streamed).
    pub text: String,
    /// Tokens the model generated, when reported.
    pub completion_tokens: u64,
}

/// The reply of a non-streamed response body (OpenAI chat, Anthropic messages, Responses).
pub(super) fn from_json(body: &[u8]) -> Said {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Said::default();
    };
    let mut said = Said::default();
    if let Some(t) = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
    {
        said.text = t.to_string();
    } else if let Some(blocks) = v.get("content").and_then(Value::as_array) {
        said.text = blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
    } else if let Some(items) = v.get("output").and_then(Value::as_array) {
        said.text = items
            .iter()
            .filter_map(|i| i.get("content").and_then(Value::as_array))
            .flatten()
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect();
    }
    said.completion_tokens = usage(&v);
    said
}

/// The completion tokens a plain JSON answer reports: `usage.completion_tokens` (OpenAI
/// chat), else `usage.output_tokens` (Anthropic, Responses), where `usage` is a member of
/// the answer itself. The answer is not parsed: a pass over its structure, jumping over
/// strings with `memchr`, finds the members, so the same keys elsewhere (inside a tool
/// call's arguments, say) are not taken for them. 0 when there is none.
pub(super) fn completion_tokens(body: &[u8]) -> u64 {
    let Some(usage) = member(body, b"usage") else {
        return 0;
    };
    [&b"completion_tokens"[..], b"output_tokens"]
        .iter()
        .find_map(|key| member(usage, key).and_then(leading_u64))
        .unwrap_or(0)
}

/// The unsigned integer at the start of `bytes`.
fn leading_u64(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()
}

/// The bytes from the value of `key`, a member of the object `body` starts with, to the
/// end of `body`; `None` when the object ends without it.
fn member<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let start = i + 1;
                let end = string_end(body, start)?;
                if depth == 1 && &body[start..end] == key {
                    let rest = body[end + 1..].trim_ascii_start().strip_prefix(b":")?;
                    return Some(rest.trim_ascii_start());
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Where the string starting at `from` (after its opening quote) closes.
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', body.get(from..)?)?;
        if body[at] == b'"' {
            return Some(at);
        }
        from = at + 2; // an escape: skip the escaped byte
    }
}

fn usage(v: &Value) -> u64 {
    let u = v.get("usage");
    u.and_then(|u| {
        u.get("completion_tokens")
            .or_else(|| u.get("output_tokens"))
    })
    .and_then(Value::as_u64)
    .unwrap_or(0)
}

/// Accumulates the reply from SSE frames of any of the three APIs.
#[derive(Debug, Default)]
pub(super) struct SseText {
    pending: Vec<u8>,
    said: Said,
}

impl SseText {
    /// Feeds raw bytes (frames may be split anywhere).
    pub(super) fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            if let Some(data) = line.strip_prefix("data:") {
                self.data(data.trim_start());
            }
        }
    }

    fn data(&mut self, data: &str) {
        if data == "[DONE]" {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        // OpenAI chat chunks.
        if let Some(t) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            self.said.text.push_str(t);
        }
        match v.get("type").and_then(Value::as_str) {
            // Anthropic.
            Some("content_block_delta") => {
                if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
                    self.said.text.push_str(t);
                }
            }
            // Responses API.
            Some("response.output_text.delta") => {
                if let Some(t) = v.get("delta").and_then(Value::as_str) {
                    self.said.text.push_str(t);
                }
            }
            Some("response.completed") => {
                if let Some(n) = v
                    .pointer("/response/usage/output_tokens")
                    .and_then(Value::as_u64)
                {
                    self.said.completion_tokens = n;
                }
            }
            _ => {}
        }
        let n = usage(&v);
        if n > 0 {
            self.said.completion_tokens = n;
        }
    }

    /// What was said so far.
    pub(super) fn said(&self) -> Said {
        self.said.clone()
    }
}

/// Passes a plain JSON answer through as it arrives, and hands its completion tokens to
/// `done` once its end has gone by. A one-frame answer (the usual) is read in place; a
/// longer one is gathered (up to 1 MiB, beyond which its tokens count as 0).
pub(super) struct Counted<B, F> {
    inner: B,
    gathered: Vec<u8>,
    done: Option<F>,
}

const GATHER_LIMIT: usize = 1 << 20;

impl<B, F: FnOnce(u64)> Counted<B, F> {
    /// Counts `inner`'s tokens into `done`.
    pub(super) fn new(inner: B, done: F) -> Counted<B, F> {
        Counted {
            inner,
            gathered: Vec::new(),
            done: Some(done),
        }
    }

    fn finish(&mut self, last: &[u8]) {
        if let Some(done) = self.done.take() {
            let tokens = if self.gathered.is_empty() {
                completion_tokens(last)
            } else if self.gathered.len() + last.len() <= GATHER_LIMIT {
                self.gathered.extend_from_slice(last);
                completion_tokens(&self.gathered)
            } else {
                0
            };
            done(tokens);
        }
    }
}

impl<B, F> hyper::body::Body for Counted<B, F>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    F: FnOnce(u64) + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.inner.is_end_stream() {
                        this.finish(data);
                    } else if this.gathered.len() + data.len() <= GATHER_LIMIT {
                        this.gathered.extend_from_slice(data);
                    }
                }
            }
            Poll::Ready(None) => this.finish(&[]),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Forwards a stream of frames untouched while reading the reply out of it; when the
/// stream ends (or the client goes away) the reply is sent to `done`.
pub(super) struct Tee<S> {
    inner: S,
    text: SseText,
    done: Option<oneshot::Sender<Said>>,
}

impl<S> Tee<S> {
    /// Tees `inner`.
    pub(super) fn new(inner: S, done: oneshot::Sender<Said>) -> Tee<S> {
        Tee {
            inner,
            text: SseText::default(),
            done: Some(done),
        }
    }

    fn finish(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(self.text.said());
        }
    }
}

impl<S, E> Stream for Tee<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.text.feed(&b);
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl<S> Drop for Tee<S> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// An answer's `"model": "…"` values replaced by the alias the app asked for, line by
/// line (an SSE event's data and a JSON document's `model` each sit on one line), so a
/// stream passes through with at most one partial line held.
pub(super) struct RenameModel<S> {
    inner: S,
    alias: Arc<str>,
    carry: Vec<u8>,
    ended: bool,
}

impl<S> RenameModel<S> {
    pub(super) fn new(inner: S, alias: Arc<str>) -> RenameModel<S> {
        RenameModel {
            inner,
            alias,
            carry: Vec::new(),
            ended: false,
        }
    }

    /// `lines` with every `"model": "<value>"` given the alias.
    fn rename(&self, lines: &[u8]) -> Bytes {
        const KEY: &[u8] = b"\"model\"";
        let mut out = Vec::with_capacity(lines.len() + 16);
        let mut rest = lines;
        while let Some(at) = memchr::memmem::find(rest, KEY) {
            let after = &rest[at + KEY.len()..];
            let value = skip_ws(after)
                .strip_prefix(b":")
                .map(skip_ws)
                .and_then(|v| v.strip_prefix(b"\""))
                .and_then(|v| memchr::memchr(b'"', v).map(|end| (v, end)));
            match value {
                Some((v, end)) => {
                    out.extend_from_slice(&rest[..at]);
                    out.extend_from_slice(b"\"model\":\"");
                    out.extend_from_slice(self.alias.as_bytes());
                    out.push(b'"');
                    rest = &v[end + 1..];
                }
                None => {
                    out.extend_from_slice(&rest[..at + KEY.len()]);
                    rest = after;
                }
            }
        }
        out.extend_from_slice(rest);
        Bytes::from(out)
    }
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    &b[n..]
}

impl<S, E> Stream for RenameModel<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.carry.extend_from_slice(&chunk);
                    let Some(last) = memchr::memrchr(b'\n', &self.carry) else {
                        continue;
                    };
                    let lines: Vec<u8> = self.carry.drain(..=last).collect();
                    return Poll::Ready(Some(Ok(self.rename(&lines))));
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    if self.carry.is_empty() {
                        return Poll::Ready(None);
                    }
                    let rest = std::mem::take(&mut self.carry);
                    return Poll::Ready(Some(Ok(self.rename(&rest))));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_each_api() {
        let mut s = SseText::default();
        s.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"del");
        s.feed(b"ta\":{\"content\":\"lo\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
        assert_eq!(
            s.said(),
            Said {
                text: "Hello".into(),
                completion_tokens: 2
            }
        );
        let mut a = SseText::default();
        a.feed(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n");
        a.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n");
        assert_eq!(
            a.said(),
            Said {
                text: "Hi".into(),
                completion_tokens: 7
            }
        );
        let said = from_json(br#"{"content":[{"type":"text","text":"A"},{"type":"text","text":"B"}],"usage":{"output_tokens":3}}"#);
        assert_eq!(
            said,
            Said {
                text: "AB".into(),
                completion_tokens: 3
            }
        );
        let said = from_json(br#"{"output":[{"content":[{"type":"output_text","text":"R"}]}],"usage":{"output_tokens":1}}"#);
        assert_eq!(said.text, "R");
    }

    #[test]
    fn completion_tokens_come_from_the_top_level_usage_only() {
        // A tool call whose arguments hold the same keys, before the real usage.
        let tool = br#"{"content":[{"type":"tool_use","id":"t","name":"f","input":{"usage":{"output_tokens":900},"output_tokens":901}}],"usage":{"input_tokens":3,"output_tokens":12}}"#;
        assert_eq!(completion_tokens(tool), 12);
        let chat = br#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":"{\"completion_tokens\":5}"}}]}}],"usage":{"completion_tokens":4}}"#;
        assert_eq!(completion_tokens(chat), 4);
        assert_eq!(completion_tokens(b"not json"), 0);
    }

    #[test]
    fn completion_tokens_reads_the_usage_key_only() {
        // OpenAI: `completion_tokens_details` and quoted text mentioning the key do not count.
        let chat = br#"{"choices":[{"message":{"content":"say \"completion_tokens\": 99"}}],"usage":{"prompt_tokens":7,"completion_tokens_details":{"reasoning_tokens":5}, "completion_tokens" : 26}}"#;
        assert_eq!(completion_tokens(chat), 26);
        assert_eq!(completion_tokens(chat), from_json(chat).completion_tokens);
        // Anthropic and Responses.
        assert_eq!(
            completion_tokens(br#"{"usage":{"input_tokens":3,"output_tokens":12}}"#),
            12
        );
        assert_eq!(
            completion_tokens(br#"{"usage":{"output_tokens_details":{"x":1},"output_tokens":4}}"#),
            4
        );
        // Nothing reported, not JSON, or not a number: 0.
        assert_eq!(completion_tokens(br#"{"choices":[]}"#), 0);
        assert_eq!(completion_tokens(b"upstream exploded"), 0);
        assert_eq!(
            completion_tokens(br#"{"usage":{"completion_tokens":null}}"#),
            0
        );
        assert_eq!(completion_tokens(br#"{"usage":{"completion_tokens":"#), 0);
    }

    #[tokio::test]
    async fn counted_bodies_pass_through_and_count_once() {
        use http_body_util::{BodyExt, Full, StreamBody};
        use hyper::body::Frame;
        use std::sync::{Arc, Mutex};
        let answer = br#"{"choices":[],"usage":{"completion_tokens":42}}"#;
        let seen = Arc::new(Mutex::new(Vec::new()));
        // One frame, read in place.
        let s = seen.clone();
        let body = Counted::new(Full::new(Bytes::from_static(answer)), move |n| {
            s.lock().expect("lock").push(n)
        });
        let out = body.collect().await.expect("body").to_bytes();
        assert_eq!(&out[..], &answer[..]);
        // Three frames, the key split across two of them.
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
            [&answer[..20], &answer[20..30], &answer[30..]]
                .iter()
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
        let s = seen.clone();
        let body = Counted::new(StreamBody::new(futures::stream::iter(frames)), move |n| {
            s.lock().expect("lock").push(n)
        });
        let out = body.collect().await.expect("body").to_bytes();
        assert_eq!(&out[..], &answer[..]);
        assert_eq!(*seen.lock().expect("lock"), vec![42, 42]);
    }

    #[tokio::test]
    async fn an_alias_replaces_the_model_however_the_chunks_fall() {
        use futures::StreamExt;
        let answer: &[u8] = b"data: {\"model\": \"claude-haiku-4-5-20251001\",\"x\":1}\n\ndata: {\"model\":\"claude-haiku-4-5\"}\n\n{\"content\":\"a \\\"model\\\" word\"}";
        let want: &[u8] = b"data: {\"model\":\"fast\",\"x\":1}\n\ndata: {\"model\":\"fast\"}\n\n{\"content\":\"a \\\"model\\\" word\"}";
        for size in [1, 3, 7, 16, answer.len()] {
            let chunks: Vec<Result<Bytes, std::convert::Infallible>> = answer
                .chunks(size)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let renamed = RenameModel::new(futures::stream::iter(chunks), Arc::from("fast"));
            let out: Vec<u8> = renamed.map(|c| c.expect("chunk").to_vec()).concat().await;
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(want),
                "chunks of {size}"
            );
        }
    }
}
