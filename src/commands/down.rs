//! `stack down`: asks the supervisor to stop everything; when it is dead (or does not
//! answer), stops what `state.json` recorded itself — checking each pid's start time, so a
//! pid reused by a stranger is never signalled.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::{DownArgs, GlobalArgs};
use crate::control::{self, Message, Request};
use crate::error::{Error, Result};
use crate::procfs;
use crate::runtime::{process, unix};
use crate::state::{ProcessId, State};
use crate::ui::{Console, errln};

/// The grace period when neither `--timeout` nor the supervisor says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn run(global: &GlobalArgs, args: DownArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let project = super::project::locate(global)?;
    let dir = &project.state;
    let rt = super::runtime()?;
    let request = Request::Down {
        timeout_ms: args.timeout.map(|t| t.as_millis() as u64),
    };
    let state = State::read(dir);
    let mut stopped_something = false;
    match rt.block_on(control::client::call(&dir.socket(), &request)) {
        Ok(Message::Ok) => {
            stopped_something = true;
            // The supervisor answered once every service was down; let it finish exiting.
            if let Some(s) = &state {
                wait_gone(s.supervisor, Duration::from_secs(5));
            }
        }
        Ok(Message::Error { message }) => return Err(Error::input(message, None)),
        _ => {}
    }
    let grace = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
    // Whatever is still recorded (a SIGKILLed or hung supervisor) is reaped by hand.
    if let Some(s) = State::read(dir) {
        stopped_something |= reap(&s, grace);
        let _ = std::fs::remove_file(dir.state_file());
    }
    // …and by the marker every service process carries: what a killed supervisor started
    // but had not recorded yet, and processes that left their service's group.
    stopped_something |= stop_groups(&process::strays(&dir.dir), grace);
    let _ = std::fs::remove_file(dir.socket());
    // Containers and the network, by label: no state needed.
    let removed = rt.block_on(async {
        match crate::runtime::docker::Docker::connect().await {
            Ok(docker) => docker
                .down(&project.name, grace, args.volumes)
                .await
                .map(Some),
            // No engine: nothing of ours can be running in it.
            Err(_) => Ok(None),
        }
    })?;
    if removed.is_some_and(|n| n > 0) {
        stopped_something = true;
    }
    if args.volumes {
        let data = dir.data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(|source| Error::Io {
                action: "cannot delete",
                path: data.clone(),
                source,
            })?;
            if !global.quiet {
                errln!(console, "deleted {}", data.display());
            }
        }
    }
    if !global.quiet {
        if stopped_something {
            errln!(console, "project `{}` is down", project.name);
        } else {
            errln!(console, "project `{}` was not running", project.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops the recorded supervisor and process groups that are still ours; returns whether
/// anything was running.
fn reap(state: &State, grace: Duration) -> bool {
    // A hung supervisor goes first, so it cannot restart what is being stopped.
    let supervisor = (state.supervisor.start_time.is_some() && state.supervisor.alive())
        .then_some(state.supervisor);
    if let Some(s) = supervisor {
        let _ = unix::signal_pid(s.pid, libc::SIGKILL);
        wait_gone(s, Duration::from_secs(2));
    }
    // Only a leader that is still the very process we started (same pid, same start time)
    // proves the group is ours; anything else may be a stranger that reused the pid.
    let ours: Vec<u32> = state
        .services
        .values()
        .filter_map(|s| s.process)
        .filter(|p| p.start_time.is_some() && p.alive())
        .map(|p| p.pid)
        .collect();
    stop_groups(&ours, grace) | supervisor.is_some()
}

/// SIGTERMs process groups, waits up to `grace` for them to end, then SIGKILLs what is
/// left; returns whether there were any.
fn stop_groups(groups: &[u32], grace: Duration) -> bool {
    for &g in groups {
        let _ = unix::signal_group(g, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && groups.iter().any(|&g| !procfs::group_members(g).is_empty())
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    for &g in groups {
        if !procfs::group_members(g).is_empty() {
            let _ = unix::signal_group(g, libc::SIGKILL);
        }
    }
    !groups.is_empty()
}

/// Waits until `p` has exited (at most `timeout`).
fn wait_gone(p: ProcessId, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while p.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}
