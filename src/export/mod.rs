//! `stack export` (SPEC §7): the stack translated for the engines a team already runs.
//!
//! [`Exported`] is what both targets share, made once from the validated stack: every
//! service as a container on its own network name, ports fixed (the container port, or
//! 8080… for `auto`), the environment resolved for that network (`${services.X.url}` →
//! `http://X:PORT`), built-in configurations as files, and secrets as references. A key
//! field of a built-in's configuration, or a variable named like a secret, becomes an
//! environment variable the container gets from the engine (compose's interpolation, a
//! Kubernetes Secret); the configuration file reads it back as `${NAME}`. Nothing here does
//! I/O: [`compose`] and [`kubernetes`] render documents, `commands::export` writes them.

pub(crate) mod compose;
pub(crate) mod kubernetes;
mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::config::interpolate::{Reference, ServiceField};
use crate::config::render::{for_each_key_field, secret_name};
use crate::config::source::FieldPath;
use crate::config::{
    BuiltinKind, Condition, HealthCheck, Image, Loaded, Probe, RestartPolicy, RuntimeKind, Service,
    ServiceKind, StopSignal, Written, env_key,
};
use crate::plan::{self, PortTable, resolve::ResolvedPort};

/// Where a built-in reads its configuration inside its container.
pub(crate) const CONFIG_DIR: &str = "/etc/stack";
/// A built-in's working folder (and data volume) inside its container: relative paths in
/// its configuration (`db: .stack/data/context.db`) land there.
pub(crate) const DATA_DIR: &str = "/data";
/// The first port an `auto` port gets.
const FIRST_AUTO_PORT: u16 = 8080;

/// The stack, ready to render for another engine.
#[derive(Debug, Clone)]
pub(crate) struct Exported {
    /// The project name.
    pub project: String,
    /// Services in start order.
    pub services: Vec<ExportedService>,
    /// Every secret the services read, by variable name.
    pub secrets: BTreeMap<String, Secret>,
    /// Things the target cannot express, said to the user (`service: what`).
    pub notes: Vec<String>,
}

/// One service.
#[derive(Debug, Clone)]
pub(crate) struct ExportedService {
    /// Its name (and network name).
    pub name: String,
    /// Its image.
    pub image: ExportImage,
    /// The command (for built-ins, the arguments after the image's `/stack` entrypoint).
    pub command: Option<Vec<String>>,
    /// The environment, in order.
    pub env: Vec<(String, EnvValue)>,
    /// Its ports: name and number inside the container.
    pub ports: Vec<(String, u16)>,
    /// The port published on the host's 127.0.0.1 (`host`, `container`): the gateway's.
    pub published: Option<(u16, u16)>,
    /// Its health check, with the port number it probes.
    pub health: Option<ExportHealth>,
    /// What it waits for.
    pub depends_on: Vec<(String, Condition)>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Restarts allowed.
    pub max_restarts: Option<u32>,
    /// The stop signal.
    pub stop_signal: StopSignal,
    /// Grace period after it.
    pub stop_timeout: Duration,
    /// An init process as PID 1.
    pub init: bool,
    /// Instances.
    pub replicas: u32,
    /// Runs to completion (a Kubernetes Job): something waits for it to complete.
    pub one_shot: bool,
    /// A built-in's configuration file (YAML; secrets as `${NAME}`).
    pub config: Option<String>,
}

/// Where a service's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExportImage {
    /// `stack`'s built-in image.
    Builtin,
    /// An image reference.
    Reference(String),
    /// Built from a folder (the tag `stack-<project>-<service>:latest`).
    Build {
        /// The context folder.
        context: PathBuf,
        /// The Dockerfile.
        dockerfile: Option<String>,
        /// The tag it is built as.
        tag: String,
    },
}

/// An environment variable's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvValue {
    /// A plain value.
    Plain(String),
    /// The secret of that name (see [`Exported::secrets`]).
    Secret(String),
}

/// A value the engine hands the container rather than the exported files holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Secret {
    /// Its value now (written out only on request).
    pub value: String,
    /// What compose reads for it: the stack file's own `${VAR…}` text when it read the
    /// environment, else the value (`$` doubled).
    pub compose: String,
}

/// A health check with concrete ports.
#[derive(Debug, Clone)]
pub(crate) struct ExportHealth {
    /// The probe.
    pub probe: ExportProbe,
    /// Its timing.
    pub timing: HealthCheck,
}

/// What a health check probes, inside the service's own network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExportProbe {
    /// GET `path` on `port`.
    Http {
        /// The path.
        path: String,
        /// The port number.
        port: u16,
    },
    /// Connect to `port`.
    Tcp {
        /// The port number.
        port: u16,
    },
    /// Run a command.
    Exec {
        /// The argument vector.
        argv: Vec<String>,
    },
    /// A log line: no engine has a counterpart.
    Log {
        /// The pattern.
        pattern: String,
    },
}

impl ExportedService {
    /// The main port: `main`, else the first.
    pub(crate) fn main_port(&self) -> Option<u16> {
        self.ports
            .iter()
            .find(|(n, _)| n == "main")
            .or_else(|| self.ports.first())
            .map(|(_, p)| *p)
    }

    /// How another service waits until this one is healthy: an HTTP URL (its health path)
    /// or `tcp://` address that `stack __probe` checks.
    pub(crate) fn readiness_url(&self) -> Option<String> {
        let name = &self.name;
        match self.health.as_ref().map(|h| &h.probe) {
            Some(ExportProbe::Http { path, port }) => Some(format!("http://{name}:{port}{path}")),
            Some(ExportProbe::Tcp { port }) => Some(format!("tcp://{name}:{port}")),
            _ => self.main_port().map(|p| format!("tcp://{name}:{p}")),
        }
    }
}

/// Why a stack cannot be exported.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ExportError {
    /// A service that runs only as a process.
    #[error(
        "`services.{service}` runs only as a process (it has no `image:` or `build:`), and an export runs every service as a container"
    )]
    ProcessOnly {
        /// The service.
        service: String,
    },
    /// Several replicas of a context server on SQLite.
    #[error(
        "`services.{service}.replicas`: {replicas} replicas of a context server need a store they share, and its `db` is an SQLite file (`{db}`)"
    )]
    SharedStore {
        /// The service.
        service: String,
        /// How many.
        replicas: u32,
        /// Its `db`.
        db: String,
    },
    /// A name the target does not accept.
    #[error("`services.{service}`: {message}")]
    Name {
        /// The service.
        service: String,
        /// What is wrong.
        message: String,
    },
    /// The plan could not resolve a reference.
    #[error("{0}")]
    Resolve(String),
}

impl ExportError {
    /// How to fix it.
    pub(crate) fn hint(&self) -> String {
        match self {
            ExportError::ProcessOnly { .. } => {
                "give it `image:` (or `build:` with a Dockerfile) so it can run as a container".into()
            }
            ExportError::SharedStore { .. } => {
                "put the store on PostgreSQL (`config: {db: postgres://user@host/db}`), or use `replicas: 1`".into()
            }
            ExportError::Name { .. } => {
                "rename the service: lowercase letters, digits and `-`, starting with a letter".into()
            }
            ExportError::Resolve(_) => "`stack config` shows the resolved stack".into(),
        }
    }
}

/// Builds the export of `loaded`'s `selected` services (names in start order).
pub(crate) fn export(loaded: &Loaded, selected: &[&Service]) -> Result<Exported, ExportError> {
    let stack = &loaded.stack;
    // Every service runs as a container; one that cannot is refused by name.
    let mut containers: Vec<Service> = Vec::with_capacity(selected.len());
    for s in selected {
        let runs_in_container = !matches!(s.kind, ServiceKind::Command { image: None, .. });
        if !runs_in_container {
            return Err(ExportError::ProcessOnly {
                service: s.name.clone(),
            });
        }
        let mut c = (*s).clone();
        c.runtime = RuntimeKind::Container;
        containers.push(c);
    }
    let ports = fixed_ports(&containers);
    let refs: Vec<&Service> = containers.iter().collect();
    let plan = plan::build(
        stack,
        &refs,
        &ports,
        Path::new("/stack"),
        &plan::llm::Overrides::default(),
    )
    .map_err(|e| ExportError::Resolve(e.to_string()))?;
    let completed: Vec<&str> = containers
        .iter()
        .flat_map(|s| &s.depends_on)
        .filter(|d| d.condition == Condition::Completed)
        .map(|d| d.service.as_str())
        .collect();
    let mut out = Exported {
        project: stack.name.clone(),
        services: Vec::new(),
        secrets: BTreeMap::new(),
        notes: Vec::new(),
    };
    for (svc, sp) in containers.iter().zip(&plan.services) {
        let service = exported_service(&mut out, loaded, svc, sp, &ports, &completed)?;
        out.services.push(service);
    }
    Ok(out)
}

/// How `${PORT}` and `${services.…}` resolve for `consumer` on the export's network.
fn resolver<'a>(
    consumer: &'a str,
    ports: &'a PortTable,
) -> impl Fn(&Reference) -> Option<String> + 'a {
    move |r| {
        let main = |name: &str| {
            let list = ports.get(name)?;
            list.iter()
                .find(|p| p.name == "main")
                .or_else(|| list.first())
                .map(|p| p.container)
        };
        match r {
            Reference::OwnPort => main(consumer).map(|p| p.to_string()),
            Reference::Service { service, field } => Some(match field {
                ServiceField::Url => format!("http://{service}:{}", main(service)?),
                ServiceField::Host => service.clone(),
                ServiceField::Port => main(service)?.to_string(),
                ServiceField::NamedPort(n) => ports
                    .get(service)?
                    .iter()
                    .find(|p| &p.name == n)?
                    .container
                    .to_string(),
            }),
        }
    }
}

/// Container ports for every service: the declared container port, else the fixed number,
/// else 8080 upwards among the service's own ports. Host and container alike, so every
/// address resolves to `NAME:PORT`.
fn fixed_ports(services: &[Service]) -> PortTable {
    let mut table = HashMap::new();
    for s in services {
        let mut next = FIRST_AUTO_PORT;
        let taken: Vec<u16> = s
            .ports
            .iter()
            .filter_map(|p| p.container.or(p.host))
            .collect();
        let resolved = s
            .ports
            .iter()
            .map(|p| {
                let n = p.container.or(p.host).unwrap_or_else(|| {
                    while taken.contains(&next) {
                        next += 1;
                    }
                    next += 1;
                    next - 1
                });
                ResolvedPort {
                    name: p.name.clone(),
                    host: n,
                    container: n,
                }
            })
            .collect();
        table.insert(s.name.clone(), resolved);
    }
    table
}

fn exported_service(
    out: &mut Exported,
    loaded: &Loaded,
    svc: &Service,
    sp: &plan::ServicePlan,
    ports: &PortTable,
    completed: &[&str],
) -> Result<ExportedService, ExportError> {
    let name = &svc.name;
    let own_ports = ports.get(name).map(Vec::as_slice).unwrap_or_default();
    let refs = resolver(name, ports);
    let own_env: Vec<&str> = svc.env.iter().map(|(k, _)| k.as_str()).collect();
    let mut env: Vec<(String, EnvValue)> = Vec::new();
    for (k, v) in &sp.env {
        if own_env.contains(&k.as_str()) && secret_name(k) {
            let field = FieldPath::service(name).key("env").key(k.clone());
            add_secret(out, k, v, loaded.written.get(&field), &refs);
            env.push((k.clone(), EnvValue::Secret(k.clone())));
        } else {
            env.push((k.clone(), EnvValue::Plain(v.clone())));
        }
    }
    let (image, command, config) = match &svc.kind {
        ServiceKind::Builtin { builtin, .. } => {
            let file = format!("{CONFIG_DIR}/{name}.yaml");
            let command = vec![
                "serve".to_string(),
                builtin.as_str().to_string(),
                "--host".to_string(),
                "0.0.0.0".to_string(),
                "--config".to_string(),
                file,
            ];
            let yaml = sp
                .builtin_config
                .as_ref()
                .and_then(|c| c.yaml.as_deref())
                .unwrap_or_default();
            let config = builtin_config(out, loaded, svc, yaml, &mut env, &refs)?;
            (ExportImage::Builtin, Some(command), Some(config))
        }
        ServiceKind::Command {
            image: Some(image), ..
        }
        | ServiceKind::Image { image } => {
            let command = match &sp.launch {
                plan::Launch::Container { command, .. } => command.clone(),
                plan::Launch::Process { argv } => Some(argv.clone()),
            };
            (export_image(&out.project, name, image), command, None)
        }
        ServiceKind::Command { image: None, .. } => {
            return Err(ExportError::ProcessOnly {
                service: name.clone(),
            });
        }
    };
    let ports: Vec<(String, u16)> = own_ports
        .iter()
        .map(|p| (p.name.clone(), p.container))
        .collect();
    let published = (svc.builtin() == Some(BuiltinKind::Gateway))
        .then(|| {
            let main = svc.main_port()?;
            let container = own_ports.iter().find(|p| p.name == main.name)?.container;
            Some((main.host.unwrap_or(container), container))
        })
        .flatten();
    let health = svc.health.as_ref().map(|h| ExportHealth {
        probe: export_probe(&h.probe, own_ports, sp),
        timing: h.clone(),
    });
    if let Some(ExportHealth {
        probe: ExportProbe::Log { pattern },
        ..
    }) = &health
    {
        out.notes.push(format!(
            "{name}: its health check waits for a log line (`{pattern}`), which neither docker compose nor Kubernetes can check; it has no health check there"
        ));
    }
    Ok(ExportedService {
        name: name.clone(),
        image,
        command,
        env,
        ports,
        published,
        health,
        depends_on: svc
            .depends_on
            .iter()
            .map(|d| (d.service.clone(), d.condition))
            .collect(),
        restart: svc.restart,
        max_restarts: svc.max_restarts,
        stop_signal: svc.stop_signal,
        stop_timeout: svc.stop_timeout,
        init: svc.init,
        replicas: svc.replicas,
        one_shot: completed.contains(&name.as_str()),
        config,
    })
}

fn export_image(project: &str, service: &str, image: &Image) -> ExportImage {
    match image {
        Image::Reference(r) => ExportImage::Reference(r.clone()),
        Image::Build {
            context,
            dockerfile,
        } => ExportImage::Build {
            context: context.clone(),
            dockerfile: dockerfile.clone(),
            tag: format!("stack-{project}-{service}:latest"),
        },
    }
}

fn export_probe(probe: &Probe, ports: &[ResolvedPort], sp: &plan::ServicePlan) -> ExportProbe {
    let number = |name: &str| {
        ports
            .iter()
            .find(|p| p.name == name)
            .map_or(0, |p| p.container)
    };
    match (probe, sp.health.as_ref().map(|h| &h.probe)) {
        (Probe::Http { port, .. }, Some(plan::ResolvedProbe::Http { url, .. })) => {
            // The resolved URL's path, with `${…}` in it already resolved.
            let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let path = after_scheme
                .find('/')
                .map_or("/".to_string(), |i| after_scheme[i..].to_string());
            ExportProbe::Http {
                path,
                port: number(port),
            }
        }
        (Probe::Http { path, port, .. }, _) => ExportProbe::Http {
            path: path.clone(),
            port: number(port),
        },
        (Probe::Tcp { port }, _) => ExportProbe::Tcp { port: number(port) },
        (Probe::Exec { .. }, Some(plan::ResolvedProbe::Exec { argv })) => {
            ExportProbe::Exec { argv: argv.clone() }
        }
        (Probe::Exec { command }, _) => ExportProbe::Exec {
            argv: command.argv(),
        },
        (Probe::Log { pattern }, _) => ExportProbe::Log {
            pattern: pattern.clone(),
        },
    }
}

/// A built-in's configuration for the export: its key fields become `${NAME}` of a secret,
/// rate limits are divided among replicas (said in a comment), and a context server with
/// several replicas must not be on SQLite.
fn builtin_config(
    out: &mut Exported,
    loaded: &Loaded,
    svc: &Service,
    yaml: &str,
    env: &mut Vec<(String, EnvValue)>,
    refs: &dyn Fn(&Reference) -> Option<String>,
) -> Result<String, ExportError> {
    let name = &svc.name;
    let mut config: Value = serde_yaml::from_str(yaml).unwrap_or(Value::Null);
    if config.is_null() {
        config = Value::Object(serde_json::Map::new());
    }
    if svc.builtin() == Some(BuiltinKind::Context) && svc.replicas > 1 {
        let db = config
            .get("db")
            .and_then(Value::as_str)
            .unwrap_or(".stack/data/context.db")
            .replace("$$", "$");
        if !db.starts_with("postgres://") && !db.starts_with("postgresql://") {
            return Err(ExportError::SharedStore {
                service: name.clone(),
                replicas: svc.replicas,
                db,
            });
        }
    }
    let base = FieldPath::service(name).key("config");
    let mut found: Vec<(String, String, Option<Written>)> = Vec::new();
    for_each_key_field(&mut config, &FieldPath::root(), &mut |at, value| {
        let Some(current) = value.as_str().map(|s| s.replace("$$", "$")) else {
            return;
        };
        let mut field = base.clone();
        field.0.extend(at.0.iter().cloned());
        let written = loaded.written.get(&field).cloned();
        let var = written
            .as_ref()
            .and_then(|w| single_variable(&w.raw))
            .unwrap_or_else(|| variable_for(name, at));
        *value = Value::String(format!("${{{var}}}"));
        found.push((var, current, written));
    });
    for (var, current, written) in found {
        add_secret(out, &var, &current, written.as_ref(), refs);
        if !env.iter().any(|(k, _)| k == &var) {
            env.push((var.clone(), EnvValue::Secret(var)));
        }
    }
    let mut comments = vec![format!(
        "# `{name}`'s configuration, exported by `stack export`; keys are read from the environment."
    )];
    if svc.replicas > 1 {
        scale_limits(&mut config, svc.replicas, &mut comments);
    }
    let text = yaml::to_string(&config);
    Ok(format!("{}\n{text}", comments.join("\n")))
}

/// Divides every key's `rpm` and `tpm` by `replicas` (each replica counts on its own).
fn scale_limits(config: &mut Value, replicas: u32, comments: &mut Vec<String>) {
    let Some(keys) = config.get_mut("keys").and_then(Value::as_array_mut) else {
        return;
    };
    let mut scaled = false;
    for key in keys.iter_mut().filter_map(Value::as_object_mut) {
        for limit in ["rpm", "tpm"] {
            if let Some(n) = key.get(limit).and_then(Value::as_u64) {
                key.insert(limit.into(), Value::from((n / u64::from(replicas)).max(1)));
                scaled = true;
            }
        }
    }
    if scaled {
        comments.push(format!(
            "# Rate limits are counted by each replica on its own: the stack file's rpm and tpm are divided by its {replicas} replicas."
        ));
    }
}

/// The variable a key field written as a literal is handed over in: the service and the
/// field's path (`GATEWAY_KEYS_1_KEY`).
fn variable_for(service: &str, at: &FieldPath) -> String {
    use crate::config::source::Segment;
    let mut parts = vec![env_key(service)];
    parts.extend(at.0.iter().map(|s| match s {
        Segment::Key(k) => env_key(k),
        Segment::Index(i) => i.to_string(),
    }));
    parts.join("_")
}

/// `NAME` when `raw` is one `${NAME…}` and nothing else.
fn single_variable(raw: &str) -> Option<String> {
    let body = raw.strip_prefix("${")?.strip_suffix('}')?;
    let len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let name = &body[..len];
    let rest = &body[len..];
    let simple = rest.is_empty()
        || (["-", ":-", "?", ":?"].iter().any(|op| rest.starts_with(op)) && !rest.contains('}'));
    (!name.is_empty() && simple && !name.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| name.to_string())
}

/// Records the secret `var` (its value now, and what compose reads for it).
fn add_secret(
    out: &mut Exported,
    var: &str,
    value: &str,
    written: Option<&Written>,
    refs: &dyn Fn(&Reference) -> Option<String>,
) {
    let compose = written
        .and_then(|w| compose_text(&w.raw, refs))
        .unwrap_or_else(|| value.replace('$', "$$"));
    out.secrets.insert(
        var.to_string(),
        Secret {
            value: value.to_string(),
            compose,
        },
    );
}

/// The stack file's text of a value as compose reads it: its `${VAR…}` kept for compose to
/// read from the environment, `${services.…}` and `${PORT}` resolved for the compose
/// network, a lone `$` (literal for `stack`) doubled; `None` when a reference cannot be
/// resolved.
fn compose_text(raw: &str, refs: &dyn Fn(&Reference) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let close = tail.find('}')?;
            let body = &tail[..close];
            match crate::config::interpolate::parse_reference(body).ok()? {
                Some(r) => out.push_str(&refs(&r)?.replace('$', "$$")),
                None => {
                    out.push_str("${");
                    out.push_str(body);
                    out.push('}');
                }
            }
            rest = &tail[close + 1..];
        } else {
            out.push_str("$$");
            rest = after;
        }
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_variable_is_named() {
        assert_eq!(single_variable("${KEY}").as_deref(), Some("KEY"));
        assert_eq!(single_variable("${KEY:-dev-key}").as_deref(), Some("KEY"));
        assert_eq!(single_variable("sk-${KEY}"), None);
        assert_eq!(single_variable("${A}${B}"), None);
        assert_eq!(single_variable("${1X}"), None);
    }

    #[test]
    fn compose_reads_variables_and_gets_addresses() {
        let refs = |r: &Reference| match r {
            Reference::OwnPort => Some("8080".to_string()),
            Reference::Service { service, .. } => Some(format!("{service}-host")),
        };
        assert_eq!(
            compose_text("${A:-x}$5$$", &refs).as_deref(),
            Some("${A:-x}$$5$$")
        );
        assert_eq!(
            compose_text(
                "postgres://u:${PW:-stack}@${services.db.host}:${PORT}/c",
                &refs
            )
            .as_deref(),
            Some("postgres://u:${PW:-stack}@db-host:8080/c")
        );
    }
}
