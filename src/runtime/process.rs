//! The process runtime: start a service as a process group with its environment, capture
//! its output into its log file, and stop it (stop signal to the group, SIGKILL after the
//! timeout). When the group leader exits, whatever is left of its group is killed, so no
//! grandchild outlives its service.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};
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

/// The environment variable every service process and probe carries (inherited by their
/// children): the project's state folder. `down` finds what a killed supervisor left by it
/// when the state file names nothing (see [`strays`]).
pub(crate) const MARKER_ENV: &str = "STACK_STATE_DIR";

/// Starts commands under the process-group shim (see [`super::shim`]), forked from the
/// spawner thread: each one is its own process group that dies with the supervisor.
#[derive(Debug, Clone)]
pub(crate) struct Launcher {
    spawner: Spawner,
    /// The `stack` executable.
    shim: PathBuf,
    /// The project's state folder (the marker's value).
    state_dir: PathBuf,
}

impl Launcher {
    /// A launcher for the project whose state folder is `state_dir`, inside the current
    /// tokio runtime.
    pub(crate) fn new(state_dir: &Path) -> std::io::Result<Launcher> {
        Ok(Launcher {
            spawner: Spawner::start()?,
            shim: std::env::current_exe()?,
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// `argv` under the shim, in `cwd`, with `env` added to the inherited environment and
    /// the project marker; standard input is empty.
    fn command(&self, argv: &[String], env: &[(String, String)], cwd: &Path) -> Command {
        let mut cmd = Command::new(&self.shim);
        cmd.arg(super::shim::ARG)
            .args(argv)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(MARKER_ENV, &self.state_dir)
            .env(super::shim::PARENT_ENV, std::process::id().to_string())
            .current_dir(cwd)
            .stdin(Stdio::null());
        unix::configure(&mut cmd);
        cmd
    }

    /// Runs `argv` to its end with nothing on standard output; its exit status and standard
    /// error. Dropped early (a probe's timeout), it kills the command's whole group.
    pub(crate) async fn output(
        &self,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
    ) -> std::io::Result<(ExitStatus, Vec<u8>)> {
        let mut cmd = self.command(argv, env, cwd);
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = self.spawner.spawn(cmd).await?;
        let _group = child.id().map(GroupGuard);
        let out = child.wait_with_output().await?;
        Ok((out.status, out.stderr))
    }
}

/// Kills what is left of a process group when dropped.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !procfs::group_members(self.0).is_empty() {
            let _ = unix::signal_group(self.0, libc::SIGKILL);
        }
    }
}

/// The process groups of the project whose state folder is `state_dir` that are still
/// running (found by [`MARKER_ENV`]), with no state needed.
pub(crate) fn strays(state_dir: &Path) -> Vec<u32> {
    let mut groups: Vec<u32> = procfs::with_env(MARKER_ENV, state_dir.as_os_str())
        .into_iter()
        .filter_map(procfs::pgid)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Starts `argv` in `cwd` with `env` added to the inherited environment, under the shim,
/// capturing its output into `log`.
pub(crate) async fn start(
    launcher: &Launcher,
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
    let mut cmd = launcher.command(argv, env, cwd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = launcher.spawner.spawn(cmd).await?;
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
