//! The supervisor's one event loop. Thin `select!` arms turn inputs (service events,
//! signals, the deadline) into calls of `handle_event`/`interrupt`, which decide: report,
//! declare the stack up, fail it, or stop it in reverse dependency order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use super::events::{Event, EventKind, Health, State, Status};
use super::service::{Actor, ActorHandle, Control, Dep, Shared};
use crate::error::exit;
use crate::logs::{self, LogFile};
use crate::plan::Plan;
use crate::runtime::unix::Spawner;

/// What the dispatcher reports to (the UI, or a detached parent).
pub trait Observer: Send {
    /// A service event happened; `statuses` is every service's status after it.
    fn event(&mut self, event: &Event, statuses: &[(String, Status)]);
    /// Every service is ready (healthy, running, or done).
    fn ready(&mut self, statuses: &[(String, Status)]);
    /// The stack failed to come up: `service` (if one is to blame) and why.
    fn failed(&mut self, service: Option<&str>, message: &str, code: u8);
    /// The stack is being stopped.
    fn stopping(&mut self, kill: bool);
}

/// How long to wait for health before giving up (`--timeout`), if at all.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Overall deadline for every service to be ready.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Up,
    Stopping,
}

/// Runs `plan` until it is stopped; returns the exit code (SPEC §2).
pub async fn run(
    plan: Arc<Plan>,
    notify: Arc<Notify>,
    observer: &mut dyn Observer,
    opts: Options,
) -> std::io::Result<u8> {
    let state_dir = plan.state_dir();
    std::fs::create_dir_all(state_dir.join("logs"))?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let shared = Shared {
        spawner: Spawner::start()?,
        http: crate::health::http_client(),
        events: events_tx,
        exe: std::env::current_exe()?,
    };
    let mut tasks = JoinSet::new();
    let mut handles: Vec<ActorHandle> = Vec::new();
    for svc in &plan.services {
        let log = LogFile::create(&logs::path(&state_dir, &svc.name), notify.clone())?;
        let deps = svc
            .depends_on
            .iter()
            .filter_map(|(name, condition)| {
                handles.iter().find(|h| &h.name == name).map(|h| Dep {
                    name: name.clone(),
                    condition: *condition,
                    status: h.status.clone(),
                })
            })
            .collect();
        let (actor, handle) = Actor::new(Arc::new(svc.clone()), deps, shared.clone(), log);
        tasks.spawn(actor.run());
        handles.push(handle);
    }
    drop(shared);
    for h in &handles {
        let _ = h.tx.send(Control::Start);
    }

    let mut d = Dispatcher {
        plan,
        handles,
        phase: Phase::Starting,
        code: None,
        stop_sent: HashSet::new(),
        killing: false,
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let deadline = opts.timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        if d.all_down() && d.phase != Phase::Starting {
            break;
        }
        tokio::select! {
            Some(ev) = events.recv() => d.handle_event(ev, observer),
            _ = sigint.recv() => d.interrupt(observer),
            _ = sigterm.recv() => d.interrupt(observer),
            _ = sighup.recv() => d.interrupt(observer),
            () = sleep_until(deadline), if d.phase == Phase::Starting => d.timed_out(observer, opts.timeout.unwrap_or_default()),
        }
    }
    // Every actor is settled: dropping the handles ends them.
    drop(d.handles);
    while tasks.join_next().await.is_some() {}
    Ok(d.code.unwrap_or(exit::OK))
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

struct Dispatcher {
    plan: Arc<Plan>,
    handles: Vec<ActorHandle>,
    phase: Phase,
    code: Option<u8>,
    stop_sent: HashSet<String>,
    killing: bool,
}

impl Dispatcher {
    fn statuses(&self) -> Vec<(String, Status)> {
        self.handles
            .iter()
            .map(|h| (h.name.clone(), h.status.borrow().clone()))
            .collect()
    }

    fn all_down(&self) -> bool {
        self.handles.iter().all(|h| h.status.borrow().is_down())
    }

    fn handle_event(&mut self, ev: Event, observer: &mut dyn Observer) {
        let statuses = self.statuses();
        observer.event(&ev, &statuses);
        match self.phase {
            Phase::Starting => {
                let status = statuses
                    .iter()
                    .find(|(n, _)| n == &ev.service)
                    .map(|(_, s)| s);
                if let Some((code, message, blame)) = startup_failure(&ev, status) {
                    observer.failed(Some(blame), &message, code);
                    self.code = Some(code);
                    self.begin_stop(observer);
                } else if statuses.iter().all(|(_, s)| is_ready(s)) {
                    self.phase = Phase::Up;
                    observer.ready(&statuses);
                }
            }
            Phase::Up => {
                if self.all_down() {
                    // Everything ended on its own (one-shot jobs): the run is over.
                    let failed = statuses.iter().any(|(_, s)| s.state == State::Failed);
                    self.code = Some(if failed {
                        exit::SERVICE_FAILED
                    } else {
                        exit::OK
                    });
                    self.phase = Phase::Stopping;
                }
            }
            Phase::Stopping => self.advance_stop(),
        }
    }

    fn interrupt(&mut self, observer: &mut dyn Observer) {
        if self.phase == Phase::Stopping {
            if !self.killing {
                self.killing = true;
                observer.stopping(true);
                for h in &self.handles {
                    let _ = h.tx.send(Control::Kill);
                }
            }
            return;
        }
        self.code.get_or_insert(exit::INTERRUPTED);
        self.begin_stop(observer);
    }

    fn timed_out(&mut self, observer: &mut dyn Observer, timeout: Duration) {
        let waiting: Vec<String> = self
            .statuses()
            .into_iter()
            .filter(|(_, s)| !is_ready(s))
            .map(|(n, _)| format!("`{n}`"))
            .collect();
        let blame = self
            .statuses()
            .into_iter()
            .find(|(_, s)| !is_ready(s))
            .map(|(n, _)| n);
        let message = format!(
            "not healthy within {}: {}",
            humantime::format_duration(timeout),
            waiting.join(", ")
        );
        observer.failed(blame.as_deref(), &message, exit::HEALTH_TIMEOUT);
        self.code = Some(exit::HEALTH_TIMEOUT);
        self.begin_stop(observer);
    }

    fn begin_stop(&mut self, observer: &mut dyn Observer) {
        if self.phase != Phase::Stopping {
            self.phase = Phase::Stopping;
            observer.stopping(false);
        }
        self.advance_stop();
    }

    /// Stops every service none of whose dependents still runs (reverse dependency order).
    fn advance_stop(&mut self) {
        let down: HashMap<&str, bool> = self
            .handles
            .iter()
            .map(|h| (h.name.as_str(), h.status.borrow().is_down()))
            .collect();
        let mut to_stop = Vec::new();
        for h in self.handles.iter().rev() {
            if self.stop_sent.contains(&h.name) {
                continue;
            }
            let dependents_down = self.plan.services.iter().all(|s| {
                !s.depends_on.iter().any(|(d, _)| d == &h.name)
                    || down.get(s.name.as_str()).copied().unwrap_or(true)
            });
            if dependents_down {
                to_stop.push(h.name.clone());
            }
        }
        for name in to_stop {
            if let Some(h) = self.handles.iter().find(|h| h.name == name) {
                let _ = h.tx.send(Control::Stop);
            }
            self.stop_sent.insert(name);
        }
    }
}

/// A service is ready: healthy (with a check), running (without), or done (exit 0).
fn is_ready(s: &Status) -> bool {
    match s.state {
        State::Running => s.health == Health::Healthy || s.health == Health::None,
        State::Exited => s.settled && s.exit_code == Some(0),
        _ => false,
    }
}

/// Whether `ev` means the stack cannot come up: the exit code, the message, and the
/// service whose log explains it (the failed dependency, when that is the cause).
fn startup_failure<'a>(ev: &'a Event, status: Option<&Status>) -> Option<(u8, String, &'a str)> {
    match &ev.kind {
        // A crash with no restart to come: report it at once, before its dependents do.
        EventKind::Exited { .. } => status
            .filter(|s| s.state == State::Failed && s.settled)
            .map(|s| {
                (
                    exit::SERVICE_FAILED,
                    format!(
                        "`{}` failed: {}",
                        ev.service,
                        s.reason.as_deref().unwrap_or("exited")
                    ),
                    ev.service.as_str(),
                )
            }),
        EventKind::Failed { reason, dependency } => Some((
            exit::SERVICE_FAILED,
            format!("`{}` failed: {reason}", ev.service),
            dependency.as_deref().unwrap_or(&ev.service),
        )),
        EventKind::Unhealthy {
            reason,
            starting: true,
        } => Some((
            exit::HEALTH_TIMEOUT,
            format!("`{}` did not become healthy: {reason}", ev.service),
            &ev.service,
        )),
        _ => None,
    }
}
