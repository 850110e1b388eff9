//! What `--llm` (SPEC §4.4) and `stack run`'s hermetic context change in the built-ins'
//! configurations: every gateway gets the mode and, for `mock`/`replay`, the mock's URL;
//! in `replay` the model answers from the gateway's cassettes; `stack run` gives the
//! context server a fresh store of its own, seeded from a snapshot when asked.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::config::source::FieldPath;
use crate::config::{BuiltinKind, Loaded, Service, ServiceKind};
use crate::services::cassette::Mode;
use crate::services::gateway;

/// The changes, decided once per `up`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    /// The mode of every gateway (none: as configured).
    pub llm: Option<Mode>,
    /// `stack run`: the context store of this run (a file deleted before it starts) and
    /// what to seed it with.
    pub hermetic: Option<(PathBuf, Option<PathBuf>)>,
}

/// `stack run`'s request for a context store of its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hermetic {
    /// JSON lines to seed it with (`--context-snapshot`).
    pub snapshot: Option<PathBuf>,
}

/// The context database of a hermetic run, deleted (with its WAL files) so the run starts
/// from nothing.
pub(crate) fn fresh_run_db(state_dir: &Path) -> PathBuf {
    let db = state_dir.join("run").join("context.db");
    for suffix in ["", "-wal", "-shm"] {
        let mut file = db.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    db
}

/// The mode when none is given: `mock` when the stack has a built-in model (no surprise
/// bills, no keys needed), `live` when it has none.
pub(crate) fn default_mode(services: &[&Service]) -> Mode {
    if services
        .iter()
        .any(|s| s.builtin() == Some(BuiltinKind::Model))
    {
        Mode::Mock
    } else {
        Mode::Live
    }
}

/// Why a stack cannot run in a mode.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Refuses a mode the stack cannot run in, before anything starts: `mock`/`replay` with no
/// mock to send to, `live`/`record` with a provider key whose variable is unset (named).
pub(crate) fn check(loaded: &Loaded, services: &[&Service], mode: Mode) -> Result<(), Refusal> {
    let has_model = services
        .iter()
        .any(|s| s.builtin() == Some(BuiltinKind::Model));
    for s in services {
        let ServiceKind::Builtin {
            builtin: BuiltinKind::Gateway,
            config,
        } = &s.kind
        else {
            continue;
        };
        let Ok(gw) = serde_json::from_value::<gateway::Config>(config.clone()) else {
            continue;
        };
        if mode.to_mock() {
            if gw.mock.is_none() && !has_model {
                return Err(Refusal {
                    message: format!(
                        "--llm {mode} sends every model request of `{}` to the built-in mock model, and the stack has no `builtin: model` service",
                        s.name
                    ),
                    hint: "add `model: {builtin: model}` to `services`, set the gateway's `mock:` URL, or use `--llm live`".into(),
                });
            }
            continue;
        }
        if let Some((field, upstream)) = gw.empty_keys().into_iter().next() {
            let at = FieldPath::service(&s.name).key("config");
            let path = FieldPath(at.0.iter().chain(&field.0).cloned().collect());
            let var = loaded.unset_variable(&path);
            let (what, hint) = match &var {
                Some(v) => (
                    format!("`{v}` is not set"),
                    format!("export {v}=…, or use `--llm mock` (the built-in mock needs no key)"),
                ),
                None => (
                    "it is empty".to_string(),
                    "set `api_key`, or use `--llm mock` (the built-in mock needs no key)"
                        .to_string(),
                ),
            };
            return Err(Refusal {
                message: format!(
                    "--llm {mode} sends requests to upstream `{upstream}` of `{}`, and its key ({path}) is missing: {what}",
                    s.name
                ),
                hint,
            });
        }
    }
    Ok(())
}

/// The first built-in gateway's cassette folder (absolute: relative to the gateway's
/// folder, as the gateway reads it) and replay speed; without a gateway, `cassettes/` in
/// `cwd`.
pub(crate) fn cassettes(services: &[&Service], cwd: &Path) -> (PathBuf, f64) {
    let gateway = services.iter().find_map(|s| match &s.kind {
        ServiceKind::Builtin {
            builtin: BuiltinKind::Gateway,
            config,
        } => Some((s, config)),
        _ => None,
    });
    let Some((gw, config)) = gateway else {
        return (cwd.join("cassettes"), 1.0);
    };
    let dir = config
        .get("cassettes")
        .and_then(Value::as_str)
        .unwrap_or("cassettes");
    let speed = config
        .get("replay_speed")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    (gw.cwd.join(dir), speed)
}

/// The replay notes of a project (SPEC §4.4): one JSON line per replayed answer.
pub(crate) fn notes_file(state_dir: &Path) -> PathBuf {
    state_dir.join("replay.jsonl")
}

/// What one built-in's configuration needs to know of the others.
pub(crate) struct Context<'a> {
    /// The overrides.
    pub overrides: &'a Overrides,
    /// The built-in model's URL as this service sees it, if the stack has one.
    pub mock_url: Option<String>,
    /// The service's own folder (where its relative paths start).
    pub cwd: &'a Path,
    /// The project's state folder.
    pub state_dir: &'a Path,
    /// Every planned service.
    pub services: &'a [&'a Service],
}

/// Applies the overrides to `config`, a built-in `kind`'s configuration.
pub(crate) fn apply(kind: BuiltinKind, config: &mut Value, cx: &Context<'_>) {
    if !config.is_object() {
        *config = json!({});
    }
    let Some(map) = config.as_object_mut() else {
        return;
    };
    match kind {
        BuiltinKind::Gateway => {
            let Some(mode) = cx.overrides.llm else {
                return;
            };
            map.insert("llm".into(), mode.as_str().into());
            if let (false, Some(url)) = (map.contains_key("mock"), &cx.mock_url) {
                map.insert("mock".into(), url.clone().into());
            }
            let dir = map
                .get("cassettes")
                .and_then(Value::as_str)
                .unwrap_or("cassettes")
                .to_string();
            map.insert(
                "cassettes".into(),
                cx.cwd.join(dir).display().to_string().into(),
            );
        }
        BuiltinKind::Model if cx.overrides.llm == Some(Mode::Replay) => {
            let (dir, speed) = cassettes(cx.services, cx.cwd);
            map.insert(
                "replay".into(),
                json!({
                    "cassettes": dir.display().to_string(),
                    "speed": speed,
                    "notes": notes_file(cx.state_dir).display().to_string(),
                }),
            );
        }
        BuiltinKind::Context => {
            let Some((db, snapshot)) = &cx.overrides.hermetic else {
                return;
            };
            map.insert("db".into(), db.display().to_string().into());
            if let Some(s) = snapshot {
                map.insert("snapshot".into(), s.display().to_string().into());
            }
        }
        BuiltinKind::Model => {}
    }
}
