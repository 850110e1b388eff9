//! From text to a validated [`Stack`]: parse, interpolate (pass one), deserialise field by
//! field into the raw types, then check how fields relate. Every problem is collected, with
//! its location, so one run of `stack validate` shows them all.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::diagnostic::{ConfigErrors, Diagnostic, Severity, did_you_mean};
use super::dotenv;
use super::fields::field_names;
use super::interpolate::{Reference, expand_env};
use super::model::*;
use super::raw::*;
use super::source::{FieldPath, Positions, Segment};

mod health;
mod names;
mod relations;
mod service;
mod watch;

use names::{check_explicit_name, default_project_name, valid_service_name};
pub(crate) use names::{env_key, sanitize_project_name};
pub(crate) use relations::{BuiltinCheck, BuiltinProblem};
use relations::{check_builtins, check_dependencies, check_refs};
use service::{Scope, service};

/// What the command line adds to the file.
pub(crate) struct LoadOptions<'a> {
    /// `-p/--project-name` (or `STACK_PROJECT_NAME`).
    pub project_name: Option<String>,
    /// `--runtime`: the default runtime for services that do not set one.
    pub runtime: Option<RuntimeKind>,
    /// The process environment.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The built-ins' own check of their `config:` (the services know their settings;
    /// the stack file only carries them).
    pub check_builtin: Option<BuiltinCheck<'a>>,
}

/// A validated stack and the warnings found on the way.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The stack.
    pub stack: Stack,
    /// Warnings (unset variables…), rendered like errors.
    pub warnings: ConfigErrors,
    /// Every string that read an environment variable, as the file writes it
    /// (`${GATEWAY_KEY:-dev-key}`), by field: an export keeps such secrets references.
    pub written: HashMap<FieldPath, Written>,
}

/// A string of the stack file that read environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    /// Its text before interpolation.
    pub raw: String,
    /// The variables it read.
    pub vars: Vec<String>,
}

impl Loaded {
    /// The variable whose being unset left `field` empty (`services.gateway.config.…`), if
    /// loading warned of one there.
    pub(crate) fn unset_variable(&self, field: &FieldPath) -> Option<String> {
        unset_variable(&self.warnings.diagnostics, field)
    }
}

/// The variable named by an "is not set" warning at `field` among `diagnostics`.
fn unset_variable(diagnostics: &[Diagnostic], field: &FieldPath) -> Option<String> {
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning && &d.path == field)
        .find_map(|d| {
            let rest = d.message.strip_prefix("variable `")?;
            let (var, tail) = rest.split_once('`')?;
            tail.starts_with(" is not set").then(|| var.to_string())
        })
}

/// Validates `text`, read from `file` (absolute).
pub(crate) fn parse(
    file: &Path,
    display: &Path,
    text: &str,
    opts: &LoadOptions,
) -> Result<Loaded, ConfigErrors> {
    let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut cx = Cx {
        positions: Positions::default(),
        diagnostics: Vec::new(),
        warned: HashSet::new(),
        written: HashMap::new(),
    };
    let stack = build(&mut cx, file, &dir, text, opts);
    let written = cx.written;
    let mut diagnostics = cx.diagnostics;
    diagnostics.sort_by_key(|d| d.location.map(|l| (l.line, l.column)));
    let (errors, warnings): (Vec<_>, Vec<_>) = diagnostics
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    let wrap = |diagnostics| ConfigErrors {
        file: display.to_path_buf(),
        text: text.to_string(),
        diagnostics,
    };
    match stack {
        Some(stack) if errors.is_empty() => Ok(Loaded {
            stack,
            warnings: wrap(warnings),
            written,
        }),
        _ => {
            let mut all = errors;
            all.extend(warnings);
            all.sort_by_key(|d| d.location.map(|l| (l.line, l.column)));
            Err(wrap(all))
        }
    }
}

struct Cx {
    positions: Positions,
    diagnostics: Vec<Diagnostic>,
    warned: HashSet<String>,
    written: HashMap<FieldPath, Written>,
}

impl Cx {
    /// An error located at the value of `path`.
    fn error(&mut self, path: FieldPath, message: impl Into<String>) -> &mut Diagnostic {
        let at = self.positions.value(&path);
        self.push(Diagnostic::error(path, message).at(at))
    }

    /// A warning located at the value of `path`.
    fn warning(&mut self, path: FieldPath, message: impl Into<String>) -> &mut Diagnostic {
        let at = self.positions.value(&path);
        self.push(Diagnostic::warning(path, message).at(at))
    }

    /// An error located at the key of `path`.
    fn key_error(&mut self, path: FieldPath, message: impl Into<String>) -> &mut Diagnostic {
        let at = self.positions.key(&path);
        self.push(Diagnostic::error(path, message).at(at))
    }

    /// Whether an error about what service `path` runs was reported: a malformed
    /// `command`, `builtin`, `image` or `build`, or an unknown key that is a misspelling
    /// of one.
    fn reported_what_runs(&self, path: &FieldPath) -> bool {
        const WHAT_RUNS: [&str; 4] = ["command", "builtin", "image", "build"];
        self.diagnostics.iter().any(|d| {
            d.severity == Severity::Error
                && d.path.0.starts_with(&path.0)
                && match d.path.0.get(path.0.len()) {
                    Some(Segment::Key(k)) if WHAT_RUNS.contains(&k.as_str()) => true,
                    Some(Segment::Key(_)) => {
                        d.message.starts_with("unknown field")
                            && d.hint.as_deref().is_some_and(|h| {
                                WHAT_RUNS
                                    .iter()
                                    .any(|w| h == format!("did you mean `{w}`?"))
                            })
                    }
                    _ => false,
                }
        })
    }

    /// The errors reported so far.
    fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.diagnostics.push(d);
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    /// Reports keys of `map` that `T` does not know, suggesting the closest known one.
    fn unknown_keys(&mut self, path: &FieldPath, map: &Mapping, known: &[&str], extensions: bool) {
        for key in map.keys() {
            let Some(k) = key.as_str() else {
                self.error(path.clone(), "keys must be strings");
                continue;
            };
            if known.contains(&k) || (extensions && k.starts_with("x-")) {
                continue;
            }
            let hint = did_you_mean(k, known.iter().copied())
                .unwrap_or_else(|| format!("known fields: {}", known.join(", ")));
            self.key_error(path.key(k), format!("unknown field `{k}`"))
                .hint = Some(hint);
        }
    }

    /// Deserialises `value` as `T`, reporting the error at its precise field.
    fn de<T: DeserializeOwned>(&mut self, path: &FieldPath, value: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(err) => {
                let at = path.join_serde(err.path());
                let (message, hint) = humanize(&err.into_inner().to_string());
                // An unknown field is best shown at its key, anything else at its value.
                let loc = if message.starts_with("unknown field") {
                    self.positions.key(&at)
                } else {
                    self.positions.value(&at)
                };
                self.push(Diagnostic::error(at, message).at(loc).maybe_hint(hint));
                None
            }
        }
    }
}

/// Turns serde's messages into ours: unknown fields get a "did you mean".
fn humanize(message: &str) -> (String, Option<String>) {
    let message = message
        .strip_suffix(" at line 1 column 1")
        .unwrap_or(message)
        .to_string();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = did_you_mean(field, candidates.iter().copied()).or_else(|| {
            (!candidates.is_empty()).then(|| format!("known fields: {}", candidates.join(", ")))
        });
        return (format!("unknown field `{field}`"), hint);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((word, expected)) = rest.split_once('`')
    {
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = did_you_mean(word, candidates.iter().copied())
            .unwrap_or_else(|| format!("write one of: {}", candidates.join(", ")));
        return (format!("`{word}` is not allowed here"), Some(hint));
    }
    (plain_words(&message), None)
}

/// serde's type names in words a user reads (`expected u32` → "a whole number, 0 or
/// more"; `invalid type: map` → "a mapping").
fn plain_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected a Value::Tagged enum", "expected one of its words"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("invalid type: map", "invalid type: a mapping"),
        ("invalid type: sequence", "invalid type: a list"),
        ("invalid type: integer", "invalid type: the number"),
        ("invalid type: floating point", "invalid type: the number"),
        ("invalid type: string", "invalid type: the text"),
        ("invalid type: boolean", "invalid type: the boolean"),
        ("invalid type: unit value", "invalid type: an empty value"),
        ("invalid value: integer", "invalid value: the number"),
        ("invalid type:", "not allowed here:"),
        ("invalid value:", "not allowed here:"),
    ];
    let mut out = message.to_string();
    for (serde, plain) in WORDS {
        out = out.replace(serde, plain);
    }
    out
}

const TOP_FIELDS: &[&str] = &[
    "name",
    "runtime",
    "env_file",
    "watch_debounce",
    "otlp_forward",
    "services",
];

fn build(cx: &mut Cx, file: &Path, dir: &Path, text: &str, opts: &LoadOptions) -> Option<Stack> {
    let mut top = read_document(cx, text)?;
    cx.unknown_keys(&FieldPath::root(), &top, TOP_FIELDS, true);
    top.retain(|k, _| k.as_str().is_some_and(|k| !k.starts_with("x-")));

    // env_file first: it feeds the interpolation of everything else.
    let (file_env, env_file_paths) = env_files(cx, dir, top.remove("env_file"), opts.env);
    let lookup = |name: &str| (opts.env)(name).or_else(|| file_env.get(name).cloned());
    let raw_name = top_field::<String>(cx, &mut top, "name", &lookup);
    let raw_runtime = top_field::<RuntimeKind>(cx, &mut top, "runtime", &lookup);
    let watch_debounce = top_field::<RawDuration>(cx, &mut top, "watch_debounce", &lookup)
        .map_or(DEFAULT_WATCH_DEBOUNCE, |d| d.0);
    let otlp_forward = top_field::<String>(cx, &mut top, "otlp_forward", &lookup)
        .and_then(|url| otlp_forward(cx, url));
    let services_map = services_map(cx, top.remove("services"));

    let default_name = default_project_name(cx, dir, raw_name);
    if let Some(n) = &opts.project_name {
        check_explicit_name(cx, n);
    }
    let name = opts
        .project_name
        .clone()
        .unwrap_or_else(|| default_name.clone());

    let mut refs = Vec::new();
    let raws = raw_services(cx, services_map, &lookup, &mut refs);
    let names: Vec<&str> = raws.iter().map(|(n, _)| n.as_str()).collect();
    let scope = Scope {
        dir,
        default_runtime: opts.runtime.or(raw_runtime).unwrap_or_default(),
        runtime_from_cli: opts.runtime.is_some(),
        names: &names,
    };
    relations::check_env_prefixes(cx, &names);
    relations::check_fixed_ports(cx, &raws);
    let services: Vec<Service> = raws
        .iter()
        .filter_map(|(svc, raw)| service(cx, &scope, svc, raw.as_ref()?))
        .collect();
    check_dependencies(cx, &services);
    check_refs(cx, &services, &names, &refs);
    relations::check_cycles(cx, &raws);
    if let Some(check) = opts.check_builtin {
        check_builtins(cx, &services, dir, check);
    }
    Some(Stack {
        name,
        default_name,
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        services,
        watch_debounce,
        env_files: env_file_paths,
        otlp_forward,
    })
}

/// `otlp_forward:` must be an `http(s)://` URL (its `/v1/traces`… are appended).
fn otlp_forward(cx: &mut Cx, url: String) -> Option<String> {
    let path = FieldPath::root().key("otlp_forward");
    let ok = url
        .parse::<axum::http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if ok {
        return Some(url.trim_end_matches('/').to_string());
    }
    cx.push(
        Diagnostic::error(
            path.clone(),
            format!("`otlp_forward` must be an http:// or https:// URL, not `{url}`"),
        )
        .at(cx.positions.value(&path))
        .hint("the collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`"),
    );
    None
}

/// How long file changes gather into one `watch:` action unless `watch_debounce:` says.
const DEFAULT_WATCH_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(100);

/// The document's top-level mapping, with its positions recorded; `None` (reported) when
/// it is not YAML or not a mapping.
fn read_document(cx: &mut Cx, text: &str) -> Option<Mapping> {
    match Positions::parse(text) {
        Ok(mut p) => {
            let refusals = std::mem::take(&mut p.refusals);
            cx.positions = p;
            if !refusals.is_empty() {
                for (message, at, hint) in refusals {
                    cx.push(
                        Diagnostic::error(FieldPath::root(), format!("invalid YAML: {message}"))
                            .at(Some(at))
                            .hint(hint),
                    );
                }
                return None;
            }
        }
        Err((message, at)) => {
            cx.push(
                Diagnostic::error(FieldPath::root(), format!("invalid YAML: {message}"))
                    .at(Some(at)),
            );
            return None;
        }
    }
    let mut doc: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(err) => {
            let at = err.location().map(|l| super::source::Location {
                line: l.line(),
                column: l.column(),
            });
            let (message, _) = humanize(&err.to_string());
            cx.push(
                Diagnostic::error(FieldPath::root(), format!("invalid YAML: {message}")).at(at),
            );
            return None;
        }
    };
    if let Err(err) = doc.apply_merge() {
        cx.error(FieldPath::root(), format!("invalid merge key: {err}"));
        return None;
    }
    match doc {
        Value::Mapping(top) => Some(top),
        doc => {
            let what = if doc.is_null() {
                "empty"
            } else {
                "not a mapping"
            };
            cx.push(
                Diagnostic::error(FieldPath::root(), format!("the stack file is {what}")).hint(
                    "a stack file is a mapping with a `services:` key; `stack new minimal` writes one",
                ),
            );
            None
        }
    }
}

/// The variables of the `env_file:` files (interpolated with the process environment),
/// and the files.
fn env_files(
    cx: &mut Cx,
    dir: &Path,
    value: Option<Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> (HashMap<String, String>, Vec<PathBuf>) {
    let mut vars = HashMap::new();
    let mut paths = Vec::new();
    let Some(mut v) = value else {
        return (vars, paths);
    };
    let path = FieldPath::root().key("env_file");
    interpolate(cx, &path, &mut v, env, &mut Vec::new());
    let Some(files) = cx.de::<OneOrMany>(&path, v) else {
        return (vars, paths);
    };
    for (i, name) in files.to_vec().iter().enumerate() {
        let item = if matches!(files, OneOrMany::Many(_)) {
            path.index(i)
        } else {
            path.clone()
        };
        paths.push(dir.join(name));
        match dotenv::read(&dir.join(name)) {
            Ok(read) => vars.extend(read),
            Err(message) => {
                cx.error(item, message).hint =
                    Some("create the file, or remove it from `env_file`".into());
            }
        }
    }
    (vars, paths)
}

/// A top-level scalar field, interpolated.
fn top_field<T: DeserializeOwned>(
    cx: &mut Cx,
    top: &mut Mapping,
    key: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<T> {
    let mut v = top.remove(key)?;
    let path = FieldPath::root().key(key);
    interpolate(cx, &path, &mut v, lookup, &mut Vec::new());
    cx.de::<T>(&path, v)
}

/// `services:`, which must be a non-empty mapping.
fn services_map(cx: &mut Cx, value: Option<Value>) -> Mapping {
    let services_path = FieldPath::root().key("services");
    match value {
        Some(Value::Mapping(m)) => m,
        Some(Value::Null) | None => {
            cx.push(
                Diagnostic::error(services_path.clone(), "the stack has no services")
                    .at(cx.positions.key(&services_path))
                    .hint("add at least one service under `services:`"),
            );
            Mapping::new()
        }
        Some(_) => {
            cx.error(
                services_path,
                "`services` must be a mapping of service names to services",
            );
            Mapping::new()
        }
    }
}

/// Each service interpolated, its keys checked, deserialised field by field (`None`
/// when it is not a mapping). References to other services land in `refs`.
fn raw_services(
    cx: &mut Cx,
    services: Mapping,
    lookup: &dyn Fn(&str) -> Option<String>,
    refs: &mut Vec<(String, FieldPath, Reference)>,
) -> Vec<(String, Option<RawService>)> {
    let service_fields = field_names::<RawService>();
    let mut raws = Vec::new();
    for (key, value) in services {
        let Some(svc) = key.as_str().map(str::to_string) else {
            cx.error(
                FieldPath::root().key("services"),
                "service names must be strings",
            );
            continue;
        };
        let path = FieldPath::service(&svc);
        if !valid_service_name(&svc) {
            cx.key_error(path.clone(), format!("`{svc}` is not a valid service name"))
                .hint = Some(
                "use letters, digits, `-`, `_` and `.`, starting with a letter or digit".into(),
            );
        }
        let mut map = match value {
            Value::Mapping(m) => m,
            Value::Null => {
                cx.key_error(path.clone(), format!("service `{svc}` is empty"))
                    .hint = Some("give it a `command`, `builtin`, `image` or `build`".into());
                raws.push((svc, None));
                continue;
            }
            _ => {
                cx.error(
                    path.clone(),
                    format!("service `{svc}` must be a mapping of fields"),
                );
                raws.push((svc, None));
                continue;
            }
        };
        cx.unknown_keys(&path, &map, service_fields, false);
        map.retain(|k, _| k.as_str().is_some_and(|k| service_fields.contains(&k)));
        let mut svc_refs = Vec::new();
        for (k, v) in map.iter_mut() {
            let field = path.key(k.as_str().unwrap_or_default());
            interpolate(cx, &field, v, lookup, &mut svc_refs);
        }
        refs.extend(svc_refs.into_iter().map(|(p, r)| (svc.clone(), p, r)));
        let raw = deserialize_fields::<RawService>(cx, &path, map);
        raws.push((svc, raw));
    }
    raws
}

/// Deserialises a mapping as `T`; on failure, field by field so every bad field is reported.
fn deserialize_fields<T: DeserializeOwned>(
    cx: &mut Cx,
    path: &FieldPath,
    map: Mapping,
) -> Option<T> {
    if let Ok(v) = serde_yaml::from_value::<T>(Value::Mapping(map.clone())) {
        return Some(v);
    }
    // Report every bad field, and keep the good ones so later checks still run.
    let mut good = Mapping::new();
    for (k, v) in map {
        let mut one = Mapping::new();
        one.insert(k.clone(), v.clone());
        if cx.de::<T>(path, Value::Mapping(one)).is_some() {
            good.insert(k, v);
        }
    }
    serde_yaml::from_value::<T>(Value::Mapping(good)).ok()
}

/// Pass-one interpolation of every string in `value`, recording references and unset
/// variables.
fn interpolate(
    cx: &mut Cx,
    path: &FieldPath,
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    refs: &mut Vec<(FieldPath, Reference)>,
) {
    match value {
        Value::String(s) => {
            if !s.contains('$') {
                return;
            }
            let read = std::cell::RefCell::new(Vec::new());
            let recording = |name: &str| {
                read.borrow_mut().push(name.to_string());
                lookup(name)
            };
            match expand_env(s, &recording) {
                Ok(e) => {
                    let vars = read.into_inner();
                    if !vars.is_empty() {
                        let raw = s.clone();
                        cx.written.insert(path.clone(), Written { raw, vars });
                    }
                    for var in e.unset {
                        if cx.warned.insert(var.clone()) {
                            let at = cx.positions.value(path);
                            cx.push(
                                Diagnostic::warning(
                                    path.clone(),
                                    format!("variable `{var}` is not set; using an empty string"),
                                )
                                .at(at)
                                .hint(format!("set it, or give a default: `${{{var}:-value}}`")),
                            );
                        }
                    }
                    refs.extend(e.refs.into_iter().map(|r| (path.clone(), r)));
                    *s = e.text;
                }
                Err(err) => {
                    let at = cx.positions.value(path);
                    cx.push(
                        Diagnostic::error(path.clone(), err.message)
                            .at(at)
                            .maybe_hint(err.hint),
                    );
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(cx, &path.index(i), item, lookup, refs);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().map_or_else(|| "?".to_string(), str::to_string);
                interpolate(cx, &path.key(key), v, lookup, refs);
            }
        }
        Value::Tagged(t) => interpolate(cx, path, &mut t.value, lookup, refs),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The absolute path of the stack file: `-f`, else `stack.yaml` (or `stack.yml`) in `cwd`
/// or the nearest parent.
pub(crate) fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, String> {
    if let Some(f) = explicit {
        let p = cwd.join(f);
        return if p.is_file() {
            Ok(p)
        } else if p.is_dir() {
            let inner = p.join("stack.yaml");
            if inner.is_file() {
                Ok(inner)
            } else {
                Err(format!("no stack.yaml in `{}`", f.display()))
            }
        } else {
            Err(format!("stack file `{}` does not exist", f.display()))
        };
    }
    for dir in cwd.ancestors() {
        for name in ["stack.yaml", "stack.yml"] {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "no stack.yaml in `{}` or any parent folder",
        cwd.display()
    ))
}
