//! File watching (SPEC §3.1): `notify` events under each target's root, filtered (its glob,
//! its ignore patterns, `.gitignore` and `.stackignore` files, editors' temporary files,
//! `.git/` and `.stack/`), and gathered per target into batches: a batch is sent once its
//! target has been quiet for the debounce.
//!
//! This module knows paths, not services: a target is an id the caller maps to a
//! `watch:` rule or to the stack file.

mod ignores;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub(crate) use ignores::Ignores;

/// What to watch, and which changes count.
#[derive(Debug)]
pub(crate) struct Target {
    /// The caller's name for it.
    pub id: usize,
    /// A folder (watched recursively) or a file.
    pub root: PathBuf,
    /// The glob a path (relative to `root`) must match, if any.
    pub glob: Option<globset::GlobMatcher>,
    /// What it ignores besides the project's ignore files.
    pub ignores: Ignores,
}

/// The changes to one target, gathered over its debounce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    /// The target's id.
    pub id: usize,
    /// The changed paths (some may be gone: deleted).
    pub files: BTreeSet<PathBuf>,
}

/// A running watcher: batches come out of `batches`; dropping it stops watching.
pub(crate) struct Watcher {
    _notify: notify::RecommendedWatcher,
    _task: tokio_util::task::AbortOnDropHandle<()>,
    /// The batches, in the order they are due.
    pub batches: mpsc::UnboundedReceiver<Batch>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

/// Starts watching `targets` (inside a tokio runtime). `project` is the folder whose
/// `.gitignore`/`.stackignore` files (and those below it) apply.
pub(crate) fn start(
    targets: Vec<Target>,
    project: &Path,
    debounce: Duration,
) -> notify::Result<Watcher> {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let mut notify = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let _ = raw_tx.send(res);
    })?;
    let mut watched: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
    for t in &targets {
        // A file is watched through its folder: a save that renames a new file over it
        // replaces the inode a watch on the file itself would follow.
        let (path, recursive) = if t.root.is_dir() {
            (t.root.clone(), true)
        } else {
            (
                t.root.parent().unwrap_or(Path::new("/")).to_path_buf(),
                false,
            )
        };
        watched.insert((path, recursive));
    }
    for (path, recursive) in &watched {
        let mode = if *recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        notify.watch(path, mode)?;
    }
    let (tx, batches) = mpsc::unbounded_channel();
    let filter = Filter {
        is_file: targets.iter().map(|t| !t.root.is_dir()).collect(),
        targets,
        project: project.to_path_buf(),
        files: ignores::ProjectIgnores::default(),
    };
    let task = tokio::spawn(gather(raw_rx, filter, debounce, tx));
    Ok(Watcher {
        _notify: notify,
        _task: tokio_util::task::AbortOnDropHandle::new(task),
        batches,
    })
}

/// Decides which targets a changed path concerns.
struct Filter {
    targets: Vec<Target>,
    /// Per target: it is a file (the stack file), not a folder.
    is_file: Vec<bool>,
    project: PathBuf,
    files: ignores::ProjectIgnores,
}

impl Filter {
    fn matches(&mut self, path: &Path) -> Vec<usize> {
        if ignores::is_noise(path) {
            return Vec::new();
        }
        self.files.changed(path);
        let is_dir = path.is_dir();
        let mut ids = Vec::new();
        for (t, &file) in self.targets.iter().zip(&self.is_file) {
            let Ok(rel) = path.strip_prefix(&t.root) else {
                continue;
            };
            if file && !rel.as_os_str().is_empty() {
                continue;
            }
            if let Some(g) = &t.glob
                && !g.is_match(rel)
            {
                continue;
            }
            if t.ignores.ignored(path, is_dir) {
                continue;
            }
            // A target that is a file (the stack file) is not subject to ignore files.
            if !file && self.files.ignored(&self.project, &t.root, path, is_dir) {
                continue;
            }
            ids.push(t.id);
        }
        ids
    }
}

/// Gathers events into batches: a target's batch is sent once no event came for it
/// within `debounce`.
async fn gather(
    mut raw: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    mut filter: Filter,
    debounce: Duration,
    out: mpsc::UnboundedSender<Batch>,
) {
    // Per target: each changed path (and whether the batch saw it created), and when
    // the batch is due.
    let mut pending: HashMap<usize, (BTreeMap<PathBuf, bool>, Instant)> = HashMap::new();
    loop {
        let next_due = pending.values().map(|(_, due)| *due).min();
        let event = tokio::select! {
            e = raw.recv() => match e {
                Some(e) => Some(e),
                None => return,
            },
            () = sleep_until(next_due) => None,
        };
        match event {
            Some(Ok(e)) => {
                if matches!(e.kind, notify::EventKind::Access(_)) {
                    continue;
                }
                let due = Instant::now() + debounce;
                let created = matches!(e.kind, notify::EventKind::Create(_));
                for path in &e.paths {
                    for id in filter.matches(path) {
                        let entry = pending.entry(id).or_insert_with(|| (BTreeMap::new(), due));
                        entry.0.entry(path.clone()).or_insert(created);
                        entry.1 = due;
                    }
                }
            }
            Some(Err(err)) => tracing::warn!(%err, "file watching"),
            None => {
                let now = Instant::now();
                let due: Vec<usize> = pending
                    .iter()
                    .filter(|(_, (_, at))| *at <= now)
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    let Some((paths, _)) = pending.remove(&id) else {
                        continue;
                    };
                    // A file created and gone within the batch is a save's temporary file
                    // (written, then renamed over the real one): not a change.
                    let files: BTreeSet<PathBuf> = paths
                        .into_iter()
                        .filter(|(p, created)| !created || p.exists())
                        .map(|(p, _)| p)
                        .collect();
                    if !files.is_empty() && out.send(Batch { id, files }).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
