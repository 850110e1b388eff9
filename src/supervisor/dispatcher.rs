//! The supervisor's one event loop. Thin `select!` arms turn inputs (service events,
//! control requests, signals, the deadline) into calls of `handle_event`,
//! `handle_request`, `interrupt`, which decide: report, declare the stack up, fail it, or
//! stop it in reverse dependency order. It also keeps `state.json` current and serves the
//! control socket, in the foreground as when detached.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::service::{Actor, ActorHandle, Control, Dep, Replacement, Reuse, Shared};
use crate::config::WatchAction;
use crate::control::server::{self, Answer, Incoming, Numbered};
use crate::control::{Message, Request};
use crate::events::diff::{self, ChangeKind};
use crate::events::report::PsDocument;
use crate::events::{Event, EventKind, Health, State, Status};
use crate::exit;
use crate::logs::{self, LogFile};
use crate::plan::Plan;
use crate::plan::ServicePlan;
use crate::runtime::Runtime;
use crate::state::{self, ProcessId, ServiceState};

/// What the dispatcher reports to (the terminal UI, or the detached supervisor's log).
pub(crate) trait Observer: Send {
    /// A service event happened.
    fn event(&mut self, event: &Event);
    /// Every service is ready (healthy, running, or done).
    fn ready(&mut self, doc: &PsDocument);
    /// The stack failed to come up: `service` (whose log explains it) and why.
    fn failed(&mut self, service: Option<&str>, message: &str, code: u8);
    /// The stack is being stopped (`kill`: at once).
    fn stopping(&mut self, kill: bool);
}

/// How the supervisor runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Overall deadline for every service to be ready (`--timeout`).
    pub timeout: Option<Duration>,
    /// Stop everything when this process exits (`stack run`'s supervisor).
    pub owner: Option<ProcessId>,
    /// Keep a stack whose services all ended, some of them failed, until `down`, so that
    /// `ps` shows what failed and how (the detached supervisor).
    pub keep_failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Up,
    Stopping,
}

/// Runs `plan` on `runtime` until it is stopped (Ctrl-C, SIGTERM, `stack down`, or every
/// service ended); returns the exit code (SPEC §2). The caller holds the project lock.
pub(crate) async fn run<R: Runtime>(
    plan: Arc<Plan>,
    runtime: R,
    notify: Arc<Notify>,
    observer: &mut dyn Observer,
    opts: Options,
) -> std::io::Result<u8> {
    let dir = plan.state();
    crate::state::private_dir(&dir.logs_dir())?;
    // The control socket, so `ps`, `down`, `restart`… work from any shell.
    let socket = dir.socket();
    let (requests_tx, requests) = mpsc::channel::<Incoming>(64);
    let (broadcast, _) = broadcast::channel::<Numbered>(1024);
    let stop_server = CancellationToken::new();
    let listener = server::bind(&socket)?;
    // The OTLP receiver and the dashboard (SPEC §6) ask the supervisor as the socket does.
    let telemetry_task = match crate::telemetry::bind(&plan).await {
        Some(l) => match crate::telemetry::Hub::new(plan.clone(), requests_tx.clone()) {
            Ok(hub) => Some(tokio::spawn(crate::telemetry::serve(
                l,
                Arc::new(hub),
                broadcast.clone(),
                stop_server.clone(),
            ))),
            Err(err) => {
                tracing::warn!(%err, "cannot keep spans; no telemetry or dashboard");
                None
            }
        },
        None => None,
    };
    let server_task = tokio::spawn(server::serve(
        listener,
        requests_tx,
        broadcast.clone(),
        stop_server.clone(),
    ));
    // Ctrl-C, SIGTERM and SIGHUP: the first stops the stack, the next kills it.
    let (interrupts_tx, interrupts) = mpsc::unbounded_channel();
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let _signals = AbortOnDropHandle::new(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
                _ = sighup.recv() => {}
            }
            if interrupts_tx.send(()).is_err() {
                return;
            }
        }
    }));
    let inputs = Inputs {
        requests,
        interrupts,
        broadcast,
    };
    let code = supervise(plan, Arc::new(runtime), notify, observer, inputs, opts).await;
    stop_server.cancel();
    let _ = server_task.await;
    if let Some(t) = telemetry_task {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(&socket);
    code
}

/// What comes into the supervisor besides its services' events, and where it publishes.
pub(super) struct Inputs {
    /// Control requests (from the socket).
    pub requests: mpsc::Receiver<Incoming>,
    /// Interrupts (Ctrl-C and its kin).
    pub interrupts: mpsc::UnboundedReceiver<()>,
    /// Events and outcomes, for subscribers.
    pub broadcast: broadcast::Sender<Numbered>,
}

/// Starts an actor per service, decides until the stack is down, and cleans up.
pub(super) async fn supervise<R: Runtime>(
    plan: Arc<Plan>,
    runtime: Arc<R>,
    notify: Arc<Notify>,
    observer: &mut dyn Observer,
    inputs: Inputs,
    opts: Options,
) -> std::io::Result<u8> {
    let dir = plan.state();
    crate::state::private_dir(&dir.logs_dir())?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let shared = Shared {
        runtime: runtime.clone(),
        events: events_tx,
    };
    let (handles, tasks) = spawn_actors(&plan, &shared, &notify)?;
    let Inputs {
        mut requests,
        mut interrupts,
        broadcast,
    } = inputs;
    let mut d = Dispatcher::new(
        plan,
        handles,
        broadcast,
        Spawner {
            shared,
            notify,
            tasks,
        },
    );
    d.keep_failed = opts.keep_failed;
    d.write_state();
    for h in &d.handles {
        let _ = h.tx.send(Control::Start);
    }
    // Actors end when their handles are dropped; the events channel stays open with the
    // spawner's sender, and the loop ends on every service being down.

    let deadline = opts.timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        if d.phase == Phase::Stopping && d.all_down() {
            break;
        }
        tokio::select! {
            Some(ev) = events.recv() => d.handle_event(ev, observer),
            Some(incoming) = requests.recv() => d.handle_request(incoming, observer),
            Some(()) = interrupts.recv() => d.interrupt(observer),
            () = owner_gone(opts.owner), if d.phase != Phase::Stopping => {
                tracing::warn!("the owning process exited; stopping");
                d.code.get_or_insert(exit::INTERRUPTED);
                d.begin_stop(observer);
            }
            () = sleep_until(deadline), if d.phase == Phase::Starting => {
                d.timed_out(observer, opts.timeout.unwrap_or_default());
            }
        }
    }
    // Every actor is settled: dropping the handles ends them. What the runtime still
    // does in the background ends before `down` is answered, so nothing is left behind.
    runtime.finish(&d.plan.project).await;
    let code = d.code.unwrap_or(exit::OK);
    for w in d.down_waiters.drain(..) {
        let _ = w.send(Message::Ok.into());
    }
    for (_, w) in d.stop_waiters.drain(..) {
        let _ = w.send(Message::Ok.into());
    }
    let _ = std::fs::remove_file(dir.state_file());
    let mut tasks = d.into_tasks();
    while tasks.join_next().await.is_some() {}
    Ok(code)
}

/// An actor per service, in dependency order, each given its dependencies' statuses.
fn spawn_actors<R: Runtime>(
    plan: &Plan,
    shared: &Shared<R>,
    notify: &Arc<Notify>,
) -> std::io::Result<(Vec<ActorHandle>, JoinSet<()>)> {
    let dir = plan.state();
    let mut tasks = JoinSet::new();
    let mut handles: Vec<ActorHandle> = Vec::new();
    for svc in &plan.services {
        let log = LogFile::create(&logs::path(&dir.dir, &svc.name), notify.clone())?;
        let handle = spawn_actor(svc, log, &handles, shared, &mut tasks);
        handles.push(handle);
    }
    Ok((handles, tasks))
}

/// One actor, its dependencies found among `handles`.
fn spawn_actor<R: Runtime>(
    svc: &ServicePlan,
    log: LogFile,
    handles: &[ActorHandle],
    shared: &Shared<R>,
    tasks: &mut JoinSet<()>,
) -> ActorHandle {
    let deps = deps_of(svc, handles);
    let (actor, handle) = Actor::new(Arc::new(svc.clone()), deps, shared.clone(), log);
    tasks.spawn(actor.run());
    handle
}

/// What `svc` depends on, as the actors in `handles` publish it.
fn deps_of(svc: &ServicePlan, handles: &[ActorHandle]) -> Vec<Dep> {
    svc.depends_on
        .iter()
        .filter_map(|(name, condition)| {
            handles.iter().find(|h| &h.name == name).map(|h| Dep {
                name: name.clone(),
                condition: *condition,
                status: h.status.clone(),
            })
        })
        .collect()
}

/// What the dispatcher needs to start actors after the first ones (reconcile).
struct Spawner<R> {
    shared: Shared<R>,
    notify: Arc<Notify>,
    tasks: JoinSet<()>,
}

/// One step of a rollout (a reconcile, a watched change): `control` goes to `service`
/// once none of `after` is still in the rollout.
struct Step {
    service: String,
    control: Control,
    after: Vec<String>,
}

/// A request answered once these services are through their steps.
struct RolloutWaiter {
    services: Vec<String>,
    reply: oneshot::Sender<Answer>,
    /// The answer, `failed` filled in at the end.
    answer: Message,
}

/// Completes when `owner` has exited (never, without an owner).
async fn owner_gone(owner: Option<ProcessId>) {
    let Some(owner) = owner else {
        return std::future::pending().await;
    };
    while owner.alive() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

struct Dispatcher<R> {
    plan: Arc<Plan>,
    handles: Vec<ActorHandle>,
    phase: Phase,
    code: Option<u8>,
    stop_sent: HashSet<String>,
    killing: bool,
    /// `down --timeout`: overrides every service's stop timeout.
    stop_timeout: Option<Duration>,
    state: state::State,
    broadcast: broadcast::Sender<Numbered>,
    /// Everything broadcast so far, replayed to late subscribers (`up -d` connects after
    /// the first services started).
    history: Vec<Message>,
    /// The number of the last broadcast message.
    seq: u64,
    /// `down` requests, answered once everything is down.
    down_waiters: Vec<oneshot::Sender<Answer>>,
    /// `stop SERVICE…` requests, answered once those are down.
    stop_waiters: Vec<(Vec<String>, oneshot::Sender<Answer>)>,
    /// See [`Options::keep_failed`].
    keep_failed: bool,
    spawner: Spawner<R>,
    /// Steps not sent yet, in order.
    rollout: Vec<Step>,
    /// Steps sent: the service and the generation that means it has taken the step in.
    in_flight: Vec<(String, u64)>,
    /// Services removed from the plan, stopping; dropped once down.
    retiring: Vec<String>,
    rollout_waiters: Vec<RolloutWaiter>,
}

/// Messages kept for late subscribers.
const HISTORY: usize = 10_000;

impl<R: Runtime> Dispatcher<R> {
    fn new(
        plan: Arc<Plan>,
        handles: Vec<ActorHandle>,
        broadcast: broadcast::Sender<Numbered>,
        spawner: Spawner<R>,
    ) -> Dispatcher<R> {
        Dispatcher {
            state: state::State {
                project: plan.project.clone(),
                file: plan.file.clone(),
                supervisor: ProcessId::current(),
                started_at: Timestamp::now(),
                services: BTreeMap::new(),
            },
            plan,
            handles,
            phase: Phase::Starting,
            code: None,
            stop_sent: HashSet::new(),
            killing: false,
            stop_timeout: None,
            broadcast,
            history: Vec::new(),
            seq: 0,
            down_waiters: Vec::new(),
            stop_waiters: Vec::new(),
            keep_failed: false,
            spawner,
            rollout: Vec::new(),
            in_flight: Vec::new(),
            retiring: Vec::new(),
            rollout_waiters: Vec::new(),
        }
    }

    /// The actors' tasks, once the dispatcher is done (its handles dropped end them).
    fn into_tasks(self) -> JoinSet<()> {
        self.spawner.tasks
    }

    fn statuses(&self) -> Vec<(String, Status)> {
        self.handles
            .iter()
            .map(|h| (h.name.clone(), h.status.borrow().clone()))
            .collect()
    }

    fn doc(&self) -> PsDocument {
        PsDocument::new(
            &self.plan,
            Some(self.state.supervisor.pid),
            &self.statuses(),
        )
    }

    fn all_down(&self) -> bool {
        self.handles.iter().all(|h| h.status.borrow().is_down())
    }

    fn is_down(&self, name: &str) -> bool {
        self.handles
            .iter()
            .find(|h| h.name == name)
            .is_none_or(|h| h.status.borrow().is_down())
    }

    /// Sends `m` to subscribers and keeps it for late ones.
    fn publish(&mut self, m: Message) {
        self.seq += 1;
        if self.history.len() < HISTORY {
            self.history.push(m.clone());
        }
        let _ = self.broadcast.send((self.seq, m));
    }

    fn handle_event(&mut self, ev: Event, observer: &mut dyn Observer) {
        observer.event(&ev);
        self.publish(Message::Event(ev.clone()));
        if matches!(
            ev.kind,
            EventKind::Started { .. }
                | EventKind::Exited { .. }
                | EventKind::Stopped
                | EventKind::Failed { .. }
        ) {
            self.write_state();
        }
        let statuses = self.statuses();
        match self.phase {
            Phase::Starting => {
                let status = statuses
                    .iter()
                    .find(|(n, _)| n == &ev.service)
                    .map(|(_, s)| s);
                if let Some((code, message, blame)) = startup_failure(&ev, status) {
                    observer.failed(Some(blame), &message, code);
                    self.publish(Message::Failed {
                        service: Some(blame.to_string()),
                        message,
                        code,
                    });
                    self.code = Some(code);
                    self.begin_stop(observer);
                } else if statuses.iter().all(|(_, s)| is_ready(s)) {
                    self.phase = Phase::Up;
                    let doc = self.doc();
                    observer.ready(&doc);
                    self.publish(Message::Ready(doc));
                }
            }
            Phase::Up => self.advance_rollout(),
            Phase::Stopping => self.advance_stop(),
        }
        if self.phase == Phase::Up {
            // Every service ended on its own (one-shot jobs): the run is over. Services
            // stopped with `stack stop` keep the supervisor, for `stack start`; so do
            // failures, when asked to.
            let statuses = self.statuses();
            let ended = statuses
                .iter()
                .all(|(_, s)| s.is_down() && s.state != State::Stopped);
            let failed = statuses.iter().any(|(_, s)| s.state == State::Failed);
            if ended && !(failed && self.keep_failed) {
                self.code = Some(if failed {
                    exit::SERVICE_FAILED
                } else {
                    exit::OK
                });
                self.phase = Phase::Stopping;
            }
        }
        self.answer_stop_waiters();
    }

    fn handle_request(&mut self, incoming: Incoming, observer: &mut dyn Observer) {
        let Incoming { request, reply } = incoming;
        let names = |services: &[String]| -> Result<(), Answer> {
            match services.iter().find(|s| self.plan.service(s).is_none()) {
                Some(bad) => Err(Message::Error {
                    message: format!("no service `{bad}` in this stack"),
                }
                .into()),
                None => Ok(()),
            }
        };
        match request {
            Request::Ps => {
                let _ = reply.send(Message::Ps(self.doc()).into());
            }
            Request::Subscribe => {
                let mut messages = vec![Message::Ps(self.doc())];
                messages.extend(self.history.iter().cloned());
                let _ = reply.send(Answer {
                    messages,
                    seq: self.seq,
                });
            }
            Request::Down { timeout_ms } => {
                self.stop_timeout = timeout_ms.map(Duration::from_millis);
                self.code.get_or_insert(exit::OK);
                self.down_waiters.push(reply);
                self.begin_stop(observer);
            }
            Request::Stop { services } => {
                if let Err(e) = names(&services) {
                    let _ = reply.send(e);
                    return;
                }
                self.send(&services, Control::Stop(None));
                self.stop_waiters.push((services, reply));
                self.answer_stop_waiters();
            }
            Request::Start { services } | Request::Restart { services }
                if self.phase == Phase::Stopping =>
            {
                let _ = names(&services);
                let _ = reply.send(
                    Message::Error {
                        message: "the stack is stopping".into(),
                    }
                    .into(),
                );
            }
            Request::Start { services } => {
                if let Err(e) = names(&services) {
                    let _ = reply.send(e);
                    return;
                }
                let idle: Vec<String> = services.into_iter().filter(|s| self.is_down(s)).collect();
                self.send(&idle, Control::Start);
                let _ = reply.send(Message::Ok.into());
            }
            Request::Restart { services } => {
                if let Err(e) = names(&services) {
                    let _ = reply.send(e);
                    return;
                }
                self.send(
                    &services,
                    Control::Restart("restart requested".into(), Reuse::Renew),
                );
                let _ = reply.send(Message::Ok.into());
            }
            Request::Reconcile { .. } | Request::Watch { .. } if self.phase != Phase::Up => {
                let message = match self.phase {
                    Phase::Starting => "the stack is still starting; try again once it is up",
                    _ => "the stack is stopping",
                };
                let _ = reply.send(
                    Message::Error {
                        message: message.into(),
                    }
                    .into(),
                );
            }
            Request::Reconcile {
                plan,
                dry_run,
                force,
                keep,
            } => self.reconcile(*plan, dry_run, force, &keep, reply),
            Request::Watch {
                service,
                action,
                files,
                cascade,
            } => {
                if let Err(e) = names(std::slice::from_ref(&service)) {
                    let _ = reply.send(e);
                    return;
                }
                self.watched(&service, action, files, cascade, observer, reply);
            }
        }
    }

    fn send(&self, services: &[String], control: Control) {
        for h in self.handles.iter().filter(|h| services.contains(&h.name)) {
            let _ = h.tx.send(control.clone());
        }
    }

    /// Applies `new` (SPEC §3.1): added services start, removed ones stop, changed ones
    /// restart with their new definition after what they depend on, the rest keep
    /// running (taking in what changed around them for their next start).
    fn reconcile(
        &mut self,
        mut new: Plan,
        dry_run: bool,
        force: bool,
        keep: &[String],
        reply: oneshot::Sender<Answer>,
    ) {
        let changes = diff::diff(&self.plan, &new, keep, force);
        let refused = new
            .services
            .iter()
            .filter(|s| self.plan.service(&s.name).is_none())
            .find_map(|s| self.spawner.shared.runtime.refuses(s));
        if let Some(message) = refused {
            let _ = reply.send(Message::Error { message }.into());
            return;
        }
        if dry_run {
            let answer = Message::Reconciled {
                changes,
                failed: Vec::new(),
            };
            let _ = reply.send(answer.into());
            return;
        }
        // The added services' logs first: a failure there changes nothing.
        let mut new_logs = HashMap::new();
        for svc in new
            .services
            .iter()
            .filter(|s| self.plan.service(&s.name).is_none())
        {
            let path = logs::path(&new.state_dir, &svc.name);
            match LogFile::create(&path, self.spawner.notify.clone()) {
                Ok(log) => {
                    new_logs.insert(svc.name.clone(), log);
                }
                Err(e) => {
                    let message = format!("cannot create `{}`: {e}", path.display());
                    let _ = reply.send(Message::Error { message }.into());
                    return;
                }
            }
        }
        // The merged plan: the new one in its order, then the services it does not have:
        // removed ones, which nothing depends on any more, and those `up SERVICE…` leaves
        // alone, which may depend on the new plan's (so they stop before them).
        for old in &self.plan.services {
            if new.service(&old.name).is_none() {
                new.services.push(old.clone());
            }
        }
        let restarting: Vec<&str> = changes
            .iter()
            .filter(|c| c.reason().is_some())
            .map(|c| c.service.as_str())
            .collect();
        let mut handles: Vec<ActorHandle> = Vec::new();
        let mut waited = Vec::new();
        for svc in &new.services {
            let Some(change) = changes.iter().find(|c| c.service == svc.name) else {
                continue;
            };
            let existing = self.handles.iter().find(|h| h.name == svc.name).cloned();
            let handle = match (existing, new_logs.remove(&svc.name)) {
                (Some(h), _) => h,
                (None, Some(log)) => spawn_actor(
                    svc,
                    log,
                    &handles,
                    &self.spawner.shared,
                    &mut self.spawner.tasks,
                ),
                (None, None) => continue,
            };
            let after: Vec<String> = svc
                .depends_on
                .iter()
                .filter(|(d, _)| restarting.contains(&d.as_str()))
                .map(|(d, _)| d.clone())
                .collect();
            let replacement = |why: Option<String>| {
                Control::Replace(Arc::new(Replacement {
                    plan: Arc::new(svc.clone()),
                    deps: deps_of(svc, &handles),
                    why,
                }))
            };
            match change.kind {
                ChangeKind::Added => {
                    self.rollout.push(Step {
                        service: svc.name.clone(),
                        control: Control::Restart(
                            change.reason().unwrap_or_default(),
                            Reuse::Renew,
                        ),
                        after,
                    });
                    waited.push(svc.name.clone());
                }
                ChangeKind::Changed | ChangeKind::Recreated => {
                    self.rollout.push(Step {
                        service: svc.name.clone(),
                        control: replacement(change.reason()),
                        after,
                    });
                    waited.push(svc.name.clone());
                }
                ChangeKind::Removed => {
                    let _ = handle.tx.send(Control::Stop(None));
                    self.retiring.push(svc.name.clone());
                    waited.push(svc.name.clone());
                }
                ChangeKind::Unchanged => {
                    // Its definition is the same; what it would be started with may not
                    // be (another service's address is new): that applies next start.
                    let same = self.plan.service(&svc.name).is_some_and(|old| {
                        serde_json::to_value(old).ok() == serde_json::to_value(svc).ok()
                    });
                    if !same {
                        let _ = handle.tx.send(replacement(None));
                    }
                }
            }
            handles.push(handle);
        }
        self.handles = handles;
        // The receiver and dashboard keep serving where they are.
        let mut new = new;
        new.telemetry.clone_from(&self.plan.telemetry);
        self.plan = Arc::new(new);
        self.write_state();
        self.rollout_waiters.push(RolloutWaiter {
            services: waited,
            reply,
            answer: Message::Reconciled {
                changes,
                failed: Vec::new(),
            },
        });
        self.advance_rollout();
    }

    /// Files `service` watches changed: says so (the log and the UI), and restarts it
    /// (and, with `cascade`, what depends on it, after it) when the action does.
    fn watched(
        &mut self,
        service: &str,
        action: WatchAction,
        files: Vec<String>,
        cascade: bool,
        observer: &mut dyn Observer,
        reply: oneshot::Sender<Answer>,
    ) {
        let summary = crate::events::files_summary(&files);
        let event = Event {
            service: service.to_string(),
            at: Timestamp::now(),
            kind: EventKind::Watch { action, files },
        };
        observer.event(&event);
        self.publish(Message::Event(event));
        if action == WatchAction::Sync {
            if let Some(h) = self.handles.iter().find(|h| h.name == service) {
                h.log.note(&format!("synced ({summary} changed)"));
            }
            let _ = reply.send(Message::Ok.into());
            return;
        }
        let mut set = vec![service.to_string()];
        if cascade {
            // Every service that depends on one in the set, in start order.
            for s in &self.plan.services {
                if s.depends_on.iter().any(|(d, _)| set.contains(d)) && !set.contains(&s.name) {
                    set.push(s.name.clone());
                }
            }
        }
        for name in &set {
            let why = if name == service {
                format!("watch: {summary}")
            } else {
                format!("watch: {summary} (cascade from {service})")
            };
            let after = self
                .plan
                .service(name)
                .map(|s| {
                    s.depends_on
                        .iter()
                        .filter(|(d, _)| set.contains(d))
                        .map(|(d, _)| d.clone())
                        .collect()
                })
                .unwrap_or_default();
            // `sync+restart` restarts the service in its container, with what was synced.
            let reuse = if action == WatchAction::SyncRestart && name == service {
                Reuse::Keep
            } else {
                Reuse::Renew
            };
            self.rollout.push(Step {
                service: name.clone(),
                control: Control::Restart(why, reuse),
                after,
            });
        }
        self.rollout_waiters.push(RolloutWaiter {
            services: set,
            reply,
            answer: Message::Ok,
        });
        self.advance_rollout();
    }

    /// Sends the steps whose dependencies are through theirs; drops retired services
    /// once down; answers the requests whose services are all through.
    fn advance_rollout(&mut self) {
        let statuses: HashMap<String, Status> = self.statuses().into_iter().collect();
        self.in_flight.retain(|(name, generation)| {
            statuses
                .get(name)
                .is_some_and(|s| s.generation < *generation || !through(s))
        });
        let busy: HashSet<String> = self
            .in_flight
            .iter()
            .map(|(n, _)| n.clone())
            .chain(self.rollout.iter().map(|s| s.service.clone()))
            .collect();
        let mut i = 0;
        while i < self.rollout.len() {
            if self.rollout[i].after.iter().any(|a| busy.contains(a)) {
                i += 1;
                continue;
            }
            let step = self.rollout.remove(i);
            let generation = statuses.get(&step.service).map_or(0, |s| s.generation) + 1;
            self.send(std::slice::from_ref(&step.service), step.control);
            self.in_flight.push((step.service, generation));
        }
        let retired: Vec<String> = self
            .retiring
            .iter()
            .filter(|n| self.is_down(n))
            .cloned()
            .collect();
        if !retired.is_empty() {
            self.retiring.retain(|n| !retired.contains(n));
            self.handles.retain(|h| !retired.contains(&h.name));
            let mut plan = (*self.plan).clone();
            plan.services.retain(|s| !retired.contains(&s.name));
            self.plan = Arc::new(plan);
            self.write_state();
        }
        let pending = |n: &String| {
            self.rollout.iter().any(|s| &s.service == n)
                || self.in_flight.iter().any(|(f, _)| f == n)
                || self.retiring.contains(n)
        };
        let mut i = 0;
        while i < self.rollout_waiters.len() {
            if self.rollout_waiters[i].services.iter().any(pending) {
                i += 1;
                continue;
            }
            let mut w = self.rollout_waiters.swap_remove(i);
            let failed: Vec<String> = w
                .services
                .iter()
                // Removed services are gone, as asked.
                .filter(|n| self.plan.service(n).is_some())
                .filter(|n| statuses.get(*n).is_some_and(|s| !is_ready(s)))
                .cloned()
                .collect();
            if let Message::Reconciled { failed: f, .. } = &mut w.answer {
                *f = failed;
            } else if !failed.is_empty() {
                w.answer = Message::Error {
                    message: format!("{} did not come back", failed.join(", ")),
                };
            }
            let _ = w.reply.send(w.answer.into());
        }
    }

    fn answer_stop_waiters(&mut self) {
        let mut i = 0;
        while i < self.stop_waiters.len() {
            if self.stop_waiters[i].0.iter().all(|s| self.is_down(s)) {
                let (_, w) = self.stop_waiters.swap_remove(i);
                let _ = w.send(Message::Ok.into());
            } else {
                i += 1;
            }
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
            .map(|(n, _)| n)
            .collect();
        let message = format!(
            "not healthy within {}: {}",
            humantime::format_duration(timeout),
            waiting
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let blame = waiting.first().map(String::as_str);
        observer.failed(blame, &message, exit::HEALTH_TIMEOUT);
        self.publish(Message::Failed {
            service: blame.map(str::to_string),
            message,
            code: exit::HEALTH_TIMEOUT,
        });
        self.code = Some(exit::HEALTH_TIMEOUT);
        self.begin_stop(observer);
    }

    fn begin_stop(&mut self, observer: &mut dyn Observer) {
        if self.phase != Phase::Stopping {
            self.phase = Phase::Stopping;
            observer.stopping(false);
            self.publish(Message::Stopping);
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
            self.send(
                std::slice::from_ref(&name),
                Control::Stop(self.stop_timeout),
            );
            self.stop_sent.insert(name);
        }
    }

    /// Rewrites `state.json` from the current statuses.
    fn write_state(&mut self) {
        self.state.services = self
            .plan
            .services
            .iter()
            .map(|svc| {
                let status = self
                    .handles
                    .iter()
                    .find(|h| h.name == svc.name)
                    .map(|h| h.status.borrow().clone());
                let process = status.as_ref().and_then(|s| {
                    s.pid.map(|pid| ProcessId {
                        pid,
                        start_time: s.pid_start,
                    })
                });
                (
                    svc.name.clone(),
                    ServiceState {
                        runtime: Some(svc.runtime),
                        process,
                        container_id: status.and_then(|s| s.container_id),
                        ports: svc
                            .ports
                            .iter()
                            .map(|p| (p.name.clone(), (p.host, p.container)))
                            .collect(),
                    },
                )
            })
            .collect();
        if let Err(err) = self.state.write(&self.plan.state()) {
            tracing::warn!(%err, "cannot write state.json");
        }
    }
}

/// A service is through a rollout step: ready, settled (failed, done, stopped), or found
/// unhealthy while starting.
fn through(s: &Status) -> bool {
    is_ready(s) || s.settled || (s.state == State::Running && s.health == Health::Unhealthy)
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
