//! The cassettes of a folder, indexed for replay: found by route and fingerprint, and the
//! nearest one to a request that matches none.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{Cassette, Note, diff, fingerprint, from_yaml};

/// One loaded cassette.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Its path relative to the folder.
    pub name: String,
    /// Its contents.
    pub cassette: Cassette,
}

/// Every cassette of a folder.
#[derive(Debug, Default)]
pub(crate) struct Library {
    by_key: HashMap<(String, String), Arc<Entry>>,
    all: Vec<Arc<Entry>>,
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The recording of this request.
    Hit(Arc<Entry>),
    /// None; the nearest one on the route and how the request differs from it.
    Miss {
        /// The nearest recording's name.
        nearest: Option<String>,
        /// The differing fields.
        diff: Vec<String>,
    },
}

impl Library {
    /// Loads every `*.yaml` under `dir` (a missing folder is an empty library); a file that
    /// does not parse is an error naming it.
    pub(crate) fn load(dir: &Path) -> Result<Library, String> {
        let mut lib = Library::default();
        for (name, path) in files(dir) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let cassette = from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let key = (
                cassette.route.clone(),
                fingerprint(&cassette.route, &cassette.request),
            );
            let entry = Arc::new(Entry { name, cassette });
            lib.by_key.insert(key, entry.clone());
            lib.all.push(entry);
        }
        Ok(lib)
    }

    /// How many cassettes.
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// The recording of `request` (canonical) on `route`.
    pub(crate) fn lookup(&self, route: &str, request: &Value) -> Lookup {
        let key = (route.to_string(), fingerprint(route, request));
        if let Some(e) = self.by_key.get(&key) {
            return Lookup::Hit(e.clone());
        }
        // The nearest: the fewest differing fields, on the same route.
        let nearest = self
            .all
            .iter()
            .filter(|e| e.cassette.route == route)
            .map(|e| (e, diff(&e.cassette.request, request, 64)))
            .min_by_key(|(_, d)| d.len());
        match nearest {
            Some((e, mut d)) => {
                d.truncate(3);
                Lookup::Miss {
                    nearest: Some(e.name.clone()),
                    diff: d,
                }
            }
            None => Lookup::Miss {
                nearest: None,
                diff: Vec::new(),
            },
        }
    }
}

/// The `*.yaml` files under `dir`, by name relative to it, sorted.
pub(crate) fn files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in read.flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "yaml") {
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((name, path));
            }
        }
    }
    out.sort();
    out
}

/// The replay notes file, appended to one line per answer.
#[derive(Debug)]
pub(crate) struct Notes {
    file: Option<Mutex<std::fs::File>>,
}

impl Notes {
    /// Appends to `path` (none: notes are not kept).
    pub(crate) fn open(path: Option<&Path>) -> std::io::Result<Notes> {
        let file = match path {
            Some(p) => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                Some(Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?,
                ))
            }
            None => None,
        };
        Ok(Notes { file })
    }

    /// Notes one answer (before it is sent, so a reader after the request sees it).
    pub(crate) fn note(&self, note: &Note) {
        let Some(file) = &self.file else {
            return;
        };
        let Ok(mut line) = serde_json::to_string(note) else {
            return;
        };
        line.push('\n');
        if let Ok(mut f) = file.lock()
            && let Err(err) = f.write_all(line.as_bytes())
        {
            tracing::warn!(%err, "cannot write the replay notes");
        }
    }
}
