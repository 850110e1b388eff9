//! Two tiny commands for inside the built-in image, dispatched before anything else starts:
//!
//! - `stack __gate CMD…` holds a prestarted container until the supervisor opens it: it
//!   reads one line from stdin (attached by the supervisor) and then becomes `stack CMD…`
//!   (exec, same pid). End of input without a line means "not needed": it exits 75. A
//!   dependent built-in's container is created and started this way while its
//!   dependencies come up, so its own (slow) container start is off the critical path.
//! - `stack __probe URL` is an HTTP GET that exits 0 on a 2xx answer (`tcp://HOST:PORT`: a
//!   connection): a HEALTHCHECK for images that have no shell or curl, such as the built-in
//!   one. `--wait` tries every second until it succeeds (an exported init container).

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::time::Duration;

/// The first argument that selects the gate.
pub(crate) const GATE: &str = "__gate";
/// The first argument that selects the probe.
pub(crate) const PROBE: &str = "__probe";
/// The gate's exit code when it closes without opening (EX_TEMPFAIL).
pub(crate) const GATE_CLOSED: i32 = 75;
/// What the supervisor writes to open the gate.
pub(crate) const OPEN: &[u8] = b"open\n";

/// Waits for the line on stdin, then executes `stack ARGS…`; returns only on failure.
pub(crate) fn gate(args: &[OsString]) -> i32 {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 && line.as_bytes() == OPEN => {}
        // Closed (the supervisor went away or did not need us) or anything else: stand down,
        // with a code that cannot pass for the service's own clean exit.
        _ => return GATE_CLOSED,
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| "/stack".into());
    let err = std::process::Command::new(exe).args(args).exec();
    eprintln!("stack: cannot start the service: {err}");
    126
}

/// `GET url` (or, for `tcp://HOST:PORT`, a connection); 0 on a 2xx answer (or a
/// connection), 1 otherwise (with the reason on stderr). With `--wait`, tries every second
/// until it succeeds: an exported stack's init container waiting for a dependency.
pub(crate) fn probe(args: &[OsString]) -> i32 {
    let wait = args.iter().any(|a| a == "--wait");
    let Some(url) = args
        .iter()
        .filter(|a| *a != "--wait")
        .find_map(|a| a.to_str())
    else {
        eprintln!("usage: stack __probe [--wait] http://HOST:PORT/PATH | tcp://HOST:PORT");
        return 2;
    };
    loop {
        let outcome = match url.strip_prefix("tcp://") {
            Some(authority) => connect(authority, Duration::from_secs(2)).map(|_| 200),
            None => get(url, Duration::from_secs(2)),
        };
        let failure = match outcome {
            Ok(status) if (200..300).contains(&status) => return 0,
            Ok(status) => format!("{url}: HTTP {status}"),
            Err(e) => format!("{url}: {e}"),
        };
        eprintln!("{failure}");
        if !wait {
            return 1;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A TCP connection to `authority` (`HOST:PORT`).
fn connect(authority: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let addr = authority.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the host has no address")
    })?;
    TcpStream::connect_timeout(&addr, timeout)
}

/// A minimal HTTP/1.0 GET returning the status code.
fn get(url: &str, timeout: Duration) -> std::io::Result<u16> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = connect(authority, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match stream.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("not an HTTP answer"))
}
