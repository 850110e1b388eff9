//! The supervisor's decisions, against a fake runtime whose starts, exits, signals and
//! health each test scripts, on tokio's paused clock: what starts when, who is blamed,
//! how restarts back off, in which order the stack stops and when a kill comes. Every
//! call the supervisor makes on the runtime lands in a journal with its (virtual) time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::dispatcher::{Inputs, Observer, Options, supervise};
use crate::config::{Condition, HealthCheck, Probe, RestartPolicy, RuntimeKind, StopSignal};
use crate::control::server::Incoming;
use crate::control::{Message, Request};
use crate::events::Event;
use crate::events::report::PsDocument;
use crate::exit;
use crate::logs::LogFile;
use crate::plan::{Launch, Plan, ResolvedHealth, ResolvedProbe, ServicePlan};
use crate::runtime::{ContainerHealth, Exit, Identity, Prober, Runtime, Service, Start};

/// What one run of a service does.
#[derive(Debug, Clone)]
struct Run {
    /// `Err`: the start fails with this reason.
    start: Result<(), String>,
    /// Ends by itself this long after its start, with this exit code.
    exits: Option<(Duration, i32)>,
    /// Ends this long after the stop signal; `None`: ignores it.
    on_signal: Option<Duration>,
    /// Probes pass from this long after the start (`None`: never).
    healthy_from: Option<Duration>,
    /// …until this long after the start.
    healthy_until: Option<Duration>,
}

impl Run {
    /// Runs until stopped, ends 10 ms after the stop signal, healthy at once.
    fn forever() -> Run {
        Run {
            start: Ok(()),
            exits: None,
            on_signal: Some(ms(10)),
            healthy_from: Some(Duration::ZERO),
            healthy_until: None,
        }
    }

    fn exits(after: Duration, code: i32) -> Run {
        Run {
            exits: Some((after, code)),
            ..Run::forever()
        }
    }

    fn fails_to_start(reason: &str) -> Run {
        Run {
            start: Err(reason.into()),
            ..Run::forever()
        }
    }

    fn healthy_from(self, from: Duration) -> Run {
        Run {
            healthy_from: Some(from),
            ..self
        }
    }

    fn healthy_until(self, until: Duration) -> Run {
        Run {
            healthy_until: Some(until),
            ..self
        }
    }

    fn ignores_signal(self) -> Run {
        Run {
            on_signal: None,
            ..self
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The journal: what the supervisor asked of the runtime, with the virtual time.
#[derive(Debug, Clone)]
struct Journal {
    epoch: Instant,
    lines: Arc<Mutex<Vec<(Duration, String)>>>,
}

impl Journal {
    fn write(&self, what: String) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push((self.epoch.elapsed(), what));
        }
    }

    /// Every line as `"<ms> <what>"`.
    fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| {
                l.iter()
                    .map(|(t, w)| format!("{} {w}", t.as_millis()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The lines whose text starts with `prefix`, as above.
    fn matching(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| {
                l.split_once(' ')
                    .is_some_and(|(_, w)| w.starts_with(prefix))
            })
            .collect()
    }
}

/// A runtime whose services do what their scripts say.
#[derive(Debug)]
struct Fake {
    scripts: Mutex<HashMap<String, VecDeque<Run>>>,
    journal: Journal,
}

impl Fake {
    fn new(scripts: &[(&str, Vec<Run>)]) -> Fake {
        Fake {
            scripts: Mutex::new(
                scripts
                    .iter()
                    .map(|(n, runs)| (n.to_string(), runs.iter().cloned().collect()))
                    .collect(),
            ),
            journal: Journal {
                epoch: Instant::now(),
                lines: Arc::default(),
            },
        }
    }

    /// The next run of `name`: its script's next, the last one again, else
    /// [`Run::forever`].
    fn next_run(&self, name: &str) -> Run {
        let Ok(mut scripts) = self.scripts.lock() else {
            return Run::forever();
        };
        match scripts.get_mut(name) {
            Some(runs) if runs.len() > 1 => runs.pop_front().unwrap_or_else(Run::forever),
            Some(runs) => runs.front().cloned().unwrap_or_else(Run::forever),
            None => Run::forever(),
        }
    }
}

impl Runtime for Fake {
    type Service = FakeService;
    type Prepared = ();
    type Prober = FakeProber;

    fn prepare(
        &self,
        _plan: &Arc<ServicePlan>,
        _log: &LogFile,
    ) -> Option<impl Future<Output = Result<(), String>> + Send + 'static> {
        None::<std::future::Ready<Result<(), String>>>
    }

    async fn discard(&self, (): ()) {}

    async fn start(&self, start: Start<'_, ()>) -> Result<FakeService, String> {
        let name = start.plan.name.clone();
        let run = self.next_run(&name);
        self.journal.write(format!("start {name}"));
        run.start.clone()?;
        let now = Instant::now();
        Ok(FakeService {
            ends: run.exits.map(|(after, code)| (now + after, code)),
            started: now,
            name,
            run,
            journal: self.journal.clone(),
        })
    }

    fn prober(
        &self,
        _plan: &ServicePlan,
        service: &FakeService,
        _log_matched: Option<watch::Receiver<bool>>,
    ) -> FakeProber {
        FakeProber {
            started: service.started,
            from: service.run.healthy_from,
            until: service.run.healthy_until,
        }
    }

    async fn finish(&self, project: &str) {
        self.journal.write(format!("finish {project}"));
    }
}

#[derive(Debug)]
struct FakeService {
    name: String,
    run: Run,
    started: Instant,
    /// When it ends, and with which code.
    ends: Option<(Instant, i32)>,
    journal: Journal,
}

impl FakeService {
    async fn ended(&mut self) -> Exit {
        match self.ends {
            Some((at, code)) => {
                tokio::time::sleep_until(at).await;
                self.journal.write(format!("ended {} {code}", self.name));
                Exit {
                    code: Some(code),
                    signal: None,
                }
            }
            None => std::future::pending().await,
        }
    }
}

impl Service for FakeService {
    fn identity(&self) -> Identity {
        Identity {
            pid: Some(4242),
            ..Identity::default()
        }
    }

    async fn wait(&mut self) -> Exit {
        self.ended().await
    }

    async fn signal(&mut self, signal: StopSignal) {
        self.journal
            .write(format!("signal {} {}", self.name, signal.name()));
        if let Some(after) = self.run.on_signal {
            let at = Instant::now() + after;
            if self.ends.is_none_or(|(end, _)| at < end) {
                self.ends = Some((at, 0));
            }
        }
    }

    async fn stopped(&mut self) -> Exit {
        self.ended().await
    }

    async fn kill(&mut self) -> Exit {
        self.journal.write(format!("kill {}", self.name));
        Exit {
            code: None,
            signal: Some(9),
        }
    }
}

#[derive(Debug)]
struct FakeProber {
    started: Instant,
    from: Option<Duration>,
    until: Option<Duration>,
}

impl Prober for FakeProber {
    async fn probe(&self, _probe: &ResolvedProbe, _timeout: Duration) -> Result<(), String> {
        let age = self.started.elapsed();
        let healthy = self.from.is_some_and(|f| age >= f) && self.until.is_none_or(|u| age < u);
        if healthy {
            Ok(())
        } else {
            Err("connection refused".into())
        }
    }

    async fn image_health(&self) -> Option<ContainerHealth> {
        None
    }
}

/// What the observer saw.
#[derive(Debug, Default)]
struct Seen {
    ready: Option<Duration>,
    failed: Option<(Option<String>, String, u8)>,
    stopping: Vec<bool>,
    events: Vec<Event>,
}

struct Recorder {
    epoch: Instant,
    seen: Seen,
}

impl Observer for Recorder {
    fn event(&mut self, event: &Event) {
        self.seen.events.push(event.clone());
    }
    fn ready(&mut self, _doc: &PsDocument) {
        self.seen.ready = Some(self.epoch.elapsed());
    }
    fn failed(&mut self, service: Option<&str>, message: &str, code: u8) {
        self.seen.failed = Some((service.map(str::to_string), message.to_string(), code));
    }
    fn stopping(&mut self, kill: bool) {
        self.seen.stopping.push(kill);
    }
}

/// A service for the plan: a process that runs until stopped, no health check.
fn service(name: &str) -> ServicePlan {
    ServicePlan {
        name: name.into(),
        runtime: RuntimeKind::Process,
        launch: Launch::Process {
            argv: vec!["fake".into()],
        },
        builtin: None,
        builtin_config: None,
        env: Vec::new(),
        cwd: std::env::temp_dir(),
        ports: Vec::new(),
        health: None,
        restart: RestartPolicy::No,
        max_restarts: None,
        stop_timeout: Duration::from_secs(10),
        stop_signal: StopSignal(libc::SIGTERM),
        depends_on: Vec::new(),
        init: false,
        watch: Vec::new(),
        fingerprint: crate::plan::Fingerprint::default(),
    }
}

fn with_health(mut s: ServicePlan, interval: Duration, retries: u32) -> ServicePlan {
    s.health = Some(ResolvedHealth {
        probe: ResolvedProbe::Tcp { port: 1 },
        timing: HealthCheck {
            probe: Probe::Tcp { port: "p".into() },
            interval,
            timeout: ms(100),
            retries,
            start_period: Duration::ZERO,
        },
    });
    s
}

fn depends(mut s: ServicePlan, on: &str, condition: Condition) -> ServicePlan {
    s.depends_on.push((on.into(), condition));
    s
}

fn restarts(mut s: ServicePlan, policy: RestartPolicy, max: Option<u32>) -> ServicePlan {
    s.restart = policy;
    s.max_restarts = max;
    s
}

/// What the test does while the stack runs.
struct Controls {
    interrupts: mpsc::UnboundedSender<()>,
    requests: mpsc::Sender<Incoming>,
    /// The plan the stack started with (a reconcile's starting point).
    plan: Arc<Plan>,
}

impl Controls {
    fn interrupt(&self) {
        let _ = self.interrupts.send(());
    }

    async fn request(&self, request: Request) {
        let _ = self.ask(request).await;
    }

    /// Sends `request`; its answer.
    async fn ask(&self, request: Request) -> Option<Message> {
        let (reply, answer) = oneshot::channel();
        let _ = self.requests.send(Incoming { request, reply }).await;
        answer.await.ok()?.messages.into_iter().next()
    }

    /// Reconciles to `services`; the changes and the services that failed.
    async fn reconcile(&self, services: Vec<ServicePlan>) -> (Vec<String>, Vec<String>) {
        let mut plan = (*self.plan).clone();
        plan.services = services;
        let request = Request::Reconcile {
            plan: Box::new(plan),
            dry_run: false,
            force: false,
            keep: Vec::new(),
        };
        match self.ask(request).await {
            Some(Message::Reconciled { changes, failed }) => {
                (changes.iter().map(ToString::to_string).collect(), failed)
            }
            other => panic!("unexpected answer: {other:?}"),
        }
    }
}

struct Outcome {
    code: u8,
    seen: Seen,
    journal: Journal,
    state: tempfile::TempDir,
}

impl Outcome {
    fn log(&self, service: &str) -> String {
        std::fs::read_to_string(crate::logs::path(self.state.path(), service)).unwrap_or_default()
    }
}

/// Supervises `services` on the fake runtime while `script` runs; returns once the stack
/// is down.
async fn supervise_with<F: Future<Output = ()>>(
    services: Vec<ServicePlan>,
    runs: &[(&str, Vec<Run>)],
    timeout: Option<Duration>,
    script: impl FnOnce(Controls) -> F,
) -> Outcome {
    let state = tempfile::tempdir().expect("temp dir");
    let plan = Arc::new(Plan {
        project: "t".into(),
        dir: state.path().to_path_buf(),
        file: state.path().join("stack.yaml"),
        services,
        state_dir: state.path().to_path_buf(),
        llm: None,
        watch_debounce: Duration::from_millis(100),
        env_files: Vec::new(),
        watch: false,
        selection: crate::plan::Selection::default(),
        telemetry: None,
    });
    let fake = Arc::new(Fake::new(runs));
    let journal = fake.journal.clone();
    let (interrupts_tx, interrupts) = mpsc::unbounded_channel();
    let (requests_tx, requests) = mpsc::channel(8);
    let (broadcast, _) = broadcast::channel(1024);
    let inputs = Inputs {
        requests,
        interrupts,
        broadcast,
    };
    let mut recorder = Recorder {
        epoch: Instant::now(),
        seen: Seen::default(),
    };
    let controls = Controls {
        interrupts: interrupts_tx,
        requests: requests_tx,
        plan: plan.clone(),
    };
    let options = Options {
        timeout,
        owner: None,
        keep_failed: false,
    };
    let (code, ()) = tokio::join!(
        supervise(
            plan,
            fake,
            Arc::new(Notify::new()),
            &mut recorder,
            inputs,
            options
        ),
        script(controls)
    );
    Outcome {
        code: code.expect("supervise"),
        seen: recorder.seen,
        journal,
        state,
    }
}

/// Interrupts once the stack has had `after` to come up.
async fn interrupt_after(c: Controls, after: Duration) {
    tokio::time::sleep(after).await;
    c.interrupt();
}

#[tokio::test(start_paused = true)]
async fn a_dependent_starts_once_its_dependency_has_started() {
    let out = supervise_with(
        vec![
            service("db"),
            depends(service("api"), "db", Condition::Started),
        ],
        &[],
        None,
        |c| interrupt_after(c, ms(500)),
    )
    .await;
    assert_eq!(out.journal.matching("start"), ["0 start db", "0 start api"]);
    assert_eq!(out.seen.ready, Some(Duration::ZERO));
    assert_eq!(out.code, exit::INTERRUPTED);
}

#[tokio::test(start_paused = true)]
async fn a_dependent_waits_for_health_then_starts() {
    let out = supervise_with(
        vec![
            with_health(service("db"), ms(100), 30),
            depends(service("api"), "db", Condition::Healthy),
        ],
        &[("db", vec![Run::forever().healthy_from(ms(300))])],
        None,
        |c| interrupt_after(c, ms(2_000)),
    )
    .await;
    let starts = out.journal.matching("start");
    assert_eq!(starts[0], "0 start db");
    // Probes every 2 ms while starting: seen healthy within a probe of 300 ms.
    let (at, what) = starts[1].split_once(' ').expect("line");
    assert_eq!(what, "start api");
    let at: u64 = at.parse().expect("ms");
    assert!((300..=304).contains(&at), "api started at {at} ms");
    assert!(out.seen.ready.is_some_and(|r| r >= ms(300)));
}

#[tokio::test(start_paused = true)]
async fn a_dependent_waits_for_completion_of_a_one_shot_job() {
    let out = supervise_with(
        vec![
            service("migrate"),
            depends(service("api"), "migrate", Condition::Completed),
        ],
        &[("migrate", vec![Run::exits(ms(250), 0)])],
        None,
        |c| interrupt_after(c, ms(1_000)),
    )
    .await;
    assert_eq!(
        out.journal.matching("start"),
        ["0 start migrate", "250 start api"]
    );
    assert_eq!(out.seen.ready, Some(ms(250)));
}

#[tokio::test(start_paused = true)]
async fn a_job_that_fails_is_blamed_and_its_dependent_never_starts() {
    let out = supervise_with(
        vec![
            service("migrate"),
            depends(service("api"), "migrate", Condition::Completed),
        ],
        &[("migrate", vec![Run::exits(ms(50), 3)])],
        None,
        |_| async {},
    )
    .await;
    assert_eq!(out.journal.matching("start"), ["0 start migrate"]);
    let (blame, message, code) = out.seen.failed.expect("failed");
    assert_eq!(blame.as_deref(), Some("migrate"));
    assert_eq!(code, exit::SERVICE_FAILED);
    assert!(message.contains("exit code 3"), "{message}");
    assert_eq!(out.code, exit::SERVICE_FAILED);
}

#[tokio::test(start_paused = true)]
async fn a_start_failure_blames_the_service_that_could_not_start() {
    let out = supervise_with(
        vec![
            with_health(service("db"), ms(100), 30),
            depends(service("api"), "db", Condition::Healthy),
        ],
        &[(
            "db",
            vec![Run::fails_to_start("cannot start `postgres`: not found")],
        )],
        None,
        |_| async {},
    )
    .await;
    let (blame, message, _) = out.seen.failed.clone().expect("failed");
    assert_eq!(blame.as_deref(), Some("db"));
    assert!(message.contains("not found"), "{message}");
    assert_eq!(out.journal.matching("start"), ["0 start db"]);
    assert!(out.log("db").contains("failed: cannot start `postgres`"));
}

#[tokio::test(start_paused = true)]
async fn restarts_back_off_doubling_then_give_up_at_max_restarts() {
    let out = supervise_with(
        vec![restarts(
            service("worker"),
            RestartPolicy::OnFailure,
            Some(3),
        )],
        &[("worker", vec![Run::exits(Duration::ZERO, 1)])],
        None,
        |_| async {},
    )
    .await;
    // 100 ms, then 200, then 400 between runs; the fourth failure gives up.
    assert_eq!(
        out.journal.matching("start"),
        [
            "0 start worker",
            "100 start worker",
            "300 start worker",
            "700 start worker"
        ]
    );
    let (_, message, _) = out.seen.failed.expect("failed");
    assert!(
        message.contains("gave up after 3 restarts (max_restarts: 3)"),
        "{message}"
    );
    assert_eq!(out.code, exit::SERVICE_FAILED);
}

#[tokio::test(start_paused = true)]
async fn a_long_run_resets_the_back_off() {
    let out = supervise_with(
        vec![restarts(service("worker"), RestartPolicy::Always, None)],
        &[(
            "worker",
            vec![
                Run::exits(Duration::ZERO, 1),
                Run::exits(Duration::ZERO, 1),
                Run::exits(Duration::from_secs(11), 1),
                Run::forever(),
            ],
        )],
        None,
        |c| interrupt_after(c, Duration::from_secs(20)),
    )
    .await;
    // 100, 200, then a run of 11 s: back to 100 ms.
    assert_eq!(
        out.journal.matching("start"),
        [
            "0 start worker",
            "100 start worker",
            "300 start worker",
            "11400 start worker"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn restart_no_leaves_a_crash_failed() {
    let out = supervise_with(
        vec![service("web"), service("worker")],
        &[("worker", vec![Run::exits(ms(5_000), 2)])],
        None,
        |c| interrupt_after(c, ms(6_000)),
    )
    .await;
    // Up at once; the crash at 5 s is not restarted, and the rest runs on until stopped.
    assert_eq!(out.journal.matching("start worker"), ["0 start worker"]);
    assert!(out.log("worker").contains("not restarting (restart: no)"));
}

#[tokio::test(start_paused = true)]
async fn a_lost_liveness_stops_and_restarts_the_service() {
    let out = supervise_with(
        vec![restarts(
            with_health(service("api"), Duration::from_secs(1), 3),
            RestartPolicy::OnFailure,
            None,
        )],
        &[(
            "api",
            vec![
                Run::forever().healthy_until(Duration::from_secs(5)),
                Run::forever(),
            ],
        )],
        None,
        |c| interrupt_after(c, Duration::from_secs(20)),
    )
    .await;
    let starts = out.journal.matching("start");
    assert_eq!(starts.len(), 2, "{starts:?}");
    // Probes at 1 s intervals fail from 5 s on: the third failure in a row (at ~7 s) stops it.
    let signals = out.journal.matching("signal api");
    assert!(signals[0].starts_with("70"), "{signals:?}");
    assert!(out.log("api").contains("3 failures in a row"));
}

#[tokio::test(start_paused = true)]
async fn the_stack_stops_in_reverse_dependency_order() {
    let out = supervise_with(
        vec![
            service("db"),
            depends(service("api"), "db", Condition::Started),
            depends(service("web"), "api", Condition::Started),
        ],
        &[
            ("web", vec![Run::forever()]),
            (
                "api",
                vec![Run {
                    on_signal: Some(ms(300)),
                    ..Run::forever()
                }],
            ),
        ],
        None,
        |c| interrupt_after(c, ms(100)),
    )
    .await;
    assert_eq!(
        out.journal.matching("signal"),
        [
            "100 signal web SIGTERM",
            "110 signal api SIGTERM",
            "410 signal db SIGTERM"
        ]
    );
    assert_eq!(out.seen.stopping, [false]);
    assert_eq!(out.code, exit::INTERRUPTED);
    assert_eq!(out.journal.matching("finish").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_ignores_the_stop_signal_is_killed_after_its_stop_timeout() {
    let mut api = service("api");
    api.stop_timeout = Duration::from_secs(2);
    let out = supervise_with(
        vec![api],
        &[("api", vec![Run::forever().ignores_signal()])],
        None,
        |c| interrupt_after(c, ms(100)),
    )
    .await;
    assert_eq!(out.journal.matching("signal"), ["100 signal api SIGTERM"]);
    assert_eq!(out.journal.matching("kill"), ["2100 kill api"]);
    assert!(
        out.log("api")
            .contains("did not stop within 2s of SIGTERM; sending SIGKILL"),
        "{}",
        out.log("api")
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_interrupt_kills_at_once() {
    let out = supervise_with(
        vec![
            service("db"),
            depends(service("api"), "db", Condition::Started),
        ],
        &[("api", vec![Run::forever().ignores_signal()])],
        None,
        |c| async move {
            tokio::time::sleep(ms(100)).await;
            c.interrupt();
            tokio::time::sleep(ms(500)).await;
            c.interrupt();
        },
    )
    .await;
    // The stop timeout is 10 s; the second Ctrl-C at 600 ms kills what is left at once:
    // `api`, still stopping, and `db`, still waiting for it to be down.
    let mut kills = out.journal.matching("kill");
    kills.sort();
    assert_eq!(kills, ["600 kill api", "600 kill db"]);
    assert_eq!(out.seen.stopping, [false, true]);
}

#[tokio::test(start_paused = true)]
async fn down_with_a_timeout_overrides_the_stop_timeout() {
    let out = supervise_with(
        vec![service("api")],
        &[("api", vec![Run::forever().ignores_signal()])],
        None,
        |c| async move {
            tokio::time::sleep(ms(100)).await;
            c.request(Request::Down {
                timeout_ms: Some(500),
            })
            .await;
        },
    )
    .await;
    assert_eq!(out.journal.matching("kill"), ["600 kill api"]);
    assert_eq!(out.code, exit::OK);
}

#[tokio::test(start_paused = true)]
async fn a_restart_request_stops_then_starts_the_service() {
    let out = supervise_with(vec![service("api")], &[], None, |c| async move {
        tokio::time::sleep(ms(100)).await;
        c.request(Request::Restart {
            services: vec!["api".into()],
        })
        .await;
        tokio::time::sleep(ms(100)).await;
        c.interrupt();
    })
    .await;
    assert_eq!(
        out.journal.matching("start"),
        ["0 start api", "110 start api"]
    );
}

#[tokio::test(start_paused = true)]
async fn not_healthy_within_the_deadline_is_a_health_timeout() {
    let out = supervise_with(
        vec![with_health(service("api"), Duration::from_secs(1), 30)],
        &[(
            "api",
            vec![Run {
                healthy_from: None,
                ..Run::forever()
            }],
        )],
        Some(Duration::from_secs(5)),
        |_| async {},
    )
    .await;
    let (blame, message, code) = out.seen.failed.expect("failed");
    assert_eq!(blame.as_deref(), Some("api"));
    assert_eq!(code, exit::HEALTH_TIMEOUT);
    assert!(message.contains("not healthy within 5s"), "{message}");
    assert_eq!(out.journal.matching("signal"), ["5000 signal api SIGTERM"]);
}

/// `s` with an env variable of its own set (and the fingerprint that says so).
fn defined(mut s: ServicePlan, key: &str, value: &str) -> ServicePlan {
    s.env.retain(|(k, _)| k != key);
    s.env.push((key.into(), value.into()));
    let own: Vec<String> = s.env.iter().map(|(k, _)| k.clone()).collect();
    let own: Vec<&str> = own.iter().map(String::as_str).collect();
    s.fingerprint = crate::plan::Fingerprint::of(&s, &own, None);
    s
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_restarts_only_the_changed_service() {
    let names: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let first: Vec<ServicePlan> = names
        .iter()
        .map(|n| defined(service(n), "A", "1"))
        .collect();
    let mut second = first.clone();
    second[4] = defined(service("s4"), "A", "2");
    let out = supervise_with(first, &[], None, |c| async move {
        tokio::time::sleep(ms(100)).await;
        let (changes, failed) = c.reconcile(second).await;
        assert!(failed.is_empty());
        assert!(changes.contains(&"~ s4 (env.A)".to_string()), "{changes:?}");
        assert_eq!(changes.iter().filter(|c| c.starts_with('=')).count(), 9);
        c.interrupt();
    })
    .await;
    let starts = out.journal.matching("start");
    assert_eq!(starts.len(), 11, "{starts:?}");
    assert_eq!(starts.iter().filter(|l| l.ends_with("start s4")).count(), 2);
    assert!(
        out.log("s4")
            .contains("restarting (reconcile: env.A changed)")
    );
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_restarts_a_changed_dependent_after_its_changed_dependency() {
    let db = with_health(defined(service("db"), "A", "1"), ms(200), 3);
    let api = defined(depends(service("api"), "db", Condition::Healthy), "A", "1");
    let new_db = with_health(defined(service("db"), "A", "2"), ms(200), 3);
    let new_api = defined(depends(service("api"), "db", Condition::Healthy), "A", "2");
    let out = supervise_with(vec![db, api], &[], None, |c| async move {
        tokio::time::sleep(ms(1000)).await;
        let (changes, failed) = c.reconcile(vec![new_db, new_api]).await;
        assert_eq!(changes, ["~ db (env.A)", "~ api (env.A)"]);
        assert!(failed.is_empty());
        c.interrupt();
    })
    .await;
    let lines = out.journal.lines();
    let second = |svc: &str| {
        lines
            .iter()
            .filter(|l| l.ends_with(&format!("start {svc}")))
            .nth(1)
            .and_then(|l| l.split(' ').next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{svc} started once: {lines:?}"))
    };
    // `api` starts again only once the new `db` is healthy (checks every 200 ms).
    assert!(second("api") > second("db"), "{lines:?}");
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_starts_added_and_stops_removed_services() {
    let out = supervise_with(
        vec![service("a"), service("b")],
        &[],
        None,
        |c| async move {
            tokio::time::sleep(ms(100)).await;
            let (changes, _) = c.reconcile(vec![service("a"), service("c")]).await;
            assert_eq!(changes, ["= a", "+ c", "- b"]);
            let Some(Message::Ps(doc)) = c.ask(Request::Ps).await else {
                panic!("no ps");
            };
            let names: Vec<&str> = doc.services.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["a", "c"]);
            c.interrupt();
        },
    )
    .await;
    assert_eq!(out.journal.matching("start a").len(), 1);
    assert_eq!(out.journal.matching("start c").len(), 1);
    assert_eq!(out.journal.matching("signal b"), ["100 signal b SIGTERM"]);
}

#[tokio::test(start_paused = true)]
async fn a_completed_one_shot_is_not_run_again_unless_it_changed() {
    let job = defined(service("job"), "A", "1");
    let out = supervise_with(
        vec![service("web"), job.clone()],
        &[("job", vec![Run::exits(ms(10), 0), Run::exits(ms(10), 0)])],
        None,
        |c| async move {
            tokio::time::sleep(ms(100)).await;
            let (changes, _) = c.reconcile(vec![service("web"), job]).await;
            assert_eq!(changes, ["= web", "= job"]);
            let (changes, _) = c
                .reconcile(vec![service("web"), defined(service("job"), "A", "2")])
                .await;
            assert_eq!(changes, ["= web", "~ job (env.A)"]);
            c.interrupt();
        },
    )
    .await;
    assert_eq!(out.journal.matching("start job").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_watched_change_with_cascade_restarts_dependents_after_the_service() {
    let out = supervise_with(
        vec![
            with_health(service("api"), ms(100), 3),
            depends(service("web"), "api", Condition::Healthy),
            service("other"),
        ],
        &[],
        None,
        |c| async move {
            tokio::time::sleep(ms(500)).await;
            let answer = c
                .ask(Request::Watch {
                    service: "api".into(),
                    action: crate::config::WatchAction::Restart,
                    files: vec!["src/app.py".into()],
                    cascade: true,
                })
                .await;
            assert!(matches!(answer, Some(Message::Ok)), "{answer:?}");
            c.interrupt();
        },
    )
    .await;
    assert_eq!(out.journal.matching("start api").len(), 2);
    assert_eq!(out.journal.matching("start web").len(), 2);
    assert_eq!(out.journal.matching("start other").len(), 1);
    assert!(out.log("api").contains("restarting (watch: src/app.py)"));
    assert!(
        out.log("web")
            .contains("restarting (watch: src/app.py (cascade from api))")
    );
}
