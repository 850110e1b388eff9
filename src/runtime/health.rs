//! Health probes: http (2xx or a given status), tcp, exec (on the host, or inside the
//! container), log-line regex; and a container image's own HEALTHCHECK. When to probe is
//! the supervisor's decision; this module only runs one.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use super::container::ContainerHandle;
use super::process::Launcher;
use super::{ContainerHealth, Prober};
use crate::plan::ResolvedProbe;

/// What a probe needs besides its target.
#[derive(Debug, Clone)]
pub(crate) struct ProbeContext {
    /// The HTTP client (no pooling: every probe is a fresh connection).
    pub http: reqwest::Client,
    /// Environment for exec probes.
    pub env: Vec<(String, String)>,
    /// Working folder for exec probes.
    pub cwd: PathBuf,
    /// For log probes: turns true when a line matched.
    pub log_matched: Option<watch::Receiver<bool>>,
    /// For containers: exec probes run inside this container.
    pub container: Option<ContainerHandle>,
    /// Runs exec probes on this machine, each its own process group.
    pub launcher: Launcher,
}

impl Prober for ProbeContext {
    async fn probe(&self, probe: &ResolvedProbe, timeout: Duration) -> Result<(), String> {
        self::probe(probe, timeout, self).await
    }

    async fn image_health(&self) -> Option<ContainerHealth> {
        self.container.as_ref()?.health().await
    }
}

/// A client suited to probes: no proxy, no pooled connections.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default()
}

/// Runs one probe; `Err` says why it failed.
pub(crate) async fn probe(
    p: &ResolvedProbe,
    timeout: Duration,
    cx: &ProbeContext,
) -> Result<(), String> {
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
                .map_err(|e| crate::causes::with_causes(&e))?;
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
        ResolvedProbe::Exec { argv } if cx.container.is_some() => {
            let Some(container) = &cx.container else {
                return Err("no container".into());
            };
            match container.exec(argv, Duration::from_secs(60)).await {
                Ok(0) => Ok(()),
                Ok(code) => Err(format!(
                    "`{}` exited with code {code} in the container",
                    argv.join(" ")
                )),
                Err(e) => Err(format!(
                    "cannot run `{}` in the container: {e}",
                    argv.join(" ")
                )),
            }
        }
        ResolvedProbe::Exec { argv } => {
            let Some(program) = argv.first() else {
                return Err("empty command".into());
            };
            let (status, stderr) = cx
                .launcher
                .output(argv, &cx.env, &cx.cwd)
                .await
                .map_err(|e| format!("cannot run `{program}`: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                let err = String::from_utf8_lossy(&stderr);
                let last = err.lines().last().unwrap_or_default();
                Err(format!(
                    "`{}` exited with {status}{}",
                    argv.join(" "),
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
