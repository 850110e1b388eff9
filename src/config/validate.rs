//! From text to a validated [`Stack`]: parse, interpolate (pass one), deserialise field by
//! field into the raw types, then check how fields relate. Every problem is collected, with
//! its location, so one run of `stack validate` shows them all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::cycles;
use super::diagnostic::{ConfigErrors, Diagnostic, Severity, did_you_mean};
use super::dotenv;
use super::fields::field_names;
use super::interpolate::{Reference, ServiceField, expand_env};
use super::model::*;
use super::raw::*;
use super::source::{FieldPath, Positions};
use crate::config::BuiltinKind;

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
    };
    let stack = build(&mut cx, file, &dir, text, opts);
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
}

impl Cx {
    /// An error located at the value of `path`.
    fn error(&mut self, path: FieldPath, message: impl Into<String>) -> &mut Diagnostic {
        let at = self.positions.value(&path);
        self.push(Diagnostic::error(path, message).at(at))
    }

    /// An error located at the key of `path`.
    fn key_error(&mut self, path: FieldPath, message: impl Into<String>) -> &mut Diagnostic {
        let at = self.positions.key(&path);
        self.push(Diagnostic::error(path, message).at(at))
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
    (message, None)
}

const TOP_FIELDS: &[&str] = &["name", "runtime", "env_file", "services"];

fn build(cx: &mut Cx, file: &Path, dir: &Path, text: &str, opts: &LoadOptions) -> Option<Stack> {
    match Positions::parse(text) {
        Ok(p) => cx.positions = p,
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
    let Value::Mapping(mut top) = doc else {
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
        return None;
    };
    cx.unknown_keys(&FieldPath::root(), &top, TOP_FIELDS, true);
    top.retain(|k, _| k.as_str().is_some_and(|k| !k.starts_with("x-")));

    // env_file first: it feeds the interpolation of everything else.
    let mut file_env: HashMap<String, String> = HashMap::new();
    if let Some(v) = top.remove("env_file") {
        let path = FieldPath::root().key("env_file");
        let mut v = v;
        interpolate(cx, &path, &mut v, opts.env, &mut Vec::new());
        if let Some(files) = cx.de::<OneOrMany>(&path, v) {
            for (i, name) in files.to_vec().iter().enumerate() {
                let item = if matches!(files, OneOrMany::Many(_)) {
                    path.index(i)
                } else {
                    path.clone()
                };
                match dotenv::read(&dir.join(name)) {
                    Ok(vars) => file_env.extend(vars),
                    Err(message) => {
                        cx.error(item, message).hint =
                            Some("create the file, or remove it from `env_file`".into());
                    }
                }
            }
        }
    }
    let lookup = |name: &str| (opts.env)(name).or_else(|| file_env.get(name).cloned());

    let mut refs: Vec<(String, FieldPath, Reference)> = Vec::new();
    let mut raw_name = None;
    let mut raw_runtime = None;
    if let Some(mut v) = top.remove("name") {
        let path = FieldPath::root().key("name");
        interpolate(cx, &path, &mut v, &lookup, &mut Vec::new());
        raw_name = cx.de::<String>(&path, v);
    }
    if let Some(mut v) = top.remove("runtime") {
        let path = FieldPath::root().key("runtime");
        interpolate(cx, &path, &mut v, &lookup, &mut Vec::new());
        raw_runtime = cx.de::<RuntimeKind>(&path, v);
    }
    let services_path = FieldPath::root().key("services");
    let services_map = match top.remove("services") {
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
                services_path.clone(),
                "`services` must be a mapping of service names to services",
            );
            Mapping::new()
        }
    };

    let default_name = default_project_name(cx, dir, raw_name);
    if let Some(n) = &opts.project_name {
        check_explicit_name(cx, n);
    }
    let name = opts
        .project_name
        .clone()
        .unwrap_or_else(|| default_name.clone());
    let default_runtime = opts.runtime.or(raw_runtime).unwrap_or_default();

    // Each service: interpolate, check its keys, deserialise field by field.
    let service_fields = field_names::<RawService>();
    let mut raws: Vec<(String, Option<RawService>)> = Vec::new();
    for (key, value) in services_map {
        let Some(svc) = key.as_str().map(str::to_string) else {
            cx.error(services_path.clone(), "service names must be strings");
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
            interpolate(cx, &field, v, &lookup, &mut svc_refs);
        }
        refs.extend(svc_refs.into_iter().map(|(p, r)| (svc.clone(), p, r)));
        let raw = deserialize_fields::<RawService>(cx, &path, map);
        raws.push((svc, raw));
    }

    // Relations between fields and services.
    let names: Vec<&str> = raws.iter().map(|(n, _)| n.as_str()).collect();
    let mut env_names: HashMap<String, &str> = HashMap::new();
    for n in &names {
        if let Some(other) = env_names.insert(env_key(n), n) {
            cx.key_error(
                FieldPath::service(n),
                format!(
                    "`{n}` and `{other}` both become `STACK_{}_*` variables",
                    env_key(n)
                ),
            )
            .hint = Some("rename one of them".into());
        }
    }
    let mut services = Vec::new();
    let mut fixed_ports: BTreeMap<u16, FieldPath> = BTreeMap::new();
    for (svc, raw) in &raws {
        let Some(raw) = raw else { continue };
        let declared = raw
            .port
            .iter()
            .map(|p| ("main".to_string(), *p))
            .chain(raw.ports.iter().flatten().map(|(n, p)| (n.clone(), *p)));
        for (pname, p) in declared {
            let host = match p {
                RawPort::Fixed(h) | RawPort::Mapped { host: Some(h), .. } => h,
                _ => continue,
            };
            let path = port_path(svc, raw, &pname);
            if let Some(first) = fixed_ports.get(&host) {
                cx.error(path, format!("port {host} is also used by `{first}`"))
                    .hint = Some("give each service its own port, or use `auto`".into());
            } else {
                fixed_ports.insert(host, path);
            }
        }
        if let Some(s) = service(
            cx,
            dir,
            svc,
            raw,
            default_runtime,
            opts.runtime.is_some(),
            &names,
        ) {
            services.push(s);
        }
    }
    check_dependencies(cx, &services);
    check_refs(cx, &services, &names, &refs);
    let edges: Vec<(&str, Vec<&str>)> = raws
        .iter()
        .map(|(n, raw)| {
            let deps = raw
                .as_ref()
                .and_then(|r| r.depends_on.as_ref())
                .map(|d| d.entries.iter().map(|(t, _)| t.as_str()).collect())
                .unwrap_or_default();
            (n.as_str(), deps)
        })
        .collect();
    for cycle in cycles::cycles(&edges) {
        let first = &cycle[0];
        cx.key_error(
            FieldPath::service(first).key("depends_on"),
            format!("dependency cycle: {}", cycle.join(" → ")),
        )
        .hint = Some("remove one of these `depends_on` entries".into());
    }
    if let Some(check) = opts.check_builtin {
        check_builtins(cx, &services, dir, check);
    }
    Some(Stack {
        name,
        default_name,
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        services,
    })
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
            match expand_env(s, lookup) {
                Ok(e) => {
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

/// The project's own name: `name:`, else the folder's name, sanitised.
fn default_project_name(cx: &mut Cx, dir: &Path, raw: Option<String>) -> String {
    if let Some(n) = raw {
        if !valid_project_name(&n) {
            cx.error(
                FieldPath::root().key("name"),
                format!("`{n}` is not a valid project name"),
            )
            .hint = Some(format!(
                "use lowercase letters, digits, `-` and `_`, e.g. `{}`",
                sanitize_project_name(&n)
            ));
        }
        return n;
    }
    let folder = dir.file_name().and_then(|s| s.to_str()).unwrap_or("stack");
    sanitize_project_name(folder)
}

/// Checks a name given with `-p/--project-name`.
fn check_explicit_name(cx: &mut Cx, n: &str) {
    if !valid_project_name(n) {
        cx.push(
            Diagnostic::error(
                FieldPath::root(),
                format!("`{n}` (from -p/--project-name) is not a valid project name"),
            )
            .hint("use lowercase letters, digits, `-` and `_`, starting with a letter or digit"),
        );
    }
}

/// Whether `n` may name a project: `[a-z0-9][a-z0-9_-]*`.
pub(crate) fn valid_project_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A valid project name made from a folder name.
pub(crate) fn sanitize_project_name(n: &str) -> String {
    let s: String = n
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_start_matches(['-', '_']).to_string();
    if s.is_empty() { "stack".to_string() } else { s }
}

fn valid_service_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `STACK_<X>_…`: upper-cased, non-alphanumerics → `_`.
pub(crate) fn env_key(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn port_path(svc: &str, raw: &RawService, name: &str) -> FieldPath {
    if raw.port.is_some() && name == "main" {
        FieldPath::service(svc).key("port")
    } else {
        FieldPath::service(svc).key("ports").key(name)
    }
}

fn service(
    cx: &mut Cx,
    dir: &Path,
    name: &str,
    raw: &RawService,
    default_runtime: RuntimeKind,
    runtime_from_cli: bool,
    names: &[&str],
) -> Option<Service> {
    let path = FieldPath::service(name);
    let errors_before = cx
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();

    // What runs, and where.
    let image = match (&raw.image, &raw.build) {
        (Some(_), Some(_)) => {
            cx.key_error(path.key("build"), "`image` and `build` both set")
                .hint = Some("use `image` for an existing image, or `build` to build one".into());
            None
        }
        (Some(i), None) => Some(Image::Reference(i.clone())),
        (None, Some(b)) => Some(Image::Build {
            context: dir.join(&b.context),
            dockerfile: b.dockerfile.clone(),
        }),
        (None, None) => None,
    };
    let kind = if let Some(builtin) = raw.builtin {
        for (field, set) in [
            ("command", raw.command.is_some()),
            ("image", raw.image.is_some()),
            ("build", raw.build.is_some()),
        ] {
            if set {
                cx.key_error(path.key(field), format!("`builtin: {builtin}` runs `stack serve {builtin}`; `{field}` cannot be set too"))
                    .hint = Some(format!("remove `{field}`, or remove `builtin` to run your own program"));
            }
        }
        let config = match &raw.config {
            None | Some(Value::Null) => serde_json::Value::Object(Default::default()),
            Some(v @ Value::Mapping(_)) => match serde_json::to_value(v) {
                Ok(j) => j,
                Err(err) => {
                    cx.error(
                        path.key("config"),
                        format!("cannot use this configuration: {err}"),
                    );
                    serde_json::Value::Null
                }
            },
            Some(_) => {
                cx.error(path.key("config"), "`config` must be a mapping");
                serde_json::Value::Null
            }
        };
        ServiceKind::Builtin { builtin, config }
    } else {
        if raw.config.is_some() {
            cx.key_error(
                path.key("config"),
                "`config` only applies to built-in services",
            )
            .hint = Some("pass settings to your own program with `env`".into());
        }
        match (&raw.command, image) {
            (Some(c), image) => ServiceKind::Command {
                command: command(cx, &path.key("command"), c)?,
                image,
            },
            (None, Some(image)) => ServiceKind::Image { image },
            (None, None) => {
                cx.key_error(path.clone(), format!("service `{name}` has nothing to run"))
                    .hint = Some(
                    "set `command`, `builtin` (context, model or gateway), `image` or `build`"
                        .into(),
                );
                return None;
            }
        }
    };
    let runtime = match raw.runtime {
        Some(r) => r,
        None => match (&kind, default_runtime) {
            // A plain command cannot run as a container, an image cannot run as a process.
            (ServiceKind::Command { image: None, .. }, RuntimeKind::Container) => {
                RuntimeKind::Process
            }
            (ServiceKind::Image { .. }, RuntimeKind::Process) => RuntimeKind::Container,
            (_, r) => r,
        },
    };
    match (&kind, runtime) {
        (ServiceKind::Image { .. }, RuntimeKind::Process) => {
            cx.error(
                path.key("runtime"),
                "a process needs a `command`; this service only has an image",
            )
            .hint = Some("use `runtime: container`, or add a `command`".into());
        }
        (ServiceKind::Command { image: None, .. }, RuntimeKind::Container)
            if raw.runtime.is_some() || !runtime_from_cli =>
        {
            cx.error(
                path.key("runtime"),
                "a container needs an `image` or `build`",
            )
            .hint = Some("add `image:` (or `build:`), or use `runtime: process`".into());
        }
        _ => {}
    }

    let cwd = match &raw.cwd {
        Some(c) => {
            let p = dir.join(c);
            if runtime == RuntimeKind::Process && !p.is_dir() {
                cx.error(
                    path.key("cwd"),
                    format!("folder `{c}` does not exist (in {})", dir.display()),
                )
                .hint = Some("create it, or fix the path (relative to the stack file)".into());
            }
            p
        }
        None => dir.to_path_buf(),
    };

    // Ports.
    let mut ports = Vec::new();
    if raw.port.is_some() && raw.ports.is_some() {
        cx.key_error(path.key("ports"), "`port` and `ports` both set")
            .hint = Some("`port: X` is short for `ports: {main: X}`; use one of them".into());
    }
    let declared: Vec<(String, RawPort)> = match (&raw.port, &raw.ports) {
        (Some(p), _) => vec![("main".to_string(), *p)],
        (None, Some(m)) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        (None, None) if raw.builtin.is_some() => vec![("main".to_string(), RawPort::Auto)],
        (None, None) => Vec::new(),
    };
    for (pname, p) in declared {
        let ppath = port_path(name, raw, &pname);
        if !valid_port_name(&pname) {
            cx.key_error(ppath.clone(), format!("`{pname}` is not a valid port name"))
                .hint = Some("use lowercase letters, digits, `-` and `_`".into());
        }
        let spec = match p {
            RawPort::Auto => PortSpec {
                name: pname,
                host: None,
                container: None,
            },
            RawPort::Fixed(n) => PortSpec {
                name: pname,
                host: Some(n),
                container: None,
            },
            RawPort::Mapped { host, container } => {
                if runtime == RuntimeKind::Process {
                    cx.error(
                        ppath,
                        "a `{host, container}` mapping only applies to containers",
                    )
                    .hint = Some("write a port number or `auto` for a process".into());
                }
                PortSpec {
                    name: pname,
                    host,
                    container: Some(container),
                }
            }
        };
        ports.push(spec);
    }

    let env = raw.env.clone().unwrap_or_default().0;
    for (k, _) in &env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            cx.key_error(
                path.key("env").key(k.clone()),
                format!("`{k}` is not a variable name"),
            );
        }
    }

    let health = health(cx, &path, raw, &ports);
    let stop_signal = match &raw.stop_signal {
        None => StopSignal::TERM,
        Some(s) => StopSignal::parse(s).unwrap_or_else(|| {
            cx.error(path.key("stop_signal"), format!("`{s}` is not a signal"))
                .hint = Some("write e.g. `SIGTERM`, `SIGINT`, `SIGQUIT` or a number".into());
            StopSignal::TERM
        }),
    };
    let mut depends_on = Vec::new();
    if let Some(deps) = &raw.depends_on {
        for (i, (dep, condition)) in deps.entries.iter().enumerate() {
            let dpath = if deps.map {
                path.key("depends_on").key(dep.clone())
            } else {
                path.key("depends_on").index(i)
            };
            if dep == name {
                cx.key_error(dpath, format!("`{name}` depends on itself"))
                    .hint = Some("remove it from its own `depends_on`".into());
                continue;
            }
            if !names.contains(&dep.as_str()) {
                let hint = did_you_mean(dep, names.iter().copied())
                    .unwrap_or_else(|| format!("services in this stack: {}", names.join(", ")));
                cx.key_error(
                    dpath,
                    format!("depends on `{dep}`, which is not a service of this stack"),
                )
                .hint = Some(hint);
                continue;
            }
            depends_on.push(Dependency {
                service: dep.clone(),
                condition: *condition,
            });
        }
    }
    let profiles = raw.profiles.clone().unwrap_or_default();
    for (i, p) in profiles.iter().enumerate() {
        if !valid_port_name(p) {
            cx.error(
                path.key("profiles").index(i),
                format!("`{p}` is not a valid profile name"),
            )
            .hint = Some("use lowercase letters, digits, `-` and `_`".into());
        }
    }
    let errors_after = cx
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    (errors_after == errors_before).then(|| Service {
        name: name.to_string(),
        kind,
        runtime,
        cwd,
        ports,
        env,
        health,
        restart: raw.restart.unwrap_or_default(),
        max_restarts: raw.max_restarts,
        stop_timeout: raw.stop_timeout.map_or(Duration::from_secs(10), |d| d.0),
        stop_signal,
        depends_on,
        profiles,
        init: raw.init.unwrap_or(true),
    })
}

fn valid_port_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn command(cx: &mut Cx, path: &FieldPath, c: &RawCommand) -> Option<Command> {
    match c {
        RawCommand::Shell(s) if s.trim().is_empty() => {
            cx.error(path.clone(), "the command is empty");
            None
        }
        RawCommand::Argv(v) if v.is_empty() || v[0].is_empty() => {
            cx.error(path.clone(), "the command is empty").hint =
                Some("write e.g. `[python3, -m, http.server]`".into());
            None
        }
        RawCommand::Shell(s) => Some(Command::Shell(s.clone())),
        RawCommand::Argv(v) => Some(Command::Argv(v.clone())),
    }
}

fn health(
    cx: &mut Cx,
    path: &FieldPath,
    raw: &RawService,
    ports: &[PortSpec],
) -> Option<HealthCheck> {
    let hpath = path.key("health");
    let Some(h) = &raw.health else {
        // Built-ins answer GET /health on their main port.
        return raw.builtin.map(|_| HealthCheck {
            probe: Probe::Http {
                path: "/health".into(),
                port: ports
                    .first()
                    .map_or_else(|| "main".into(), |p| p.name.clone()),
                status: None,
            },
            interval: HealthCheck::DEFAULT_INTERVAL,
            timeout: HealthCheck::DEFAULT_TIMEOUT,
            retries: HealthCheck::DEFAULT_RETRIES,
            start_period: Duration::ZERO,
        });
    };
    let kinds = [
        h.http.is_some(),
        h.tcp.is_some(),
        h.exec.is_some(),
        h.log.is_some(),
    ];
    let n = kinds.iter().filter(|k| **k).count();
    if n != 1 {
        let msg = if n == 0 {
            "a health check needs a probe"
        } else {
            "a health check has one probe"
        };
        cx.error(hpath.clone(), msg).hint =
            Some("set exactly one of `http`, `tcp`, `exec` or `log`".into());
        return None;
    }
    let main = ports.iter().find(|p| p.name == "main").or(ports.first());
    let port_for = |cx: &mut Cx, field: &str, r: Option<&RawPortRef>| -> Option<String> {
        let fpath = hpath.key(field);
        match r {
            None => {
                match main {
                    Some(p) => Some(p.name.clone()),
                    None => {
                        cx.error(fpath, format!("a `{field}` health check needs a port, and the service declares none"))
                        .hint = Some("add `port: auto` to the service".into());
                        None
                    }
                }
            }
            Some(RawPortRef::Name(n)) => match ports.iter().find(|p| &p.name == n) {
                Some(p) => Some(p.name.clone()),
                None => {
                    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                    let hint = did_you_mean(n, names.iter().copied()).unwrap_or_else(|| {
                        if names.is_empty() {
                            "declare it under `ports:`".to_string()
                        } else {
                            format!("declared ports: {}", names.join(", "))
                        }
                    });
                    cx.error(
                        fpath,
                        format!("names port `{n}`, which the service does not declare"),
                    )
                    .hint = Some(hint);
                    None
                }
            },
            Some(RawPortRef::Number(num)) => match ports
                .iter()
                .find(|p| p.host == Some(*num) || p.container == Some(*num))
            {
                Some(p) => Some(p.name.clone()),
                None => {
                    cx.error(
                        fpath,
                        format!("names port {num}, which the service does not declare"),
                    )
                    .hint = Some("declare it under `ports:` and name it here".into());
                    None
                }
            },
        }
    };
    let probe = if let Some(http) = &h.http {
        let port = port_for(cx, "http", http.port.as_ref())?;
        if !http.path.starts_with('/') {
            cx.error(hpath.key("http"), format!("`{}` is not a path", http.path))
                .hint = Some("write a path starting with `/`, e.g. `/health`".into());
            return None;
        }
        if let Some(s) = http.status
            && !(100..=599).contains(&s)
        {
            cx.error(
                hpath.key("http").key("status"),
                format!("{s} is not an HTTP status"),
            );
            return None;
        }
        Probe::Http {
            path: http.path.clone(),
            port,
            status: http.status,
        }
    } else if let Some(tcp) = &h.tcp {
        Probe::Tcp {
            port: port_for(cx, "tcp", Some(tcp))?,
        }
    } else if let Some(exec) = &h.exec {
        Probe::Exec {
            command: command(cx, &hpath.key("exec"), exec)?,
        }
    } else {
        let pattern = h.log.clone().unwrap_or_default();
        if let Err(err) = regex::Regex::new(&pattern) {
            let detail = err.to_string();
            let last = detail.lines().last().unwrap_or_default().trim().to_string();
            cx.error(
                hpath.key("log"),
                format!("invalid regular expression: {last}"),
            )
            .hint = Some(
                "the pattern uses Rust regex syntax; escape special characters with `\\`".into(),
            );
            return None;
        }
        Probe::Log { pattern }
    };
    Some(HealthCheck {
        probe,
        interval: h.interval.map_or(HealthCheck::DEFAULT_INTERVAL, |d| d.0),
        timeout: h.timeout.map_or(HealthCheck::DEFAULT_TIMEOUT, |d| d.0),
        retries: h.retries.unwrap_or(HealthCheck::DEFAULT_RETRIES),
        start_period: h.start_period.map_or(Duration::ZERO, |d| d.0),
    })
}

fn check_dependencies(cx: &mut Cx, services: &[Service]) {
    for s in services {
        for d in &s.depends_on {
            let Some(target) = services.iter().find(|t| t.name == d.service) else {
                continue;
            };
            let at = FieldPath::service(&s.name).key("depends_on");
            match d.condition {
                Condition::Healthy if target.health.is_none() => {
                    cx.key_error(
                        at,
                        format!(
                            "waits for `{}` to be healthy, but `{}` has no health check",
                            d.service, d.service
                        ),
                    )
                    .hint = Some(format!(
                        "add `health:` to `{}`, or wait for `started`",
                        d.service
                    ));
                }
                Condition::Completed if target.restart == RestartPolicy::Always => {
                    cx.key_error(
                        at,
                        format!(
                            "waits for `{}` to complete, but it has `restart: always`",
                            d.service
                        ),
                    )
                    .hint = Some(format!(
                        "use `restart: on-failure` on `{}`, or wait for `started`",
                        d.service
                    ));
                }
                _ => {}
            }
        }
    }
}

/// Checks `${services.X…}` and `${PORT}` references against the services' ports.
fn check_refs(
    cx: &mut Cx,
    services: &[Service],
    names: &[&str],
    refs: &[(String, FieldPath, Reference)],
) {
    for (consumer, path, r) in refs {
        let message = match r {
            Reference::OwnPort => match services.iter().find(|s| &s.name == consumer) {
                Some(s) if s.main_port().is_none() => Some((
                    format!("`${{PORT}}` is used, but `{consumer}` declares no port"),
                    Some("add `port: auto` to the service".to_string()),
                )),
                _ => None,
            },
            Reference::Service { service, field } => {
                match services.iter().find(|s| &s.name == service) {
                    None if !names.contains(&service.as_str()) => Some((
                        format!("`{r}` names `{service}`, which is not a service of this stack"),
                        did_you_mean(service, names.iter().copied()),
                    )),
                    None => None,
                    Some(s) => match field {
                        ServiceField::NamedPort(p) if !s.ports.iter().any(|x| &x.name == p) => {
                            let declared: Vec<&str> =
                                s.ports.iter().map(|x| x.name.as_str()).collect();
                            Some((
                                format!("`{r}`: `{service}` has no port `{p}`"),
                                did_you_mean(p, declared.iter().copied()).or_else(|| {
                                    Some(if declared.is_empty() {
                                        format!("add `ports: {{{p}: auto}}` to `{service}`")
                                    } else {
                                        format!("`{service}` declares: {}", declared.join(", "))
                                    })
                                }),
                            ))
                        }
                        ServiceField::Url | ServiceField::Host | ServiceField::Port
                            if s.main_port().is_none() =>
                        {
                            Some((
                                format!("`{r}`: `{service}` declares no port"),
                                Some(format!("add `port: auto` to `{service}`")),
                            ))
                        }
                        _ => None,
                    },
                }
            }
        };
        if let Some((m, hint)) = message {
            let at = cx.positions.value(path);
            cx.push(Diagnostic::error(path.clone(), m).at(at).maybe_hint(hint));
        }
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

/// What is wrong in a built-in's `config:`, found by the built-in itself (see
/// [`LoadOptions::check_builtin`]): where inside the config, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltinProblem {
    /// Where, relative to the `config:` map (`fixtures[2].match`).
    pub field: FieldPath,
    /// What is wrong (serde's words are put plainly here).
    pub message: String,
}

/// Checks a built-in's interpolated `config:` (relative files against the stack's folder).
pub(crate) type BuiltinCheck<'a> =
    &'a dyn Fn(BuiltinKind, &serde_json::Value, &Path) -> Vec<BuiltinProblem>;

/// Every built-in's `config:` checked by the built-in, each problem at its line.
fn check_builtins(cx: &mut Cx, services: &[Service], dir: &Path, check: BuiltinCheck<'_>) {
    for svc in services {
        let ServiceKind::Builtin { builtin, config } = &svc.kind else {
            continue;
        };
        let at = FieldPath::service(&svc.name).key("config");
        for p in check(*builtin, config, dir) {
            let field = FieldPath(at.0.iter().chain(&p.field.0).cloned().collect());
            let (message, hint) = humanize(&p.message);
            // An unknown field is best shown at its key, anything else at its value.
            let loc = if message.starts_with("unknown field") {
                cx.positions.key(&field)
            } else {
                cx.positions.value(&field)
            };
            cx.push(Diagnostic::error(field, message).at(loc).maybe_hint(hint));
        }
    }
}
