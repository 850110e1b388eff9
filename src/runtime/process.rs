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
use super::{Exit, Identity, Service};
use crate::config::StopSignal;
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

fn exit_of(s: ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    Exit {
        code: s.code(),
        signal: s.signal(),
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

impl Service for RunningProcess {
    fn identity(&self) -> Identity {
        Identity {
            pid: Some(self.pid),
            start_time: self.start_time,
            container_id: None,
        }
    }

    /// Waits for the leader to exit, kills what is left of its group, and drains its
    /// output (cancel-safe: may be raced against other events).
    async fn wait(&mut self) -> Exit {
        let status = self.child.wait().await;
        self.reap_group().await;
        status.map_or(Exit::UNKNOWN, exit_of)
    }

    /// Sends `signal` to the whole group.
    async fn signal(&mut self, signal: StopSignal) {
        self.signal_group(signal.0);
    }

    async fn stopped(&mut self) -> Exit {
        self.wait().await
    }

    /// SIGKILLs the group at once.
    async fn kill(&mut self) -> Exit {
        self.signal_group(libc::SIGKILL);
        self.wait().await
    }
}

impl RunningProcess {
    fn signal_group(&self, signal: i32) {
        if let Err(err) = unix::signal_group(self.pid, signal) {
            tracing::debug!(pid = self.pid, %err, "cannot signal process group");
        }
    }

    /// After the leader is gone: SIGKILL the rest of the group, then let the capture
    /// tasks drain (bounded: a process that left the group may hold the pipes open).
    async fn reap_group(&mut self) {
        if !procfs::group_members(self.pid).is_empty() {
            self.signal_group(libc::SIGKILL);
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
