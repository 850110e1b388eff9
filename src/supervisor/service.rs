//! One actor per service: it owns the service's state, waits for its dependencies, starts
//! it through the runtime, runs its health checks, applies its restart policy, and obeys
//! `Start`/`Stop`/`Restart`/`Kill`. Its status is published on a watch channel; what
//! happens is sent to the dispatcher as events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use super::checks::{self, HealthChange};
use crate::config::{Condition, RestartPolicy};
use crate::events::{Event, EventKind, Health, State, Status};
use crate::logs::LogFile;
use crate::plan::{ResolvedProbe, ServicePlan};
use crate::runtime::{Exit, Prober, Runtime, Service, Start};

/// What the dispatcher (or a user, through it) asks of a service.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    /// Start it (after its dependencies).
    Start,
    /// Stop it gracefully, within its `stop_timeout` or the one given.
    Stop(Option<Duration>),
    /// Stop it and start it again (after its dependencies), for this reason
    /// (`restart requested`, `watch: src/app.py`).
    Restart(String, Reuse),
    /// Run this definition from now on (reconcile).
    Replace(Arc<Replacement>),
    /// SIGKILL it now.
    Kill,
}

/// What a restart does with a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// A new one, from its image (built again for `build:`).
    Renew,
    /// The same one, with what `watch: sync+restart` copied into it.
    Keep,
}

/// A service's new definition.
#[derive(Debug)]
pub(crate) struct Replacement {
    /// What it is now.
    pub plan: Arc<ServicePlan>,
    /// Its dependencies now.
    pub deps: Vec<Dep>,
    /// Why it restarts with it (`reconcile: env.A changed`); `None`: what changed does
    /// not define it (another service's injected address), so it keeps running and the
    /// definition applies from its next start. A service stopped by `stack stop` stays
    /// stopped either way; a failed or completed one runs again when `Some`.
    pub why: Option<String>,
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
    /// Its log, for the notes the dispatcher writes (a `sync`).
    pub log: LogFile,
}

/// A dependency as the actor sees it.
#[derive(Debug, Clone)]
pub(crate) struct Dep {
    /// Its name.
    pub name: String,
    /// What to wait for.
    pub condition: Condition,
    /// Its status.
    pub status: watch::Receiver<Status>,
}

/// Shared by every actor.
pub(crate) struct Shared<R> {
    /// Where the services run.
    pub runtime: Arc<R>,
    /// Events to the dispatcher.
    pub events: mpsc::UnboundedSender<Event>,
}

impl<R> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Shared {
            runtime: self.runtime.clone(),
            events: self.events.clone(),
        }
    }
}

/// First restart delay; doubled per failure in a row, capped.
const RESTART_FIRST: Duration = Duration::from_millis(100);
const RESTART_CAP: Duration = Duration::from_secs(15);
/// A run this long resets the back-off.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// A service actor.
pub(crate) struct Actor<R: Runtime> {
    plan: Arc<ServicePlan>,
    deps: Vec<Dep>,
    shared: Shared<R>,
    log: LogFile,
    log_matched: Option<watch::Receiver<bool>>,
    status: watch::Sender<Status>,
    rx: mpsc::UnboundedReceiver<Control>,
    /// Controls that came while the service was stopping, handled once it is down.
    deferred: VecDeque<Control>,
    /// Failures in a row, for the back-off.
    streak: u32,
    /// What the runtime prepares ahead (a built-in's container held at its gate) while
    /// the dependencies come up.
    prestart: Option<AbortOnDropHandle<Result<R::Prepared, String>>>,
}

/// Why a run ended.
enum RunEnd {
    /// The process ended by itself.
    Exited(Exit),
    /// A liveness probe failed `retries` times in a row; the process was stopped.
    Unhealthy(String),
    /// Asked to stop (or killed): do not restart.
    Stopped,
    /// Asked to restart, for this reason.
    Restart(String),
    /// It could not start (already reported).
    Failed,
}

impl<R: Runtime> Actor<R> {
    /// Creates the actor and its handle.
    pub(crate) fn new(
        plan: Arc<ServicePlan>,
        deps: Vec<Dep>,
        shared: Shared<R>,
        mut log: LogFile,
    ) -> (Actor<R>, ActorHandle) {
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
            log: log.clone(),
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
                deferred: VecDeque::new(),
                streak: 0,
                prestart: None,
            },
            handle,
        )
    }

    /// Runs until the dispatcher drops its handle.
    pub(crate) async fn run(mut self) {
        while let Some(c) = self.next_control().await {
            match c {
                Control::Start => {
                    let again = self.status.borrow().started_at.is_some();
                    self.lifecycle(again.then(|| "start requested".to_string()))
                        .await;
                }
                Control::Restart(why, _) => {
                    self.begin(true);
                    self.lifecycle(Some(why)).await;
                }
                Control::Replace(r) => {
                    // Stopped by the user: it keeps the new definition for `stack start`.
                    let stopped = self.status.borrow().state == State::Stopped;
                    let why = r.why.clone().filter(|_| !stopped);
                    self.begin(why.is_some());
                    self.replace(&r).await;
                    if r.why.is_some() {
                        // A rollout step: the dispatcher hears that it is through.
                        self.emit(EventKind::Redefined { why: why.clone() });
                    }
                    if let Some(why) = why {
                        self.lifecycle(Some(why)).await;
                    }
                }
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

    /// The next control: one deferred while stopping, else the next sent (cancel-safe).
    async fn next_control(&mut self) -> Option<Control> {
        Self::next_of(&mut self.deferred, &mut self.rx).await
    }

    async fn next_of(
        deferred: &mut VecDeque<Control>,
        rx: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Option<Control> {
        match deferred.pop_front() {
            Some(c) => Some(c),
            None => rx.recv().await,
        }
    }

    /// Takes the new definition (what was prepared for the old one is discarded).
    async fn replace(&mut self, r: &Replacement) {
        self.discard_prestart().await;
        self.plan = r.plan.clone();
        self.deps = r.deps.clone();
        self.log_matched = match self.plan.health.as_ref().map(|h| &h.probe) {
            Some(ResolvedProbe::Log { pattern }) => regex::Regex::new(pattern)
                .ok()
                .map(|re| self.log.watch_for(re)),
            _ => None,
        };
        let has_health = self.plan.health.is_some();
        self.set(|s| {
            s.health = match (has_health, s.health) {
                (false, _) => Health::None,
                (true, Health::None) => Health::Starting,
                (true, h) => h,
            };
        });
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

    /// Waits for dependencies, then runs (and re-runs) the service until it settles;
    /// `why` it starts, when not by `up`. A restart asked for goes through the
    /// dependencies again (they may be restarting too).
    async fn lifecycle(&mut self, mut why: Option<String>) {
        'life: loop {
            self.set(|s| {
                s.settled = false;
                s.state = State::Created;
                s.reason = None;
                s.start_reason = why.take();
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
                    RunEnd::Restart(reason) => {
                        self.set(|s| s.restarts += 1);
                        self.log.note(&format!("restarting ({reason})"));
                        why = Some(reason);
                        continue 'life;
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
            s.start_reason = Some(format!("restart policy: {reason}"));
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
            c = self.next_control() => match c {
                Some(Control::Stop(_) | Control::Kill) | None => {
                    self.stopped();
                    false
                }
                Some(Control::Start) => true,
                Some(Control::Restart(..)) => {
                    self.begin(false);
                    true
                }
                Some(Control::Replace(r)) => {
                    self.begin(false);
                    self.replace(&r).await;
                    if r.why.is_some() {
                        self.emit(EventKind::Redefined { why: r.why.clone() });
                    }
                    true
                }
            },
        }
    }

    /// A restart or a new definition is taken in (see [`Status::generation`]); with
    /// `rerun`, it is no longer ready from this moment, so nothing waiting on it goes on
    /// with the old run.
    fn begin(&self, rerun: bool) {
        let has_health = self.plan.health.is_some();
        self.set(|s| {
            s.generation += 1;
            if rerun {
                s.state = State::Starting;
                s.settled = false;
                if has_health {
                    s.health = Health::Starting;
                }
            }
        });
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

    /// When the dependencies are not ready yet, lets the runtime prepare what it can
    /// ahead (a built-in's container start, hundreds of milliseconds, overlaps theirs).
    fn prestart(&mut self) {
        let waiting = self
            .deps
            .iter()
            .any(|d| !satisfied(d.condition, &d.status.borrow()));
        if !waiting || self.prestart.is_some() {
            return;
        }
        if let Some(work) = self.shared.runtime.prepare(&self.plan, &self.log) {
            self.prestart = Some(AbortOnDropHandle::new(tokio::spawn(work)));
        }
    }

    /// What was prepared ahead, when there is something and it succeeded.
    async fn take_prestart(&mut self) -> Option<R::Prepared> {
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
        if let Some(prepared) = self.take_prestart().await {
            self.shared.runtime.discard(prepared).await;
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
            let control = tokio::select! {
                _ = changed => None,
                c = Self::next_of(&mut self.deferred, &mut self.rx) => Some(c),
            };
            match control {
                None | Some(Some(Control::Start)) => {}
                Some(Some(Control::Stop(_) | Control::Kill) | None) => return DepOutcome::Stop,
                Some(Some(Control::Restart(..))) => self.begin(false),
                Some(Some(Control::Replace(r))) => {
                    self.begin(false);
                    self.replace(&r).await;
                    if r.why.is_some() {
                        self.emit(EventKind::Redefined { why: r.why.clone() });
                    }
                }
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
        let prepared = self.take_prestart().await;
        let mut svc = match self.start(prepared).await {
            Ok(svc) => svc,
            Err(reason) => {
                self.fail(reason, None);
                return RunEnd::Failed;
            }
        };
        let started = Instant::now();
        let prober = Arc::new(self.shared.runtime.prober(
            &self.plan,
            &svc,
            self.log_matched.clone(),
        ));
        // A container without a health check of ours but with its image's HEALTHCHECK is
        // healthy when the engine says so.
        let image_health = self.plan.health.is_none() && prober.image_health().await.is_some();
        let id = svc.identity();
        self.set(|s| {
            s.state = State::Running;
            s.pid = id.pid;
            s.pid_start = id.start_time;
            s.container_id.clone_from(&id.container_id);
            s.started_at = Some(Timestamp::now());
            if image_health {
                s.health = Health::Starting;
            }
        });
        match (id.pid, &id.container_id) {
            (Some(pid), _) => self.log.note_started(Some(&format!("pid {pid}"))),
            (None, Some(c)) => self
                .log
                .note_started(Some(&format!("container {}", &c[..c.len().min(12)]))),
            _ => self.log.note_started(None),
        }
        self.emit(EventKind::Started {
            pid: id.pid,
            container_id: id.container_id,
        });

        let (htx, mut hrx) = mpsc::unbounded_channel();
        // The checker ends with this run of the service.
        let _checker = match self.plan.health.clone() {
            Some(h) => Some(AbortOnDropHandle::new(tokio::spawn(checks::check_loop(
                h, prober, htx,
            )))),
            None if image_health => Some(AbortOnDropHandle::new(tokio::spawn(
                checks::image_health_loop(prober, htx),
            ))),
            None => None,
        };

        loop {
            tokio::select! {
                exit = svc.wait() => {
                    self.set(|s| {
                        s.exit_code = exit.code;
                        s.pid = None;
                    });
                    return RunEnd::Exited(exit);
                }
                Some(h) = hrx.recv() => {
                    if let Some(end) = self.health_changed(h, started, &mut svc).await {
                        return end;
                    }
                }
                c = self.next_control() => match c {
                    Some(Control::Stop(timeout)) => {
                        self.stop_service(&mut svc, timeout).await;
                        return RunEnd::Stopped;
                    }
                    None => {
                        self.stop_service(&mut svc, None).await;
                        return RunEnd::Stopped;
                    }
                    Some(Control::Kill) => {
                        self.emit(EventKind::Stopping);
                        let exit = svc.kill().await;
                        self.set(|s| s.exit_code = exit.code);
                        return RunEnd::Stopped;
                    }
                    Some(Control::Restart(why, reuse)) => {
                        self.begin(true);
                        if reuse == Reuse::Keep {
                            svc.keep_for_restart();
                        }
                        self.stop_service(&mut svc, None).await;
                        return RunEnd::Restart(why);
                    }
                    Some(Control::Replace(r)) => {
                        let Some(why) = r.why.clone() else {
                            // Nothing that defines it changed: it keeps running.
                            self.begin(false);
                            self.replace(&r).await;
                            continue;
                        };
                        self.begin(true);
                        self.emit(EventKind::Redefined { why: Some(why.clone()) });
                        self.stop_service(&mut svc, None).await;
                        self.replace(&r).await;
                        return RunEnd::Restart(why);
                    }
                    Some(Control::Start) => {}
                },
            }
        }
    }

    /// Applies a health change; the end of the run when a lost liveness stops it.
    async fn health_changed(
        &mut self,
        change: HealthChange,
        started: Instant,
        svc: &mut R::Service,
    ) -> Option<RunEnd> {
        match change {
            HealthChange::Healthy => {
                let was = self.status.borrow().health;
                self.set(|s| s.health = Health::Healthy);
                if was != Health::Healthy {
                    self.emit(EventKind::Healthy {
                        after: started.elapsed(),
                    });
                }
                None
            }
            HealthChange::Unhealthy { reason, starting } => {
                self.set(|s| {
                    s.health = Health::Unhealthy;
                    s.reason = Some(reason.clone());
                });
                self.log.note(&format!("unhealthy: {reason}"));
                self.emit(EventKind::Unhealthy {
                    reason: reason.clone(),
                    starting,
                });
                if starting || self.plan.restart == RestartPolicy::No {
                    return None;
                }
                self.stop_service(svc, None).await;
                Some(RunEnd::Unhealthy(format!("health check failed: {reason}")))
            }
        }
    }

    /// Stops a run: the stop signal, then SIGKILL once `timeout` (else the service's
    /// `stop_timeout`) has passed, or at once when a kill is asked for meanwhile (a second
    /// Ctrl-C). Other controls that come meanwhile wait until it is down.
    async fn stop_service(&mut self, svc: &mut R::Service, timeout: Option<Duration>) {
        self.emit(EventKind::Stopping);
        let signal = self.plan.stop_signal;
        self.log
            .note(&format!("stopping (sending {})", signal.name()));
        svc.signal(signal).await;
        let timeout = timeout.unwrap_or(self.plan.stop_timeout);
        let ended = tokio::select! {
            ended = tokio::time::timeout(timeout, svc.stopped()) => match ended {
                Ok(exit) => Some(exit),
                Err(_) => {
                    self.log.note(&format!(
                        "did not stop within {} of {}; sending SIGKILL",
                        humantime::format_duration(timeout),
                        signal.name()
                    ));
                    None
                }
            },
            () = self.kill_requested() => None,
        };
        let exit = match ended {
            Some(exit) => exit,
            None => svc.kill().await,
        };
        if exit == Exit::UNKNOWN {
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

    /// Completes when a kill is asked for; keeps other controls for later.
    async fn kill_requested(&mut self) {
        loop {
            match self.rx.recv().await {
                Some(Control::Kill) => return,
                Some(other) => self.deferred.push_back(other),
                None => return std::future::pending().await,
            }
        }
    }

    async fn start(&self, prepared: Option<R::Prepared>) -> Result<R::Service, String> {
        let note = |detail: String| {
            self.log.note(&detail);
            self.emit(EventKind::Preparing { detail });
        };
        let start = Start {
            plan: &self.plan,
            log: &self.log,
            note: &note,
            prepared,
        };
        let result = self.shared.runtime.start(start).await;
        result.inspect_err(|reason| self.log.note(reason))
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
