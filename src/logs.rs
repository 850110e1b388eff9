//! Service logs: every stdout/stderr line, with its timestamp and stream, appended to
//! `.stack/logs/<service>.log`. Capture never waits for a reader: the screen follows the
//! files at its own pace ([`Follower`]), so a slow terminal slows only the display.
//!
//! A line in the file is `<RFC 3339 UTC, µs> <stream> <text>`, where stream is `out`,
//! `err` or `stack` (the supervisor's own notes: restarts and their reasons).

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, watch};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
    /// A note from `stack` itself.
    Stack,
}

impl Stream {
    /// The tag written in the file.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
            Stream::Stack => "stack",
        }
    }

    fn from_tag(tag: &str) -> Option<Stream> {
        match tag {
            "out" => Some(Stream::Out),
            "err" => Some(Stream::Err),
            "stack" => Some(Stream::Stack),
            _ => None,
        }
    }
}

/// How a start is noted in the file (`started (pid 42)`).
const STARTED_NOTE: &str = "started";

/// Lines longer than this are split.
const MAX_LINE: usize = 64 * 1024;

/// The log file of one service, shared by its capture tasks and its supervisor actor.
#[derive(Debug, Clone)]
pub(crate) struct LogFile {
    inner: Arc<Mutex<BufWriter<File>>>,
    path: PathBuf,
    /// Woken after every write batch (shared by all services: the display waits on it).
    notify: Arc<Notify>,
    /// Lines matching the log health pattern flip this to true.
    matched: Option<(Arc<regex::Regex>, watch::Sender<bool>)>,
}

impl LogFile {
    /// Creates the log file at `path` for a new run; the previous run's is kept as
    /// `<path>.1`.
    pub(crate) fn create(path: &Path, notify: Arc<Notify>) -> io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            crate::state::private_dir(dir)?;
        }
        if path.exists() {
            let mut previous = path.as_os_str().to_owned();
            previous.push(".1");
            std::fs::rename(path, previous)?;
        }
        // A service's output may print its tokens: the log is its owner's only.
        let file = crate::state::open_private(path, false)?;
        Ok(LogFile {
            inner: Arc::new(Mutex::new(BufWriter::with_capacity(256 * 1024, file))),
            path: path.to_path_buf(),
            notify,
            matched: None,
        })
    }

    /// Watches for a line matching `pattern`; the receiver turns true at the first match.
    pub(crate) fn watch_for(&mut self, pattern: regex::Regex) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        self.matched = Some((Arc::new(pattern), tx));
        rx
    }

    /// Resets the log-pattern watch (a restarted service must match again).
    pub(crate) fn reset_match(&self) {
        if let Some((_, tx)) = &self.matched {
            tx.send_replace(false);
        }
    }

    /// Notes that the service started, with its pid or container (`started (pid 42)`).
    pub(crate) fn note_started(&self, what: Option<&str>) {
        match what {
            Some(what) => self.note(&format!("{STARTED_NOTE} ({what})")),
            None => self.note(STARTED_NOTE),
        }
    }

    /// Appends one note from `stack` itself.
    pub(crate) fn note(&self, text: &str) {
        self.write_lines(Stream::Stack, &[text.as_bytes()]);
    }

    /// Writes complete lines (without their newline), all stamped with the same time.
    fn write_lines(&self, stream: Stream, lines: &[&[u8]]) {
        if lines.is_empty() {
            return;
        }
        let stamp = timestamp_now();
        if let Some((re, tx)) = &self.matched
            && !*tx.borrow()
        {
            let hit = lines
                .iter()
                .any(|l| re.is_match(&String::from_utf8_lossy(l)));
            if hit {
                tx.send_replace(true);
            }
        }
        let Ok(mut w) = self.inner.lock() else {
            return;
        };
        let mut result = Ok(());
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            result = result
                .and_then(|()| w.write_all(stamp.as_bytes()))
                .and_then(|()| w.write_all(b" "))
                .and_then(|()| w.write_all(stream.tag().as_bytes()))
                .and_then(|()| w.write_all(b" "))
                .and_then(|()| w.write_all(line))
                .and_then(|()| w.write_all(b"\n"));
        }
        if let Err(err) = result.and_then(|()| w.flush()) {
            tracing::warn!(path = %self.path.display(), %err, "cannot write log");
        }
        drop(w);
        self.notify.notify_one();
    }
}

/// Now, as written in log files: `2026-11-24T10:00:00.123456Z`.
pub(crate) fn timestamp_now() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Cuts a byte stream into lines for a log file: whole lines as they complete, endless
/// ones cut at [`MAX_LINE`] so memory stays bounded.
#[derive(Debug, Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// Adds bytes and writes every line they complete.
    fn feed(&mut self, bytes: &[u8], stream: Stream, log: &LogFile) {
        self.pending.extend_from_slice(bytes);
        let mut lines: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        while let Some(i) = memchr(&self.pending[start..]) {
            lines.push(&self.pending[start..start + i]);
            start += i + 1;
        }
        while self.pending.len() - start >= MAX_LINE {
            lines.push(&self.pending[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        log.write_lines(stream, &lines);
        self.pending.drain(..start);
    }

    /// Writes what is left (a line without its newline yet) as a line of its own.
    fn flush(&mut self, stream: Stream, log: &LogFile) {
        if !self.pending.is_empty() {
            log.write_lines(stream, &[&self.pending]);
            self.pending.clear();
        }
    }
}

/// How long a partial line (a prompt, a progress message without its newline) waits for
/// the rest before it is shown as it is.
const PARTIAL_LINE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Copies `reader` (a child's stdout or stderr) into `log`, line by line, until EOF.
pub(crate) async fn capture<R: AsyncRead + Unpin>(mut reader: R, stream: Stream, log: LogFile) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = Lines::default();
    loop {
        let read = reader.read(&mut buf);
        let read = if lines.pending.is_empty() {
            read.await
        } else {
            match tokio::time::timeout(PARTIAL_LINE_WAIT, read).await {
                Ok(r) => r,
                Err(_) => {
                    lines.flush(stream, &log);
                    continue;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.feed(&buf[..n], stream, &log),
        }
    }
    lines.flush(stream, &log);
}

/// Copies chunks of a container's output (already split by stream) into `log`.
pub(crate) async fn capture_chunks<S>(mut chunks: S, log: LogFile)
where
    S: futures::Stream<Item = (Stream, bytes::Bytes)> + Unpin,
{
    use futures::StreamExt;
    let mut out = Lines::default();
    let mut err = Lines::default();
    loop {
        let next = chunks.next();
        let next = if out.pending.is_empty() && err.pending.is_empty() {
            next.await
        } else {
            match tokio::time::timeout(PARTIAL_LINE_WAIT, next).await {
                Ok(n) => n,
                Err(_) => {
                    out.flush(Stream::Out, &log);
                    err.flush(Stream::Err, &log);
                    continue;
                }
            }
        };
        match next {
            Some((Stream::Err, bytes)) => err.feed(&bytes, Stream::Err, &log),
            Some((_, bytes)) => out.feed(&bytes, Stream::Out, &log),
            None => break,
        }
    }
    out.flush(Stream::Out, &log);
    err.flush(Stream::Err, &log);
}

/// Writes one line of `stream` (a build's output, say).
impl LogFile {
    /// Appends one line to `stream`.
    pub(crate) fn line(&self, stream: Stream, text: &str) {
        self.write_lines(stream, &[text.as_bytes()]);
    }
}

fn memchr(s: &[u8]) -> Option<usize> {
    s.iter().position(|b| *b == b'\n')
}

/// One parsed line of a log file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Line {
    /// The service.
    pub service: String,
    /// When it was read, as written (RFC 3339 UTC).
    pub time: String,
    /// Its stream.
    pub stream: Stream,
    /// The text.
    pub text: String,
}

impl Line {
    /// Whether it is `stack`'s note of a start, which the live display leaves out: the
    /// progress already says `running (pid N)`.
    pub(crate) fn is_start_note(&self) -> bool {
        self.stream == Stream::Stack
            && self
                .text
                .strip_prefix(STARTED_NOTE)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(" ("))
    }
}

/// Parses one line of a log file.
pub(crate) fn parse_line(service: &str, raw: &str) -> Option<Line> {
    let (time, rest) = raw.split_once(' ')?;
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Line {
        service: service.to_string(),
        time: time.to_string(),
        stream: Stream::from_tag(tag)?,
        text: text.to_string(),
    })
}

/// Reads a log file from a byte offset, one complete line at a time: the display's view
/// of a file others are still writing.
#[derive(Debug)]
pub(crate) struct Follower {
    /// The service.
    pub service: String,
    path: PathBuf,
    offset: u64,
}

impl Follower {
    /// Follows `path` from `offset`.
    pub(crate) fn new(service: &str, path: &Path, offset: u64) -> Follower {
        Follower {
            service: service.to_string(),
            path: path.to_path_buf(),
            offset,
        }
    }

    /// The complete lines written since the last call.
    pub(crate) fn read_new(&mut self) -> Vec<Line> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Truncated: a new run started.
            self.offset = 0;
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if file
            .take(len - self.offset)
            .read_to_end(&mut bytes)
            .is_err()
        {
            return Vec::new();
        }
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.offset += complete as u64;
        // A service may write any bytes: a line that is not UTF-8 is shown lossily (U+FFFD),
        // never the end of the log (the file keeps the bytes as they came).
        bytes[..complete]
            .split(|b| *b == b'\n')
            .filter_map(|l| parse_line(&self.service, &String::from_utf8_lossy(l)))
            .collect()
    }
}

/// The last `n` lines of a service's log file.
pub(crate) fn tail(service: &str, path: &Path, n: usize) -> Vec<Line> {
    let Ok(text) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .filter_map(|l| parse_line(service, l))
        .collect()
}

/// What [`newest`] found.
#[derive(Debug, Default)]
pub(crate) struct Newest {
    /// The lines, oldest first.
    pub lines: Vec<Line>,
    /// Whether it stopped before the start of the file (older lines may match too).
    pub more: bool,
}

/// The newest `n` complete lines of a log file that `keep` accepts, oldest first, read
/// backwards from the end in blocks: a long log costs what is asked for, not its length.
/// Reading stops at the first line `too_old` says is (lines are in time order).
pub(crate) fn newest(
    service: &str,
    path: &Path,
    n: usize,
    keep: impl Fn(&Line) -> bool,
    too_old: impl Fn(&Line) -> bool,
) -> Newest {
    const BLOCK: u64 = 64 * 1024;
    let mut found = Newest::default();
    let Ok(mut file) = File::open(path) else {
        return found;
    };
    let mut pos = file.metadata().map(|m| m.len()).unwrap_or(0);
    // Bytes from `pos` up to the lines already read: the start of a line, maybe cut.
    let mut rest: Vec<u8> = Vec::new();
    // Until a newline is seen, the bytes at the end are a line still being written.
    let mut at_end = true;
    while pos > 0 && found.lines.len() < n {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0; usize::try_from(pos - start).unwrap_or(0)];
        if file.seek(SeekFrom::Start(start)).is_err() || file.read_exact(&mut block).is_err() {
            break;
        }
        block.extend_from_slice(&rest);
        rest = block;
        pos = start;
        if at_end {
            match rest.iter().rposition(|b| *b == b'\n') {
                Some(i) => {
                    rest.truncate(i + 1);
                    at_end = false;
                }
                None => continue,
            }
        }
        // The bytes before the first newline may be the end of an older line's start.
        let cut = if pos == 0 {
            0
        } else {
            match memchr(&rest) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let complete = rest.split_off(cut);
        let body = complete.strip_suffix(b"\n").unwrap_or(&complete);
        for raw in body.rsplit(|b| *b == b'\n') {
            let Some(line) = parse_line(service, &String::from_utf8_lossy(raw)) else {
                continue;
            };
            if too_old(&line) {
                found.lines.reverse();
                return found;
            }
            if keep(&line) {
                if found.lines.len() == n {
                    found.more = true;
                    break;
                }
                found.lines.push(line);
            }
        }
    }
    found.more |= pos > 0 && found.lines.len() == n;
    found.lines.reverse();
    found
}

/// The log file of `service` under `state_dir`.
pub(crate) fn path(state_dir: &Path, service: &str) -> PathBuf {
    state_dir.join("logs").join(format!("{service}.log"))
}

/// The services that have a log file in `dir`, sorted.
pub(crate) fn services_in(dir: &Path) -> Vec<String> {
    let mut services: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".log")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    services.sort();
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_reads_backwards_across_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.log");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!(
                "2026-01-01T00:00:{:02}.{i:06}Z out line {i} {}\n",
                i / 1000,
                "x".repeat(i % 50)
            ));
        }
        text.push_str("2026-01-01T00:00:59.000000Z out a line still being writ");
        std::fs::write(&path, &text).expect("write");
        let all = |_: &Line| true;
        let never = |_: &Line| false;
        let got = newest("w", &path, 3, all, never);
        let texts: Vec<_> = got
            .lines
            .iter()
            .map(|l| l.text.split(' ').nth(1).unwrap_or_default().to_string())
            .collect();
        assert_eq!(texts, ["19997", "19998", "19999"]);
        assert!(got.more);
        let sevens = newest(
            "w",
            &path,
            5,
            |l| l.text.ends_with("7 ") || l.text.contains(" 7 "),
            never,
        );
        assert_eq!(sevens.lines.len(), 1, "only `line 7 ` matches");
        assert!(!sevens.more);
        let since = newest("w", &path, 100_000, all, |l| {
            l.time.as_str() < "2026-01-01T00:00:19"
        });
        assert_eq!(since.lines.len(), 1000);
        assert_eq!(since.lines[0].text.split(' ').nth(1), Some("19000"));
        let whole = newest("w", &path, 100_000, all, never);
        assert_eq!(whole.lines.len(), 20_000);
        assert!(!whole.more);
        assert!(
            newest("w", &dir.path().join("none"), 5, all, never)
                .lines
                .is_empty()
        );
    }

    #[tokio::test]
    async fn captures_every_line_with_stream_and_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/api.log");
        let log = LogFile::create(&path, Arc::new(Notify::new())).expect("create");
        let input: &[u8] = b"one\ntwo\r\nthree";
        capture(input, Stream::Err, log.clone()).await;
        log.note("restarting");
        let lines = tail("api", &path, 10);
        let texts: Vec<_> = lines.iter().map(|l| (l.stream, l.text.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (Stream::Err, "one"),
                (Stream::Err, "two"),
                (Stream::Err, "three"),
                (Stream::Stack, "restarting")
            ]
        );
        assert_eq!(lines[0].time.len(), "2026-11-24T10:00:00.123456Z".len());
        let mut f = Follower::new("api", &path, 0);
        assert_eq!(f.read_new().len(), 4);
        assert!(f.read_new().is_empty());
    }

    #[tokio::test]
    async fn splits_endless_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.log");
        let log = LogFile::create(&path, Arc::new(Notify::new())).expect("create");
        let input = vec![b'a'; MAX_LINE * 2 + 10];
        capture(&input[..], Stream::Out, log).await;
        let lines = tail("x", &path, 10);
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines.iter().map(|l| l.text.len()).sum::<usize>(),
            input.len()
        );
    }

    #[tokio::test]
    async fn odd_bytes_are_shown_lossily_and_the_log_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.log");
        let log = LogFile::create(&path, Arc::new(Notify::new())).expect("create");
        let input: &[u8] = b"before\nbad \xff byte\nafter\n";
        capture(input, Stream::Out, log).await;
        assert!(
            std::fs::read(&path)
                .expect("read")
                .windows(1)
                .any(|w| w == b"\xff")
        );
        let mut f = Follower::new("api", &path, 0);
        let texts: Vec<String> = f.read_new().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["before", "bad \u{fffd} byte", "after"]);
        let texts: Vec<String> = tail("api", &path, 5).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["before", "bad \u{fffd} byte", "after"]);
    }

    #[tokio::test]
    async fn a_partial_line_is_shown_after_a_moment_of_quiet() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.log");
        let log = LogFile::create(&path, Arc::new(Notify::new())).expect("create");
        let (mut writer, reader) = tokio::io::duplex(1024);
        let task = tokio::spawn(capture(reader, Stream::Out, log));
        writer.write_all(b"Password: ").await.expect("write");
        tokio::time::sleep(PARTIAL_LINE_WAIT * 3).await;
        let texts: Vec<String> = tail("api", &path, 5).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["Password: "], "held back until exit");
        writer.write_all(b"ok\n").await.expect("write");
        drop(writer);
        task.await.expect("capture");
        let texts: Vec<String> = tail("api", &path, 5).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["Password: ", "ok"]);
    }

    #[test]
    fn a_new_run_keeps_the_previous_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.log");
        let first = LogFile::create(&path, Arc::new(Notify::new())).expect("create");
        first.note("first run");
        let second = LogFile::create(&path, Arc::new(Notify::new())).expect("create");
        second.note("second run");
        let texts =
            |p: &Path| -> Vec<String> { tail("api", p, 5).into_iter().map(|l| l.text).collect() };
        assert_eq!(texts(&path), ["second run"]);
        assert_eq!(texts(&dir.path().join("api.log.1")), ["first run"]);
    }
}
