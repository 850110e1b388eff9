//! One service: what runs and where, its ports, environment, stop signal, dependencies
//! and profiles, each checked at its field.

use std::path::Path;
use std::time::Duration;

use serde_yaml::Value;

use super::Cx;
use super::health::health;
use super::names::valid_port_name;
use crate::config::BuiltinKind;
use crate::config::diagnostic::did_you_mean;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::source::FieldPath;

pub(super) fn port_path(svc: &str, raw: &RawService, name: &str) -> FieldPath {
    if raw.port.is_some() && name == "main" {
        FieldPath::service(svc).key("port")
    } else {
        FieldPath::service(svc).key("ports").key(name)
    }
}

/// The stack-wide facts a service is checked against.
pub(super) struct Scope<'a> {
    /// The stack file's folder.
    pub dir: &'a Path,
    /// The runtime of services that do not set one.
    pub default_runtime: RuntimeKind,
    /// Whether that default came from `--runtime`.
    pub runtime_from_cli: bool,
    /// Every service's name.
    pub names: &'a [&'a str],
}

/// Checks one service; `None` when it has errors (all reported).
pub(super) fn service(
    cx: &mut Cx,
    scope: &Scope<'_>,
    name: &str,
    raw: &RawService,
) -> Option<Service> {
    let path = FieldPath::service(name);
    let errors_before = cx.error_count();
    let kind = kind(cx, scope.dir, &path, name, raw)?;
    let runtime = runtime(cx, scope, &path, &kind, raw);
    let cwd = cwd(cx, scope.dir, &path, runtime, raw);
    let ports = ports(cx, &path, name, runtime, raw);
    let env = env(cx, &path, raw);
    let health = health(cx, &path, raw, &ports);
    let stop_signal = stop_signal(cx, &path, raw);
    let depends_on = depends_on(cx, &path, name, scope.names, raw);
    let profiles = profiles(cx, &path, raw);
    let watch = super::watch::watch(cx, scope.dir, &path, runtime, &kind, raw);
    let replicas = replicas(cx, &path, raw);
    (cx.error_count() == errors_before).then(|| Service {
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
        watch,
        replicas,
    })
}

/// `replicas:` at least 1; more than one is for `stack export`, which `stack validate` says.
fn replicas(cx: &mut Cx, path: &FieldPath, raw: &RawService) -> u32 {
    let field = path.key("replicas");
    match raw.replicas {
        None => 1,
        Some(0) => {
            cx.error(field, "`replicas` must be at least 1").hint =
                Some("leave it out for one instance".into());
            1
        }
        Some(1) => 1,
        Some(n) => {
            cx.warning(
                field,
                format!("{n} replicas are for `stack export`; `stack up` runs one instance"),
            );
            n
        }
    }
}

/// What runs: a built-in, a command (perhaps in an image), or an image.
fn kind(
    cx: &mut Cx,
    dir: &Path,
    path: &FieldPath,
    name: &str,
    raw: &RawService,
) -> Option<ServiceKind> {
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
    if let Some(builtin) = raw.builtin {
        return Some(builtin_kind(cx, path, builtin, raw));
    }
    if raw.config.is_some() {
        cx.key_error(
            path.key("config"),
            "`config` only applies to built-in services",
        )
        .hint = Some("pass settings to your own program with `env`".into());
    }
    match (&raw.command, image) {
        (Some(c), image) => Some(ServiceKind::Command {
            command: command(cx, &path.key("command"), c)?,
            image,
        }),
        (None, Some(image)) => Some(ServiceKind::Image { image }),
        // A `command`, `builtin`, `image` or `build` that was written but is malformed, or
        // misspelt (`comand`), has been reported already: "nothing to run" would repeat it.
        (None, None) if cx.reported_what_runs(path) => None,
        (None, None) => {
            cx.key_error(path.clone(), format!("service `{name}` has nothing to run"))
                .hint = Some(
                "set `command`, `builtin` (context, model or gateway), `image` or `build`".into(),
            );
            None
        }
    }
}

/// A built-in and its `config:` (checked by the built-in later, with the whole stack).
fn builtin_kind(
    cx: &mut Cx,
    path: &FieldPath,
    builtin: BuiltinKind,
    raw: &RawService,
) -> ServiceKind {
    for (field, set) in [
        ("command", raw.command.is_some()),
        ("image", raw.image.is_some()),
        ("build", raw.build.is_some()),
    ] {
        if set {
            cx.key_error(
                path.key(field),
                format!(
                    "`builtin: {builtin}` runs `stack serve {builtin}`; `{field}` cannot be set too"
                ),
            )
            .hint = Some(format!(
                "remove `{field}`, or remove `builtin` to run your own program"
            ));
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
}

/// Process or container: its own `runtime:`, else the default where it can run there.
fn runtime(
    cx: &mut Cx,
    scope: &Scope<'_>,
    path: &FieldPath,
    kind: &ServiceKind,
    raw: &RawService,
) -> RuntimeKind {
    let runtime = match raw.runtime {
        Some(r) => r,
        None => match (kind, scope.default_runtime) {
            // A plain command cannot run as a container, an image cannot run as a process.
            (ServiceKind::Command { image: None, .. }, RuntimeKind::Container) => {
                RuntimeKind::Process
            }
            (ServiceKind::Image { .. }, RuntimeKind::Process) => RuntimeKind::Container,
            (_, r) => r,
        },
    };
    match (kind, runtime) {
        (ServiceKind::Image { .. }, RuntimeKind::Process) => {
            cx.error(
                path.key("runtime"),
                "a process needs a `command`; this service only has an image",
            )
            .hint = Some("use `runtime: container`, or add a `command`".into());
        }
        (ServiceKind::Command { image: None, .. }, RuntimeKind::Container)
            if raw.runtime.is_some() || !scope.runtime_from_cli =>
        {
            cx.error(
                path.key("runtime"),
                "a container needs an `image` or `build`",
            )
            .hint = Some("add `image:` (or `build:`), or use `runtime: process`".into());
        }
        _ => {}
    }
    runtime
}

/// The working folder: `cwd:` relative to the stack file, else its folder.
fn cwd(
    cx: &mut Cx,
    dir: &Path,
    path: &FieldPath,
    runtime: RuntimeKind,
    raw: &RawService,
) -> std::path::PathBuf {
    let Some(c) = &raw.cwd else {
        return dir.to_path_buf();
    };
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

/// `port:` or `ports:` (a built-in gets an automatic `main` port).
fn ports(
    cx: &mut Cx,
    path: &FieldPath,
    name: &str,
    runtime: RuntimeKind,
    raw: &RawService,
) -> Vec<PortSpec> {
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
    let mut ports = Vec::new();
    for (pname, p) in declared {
        let ppath = port_path(name, raw, &pname);
        if !valid_port_name(&pname) {
            cx.key_error(ppath.clone(), format!("`{pname}` is not a valid port name"))
                .hint = Some("use lowercase letters, digits, `-` and `_`".into());
        }
        let (host, container) = match p {
            RawPort::Auto => (None, None),
            RawPort::Fixed(n) => (Some(n), None),
            RawPort::Mapped { host, container } => {
                if runtime == RuntimeKind::Process {
                    cx.error(
                        ppath,
                        "a `{host, container}` mapping only applies to containers",
                    )
                    .hint = Some("write a port number or `auto` for a process".into());
                }
                (host, Some(container))
            }
        };
        ports.push(PortSpec {
            name: pname,
            host,
            container,
        });
    }
    ports
}

/// `env:`, whose names must be variable names.
fn env(cx: &mut Cx, path: &FieldPath, raw: &RawService) -> Vec<(String, String)> {
    let env = raw.env.clone().unwrap_or_default().0;
    for (k, _) in &env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            cx.key_error(
                path.key("env").key(k.clone()),
                format!("`{k}` is not a variable name"),
            );
        }
    }
    env
}

fn stop_signal(cx: &mut Cx, path: &FieldPath, raw: &RawService) -> StopSignal {
    let Some(s) = &raw.stop_signal else {
        return StopSignal::TERM;
    };
    StopSignal::parse(s).unwrap_or_else(|| {
        cx.error(path.key("stop_signal"), format!("`{s}` is not a signal"))
            .hint = Some("write e.g. `SIGTERM`, `SIGINT`, `SIGQUIT` or a number".into());
        StopSignal::TERM
    })
}

/// `depends_on:`, each naming another service of the stack.
fn depends_on(
    cx: &mut Cx,
    path: &FieldPath,
    name: &str,
    names: &[&str],
    raw: &RawService,
) -> Vec<Dependency> {
    let Some(deps) = &raw.depends_on else {
        return Vec::new();
    };
    let mut depends_on = Vec::new();
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
    depends_on
}

fn profiles(cx: &mut Cx, path: &FieldPath, raw: &RawService) -> Vec<String> {
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
    profiles
}

pub(super) fn command(cx: &mut Cx, path: &FieldPath, c: &RawCommand) -> Option<Command> {
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
