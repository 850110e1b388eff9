//! Linux process plumbing: process groups, signals to groups, and the parent-death
//! signal. `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the
//! process; so every child is forked from one long-lived spawner thread, never from a
//! tokio blocking-pool thread that may be retired while the child runs.

use std::io;
use std::sync::mpsc;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Forks children from one dedicated thread that lives as long as the supervisor.
#[derive(Debug, Clone)]
pub(crate) struct Spawner {
    jobs: mpsc::Sender<Job>,
}

impl Spawner {
    /// Starts the spawner thread inside the current tokio runtime.
    pub(crate) fn start() -> io::Result<Spawner> {
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("stack-spawner".into())
            .spawn(move || {
                let _guard = handle.enter();
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
        Ok(Spawner { jobs: tx })
    }

    /// Spawns `cmd` (already configured with [`configure`]) from the spawner thread.
    pub(crate) async fn spawn(&self, mut cmd: Command) -> io::Result<Child> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(cmd.spawn());
            }))
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
    }
}

/// Puts the child in its own process group and asks the kernel to SIGKILL it when the
/// spawning thread (the supervisor) dies.
pub(crate) fn configure(cmd: &mut Command) {
    cmd.process_group(0);
    die_with_parent(cmd);
}

/// Asks the kernel to SIGKILL the child when the thread that spawns it exits.
#[expect(
    unsafe_code,
    reason = "`pre_exec` is unsafe: the closure runs between fork and exec"
)]
pub(crate) fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid, _exit)
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The parent may have died before prctl: then nobody would ever signal us.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Sends `signal` to every process of group `pgid`; a group already gone is not an error.
pub(crate) fn signal_group(pgid: u32, signal: i32) -> io::Result<()> {
    let sig = Signal::try_from(signal).map_err(io::Error::from)?;
    match killpg(Pid::from_raw(pgid as i32), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sends `signal` to one process; a process already gone is not an error.
pub(crate) fn signal_pid(pid: u32, signal: i32) -> io::Result<()> {
    let sig = Signal::try_from(signal).map_err(io::Error::from)?;
    match nix::sys::signal::kill(Pid::from_raw(pid as i32), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Starts the child in a new session (no controlling terminal): a detached supervisor
/// survives the terminal that started it.
#[expect(
    unsafe_code,
    reason = "`pre_exec` is unsafe: the closure runs between fork and exec"
)]
pub(crate) fn new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
}
