//! `stack __reaper PROJECT RUN STATE_DIR`: removes a run's containers when its supervisor dies
//! without saying goodbye, as Testcontainers' Ryuk does. The kernel kills a SIGKILLed
//! supervisor's processes for us (the shim), but not its containers: those would keep
//! running and holding ports until `stack down`.
//!
//! The supervisor starts the reaper in its own session with a pipe as its standard input
//! and keeps the pipe's other end. A clean end writes [`GOODBYE`] once everything is
//! removed; any other end of the pipe (the supervisor killed, crashed) makes the reaper
//! remove the run's containers — found by the project and run labels, so a newer run of
//! the same project is left alone — and then the project network, unless nothing uses it
//! or a newer run (its supervisor in the state folder) is up and about to.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::docker::Docker;

/// The first argument that selects the reaper.
pub(crate) const ARG: &str = "__reaper";

/// What a supervisor that ends cleanly writes before closing the pipe.
const GOODBYE: &[u8] = b"goodbye\n";

/// The supervisor's end of a running reaper.
#[derive(Debug)]
pub(crate) struct Reaper {
    pipe: Mutex<Option<(ChildStdin, Child)>>,
}

impl Reaper {
    /// Starts the reaper of `run` of `project`, whose state folder is `state_dir`; its
    /// messages go to `state_dir/reaper.log`.
    pub(crate) fn start(project: &str, run: &str, state_dir: &Path) -> std::io::Result<Reaper> {
        let log = crate::state::open_private(&state_dir.join("reaper.log"), true)?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args([ARG, project, run])
            .arg(state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log);
        super::unix::new_session(&mut cmd);
        let mut child = cmd.spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("the reaper has no standard input"))?;
        Ok(Reaper {
            pipe: Mutex::new(Some((stdin, child))),
        })
    }

    /// Everything is removed: tells the reaper so, and lets it end.
    pub(crate) async fn goodbye(&self) {
        let Some((mut stdin, mut child)) = self.pipe.lock().ok().and_then(|mut p| p.take()) else {
            return;
        };
        let _ = stdin.write_all(GOODBYE);
        drop(stdin);
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    }
}

/// The reaper's main: waits for the supervisor's end and, unless it said goodbye, removes
/// the run's containers. Returns the exit code.
pub(crate) fn run(args: &[OsString]) -> i32 {
    let [project, run, state_dir] = args else {
        eprintln!("usage: stack {ARG} PROJECT RUN STATE_DIR");
        return 2;
    };
    let (project, run) = (project.to_string_lossy(), run.to_string_lossy());
    let state = crate::state::StateDir {
        dir: state_dir.into(),
    };
    let mut said = Vec::new();
    // Blocks until the supervisor closes its end, one way or another.
    let _ = std::io::stdin().lock().read_to_end(&mut said);
    if said == GOODBYE {
        return 0;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 1;
    };
    rt.block_on(reap(&project, &run, &state))
}

/// The id of the run a supervisor makes (`<pid>-<start time>`), on its containers.
pub(crate) fn run_id(supervisor: &crate::state::ProcessId) -> String {
    format!(
        "{}-{}",
        supervisor.pid,
        supervisor.start_time.unwrap_or_default()
    )
}

/// Whether a supervisor other than `run`'s is up for the project (it needs the network).
fn newer_run(state: &crate::state::StateDir, run: &str) -> bool {
    crate::state::State::read(state)
        .is_some_and(|s| run_id(&s.supervisor) != run && s.supervisor.alive())
}

/// Removes the containers of `run` and then the project network, in passes: a container
/// or network whose creation was under way when the supervisor died appears a little later.
async fn reap(project: &str, run: &str, state: &crate::state::StateDir) -> i32 {
    let now = jiff::Timestamp::now();
    eprintln!(
        "{now} the supervisor of `{project}` ended without a goodbye: removing its containers"
    );
    let docker = match Docker::connect().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{now} {e}");
            return 1;
        }
    };
    // A creation under way when the supervisor died (a network takes a few hundred
    // milliseconds) lands within the first second or so: keep passing for 1.5 s, and
    // until three passes in a row found nothing, 5 s at most.
    let started = std::time::Instant::now();
    let mut removed = 0;
    let mut quiet = 0;
    loop {
        match docker.reap(project, run).await {
            Ok(0) => quiet += 1,
            Ok(n) => {
                removed += n;
                quiet = 0;
            }
            Err(e) => eprintln!("{} {e}", jiff::Timestamp::now()),
        }
        // Each pass, as soon as no container holds it.
        if !newer_run(state, run) {
            docker.remove_network(project).await;
        }
        let elapsed = started.elapsed();
        if (quiet >= 3 && elapsed >= Duration::from_millis(1500))
            || elapsed >= Duration::from_secs(5)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{} removed {removed} container(s) of `{project}`",
        jiff::Timestamp::now()
    );
    0
}
