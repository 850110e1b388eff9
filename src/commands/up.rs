//! `stack up`: load → select → ports → plan → supervise, in the foreground or (`-d`,
//! `--wait`) in a detached supervisor the command waits on until everything is healthy.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, SuperviseArgs, UpArgs};
use crate::control::{self, Message, Request};
use crate::error::{Error, Result};
use crate::events::report::PsDocument;
use crate::exit;
use crate::logs::{self, Follower};
use crate::plan::{self, Plan};
use crate::runtime::local::Local;
use crate::services::cassette::Mode;
use crate::state::{self, StateDir};
use crate::supervisor::{self, Observer, Options};
use crate::ui::LogObserver;
use crate::ui::{Console, logstream, progress::Progress};

pub(crate) fn run(global: &GlobalArgs, args: UpArgs) -> Result<ExitCode> {
    let loaded = super::load::stack(global, args.runtime)?;
    let dir = plan::state_dir(&loaded.stack);
    let console = Console::new(global);
    if state::is_locked(&dir) || args.dry_run {
        // A running project: apply the edit (SPEC §3.1).
        return super::reconcile::run(&console, &loaded, &args, &dir);
    }
    let plan = Arc::new(plan_for(&loaded, &args, &state::Remembered::new())?);
    if args.detach || args.wait {
        let (code, _) = detached(&console, plan, &args, false)?;
        return Ok(ExitCode::from(code));
    }
    let lock =
        state::try_lock(&plan.state())?.ok_or_else(|| already_up(&plan.state(), &plan.project))?;
    let rt = super::runtime()?;
    let code = rt.block_on(async {
        let notify = Arc::new(Notify::new());
        let stop_logs = CancellationToken::new();
        let followers = plan
            .services
            .iter()
            .map(|s| Follower::new(&s.name, &logs::path(&plan.state_dir(), &s.name), 0))
            .collect();
        let stream = tokio::spawn(logstream::run(
            console.clone(),
            followers,
            Some(plan.state_dir()),
            notify.clone(),
            stop_logs.clone(),
        ));
        let mut progress = Progress::new(console.clone(), plan.clone(), args.json);
        let options = Options {
            timeout: args.timeout,
            owner: None,
            keep_failed: false,
        };
        let docker = docker_for(&plan).await?;
        pull_images(&console, &plan, docker.as_ref()).await?;
        let watching = super::watching::start(&plan, docker.clone(), notify.clone())?;
        let runtime = Local::new(&plan, docker)?;
        let code = supervisor::run(plan.clone(), runtime, notify, &mut progress, options).await;
        drop(watching);
        stop_logs.cancel();
        let _ = stream.await;
        Ok::<_, Error>(code?)
    })?;
    drop(lock);
    Ok(ExitCode::from(code))
}

/// Loads the stack and resolves the plan (see [`plan_for`]). Refuses when the project is
/// already up.
pub(crate) fn prepare(global: &GlobalArgs, args: &UpArgs) -> Result<Plan> {
    let loaded = super::load::stack(global, args.runtime)?;
    let dir = plan::state_dir(&loaded.stack);
    if state::is_locked(&dir) {
        return Err(already_up(&dir, &loaded.stack.name));
    }
    plan_for(&loaded, args, &state::Remembered::new())
}

/// Resolves the plan of a loaded stack: services, order, ports (each service of a running
/// stack keeps the ones in `held`; auto ports reuse last run's when free), environment.
pub(crate) fn plan_for(
    loaded: &crate::config::Loaded,
    args: &UpArgs,
    held: &state::Remembered,
) -> Result<Plan> {
    let stack = &loaded.stack;
    let selected = plan::select(stack, &args.services, &args.profiles)
        .map_err(|e| Error::input(e.to_string(), Some(&e.hint())))?;
    let dir = plan::state_dir(stack);
    let last = state::read_ports(&dir);
    let ports = plan::ports::assign(&selected, &last, held).map_err(Error::PortsInUse)?;
    let key = plan::Telemetry::port_key();
    let telemetry = plan::Telemetry::new(
        held.get(&key).copied(),
        last.get(&key).copied(),
        stack.otlp_forward.clone(),
    );
    let mut remembered = crate::plan::ports::remembered(&ports);
    remembered.insert(key, telemetry.port);
    if let Err(err) = state::write_ports(&dir, &remembered) {
        tracing::warn!(%err, "cannot remember the ports");
    }
    let mode = args
        .llm
        .unwrap_or_else(|| plan::llm::default_mode(&selected));
    plan::llm::check(loaded, &selected, mode)
        .map_err(|r| Error::input(r.message, Some(&r.hint)))?;
    if mode == Mode::Replay {
        // Each run's notes start empty (`stack run`'s summary, `stack cassettes prune`).
        let _ = std::fs::remove_file(plan::llm::notes_file(&dir.dir));
    }
    let overrides = plan::llm::Overrides {
        llm: Some(mode),
        hermetic: args
            .hermetic
            .as_ref()
            .map(|h| (plan::llm::fresh_run_db(&dir.dir), h.snapshot.clone())),
    };
    let exe = std::env::current_exe()?;
    let mut plan = plan::build(stack, &selected, &ports, &exe, &overrides)
        .map_err(|e| Error::input(e.to_string(), None))?;
    telemetry.inject(&mut plan);
    plan.telemetry = Some(telemetry);
    plan.watch = !args.no_watch;
    plan.selection = plan::Selection {
        services: args.services.clone(),
        profiles: args.profiles.clone(),
        runtime: args.runtime,
    };
    Ok(plan)
}

/// The Docker engine, when `plan` has containers (an unreachable engine is an error
/// before anything starts).
pub(crate) async fn docker_for(plan: &Plan) -> Result<Option<crate::runtime::docker::Docker>> {
    if !Local::needs_docker(plan) {
        return Ok(None);
    }
    Ok(Some(crate::runtime::docker::Docker::connect().await?))
}

/// Makes sure every `image:` of `plan` is present before anything starts, as compose
/// does: a missing one is pulled (layer progress on stderr); one that cannot be had is an
/// environment error (exit 3) naming the service.
pub(crate) async fn pull_images(
    console: &Console,
    plan: &Plan,
    docker: Option<&crate::runtime::docker::Docker>,
) -> Result<()> {
    let Some(docker) = docker else {
        return Ok(());
    };
    for s in &plan.services {
        let crate::plan::Launch::Container {
            image: crate::plan::ContainerImage::Reference(reference),
            ..
        } = &s.launch
        else {
            continue;
        };
        let note = |line: String| console.err(&format!("{}  {line}\n", s.name));
        docker
            .ensure_image(reference, &note)
            .await
            .map_err(|e| Error::Environment {
                hint: e.hint().map(str::to_string),
                message: format!("service `{}`: {e}", s.name),
            })?;
    }
    Ok(())
}

/// The error for a project whose supervisor already runs, naming it.
fn already_up(dir: &StateDir, project: &str) -> Error {
    let holder = match state::State::read(dir) {
        Some(s) => format!(
            "supervisor pid {} (started {}, {})",
            s.supervisor.pid,
            s.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            s.file.display()
        ),
        None => "another `stack up`".to_string(),
    };
    Error::Environment {
        message: format!("project `{project}` is already up: {holder}"),
        hint: Some(
            "`stack ps` shows it; `stack down` stops it; `-p NAME` starts a separate copy".into(),
        ),
    }
}

/// `up -d` / `--wait`: starts the supervisor in its own session and follows it until
/// every service is healthy (0 and the `ps` document) or the stack fails (it is taken
/// down; 1/3/4). With `owned`, the supervisor stops everything when this process exits.
pub(crate) fn detached(
    console: &Console,
    plan: Arc<Plan>,
    args: &UpArgs,
    owned: bool,
) -> Result<(u8, Option<PsDocument>)> {
    let dir = plan.state();
    // An unreachable engine is reported here, before a supervisor starts.
    super::runtime()?.block_on(async {
        let docker = docker_for(&plan).await?;
        pull_images(console, &plan, docker.as_ref()).await
    })?;
    // The built-ins' configurations (their keys) go to their own files now: the plan
    // the supervisor reads does not carry them.
    write_configs(&plan)?;
    let plan_file = dir.run_dir().join("plan.json");
    state::write_json(&plan_file, &*plan)?;
    let log = state::open_private(&dir.supervisor_log(), false).map_err(|source| Error::Io {
        action: "cannot create",
        path: dir.supervisor_log(),
        source,
    })?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("__supervise")
        .arg("--plan")
        .arg(&plan_file)
        .current_dir(&plan.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(t) = args.timeout {
        cmd.arg("--timeout").arg(format!("{}ms", t.as_millis()));
    }
    if owned {
        cmd.arg("--owner").arg(std::process::id().to_string());
    }
    crate::runtime::unix::new_session(&mut cmd);
    let mut child = cmd.spawn()?;
    let rt = super::runtime()?;
    let mut progress = Progress::new(console.clone(), plan.clone(), args.json);
    if owned {
        progress = progress.table_on_stderr();
    }
    rt.block_on(follow(
        &dir.socket(),
        &dir.supervisor_log(),
        &mut child,
        &mut progress,
    ))
}

/// Writes the built-ins' configuration files of `plan`.
pub(crate) fn write_configs(plan: &Plan) -> Result<()> {
    for config in plan
        .services
        .iter()
        .filter_map(|s| s.builtin_config.as_ref())
    {
        config.write().map_err(|source| Error::Io {
            action: "cannot write",
            path: config.path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Follows a starting supervisor: progress until ready or failed. On failure the
/// supervisor stops the stack itself; this waits for that, so nothing is left running.
async fn follow(
    socket: &Path,
    log: &Path,
    child: &mut std::process::Child,
    progress: &mut Progress,
) -> Result<(u8, Option<PsDocument>)> {
    // The socket appears once the supervisor has started its services.
    let mut conn = loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let code = status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(exit::SERVICE_FAILED);
            return Err(Error::Environment {
                message: format!(
                    "the supervisor exited before it was ready:\n{}",
                    text.trim_end()
                ),
                hint: Some(format!("exit code {code}; see {}", log.display())),
            });
        }
        match control::client::open(socket, &Request::Subscribe).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    };
    let mut failure: Option<u8> = None;
    let mut interrupted = false;
    loop {
        let msg = tokio::select! {
            m = conn.next() => m,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                // Ctrl-C while waiting: take the stack down rather than leave half of it.
                interrupted = true;
                failure.get_or_insert(exit::INTERRUPTED);
                let _ = control::client::call(socket, &Request::Down { timeout_ms: None }).await;
                continue;
            }
        };
        match msg {
            Ok(Some(Message::Event(e))) => progress.event(&e),
            Ok(Some(Message::Ready(doc))) if failure.is_none() => {
                progress.ready(&doc);
                return Ok((exit::OK, Some(doc)));
            }
            Ok(Some(Message::Failed {
                service,
                message,
                code,
            })) => {
                progress.failed(service.as_deref(), &message, code);
                failure = Some(code);
            }
            Ok(Some(Message::Stopping)) => progress.stopping(false),
            Ok(Some(_)) => {}
            // The supervisor is gone: it finished stopping after a failure.
            Ok(None) | Err(_) => break,
        }
    }
    // Wait for the supervisor itself to exit, so nothing it started outlives this command.
    let status = tokio::task::block_in_place(|| child.wait());
    if let Some(code) = failure {
        return Ok((code, None));
    }
    // Gone without saying why (it failed before this subscribed, or it died): its exit
    // code is the one SPEC §2 gives, and its own log says what happened.
    let code = status
        .ok()
        .and_then(|s| s.code())
        .and_then(|c| u8::try_from(c).ok())
        .filter(|c| *c != exit::OK)
        .unwrap_or(exit::SERVICE_FAILED);
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(crate::ui::progress::TAIL_LINES)..].join("\n  ");
    let message = if tail.trim().is_empty() {
        format!("the supervisor stopped before the stack was ready (exit code {code})")
    } else {
        format!(
            "the supervisor stopped before the stack was ready (exit code {code}); the last lines of {}:\n  {tail}",
            log.display()
        )
    };
    progress.failed(None, &message, code);
    Ok((code, None))
}

/// `stack __supervise`: the detached supervisor (hidden).
pub(crate) fn supervise(args: SuperviseArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.plan).map_err(|source| Error::Io {
        action: "cannot read",
        path: args.plan.clone(),
        source,
    })?;
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| Error::input(format!("bad plan file: {e}"), None))?;
    let plan = Arc::new(plan);
    let Some(lock) = state::try_lock(&plan.state())? else {
        return Err(already_up(&plan.state(), &plan.project));
    };
    let rt = super::runtime()?;
    let code = rt.block_on(async {
        let mut observer = LogObserver;
        let options = Options {
            timeout: args.timeout,
            owner: args.owner.map(|pid| state::ProcessId {
                pid,
                start_time: crate::procfs::start_time(pid),
            }),
            // Detached, nobody watches the stack fail: it stays for `ps` and `logs`.
            keep_failed: true,
        };
        let docker = docker_for(&plan).await?;
        let notify = Arc::new(Notify::new());
        let watching = super::watching::start(&plan, docker.clone(), notify.clone())?;
        let runtime = Local::new(&plan, docker)?;
        let code = supervisor::run(plan.clone(), runtime, notify, &mut observer, options).await?;
        drop(watching);
        Ok::<_, Error>(code)
    })?;
    drop(lock);
    Ok(ExitCode::from(code))
}
