//! Two tiny commands for inside the built-in image, dispatched before anything else starts:
//!
//! - `stack __gate CMD…` holds a prestarted container until the supervisor opens it: it
//!   reads one line from stdin (attached by the supervisor) and then becomes `stack CMD…`
//!   (exec, same pid). End of input without a line means "not needed": it exits 75. A
//!   dependent built-in's container is created and started this way while its
//!   dependencies come up, so its own (slow) container start is off the critical path.
//! - `stack __probe URL` is an HTTP GET that exits 0 on a 2xx answer: a HEALTHCHECK for
//!   images that have no shell or curl, such as the built-in one.

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

/// `GET url`; 0 on 2xx, 1 otherwise (with the reason on stderr).
pub(crate) fn probe(args: &[OsString]) -> i32 {
    let Some(url) = args.first().and_then(|a| a.to_str()) else {
        eprintln!("usage: stack __probe http://HOST:PORT/PATH");
        return 2;
    };
    match get(url, Duration::from_secs(2)) {
        Ok(status) if (200..300).contains(&status) => 0,
        Ok(status) => {
            eprintln!("{url}: HTTP {status}");
            1
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            1
        }
    }
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
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid("the host has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
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
