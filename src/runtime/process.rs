//! The process runtime: start a service as a process group with its environment, capture
//! its output into its log file, and stop it (stop signal to the group, SIGKILL after the
//! timeout). When the group leader exits, whatever is left of its group is killed, so no
//! grandchild outlives its service.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Child;
use tokio::task::JoinSet;

use super::unix::{self, Spawner};
use crate::logs::{self, LogFile, Stream};
use crate::procfs;

/// A running service process.
#[derive(Debug)]
pub(crate) struct RunningProcess {
    child: Child,
    /// The group leader's pid (= the group id).
    pub pid: u32,
    /// Its start time (clock ticks since boot).
    pub start_time: Option<u64>,
    capture: JoinSet<()>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// The signal, if one killed it.
    pub signal: Option<i32>,
}

impl Exit {
    fn from_status(s: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        Exit {
            code: s.code(),
            signal: s.signal(),
        }
    }

    /// Exit code 0.
    pub(crate) fn success(self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {}", crate::config::StopSignal(s).name()),
            (None, None) => f.write_str("an unknown status"),
        }
    }
}

/// Starts `argv` in `cwd` with `env` added to the inherited environment, under the
/// process-group shim (`shim` is the `stack` executable; see [`super::shim`]).
pub(crate) async fn start(
    spawner: &Spawner,
    shim: &Path,
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    log: &LogFile,
) -> std::io::Result<RunningProcess> {
    if argv.is_empty() {
        return Err(std::io::Error::other("empty command"));
    }
    if !cwd.is_dir() {
        return Err(std::io::Error::other(format!(
            "folder `{}` does not exist",
            cwd.display()
        )));
    }
    let mut cmd = tokio::process::Command::new(shim);
    cmd.arg(super::shim::ARG)
        .args(argv)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(super::shim::PARENT_ENV, std::process::id().to_string())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unix::configure(&mut cmd);
    let mut child = spawner.spawn(cmd).await?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process exited at once"))?;
    let mut capture = JoinSet::new();
    if let Some(out) = child.stdout.take() {
        capture.spawn(logs::capture(out, Stream::Out, log.clone()));
    }
    if let Some(err) = child.stderr.take() {
        capture.spawn(logs::capture(err, Stream::Err, log.clone()));
    }
    Ok(RunningProcess {
        child,
        pid,
        start_time: procfs::start_time(pid),
        capture,
    })
}

impl RunningProcess {
    /// Waits for the leader to exit, kills what is left of its group, and drains its
    /// output (cancel-safe: may be raced against other events).
    pub(crate) async fn wait(&mut self) -> Exit {
        let status = self.child.wait().await;
        self.reap_group().await;
        match status {
            Ok(s) => Exit::from_status(s),
            Err(_) => Exit {
                code: None,
                signal: None,
            },
        }
    }

    /// Sends `signal` to the whole group.
    pub(crate) fn signal(&self, signal: i32) {
        if let Err(err) = unix::signal_group(self.pid, signal) {
            tracing::debug!(pid = self.pid, %err, "cannot signal process group");
        }
    }

    /// Stops the group: `signal`, then SIGKILL after `timeout`.
    pub(crate) async fn stop(&mut self, signal: i32, timeout: Duration) -> Exit {
        self.signal(signal);
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => {
                self.reap_group().await;
                status.map_or(
                    Exit {
                        code: None,
                        signal: None,
                    },
                    Exit::from_status,
                )
            }
            Err(_) => {
                tracing::info!(pid = self.pid, "stop timeout passed; sending SIGKILL");
                self.kill().await
            }
        }
    }

    /// SIGKILLs the group at once.
    pub(crate) async fn kill(&mut self) -> Exit {
        self.signal(libc::SIGKILL);
        self.wait().await
    }

    /// After the leader is gone: SIGKILL the rest of the group, then let the capture
    /// tasks drain (bounded: a process that left the group may hold the pipes open).
    async fn reap_group(&mut self) {
        if !procfs::group_members(self.pid).is_empty() {
            self.signal(libc::SIGKILL);
        }
        let drain = async { while self.capture.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(2), drain)
            .await
            .is_err()
        {
            self.capture.abort_all();
        }
    }
}
