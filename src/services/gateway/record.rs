//! `llm: record`: every model exchange written to the cassette folder (see
//! [`crate::services::cassette`]) as it passes — the request after aliases and context
//! enrichment in the caller's API, the answer as the caller gets it, a stream frame by
//! frame with its time offsets. The answer is passed on untouched and unheld; once it has
//! ended, the recording goes to a writer thread. A request asked again in the same run is
//! not recorded again: its first answer is the one kept (a later `record` run records it
//! anew), so a loop or a load test costs one file. Headers are never written, so neither
//! are the keys they carry.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Mutex, mpsc};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use crate::services::cassette::{self, Cassette, Frame, Recorded};

/// Answers larger than this are passed on but not recorded.
const LIMIT: usize = 32 << 20;

/// Where recordings go: the writer thread.
#[derive(Debug)]
pub(super) struct Recorder {
    tx: Option<mpsc::Sender<Cassette>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// The exchanges recorded by this process, by route and fingerprint.
    seen: Mutex<HashSet<(&'static str, String)>>,
}

/// An exchange being recorded: what is known before the answer.
#[derive(Debug)]
pub(super) struct Pending {
    tx: mpsc::Sender<Cassette>,
    route: &'static str,
    request: Value,
    started: Instant,
}

impl Recorder {
    /// Records into `dir`.
    pub(super) fn new(dir: PathBuf) -> Recorder {
        let (tx, rx) = mpsc::channel::<Cassette>();
        let writer = std::thread::Builder::new()
            .name("stack-recorder".into())
            .spawn(move || write_all(&dir, &rx))
            .map_err(|err| tracing::error!(%err, "cannot start the recorder: nothing is recorded"))
            .ok();
        Recorder {
            tx: writer.is_some().then_some(tx),
            writer,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// Starts recording the exchange of `body` on `route`, sent at `started`; none when
    /// this run recorded it already (or the body is not JSON: it was refused before this
    /// point anyway).
    pub(super) fn begin(
        &self,
        route: &'static str,
        body: &[u8],
        started: Instant,
    ) -> Option<Box<Pending>> {
        let tx = self.tx.clone()?;
        let request = cassette::canonical(body).ok()?;
        let key = (route, cassette::fingerprint(route, &request));
        if !self.seen.lock().map(|mut s| s.insert(key)).unwrap_or(false) {
            return None;
        }
        // Boxed: it rides in every request's future, which stays small.
        Some(Box::new(Pending {
            tx,
            route,
            request,
            started,
        }))
    }
}

/// An answer body passed through while it is recorded.
pub(super) struct Recording<B> {
    inner: B,
    pending: Option<Box<Pending>>,
    status: u16,
    content_type: String,
    /// Stream bytes not yet ending a frame.
    partial: Vec<u8>,
    frames: Vec<Frame>,
    body: Vec<u8>,
    size: usize,
}

impl<B> Recording<B> {
    /// Records `inner`, an answer with `status` and `content_type`.
    pub(super) fn new(
        inner: B,
        pending: Box<Pending>,
        status: u16,
        content_type: &str,
    ) -> Recording<B> {
        Recording {
            inner,
            pending: Some(pending),
            status,
            content_type: content_type.to_string(),
            partial: Vec::new(),
            frames: Vec::new(),
            body: Vec::new(),
            size: 0,
        }
    }

    fn streamed(&self) -> bool {
        self.content_type.starts_with("text/event-stream")
    }

    fn take(&mut self, data: &[u8]) {
        self.size += data.len();
        if self.size > LIMIT {
            if let Some(p) = self.pending.take() {
                tracing::warn!(route = p.route, "answer over 32 MiB: not recorded");
            }
            return;
        }
        let Some(p) = &self.pending else {
            return;
        };
        if !self.streamed() {
            self.body.extend_from_slice(data);
            return;
        }
        self.partial.extend_from_slice(data);
        let at_ms = p.started.elapsed().as_millis() as u64;
        while let Some(end) = find_blank_line(&self.partial) {
            let frame: Vec<u8> = self.partial.drain(..end.1).collect();
            let text = String::from_utf8_lossy(&frame[..end.0]).into_owned();
            if !text.trim().is_empty() {
                self.frames.push(Frame { at_ms, data: text });
            }
        }
    }

    fn finish(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let latency_ms = p.started.elapsed().as_millis() as u64;
        let streamed = self.streamed();
        if streamed && !self.partial.iter().all(u8::is_ascii_whitespace) {
            let text = String::from_utf8_lossy(&self.partial)
                .trim_end()
                .to_string();
            self.frames.push(Frame {
                at_ms: latency_ms,
                data: text,
            });
        }
        let p = *p;
        let cassette = Cassette {
            request: p.request,
            response: Recorded {
                body: (!streamed).then(|| String::from_utf8_lossy(&self.body).into_owned()),
                content_type: std::mem::take(&mut self.content_type),
                frames: std::mem::take(&mut self.frames),
                latency_ms: if streamed { 0 } else { latency_ms },
                status: self.status,
            },
            route: p.route.to_string(),
        };
        let _ = p.tx.send(cassette);
    }
}

impl Drop for Recorder {
    /// Lets the writer finish what it was given, so the last answers are not lost.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread.
fn write_all(dir: &Path, rx: &mpsc::Receiver<Cassette>) {
    for c in rx {
        if let Err(err) = cassette::write(dir, &c) {
            tracing::error!(%err, dir = %dir.display(), "cannot write the recording");
        }
    }
}

/// The end of the first frame in `buf`: (where its text ends, where the next begins).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl<B> hyper::body::Body for Recording<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
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
                    this.take(data);
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(None) => this.finish(),
            // A broken answer is not recorded.
            Poll::Ready(Some(Err(_))) => this.pending = None,
            Poll::Pending => {}
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
