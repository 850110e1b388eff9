//! Health probes: http (2xx or a given status), tcp, exec, log-line regex. Probes start
//! fast (a few ms apart) and back off to the configured interval, so a fast service is
//! seen healthy within milliseconds of listening.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::watch;

use crate::plan::ResolvedProbe;

/// The first gap between probes; doubled after each failure up to the interval.
pub const FIRST_DELAY: Duration = Duration::from_millis(2);

/// The delay before probe number `attempt` (0-based) while starting.
pub fn backoff(attempt: u32, interval: Duration) -> Duration {
    FIRST_DELAY
        .saturating_mul(1u32 << attempt.min(16))
        .min(interval)
}

/// What a probe needs besides its target.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    /// The HTTP client (no pooling: every probe is a fresh connection).
    pub http: reqwest::Client,
    /// Environment for exec probes.
    pub env: Vec<(String, String)>,
    /// Working folder for exec probes.
    pub cwd: PathBuf,
    /// For log probes: turns true when a line matched.
    pub log_matched: Option<watch::Receiver<bool>>,
}

/// A client suited to probes: no proxy, no pooled connections.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default()
}

/// Runs one probe; `Err` says why it failed.
pub async fn probe(p: &ResolvedProbe, timeout: Duration, cx: &ProbeContext) -> Result<(), String> {
    match tokio::time::timeout(timeout, probe_inner(p, cx)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

async fn probe_inner(p: &ResolvedProbe, cx: &ProbeContext) -> Result<(), String> {
    match p {
        ResolvedProbe::Http { url, status } => {
            let resp = cx
                .http
                .get(url)
                .send()
                .await
                .map_err(|e| describe_reqwest(&e))?;
            let got = resp.status().as_u16();
            let ok = match status {
                Some(want) => got == *want,
                None => (200..300).contains(&got),
            };
            if ok {
                Ok(())
            } else {
                let want = status.map_or("2xx".to_string(), |s| s.to_string());
                Err(format!("GET {url} answered {got}, expected {want}"))
            }
        }
        ResolvedProbe::Tcp { port } => tokio::net::TcpStream::connect(("127.0.0.1", *port))
            .await
            .map(drop)
            .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}")),
        ResolvedProbe::Exec { argv } => {
            let Some((program, args)) = argv.split_first() else {
                return Err("empty command".into());
            };
            let out = tokio::process::Command::new(program)
                .args(args)
                .envs(cx.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&cx.cwd)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| format!("cannot run `{program}`: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                let last = err.lines().last().unwrap_or_default();
                Err(format!(
                    "`{}` exited with {}{}",
                    argv.join(" "),
                    out.status,
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(": {last}")
                    }
                ))
            }
        }
        ResolvedProbe::Log { pattern } => match &cx.log_matched {
            Some(rx) if *rx.borrow() => Ok(()),
            _ => Err(format!("no log line matched `{pattern}` yet")),
        },
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_fast_and_caps() {
        let i = Duration::from_millis(500);
        assert_eq!(backoff(0, i), Duration::from_millis(2));
        assert_eq!(backoff(3, i), Duration::from_millis(16));
        assert_eq!(backoff(30, i), i);
    }
}
