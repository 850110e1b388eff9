//! The plan: which services run, in what order, on which ports, with what environment.
//! Selection and ordering are pure; port assignment probes sockets (see [`ports`]).

pub(crate) mod fingerprint;
pub(crate) mod graph;
pub(crate) mod llm;
pub(crate) mod ports;
pub(crate) mod resolve;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub(crate) use fingerprint::Fingerprint;
pub(crate) use resolve::{
    ContainerImage, Launch, PortTable, ResolveError, ResolvedHealth, ResolvedProbe, ServicePlan,
};

use crate::config::{Service, Stack};

/// A runnable stack: services in start order with everything resolved.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Plan {
    /// The project name.
    pub project: String,
    /// The stack file's folder.
    pub dir: PathBuf,
    /// The stack file.
    pub file: PathBuf,
    /// Services in dependency order.
    pub services: Vec<ServicePlan>,
    /// Where the project's state lives (`.stack/`, or `.stack/projects/<name>/`).
    pub state_dir: PathBuf,
    /// Where model calls go (SPEC §4.4), when the stack has a gateway.
    #[serde(default)]
    pub llm: Option<crate::services::cassette::Mode>,
    /// How long file changes gather into one `watch:` action.
    #[serde(default)]
    pub watch_debounce: std::time::Duration,
    /// The `env_file:` files, watched with the stack file.
    #[serde(default)]
    pub env_files: Vec<PathBuf>,
    /// Follow file changes: the `watch:` rules, and the stack file (reconcile).
    #[serde(default)]
    pub watch: bool,
    /// What `up` was asked for, to plan the stack file again when it changes.
    #[serde(default)]
    pub selection: Selection,
    /// The supervisor's OTLP receiver and dashboard (SPEC §6).
    #[serde(default)]
    pub telemetry: Option<Telemetry>,
}

/// Where the supervisor receives OTLP and serves the dashboard: one loopback port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Telemetry {
    /// The port, on 127.0.0.1.
    pub port: u16,
    /// The dashboard's token (its URL's path), unique to this run of the stack.
    pub token: String,
    /// `otlp_forward:`.
    pub forward: Option<String>,
}

impl Telemetry {
    /// The key the port has in `ports.json` (no service has an empty name).
    pub(crate) fn port_key() -> (String, String) {
        (String::new(), "telemetry".to_string())
    }

    /// A port (the remembered one when it is free) and a fresh token.
    pub(crate) fn new(
        held: Option<u16>,
        remembered: Option<u16>,
        forward: Option<String>,
    ) -> Telemetry {
        Telemetry {
            port: held.unwrap_or_else(|| ports::pick(remembered)),
            token: uuid::Uuid::new_v4().simple().to_string(),
            forward,
        }
    }

    /// The dashboard's URL.
    pub(crate) fn dashboard_url(&self) -> String {
        format!("http://127.0.0.1:{}/d/{}/", self.port, self.token)
    }

    /// The OTLP endpoint as `runtime` reaches it.
    fn endpoint(&self, runtime: crate::config::RuntimeKind) -> String {
        let host = match runtime {
            crate::config::RuntimeKind::Process => resolve::LOOPBACK,
            crate::config::RuntimeKind::Container => resolve::HOST_GATEWAY,
        };
        format!("http://{host}:{}", self.port)
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, `…_PROTOCOL` and `OTEL_SERVICE_NAME` for every service
    /// of `plan` (a service's own `env` wins).
    pub(crate) fn inject(&self, plan: &mut Plan) {
        for svc in &mut plan.services {
            let vars = [
                ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint(svc.runtime)),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
                ("OTEL_SERVICE_NAME", svc.name.clone()),
            ];
            for (k, v) in vars {
                if !svc.env.iter().any(|(existing, _)| existing == k) {
                    svc.env.push((k.to_string(), v));
                }
            }
        }
    }
}

/// What `stack up` was asked to start.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Selection {
    /// The services named (none: all).
    pub services: Vec<String>,
    /// The active profiles.
    pub profiles: Vec<String>,
    /// `--runtime`.
    pub runtime: Option<crate::config::RuntimeKind>,
}

impl Plan {
    /// The service called `name`.
    pub(crate) fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The project's state folder.
    pub(crate) fn state(&self) -> crate::state::StateDir {
        crate::state::StateDir {
            dir: self.state_dir.clone(),
        }
    }

    /// The project's state folder path.
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.state_dir.clone()
    }
}

/// A selection that names something the stack does not have.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SelectError {
    /// `stack up NAME` for an unknown NAME.
    #[error("no service `{name}` in this stack{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    UnknownService {
        /// The name given.
        name: String,
        /// A suggestion.
        hint: Option<String>,
    },
    /// A selected service depends on one whose profiles are all off.
    #[error(
        "`services.{service}.depends_on.{dependency}`: `{dependency}` is only started with the profile{} {}, which {} not active",
        if profiles.len() == 1 { "" } else { "s" },
        profiles.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
        if profiles.len() == 1 { "is" } else { "are" }
    )]
    DisabledDependency {
        /// The service that depends.
        service: String,
        /// What it depends on.
        dependency: String,
        /// The dependency's profiles.
        profiles: Vec<String>,
    },
}

impl SelectError {
    /// How to fix it.
    pub(crate) fn hint(&self) -> String {
        match self {
            SelectError::UnknownService { .. } => "`stack config` lists the services".into(),
            SelectError::DisabledDependency {
                dependency,
                profiles,
                ..
            } => format!(
                "activate it with `--profile {}`, or name `{dependency}` on the command line",
                profiles.first().map_or("", String::as_str)
            ),
        }
    }
}

/// The services to run: those named (all when none), enabled by the active profiles, plus
/// everything they depend on, in start order.
pub(crate) fn select<'a>(
    stack: &'a Stack,
    names: &[String],
    profiles: &[String],
) -> Result<Vec<&'a Service>, SelectError> {
    for n in names {
        if stack.service(n).is_none() {
            let hint = crate::config::diagnostic::did_you_mean(
                n,
                stack.services.iter().map(|s| s.name.as_str()),
            );
            return Err(SelectError::UnknownService {
                name: n.clone(),
                hint,
            });
        }
    }
    let enabled =
        |s: &Service| s.profiles.is_empty() || s.profiles.iter().any(|p| profiles.contains(p));
    let mut wanted: Vec<&str> = if names.is_empty() {
        stack
            .services
            .iter()
            .filter(|s| enabled(s))
            .map(|s| s.name.as_str())
            .collect()
    } else {
        names.iter().map(String::as_str).collect()
    };
    // Dependencies come along, unless their profiles are off and they were not named
    // (then the stack as asked cannot run: refused, as docker compose does).
    let mut chosen: HashSet<&str> = HashSet::new();
    while let Some(n) = wanted.pop() {
        if chosen.insert(n)
            && let Some(s) = stack.service(n)
        {
            for d in &s.depends_on {
                if let Some(dep) = stack.service(&d.service)
                    && !enabled(dep)
                    && !names.contains(&dep.name)
                {
                    return Err(SelectError::DisabledDependency {
                        service: s.name.clone(),
                        dependency: dep.name.clone(),
                        profiles: dep.profiles.clone(),
                    });
                }
                wanted.push(d.service.as_str());
            }
        }
    }
    let selected: Vec<&Service> = stack
        .services
        .iter()
        .filter(|s| chosen.contains(s.name.as_str()))
        .collect();
    Ok(graph::start_order(&selected))
}

/// Resolves every selected service against the assigned ports.
pub(crate) fn build(
    stack: &Stack,
    selected: &[&Service],
    ports: &PortTable,
    exe: &Path,
    overrides: &llm::Overrides,
) -> Result<Plan, ResolveError> {
    let state = state_dir(stack);
    let services = selected
        .iter()
        .map(|s| resolve::service_plan(&stack.name, &state.dir, s, selected, ports, exe, overrides))
        .collect::<Result<_, _>>()?;
    Ok(Plan {
        llm: overrides.llm.filter(|_| {
            selected
                .iter()
                .any(|s| s.builtin() == Some(crate::config::BuiltinKind::Gateway))
        }),
        project: stack.name.clone(),
        dir: stack.dir.clone(),
        file: stack.file.clone(),
        services,
        state_dir: state.dir,
        watch_debounce: stack.watch_debounce,
        env_files: stack.env_files.clone(),
        watch: false,
        selection: Selection::default(),
        telemetry: None,
    })
}

/// Where `stack`'s project keeps its state.
pub(crate) fn state_dir(stack: &Stack) -> crate::state::StateDir {
    crate::state::StateDir::new(&stack.dir, &stack.name, &stack.default_name)
}
