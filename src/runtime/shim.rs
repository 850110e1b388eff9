//! `stack __shim CMD…`: the leader of every service's process group.
//!
//! The kernel's parent-death signal reaches only the supervisor's direct child; a service
//! started through `sh -c`, npm or a script has grandchildren that would outlive a
//! SIGKILLed supervisor. The shim is that direct child: it runs the command in its own
//! process group, passes its exit status through, and when the supervisor dies (its
//! parent-death signal, SIGTERM, arrives while its parent is no longer the supervisor) it
//! SIGKILLs the whole group. Signals sent to the group for a normal stop reach the command
//! directly; the shim only outlives it long enough to report how it ended.

use std::ffi::OsString;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, killpg, raise, sigaction};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, getppid};

/// The first argument that selects the shim.
pub(crate) const ARG: &str = "__shim";
/// The environment variable carrying the supervisor's pid.
pub(crate) const PARENT_ENV: &str = "STACK_SHIM_PARENT";

static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(sig: libc::c_int) {
    LAST_SIGNAL.store(sig, Ordering::SeqCst);
}

/// The signals a group stop may carry; the shim survives them to report the exit status.
const CAUGHT: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Runs `argv` as described above; returns the exit code to use (after re-raising a fatal
/// signal when the command died of one).
#[expect(
    unsafe_code,
    reason = "installing signal handlers is unsafe in nix's API"
)]
pub(crate) fn run(argv: &[OsString]) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        eprintln!("stack: nothing to run");
        return 127;
    };
    let parent: Option<i32> = std::env::var(PARENT_ENV).ok().and_then(|p| p.parse().ok());
    let action = SigAction::new(
        SigHandler::Handler(remember),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in CAUGHT {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
    // Replace the SIGKILL parent-death signal set before exec with one we can act on.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    let orphaned = move || parent.is_some_and(|p| getppid().as_raw() != p);
    if orphaned() {
        return 1;
    }
    let mut cmd = Command::new(program);
    cmd.args(args).env_remove(PARENT_ENV);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stack: cannot run `{}`: {e}", program.to_string_lossy());
            return if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    // The supervisor may have died while we spawned: its signal is then already handled.
    if orphaned() {
        let _ = killpg(Pid::from_raw(0), Signal::SIGKILL);
    }
    // The parent-death signal is not enough alone: it comes when the *thread* that forked
    // us exits (which may be long before its process does), and a dying parent can still
    // be our parent when it comes. So also look for being orphaned every 100 ms.
    if parent.is_some() {
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if orphaned() {
                    let _ = killpg(Pid::from_raw(0), Signal::SIGKILL);
                }
            }
        });
    }
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return die_like(sig),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {
                if LAST_SIGNAL.swap(0, Ordering::SeqCst) != 0 && orphaned() {
                    // The supervisor is gone: take the whole group down, ourselves included.
                    let _ = killpg(Pid::from_raw(0), Signal::SIGKILL);
                }
            }
            Err(_) => return 1,
        }
    }
}

/// Ends this process by `sig`, as the command did, so the supervisor sees the same cause.
#[expect(
    unsafe_code,
    reason = "restoring a signal disposition is unsafe in nix's API"
)]
fn die_like(sig: Signal) -> i32 {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: restoring the default disposition has no handler to be unsafe about.
    let _ = unsafe { sigaction(sig, &default) };
    let _ = raise(sig);
    128 + sig as i32
}
