//! One actor per service: it owns the service's state, waits for its dependencies, starts
//! it through the runtime, runs its health checks, applies its restart policy, and obeys
//! `Start`/`Stop`/`Restart`/`Kill`. Its status is published on a watch channel; what
//! happens is sent to the dispatcher as events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio_util::task::AbortOnDropHandle;

use crate::config::{Condition, RestartPolicy};
use crate::events::{Event, EventKind, Health, State, Status};
use crate::health::{self, ProbeContext};
use crate::logs::LogFile;
use crate::plan::{ContainerImage, Launch, ResolvedProbe, ServicePlan};
use crate::runtime::docker::{Docker, Gated};
use crate::runtime::process::{self, Exit};
use crate::runtime::running::{self, ContainerContext, Running};
use crate::runtime::unix::Spawner;

/// What the dispatcher (or a user, through it) asks of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Start it (after its dependencies).
    Start,
    /// Stop it gracefully, within its `stop_timeout` or the one given.
    Stop(Option<Duration>),
    /// Stop it and start it again.
    Restart,
    /// SIGKILL it now.
    Kill,
}

/// The dispatcher's handle on an actor.
#[derive(Debug, Clone)]
pub(crate) struct ActorHandle {
    /// The service.
    pub name: String,
    /// Send controls here.
    pub tx: mpsc::UnboundedSender<Control>,
    /// Its status.
    pub status: watch::Receiver<Status>,
}

/// A dependency as the actor sees it.
pub(crate) struct Dep {
    /// Its name.
    pub name: String,
    /// What to wait for.
    pub condition: Condition,
    /// Its status.
    pub status: watch::Receiver<Status>,
}

/// Shared by every actor.
#[derive(Clone)]
pub(crate) struct Shared {
    /// Forks the children.
    pub spawner: Spawner,
    /// Probes' HTTP client.
    pub http: reqwest::Client,
    /// Events to the dispatcher.
    pub events: mpsc::UnboundedSender<Event>,
    /// The `stack` executable (the process-group shim).
    pub exe: std::path::PathBuf,
    /// The Docker engine, when the plan has containers.
    pub docker: Option<Docker>,
    /// The project name.
    pub project: String,
    /// The stack file's folder.
    pub stack_dir: std::path::PathBuf,
}

/// First restart delay; doubled per failure in a row, capped.
const RESTART_FIRST: Duration = Duration::from_millis(100);
const RESTART_CAP: Duration = Duration::from_secs(15);
/// A run this long resets the back-off.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// A service actor.
pub(crate) struct Actor {
    plan: Arc<ServicePlan>,
    deps: Vec<Dep>,
    shared: Shared,
    log: LogFile,
    log_matched: Option<watch::Receiver<bool>>,
    status: watch::Sender<Status>,
    rx: mpsc::UnboundedReceiver<Control>,
    /// Failures in a row, for the back-off.
    streak: u32,
    /// A built-in's container started ahead, held at its gate while dependencies come up.
    prestart: Option<AbortOnDropHandle<Result<Gated, String>>>,
}

/// Why a run ended.
enum RunEnd {
    /// The process ended by itself.
    Exited(Exit),
    /// A liveness probe failed `retries` times in a row; the process was stopped.
    Unhealthy(String),
    /// Asked to stop (or killed): do not restart.
    Stopped,
    /// Asked to restart.
    Restart,
    /// It could not start (already reported).
    Failed,
}

impl Actor {
    /// Creates the actor and its handle.
    pub(crate) fn new(
        plan: Arc<ServicePlan>,
        deps: Vec<Dep>,
        shared: Shared,
        mut log: LogFile,
    ) -> (Actor, ActorHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (status, status_rx) = watch::channel(Status::created(plan.health.is_some()));
        let log_matched = match plan.health.as_ref().map(|h| &h.probe) {
            Some(ResolvedProbe::Log { pattern }) => {
                regex::Regex::new(pattern).ok().map(|re| log.watch_for(re))
            }
            _ => None,
        };
        let handle = ActorHandle {
            name: plan.name.clone(),
            tx,
            status: status_rx,
        };
        (
            Actor {
                plan,
                deps,
                shared,
                log,
                log_matched,
                status,
                rx,
                streak: 0,
                prestart: None,
            },
            handle,
        )
    }

    /// Runs until the dispatcher drops its handle.
    pub(crate) async fn run(mut self) {
        while let Some(c) = self.rx.recv().await {
            match c {
                Control::Start | Control::Restart => self.lifecycle().await,
                Control::Stop(_) | Control::Kill => {
                    // Not running: make sure the dispatcher sees it settled.
                    let was = self.status.borrow().clone();
                    if !was.settled {
                        self.set(|s| {
                            s.state = State::Stopped;
                            s.settled = true;
                        });
                    }
                    self.emit(EventKind::Stopped);
                }
            }
        }
    }

    fn emit(&self, kind: EventKind) {
        let _ = self.shared.events.send(Event {
            service: self.plan.name.clone(),
            at: Timestamp::now(),
            kind,
        });
    }

    fn set(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(f);
    }

    /// Waits for dependencies, then runs (and re-runs) the service until it settles.
    async fn lifecycle(&mut self) {
        self.set(|s| {
            s.settled = false;
            s.state = State::Created;
            s.reason = None;
        });
        self.prestart();
        match self.wait_for_deps().await {
            DepOutcome::Ready => {}
            DepOutcome::Failed(dep, reason) => {
                self.discard_prestart().await;
                return self.fail(reason, Some(dep));
            }
            DepOutcome::Stop => {
                self.discard_prestart().await;
                return self.stopped();
            }
        }
        loop {
            let started = Instant::now();
            let end = self.run_once().await;
            match end {
                RunEnd::Stopped => return self.stopped(),
                RunEnd::Failed => return,
                RunEnd::Restart => {
                    self.set(|s| s.restarts += 1);
                    self.log.note("restarting (requested)");
                    continue;
                }
                RunEnd::Exited(exit) => {
                    let wants = match self.plan.restart {
                        RestartPolicy::No => false,
                        RestartPolicy::OnFailure => !exit.success(),
                        RestartPolicy::Always => true,
                    };
                    let reason = format!("exited with {exit}");
                    if !wants {
                        self.set(|s| {
                            s.state = if exit.success() {
                                State::Exited
                            } else {
                                State::Failed
                            };
                            s.settled = true;
                            s.reason = Some(reason.clone());
                        });
                        self.emit(EventKind::Exited {
                            code: exit.code,
                            signal: exit.signal,
                        });
                        if exit.success() {
                            self.log.note(&reason);
                        } else {
                            self.log.note(&format!(
                                "{reason}; not restarting (restart: {})",
                                policy_name(self.plan.restart)
                            ));
                            self.emit(EventKind::Failed {
                                reason,
                                dependency: None,
                            });
                        }
                        return;
                    }
                    self.emit(EventKind::Exited {
                        code: exit.code,
                        signal: exit.signal,
                    });
                    if !self.backoff(started, reason).await {
                        return;
                    }
                }
                RunEnd::Unhealthy(reason) => {
                    if self.plan.restart == RestartPolicy::No {
                        // Stopped by liveness without a restart policy cannot happen: the run
                        // only ends on liveness failure when a restart is allowed.
                        return self.fail(reason, None);
                    }
                    if !self.backoff(started, reason).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits the restart back-off. Returns false when the service must not run again.
    async fn backoff(&mut self, started: Instant, reason: String) -> bool {
        let restarts = self.status.borrow().restarts;
        if let Some(max) = self.plan.max_restarts
            && restarts >= max
        {
            self.fail(
                format!("{reason}; gave up after {restarts} restarts (max_restarts: {max})"),
                None,
            );
            return false;
        }
        if started.elapsed() >= STABLE_RUN {
            self.streak = 0;
        }
        let delay = RESTART_FIRST
            .saturating_mul(1u32 << self.streak.min(10))
            .min(RESTART_CAP);
        self.streak += 1;
        let attempt = restarts + 1;
        self.log.note(&format!(
            "{reason}; restarting in {} (restart {attempt})",
            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
        ));
        self.set(|s| {
            s.state = State::Starting;
            s.restarts = attempt;
            s.reason = Some(reason.clone());
            s.pid = None;
            s.pid_start = None;
        });
        self.emit(EventKind::Restarting {
            attempt,
            delay,
            reason,
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            c = self.rx.recv() => match c {
                Some(Control::Stop(_) | Control::Kill) | None => {
                    self.stopped();
                    false
                }
                Some(Control::Start | Control::Restart) => true,
            },
        }
    }

    fn fail(&mut self, reason: String, dependency: Option<String>) {
        self.log.note(&format!("failed: {reason}"));
        self.set(|s| {
            s.state = State::Failed;
            s.settled = true;
            s.reason = Some(reason.clone());
            s.pid = None;
        });
        self.emit(EventKind::Failed { reason, dependency });
    }

    fn stopped(&mut self) {
        self.set(|s| {
            s.state = State::Stopped;
            s.settled = true;
            s.pid = None;
            if s.health != Health::None {
                s.health = Health::Starting;
            }
        });
        self.emit(EventKind::Stopped);
    }

    /// A built-in container whose dependencies are not ready yet is created and started now,
    /// held at its gate: its container start (hundreds of milliseconds) overlaps theirs.
    fn prestart(&mut self) {
        let Launch::Container {
            image: ContainerImage::Builtin,
            command,
        } = &self.plan.launch
        else {
            return;
        };
        let Some(docker) = self.shared.docker.clone() else {
            return;
        };
        let waiting = self
            .deps
            .iter()
            .any(|d| !satisfied(d.condition, &d.status.borrow()));
        if !waiting || self.prestart.is_some() {
            return;
        }
        let plan = self.plan.clone();
        let command = command.clone();
        let log = self.log.clone();
        let project = self.shared.project.clone();
        let stack_dir = self.shared.stack_dir.clone();
        self.prestart = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            let note = |detail: String| log.note(&detail);
            let cx = ContainerContext {
                docker: &docker,
                project: &project,
                stack_dir: &stack_dir,
                note: &note,
            };
            running::prestart_container(&cx, &plan, command, &log).await
        })));
    }

    /// The prestarted container, when there is one and it came up.
    async fn take_prestart(&mut self) -> Option<Gated> {
        match self.prestart.take()?.await {
            Ok(Ok(gated)) => Some(gated),
            Ok(Err(reason)) => {
                tracing::debug!(service = %self.plan.name, %reason, "prestart failed");
                None
            }
            Err(_) => None,
        }
    }

    async fn discard_prestart(&mut self) {
        if let Some(gated) = self.take_prestart().await {
            gated.discard().await;
        }
    }

    async fn wait_for_deps(&mut self) -> DepOutcome {
        let pending: Vec<String> = self
            .deps
            .iter()
            .filter(|d| !satisfied(d.condition, &d.status.borrow()))
            .map(|d| d.name.clone())
            .collect();
        if pending.is_empty() {
            return DepOutcome::Ready;
        }
        self.emit(EventKind::Waiting { on: pending });
        loop {
            let mut all = true;
            for d in &self.deps {
                let s = d.status.borrow();
                if satisfied(d.condition, &s) {
                    continue;
                }
                all = false;
                if let Some(why) = broken(d.condition, &s) {
                    return DepOutcome::Failed(
                        d.name.clone(),
                        format!("dependency `{}` {why}", d.name),
                    );
                }
            }
            if all {
                return DepOutcome::Ready;
            }
            let changed = futures::future::select_all(
                self.deps.iter_mut().map(|d| Box::pin(d.status.changed())),
            );
            tokio::select! {
                _ = changed => {}
                c = self.rx.recv() => match c {
                    Some(Control::Stop(_) | Control::Kill) | None => return DepOutcome::Stop,
                    Some(Control::Start | Control::Restart) => {}
                },
            }
        }
    }

    /// Starts the service once and watches it until the run ends.
    async fn run_once(&mut self) -> RunEnd {
        self.set(|s| {
            s.state = State::Starting;
            s.exit_code = None;
            if s.health != Health::None {
                s.health = Health::Starting;
            }
        });
        self.emit(EventKind::Starting);
        self.log.reset_match();
        let gated = self.take_prestart().await;
        let mut proc = match self.start(gated).await {
            Ok(p) => p,
            Err(reason) => {
                self.fail(reason, None);
                return RunEnd::Failed;
            }
        };
        let started = Instant::now();
        let container = proc.container();
        // A container without a health check of ours but with its image's HEALTHCHECK is
        // healthy when the engine says so.
        let docker_health = match (&self.plan.health, &container) {
            (None, Some((docker, id))) => docker
                .health(id)
                .await
                .map(|_| (docker.clone(), id.clone())),
            _ => None,
        };
        self.set(|s| {
            s.state = State::Running;
            s.pid = proc.pid();
            s.pid_start = proc.start_time();
            s.container_id = proc.container_id().map(str::to_string);
            s.started_at = Some(Timestamp::now());
            if docker_health.is_some() {
                s.health = Health::Starting;
            }
        });
        match (proc.pid(), proc.container_id()) {
            (Some(pid), _) => self.log.note(&format!("started (pid {pid})")),
            (None, Some(id)) => self
                .log
                .note(&format!("started (container {})", &id[..id.len().min(12)])),
            _ => self.log.note("started"),
        }
        self.emit(EventKind::Started {
            pid: proc.pid(),
            container_id: proc.container_id().map(str::to_string),
        });

        let (htx, mut hrx) = mpsc::unbounded_channel();
        let checker = match (self.plan.health.clone(), docker_health) {
            (Some(h), _) => {
                let cx = ProbeContext {
                    http: self.shared.http.clone(),
                    env: self.plan.env.clone(),
                    cwd: self.plan.cwd.clone(),
                    log_matched: self.log_matched.clone(),
                    container: container.clone(),
                };
                Some(AbortOnDropHandle::new(tokio::spawn(check_loop(h, cx, htx))))
            }
            (None, Some((docker, id))) => Some(AbortOnDropHandle::new(tokio::spawn(
                docker_health_loop(docker, id, htx),
            ))),
            (None, None) => None,
        };
        // The checker ends with this run of the service.
        let _checker = checker;

        loop {
            tokio::select! {
                exit = proc.wait() => {
                    self.set(|s| {
                        s.exit_code = exit.code;
                        s.pid = None;
                    });
                    return RunEnd::Exited(exit);
                }
                h = hrx.recv() => match h {
                    Some(HealthChange::Healthy) => {
                        let was = self.status.borrow().health;
                        self.set(|s| s.health = Health::Healthy);
                        if was != Health::Healthy {
                            self.emit(EventKind::Healthy { after: started.elapsed() });
                        }
                    }
                    Some(HealthChange::Unhealthy { reason, starting }) => {
                        self.set(|s| { s.health = Health::Unhealthy; s.reason = Some(reason.clone()); });
                        self.log.note(&format!("unhealthy: {reason}"));
                        self.emit(EventKind::Unhealthy { reason: reason.clone(), starting });
                        if !starting && self.plan.restart != RestartPolicy::No {
                            self.stop_process(&mut proc, None).await;
                            return RunEnd::Unhealthy(format!("health check failed: {reason}"));
                        }
                    }
                    None => {}
                },
                c = self.rx.recv() => match c {
                    Some(Control::Stop(timeout)) => {
                        self.stop_process(&mut proc, timeout).await;
                        return RunEnd::Stopped;
                    }
                    None => {
                        self.stop_process(&mut proc, None).await;
                        return RunEnd::Stopped;
                    }
                    Some(Control::Kill) => {
                        self.emit(EventKind::Stopping);
                        let exit = proc.kill().await;
                        self.set(|s| s.exit_code = exit.code);
                        return RunEnd::Stopped;
                    }
                    Some(Control::Restart) => {
                        self.stop_process(&mut proc, None).await;
                        return RunEnd::Restart;
                    }
                    Some(Control::Start) => {}
                },
            }
        }
    }

    async fn stop_process(&mut self, proc: &mut Running, timeout: Option<Duration>) {
        self.emit(EventKind::Stopping);
        self.log.note(&format!(
            "stopping (sending {})",
            self.plan.stop_signal.name()
        ));
        let exit = proc
            .stop(
                self.plan.stop_signal,
                timeout.unwrap_or(self.plan.stop_timeout),
            )
            .await;
        if exit.code.is_none() && exit.signal.is_none() {
            // A container whose output closed: it ended; the engine has not said how yet.
            self.log.note("stopped");
        } else {
            self.log.note(&format!("stopped ({exit})"));
        }
        self.set(|s| {
            s.exit_code = exit.code;
            s.pid = None;
        });
    }

    async fn start(&self, gated: Option<Gated>) -> Result<Running, String> {
        if let Some((path, yaml)) = &self.plan.builtin_config {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
            }
            std::fs::write(path, yaml)
                .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        }
        let result = match &self.plan.launch {
            Launch::Process { argv } => process::start(
                &self.shared.spawner,
                &self.shared.exe,
                argv,
                &self.plan.env,
                &self.plan.cwd,
                &self.log,
            )
            .await
            .map(Running::Process)
            .map_err(|e| {
                let program = argv.first().map_or("", String::as_str);
                format!("cannot start `{program}`: {e}")
            }),
            Launch::Container { image, command } => {
                let Some(docker) = &self.shared.docker else {
                    return Err("no Docker engine is connected".into());
                };
                let note = |detail: String| {
                    self.log.note(&detail);
                    self.emit(EventKind::Preparing { detail });
                };
                let cx = ContainerContext {
                    docker,
                    project: &self.shared.project,
                    stack_dir: &self.shared.stack_dir,
                    note: &note,
                };
                running::start_container(&cx, &self.plan, image, command.clone(), &self.log, gated)
                    .await
            }
        };
        result.inspect_err(|reason| self.log.note(reason))
    }
}

/// Follows a container's own HEALTHCHECK as reported by the engine.
async fn docker_health_loop(docker: Docker, id: String, tx: mpsc::UnboundedSender<HealthChange>) {
    let mut last = String::new();
    let mut was_healthy = false;
    loop {
        if let Some(status) = docker.health(&id).await
            && status != last
        {
            match status.as_str() {
                "healthy" => {
                    was_healthy = true;
                    let _ = tx.send(HealthChange::Healthy);
                }
                "unhealthy" => {
                    let _ = tx.send(HealthChange::Unhealthy {
                        reason: "the image's HEALTHCHECK reports unhealthy".into(),
                        starting: !was_healthy,
                    });
                }
                _ => {}
            }
            last = status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn policy_name(p: RestartPolicy) -> &'static str {
    match p {
        RestartPolicy::No => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    }
}

enum DepOutcome {
    Ready,
    Failed(String, String),
    Stop,
}

/// Whether a dependency in status `s` satisfies `c`.
pub(crate) fn satisfied(c: Condition, s: &Status) -> bool {
    match c {
        Condition::Started => {
            s.state == State::Running || (s.state == State::Exited && s.exit_code == Some(0))
        }
        Condition::Healthy => s.health == Health::Healthy && s.state == State::Running,
        Condition::Completed => s.state == State::Exited && s.exit_code == Some(0),
    }
}

/// Why a dependency in status `s` will never satisfy `c`, if so.
fn broken(c: Condition, s: &Status) -> Option<String> {
    if s.settled {
        return Some(match s.state {
            State::Stopped => "was stopped".to_string(),
            _ => s.reason.clone().unwrap_or_else(|| "failed".to_string()),
        });
    }
    if c == Condition::Healthy && s.health == Health::Unhealthy && s.state == State::Running {
        return Some(format!(
            "is unhealthy: {}",
            s.reason.clone().unwrap_or_default()
        ));
    }
    None
}

enum HealthChange {
    Healthy,
    Unhealthy { reason: String, starting: bool },
}

/// Probes until dropped: fast and backing off while starting (until healthy or the start
/// budget runs out), then every `interval`, reporting changes.
async fn check_loop(
    h: crate::plan::ResolvedHealth,
    cx: ProbeContext,
    tx: mpsc::UnboundedSender<HealthChange>,
) {
    let t = &h.timing;
    let start = Instant::now();
    let budget = t.startup_budget();
    // Starting.
    loop {
        match health::probe(&h.probe, t.timeout, &cx).await {
            Ok(()) => {
                let _ = tx.send(HealthChange::Healthy);
                break;
            }
            Err(reason) => {
                if start.elapsed() >= budget {
                    let _ = tx.send(HealthChange::Unhealthy {
                        reason: format!(
                            "{reason} (not healthy after {})",
                            humantime::format_duration(Duration::from_millis(
                                budget.as_millis() as u64
                            ))
                        ),
                        starting: true,
                    });
                    // Keep probing at the interval: a late success still counts.
                    loop {
                        tokio::time::sleep(t.interval).await;
                        if health::probe(&h.probe, t.timeout, &cx).await.is_ok() {
                            let _ = tx.send(HealthChange::Healthy);
                            break;
                        }
                    }
                    break;
                }
            }
        }
        tokio::time::sleep(health::backoff(start.elapsed(), t.interval)).await;
    }
    // Live: `retries` failures in a row make it unhealthy.
    let mut failures = 0u32;
    let mut healthy = true;
    loop {
        tokio::time::sleep(t.interval).await;
        match health::probe(&h.probe, t.timeout, &cx).await {
            Ok(()) => {
                failures = 0;
                if !healthy {
                    healthy = true;
                    let _ = tx.send(HealthChange::Healthy);
                }
            }
            Err(reason) => {
                failures += 1;
                if healthy && failures >= t.retries.max(1) {
                    healthy = false;
                    let _ = tx.send(HealthChange::Unhealthy {
                        reason: format!("{reason} ({failures} failures in a row)"),
                        starting: false,
                    });
                }
            }
        }
    }
}
