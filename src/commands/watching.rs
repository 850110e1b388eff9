//! What a running stack does when files change (SPEC §3.1). A service's `watch:` rule
//! asks the supervisor, over its control socket, for the rule's action (a `sync` first
//! copies the files through the Engine API); a save of the stack file (or an `env_file`)
//! reconciles, as `stack up` run again would. An edit that does not validate is written,
//! with its locations, to the `_stack` log (`stack logs`, the foreground log) and changes
//! nothing.
//!
//! Each target acts one change at a time: changes that come during an action make exactly
//! one more.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;

use crate::config::WatchRule;
use crate::control::{self, Message, Request};
use crate::logs::{LogFile, Stream};
use crate::plan::Plan;
use crate::runtime::docker::Docker;
use crate::watch::{self, Batch, Ignores, Target};

/// The log of `stack`'s own notes about the running stack (not a service: service names
/// start with a letter or digit).
const STACK_LOG: &str = "_stack";

/// File watching of a running stack; dropping it stops.
pub(crate) struct Watching {
    _task: AbortOnDropHandle<()>,
}

impl std::fmt::Debug for Watching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watching")
    }
}

/// What a target stands for.
enum Purpose {
    /// A service's rule.
    Rule { service: String, rule: WatchRule },
    /// The stack file or an `env_file`.
    StackFile,
}

/// What every action needs.
struct Context {
    plan: Arc<Plan>,
    socket: PathBuf,
    docker: Option<Docker>,
    log: LogFile,
    /// Where a reload that applied sends the new plan (its rules replace these).
    replanned: mpsc::UnboundedSender<Plan>,
}

/// Starts following `plan`'s `watch:` rules and its stack file, when `plan.watch`.
pub(crate) fn start(
    plan: &Arc<Plan>,
    docker: Option<Docker>,
    notify: Arc<Notify>,
) -> std::io::Result<Option<Watching>> {
    if !plan.watch {
        return Ok(None);
    }
    let log = LogFile::create(&crate::logs::path(&plan.state_dir, STACK_LOG), notify)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let first = Session::start(plan.clone(), docker.clone(), log.clone(), tx)?;
    let task = tokio::spawn(follow(first, rx, docker, log));
    Ok(Some(Watching {
        _task: AbortOnDropHandle::new(task),
    }))
}

/// Follows one plan's files until a reload applies a new plan, then the new one's.
async fn follow(
    mut session: Session,
    mut replanned: mpsc::UnboundedReceiver<Plan>,
    docker: Option<Docker>,
    log: LogFile,
) {
    while let Some(plan) = replanned.recv().await {
        let (tx, rx) = mpsc::unbounded_channel();
        match Session::start(Arc::new(plan), docker.clone(), log.clone(), tx) {
            Ok(next) => {
                session = next;
                replanned = rx;
            }
            Err(e) => log.note(&format!("file watching stopped: {e}")),
        }
    }
    drop(session);
}

/// The watcher of one plan and its targets' workers.
struct Session {
    _watcher: watch::Watcher,
    _tasks: JoinSet<()>,
}

impl Session {
    fn start(
        plan: Arc<Plan>,
        docker: Option<Docker>,
        log: LogFile,
        replanned: mpsc::UnboundedSender<Plan>,
    ) -> std::io::Result<Session> {
        let mut purposes = Vec::new();
        let mut targets = Vec::new();
        for svc in &plan.services {
            for rule in &svc.watch {
                targets.push(Target {
                    id: purposes.len(),
                    root: rule.root.clone(),
                    glob: rule
                        .glob
                        .as_deref()
                        .and_then(|g| globset::Glob::new(g).ok())
                        .map(|g| g.compile_matcher()),
                    ignores: Ignores::new(&rule.root, &rule.ignore),
                });
                purposes.push(Purpose::Rule {
                    service: svc.name.clone(),
                    rule: rule.clone(),
                });
            }
        }
        let stack_file = purposes.len();
        purposes.push(Purpose::StackFile);
        for file in std::iter::once(&plan.file).chain(&plan.env_files) {
            targets.push(Target {
                id: stack_file,
                root: file.clone(),
                glob: None,
                ignores: Ignores::new(file, &[]),
            });
        }
        let mut watcher = watch::start(targets, &plan.dir, plan.watch_debounce)
            .map_err(|e| std::io::Error::other(format!("cannot watch files: {e}")))?;
        let cx = Arc::new(Context {
            socket: plan.state().socket(),
            plan,
            docker,
            log,
            replanned,
        });
        let slots: Vec<Arc<Slot>> = purposes.iter().map(|_| Arc::new(Slot::default())).collect();
        let mut tasks = JoinSet::new();
        for (purpose, slot) in purposes.into_iter().zip(&slots) {
            tasks.spawn(work(cx.clone(), purpose, slot.clone()));
        }
        let (_, closed) = mpsc::unbounded_channel();
        let mut batches = std::mem::replace(&mut watcher.batches, closed);
        tasks.spawn(async move {
            while let Some(Batch { id, files }) = batches.recv().await {
                if let Some(slot) = slots.get(id) {
                    slot.put(files);
                }
            }
        });
        Ok(Session {
            _watcher: watcher,
            _tasks: tasks,
        })
    }
}

/// The changes waiting for a target's next action.
#[derive(Default)]
struct Slot {
    files: Mutex<BTreeSet<PathBuf>>,
    ready: Notify,
}

impl Slot {
    fn put(&self, files: BTreeSet<PathBuf>) {
        if let Ok(mut f) = self.files.lock() {
            f.extend(files);
        }
        // One permit at most: however many batches come during an action, one more follows.
        self.ready.notify_one();
    }

    fn take(&self) -> BTreeSet<PathBuf> {
        self.files
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }
}

async fn work(cx: Arc<Context>, purpose: Purpose, slot: Arc<Slot>) {
    loop {
        slot.ready.notified().await;
        let files = slot.take();
        if files.is_empty() {
            continue;
        }
        match &purpose {
            Purpose::Rule { service, rule } => act(&cx, service, rule, &files).await,
            Purpose::StackFile => reload(&cx, &files).await,
        }
    }
}

/// A file as the user reads it: relative to the stack file's folder.
fn shown(plan: &Plan, path: &Path) -> String {
    path.strip_prefix(&plan.dir)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Carries out `rule` of `service` for `files`.
async fn act(cx: &Context, service: &str, rule: &WatchRule, files: &BTreeSet<PathBuf>) {
    if rule.action.syncs()
        && let Err(message) = sync(cx, service, rule, files).await
    {
        cx.report(&format!("{service}: cannot sync: {message}"));
        return;
    }
    let request = Request::Watch {
        service: service.to_string(),
        action: rule.action,
        files: files.iter().map(|f| shown(&cx.plan, f)).collect(),
        cascade: rule.cascade,
    };
    match control::client::call(&cx.socket, &request).await {
        Ok(Message::Ok) => {}
        Ok(Message::Error { message }) => cx.report(&format!("{service}: {message}")),
        Ok(_) => {}
        Err(e) => tracing::debug!(%e, "the supervisor does not answer"),
    }
}

/// Copies `files` into the service's container at the rule's `target`; removes there
/// the ones that are gone.
async fn sync(
    cx: &Context,
    service: &str,
    rule: &WatchRule,
    files: &BTreeSet<PathBuf>,
) -> Result<(), String> {
    let Some(docker) = &cx.docker else {
        return Err("no Docker engine is connected".into());
    };
    let container = match control::client::call(&cx.socket, &Request::Ps).await {
        Ok(Message::Ps(doc)) => doc
            .services
            .into_iter()
            .find(|s| s.name == service)
            .and_then(|s| s.container_id),
        _ => None,
    };
    let Some(container) = container else {
        return Err("its container is not running".into());
    };
    let target = rule.target.as_deref().unwrap_or("/");
    let inside = |f: &Path| {
        let rel = match f.strip_prefix(&rule.root) {
            Ok(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
            _ => PathBuf::from(f.file_name().unwrap_or_default()),
        };
        format!("{}/{}", target.trim_end_matches('/'), rel.display())
    };
    let mut copied = Vec::new();
    let mut removed = Vec::new();
    for f in files {
        if f.is_dir() {
            // A new folder: what was written into it before the watcher saw it too.
            let walk = ignore::WalkBuilder::new(f)
                .hidden(false)
                .add_custom_ignore_filename(".stackignore")
                .build();
            for entry in walk.flatten() {
                if entry.file_type().is_some_and(|t| t.is_file()) {
                    copied.push((entry.path().to_path_buf(), inside(entry.path())));
                }
            }
        } else if f.is_file() {
            copied.push((f.clone(), inside(f)));
        } else if !f.exists() {
            removed.push(inside(f));
        }
    }
    copied.sort();
    copied.dedup();
    docker
        .sync(&container, &copied, &removed)
        .await
        .map_err(|e| e.to_string())
}

/// The stack file (or an `env_file`) changed: plan it again and reconcile.
async fn reload(cx: &Context, files: &BTreeSet<PathBuf>) {
    let what = files
        .iter()
        .map(|f| shown(&cx.plan, f))
        .collect::<Vec<_>>()
        .join(", ");
    match super::reconcile::again(&cx.plan, &cx.socket).await {
        Ok((changes, plan)) => {
            let _ = cx.replanned.send(plan);
            let changed: Vec<String> = changes
                .iter()
                .filter(|c| c.kind != crate::events::diff::ChangeKind::Unchanged)
                .map(ToString::to_string)
                .collect();
            if changed.is_empty() {
                cx.report(&format!("{what} saved: nothing to change"));
            } else {
                cx.report(&format!("{what} saved: {}", changed.join(", ")));
            }
        }
        Err(e) => {
            let text = e
                .to_string()
                .replace("; nothing was started", "; nothing was changed");
            cx.report(&format!(
                "{what} saved, and not applied: it does not validate; the stack keeps running as it was"
            ));
            for line in text.lines() {
                cx.log.line(Stream::Err, line);
            }
        }
    }
}

impl Context {
    /// A note in the `_stack` log.
    fn report(&self, text: &str) {
        self.log.note(text);
    }
}
