//! Turning a validated stack plus assigned ports into runnable service plans: pass-two
//! interpolation (per consumer), the injected environment, concrete health probes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::BuiltinKind;
use crate::config::interpolate::{Reference, ServiceField, resolve_refs};
use crate::config::{
    Condition, HealthCheck, Image, Probe, RestartPolicy, RuntimeKind, Service, ServiceKind,
    StopSignal, env_key,
};

/// The host every process-facing address uses.
pub(crate) const LOOPBACK: &str = "127.0.0.1";
/// How a container reaches a process on the host.
pub(crate) const HOST_GATEWAY: &str = "host.docker.internal";

/// Host and container port numbers of one declared port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ResolvedPort {
    /// Its name.
    pub name: String,
    /// The port on 127.0.0.1.
    pub host: u16,
    /// The port inside the container (equal to `host` for processes).
    pub container: u16,
}

/// A built-in's configuration file. Its text holds the built-in's keys, so it is written
/// only to that file (mode 0600) and never into `plan.json`: a detached supervisor finds
/// the file its `up` wrote.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct BuiltinConfig {
    /// The file.
    pub path: PathBuf,
    /// The YAML, while the plan is in the memory of the `up` that made it.
    #[serde(skip)]
    pub yaml: Option<String>,
}

impl BuiltinConfig {
    /// Writes the file (its folder 0700, itself 0600), when the text is at hand.
    pub(crate) fn write(&self) -> std::io::Result<()> {
        let Some(yaml) = &self.yaml else {
            return Ok(());
        };
        if let Some(dir) = self.path.parent() {
            crate::state::private_dir(dir)?;
        }
        crate::state::write_private(&self.path, yaml.as_bytes())
    }
}

/// How a service is started.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Launch {
    /// A local process.
    Process {
        /// The argument vector (a string command is `sh -c …`).
        argv: Vec<String>,
    },
    /// A container.
    Container {
        /// The image to run.
        image: ContainerImage,
        /// The command, when it overrides the image's.
        command: Option<Vec<String>>,
    },
}

/// The image of a container service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum ContainerImage {
    /// `stack`'s own image, built from its executable.
    Builtin,
    /// A reference, pulled when missing.
    Reference(String),
    /// Built from a folder.
    Build {
        /// The context folder.
        context: PathBuf,
        /// The Dockerfile.
        dockerfile: Option<String>,
    },
}

/// A health probe with concrete addresses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum ResolvedProbe {
    /// GET `url`.
    Http {
        /// The full URL on 127.0.0.1.
        url: String,
        /// Expected status; `None` = 2xx.
        status: Option<u16>,
    },
    /// Connect to 127.0.0.1:port.
    Tcp {
        /// The host port.
        port: u16,
    },
    /// Run a command (inside the container for containers).
    Exec {
        /// The argument vector.
        argv: Vec<String>,
    },
    /// A log line matching this pattern.
    Log {
        /// The pattern.
        pattern: String,
    },
}

/// A health check ready to run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ResolvedHealth {
    /// What to probe.
    pub probe: ResolvedProbe,
    /// The configured timing.
    pub timing: HealthCheck,
}

/// Everything needed to start, watch and stop one service.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ServicePlan {
    /// Its name.
    pub name: String,
    /// Process or container.
    pub runtime: RuntimeKind,
    /// How to start it.
    pub launch: Launch,
    /// Which built-in, if any.
    pub builtin: Option<BuiltinKind>,
    /// A built-in's configuration and the file it is written to (under `run/`).
    pub builtin_config: Option<BuiltinConfig>,
    /// The full environment to add (injected variables, then the service's own).
    pub env: Vec<(String, String)>,
    /// The working folder.
    pub cwd: PathBuf,
    /// Its ports.
    pub ports: Vec<ResolvedPort>,
    /// Its health check.
    pub health: Option<ResolvedHealth>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Restarts allowed.
    pub max_restarts: Option<u32>,
    /// Grace period after the stop signal.
    pub stop_timeout: std::time::Duration,
    /// The stop signal.
    pub stop_signal: StopSignal,
    /// What it waits for.
    pub depends_on: Vec<(String, Condition)>,
    /// Containers: init as PID 1.
    pub init: bool,
    /// What to do when files change.
    #[serde(default)]
    pub watch: Vec<crate::config::WatchRule>,
    /// What defines it, for reconcile.
    #[serde(default)]
    pub fingerprint: super::Fingerprint,
}

/// A reference that cannot be resolved in this plan.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{service}`: {message}")]
pub(crate) struct ResolveError {
    /// The consumer.
    pub service: String,
    /// What went wrong.
    pub message: String,
}

/// The resolved ports of every planned service.
pub(crate) type PortTable = HashMap<String, Vec<ResolvedPort>>;

/// The address of `target` as `consumer` sees it (SPEC §1): a process sees 127.0.0.1 and
/// the host port; a container sees another container by name on the stack network and a
/// process through the host gateway.
fn address(
    consumer: RuntimeKind,
    target_name: &str,
    target_runtime: RuntimeKind,
    port: &ResolvedPort,
) -> (String, u16) {
    match (consumer, target_runtime) {
        (RuntimeKind::Process, _) => (LOOPBACK.to_string(), port.host),
        (RuntimeKind::Container, RuntimeKind::Container) => {
            (target_name.to_string(), port.container)
        }
        (RuntimeKind::Container, RuntimeKind::Process) => (HOST_GATEWAY.to_string(), port.host),
    }
}

/// Builds the plan of `svc` given every planned service's ports and runtimes.
pub(crate) fn service_plan(
    project: &str,
    state_dir: &Path,
    svc: &Service,
    planned: &[&Service],
    ports: &PortTable,
    exe: &Path,
    overrides: &super::llm::Overrides,
) -> Result<ServicePlan, ResolveError> {
    let own_ports = ports.get(&svc.name).cloned().unwrap_or_default();
    let r = Resolving {
        svc,
        planned,
        ports,
        own_ports: &own_ports,
    };
    let env = r.env(project)?;
    let (launch, builtin, builtin_config) = r.launch(state_dir, exe, overrides)?;
    let health = r.health()?;
    let mut plan = ServicePlan {
        name: svc.name.clone(),
        runtime: svc.runtime,
        launch,
        builtin,
        builtin_config,
        env,
        cwd: svc.cwd.clone(),
        ports: own_ports,
        health,
        restart: svc.restart,
        max_restarts: svc.max_restarts,
        stop_timeout: svc.stop_timeout,
        stop_signal: svc.stop_signal,
        depends_on: svc
            .depends_on
            .iter()
            .map(|d| (d.service.clone(), d.condition))
            .collect(),
        init: svc.init,
        watch: svc.watch.clone(),
        fingerprint: super::Fingerprint::default(),
    };
    let own: Vec<&str> = svc.env.iter().map(|(k, _)| k.as_str()).collect();
    let yaml = plan.builtin_config.as_ref().and_then(|c| c.yaml.as_deref());
    plan.fingerprint = super::Fingerprint::of(&plan, &own, yaml);
    Ok(plan)
}

/// How a launch is made: the process, or the container (with a built-in's config file).
type Launched = (Launch, Option<BuiltinKind>, Option<BuiltinConfig>);

/// One service being planned, among the others.
struct Resolving<'a> {
    svc: &'a Service,
    planned: &'a [&'a Service],
    ports: &'a PortTable,
    own_ports: &'a [ResolvedPort],
}

impl Resolving<'_> {
    fn err(&self, message: String) -> ResolveError {
        ResolveError {
            service: self.svc.name.clone(),
            message,
        }
    }

    /// The service's own main port, as it sees it.
    fn own_port(&self) -> Option<u16> {
        main_of(self.own_ports).map(|p| match self.svc.runtime {
            RuntimeKind::Process => p.host,
            RuntimeKind::Container => p.container,
        })
    }

    /// The value of `${PORT}` or `${services.X.…}` for this service.
    fn reference(&self, r: &Reference) -> Result<String, String> {
        let (service, field) = match r {
            Reference::OwnPort => {
                return self
                    .own_port()
                    .map(|p| p.to_string())
                    .ok_or_else(|| format!("`{r}`: the service has no port"));
            }
            Reference::Service { service, field } => (service, field),
        };
        let target = self
            .planned
            .iter()
            .find(|s| &s.name == service)
            .ok_or_else(|| format!("`{r}`: `{service}` is not started (check its `profiles`)"))?;
        let tports = self
            .ports
            .get(service)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let port = match field {
            ServiceField::NamedPort(n) => tports.iter().find(|p| &p.name == n),
            _ => main_of(tports),
        }
        .ok_or_else(|| format!("`{r}`: `{service}` has no such port"))?;
        let (host, number) = address(self.svc.runtime, service, target.runtime, port);
        Ok(match field {
            ServiceField::Url => format!("http://{host}:{number}"),
            ServiceField::Host => host,
            ServiceField::Port | ServiceField::NamedPort(_) => number.to_string(),
        })
    }

    /// Pass-two interpolation of `s`.
    fn interp(&self, s: &str) -> Result<String, ResolveError> {
        resolve_refs(s, &mut |r| self.reference(r)).map_err(|e| self.err(e.message))
    }

    /// Injected variables first, so the service's own `env` can override them.
    fn env(&self, project: &str) -> Result<Vec<(String, String)>, ResolveError> {
        let svc = self.svc;
        let mut env: Vec<(String, String)> = Vec::new();
        if let Some(n) = self.own_port() {
            env.push(("PORT".into(), n.to_string()));
        }
        env.push(("STACK_PROJECT".into(), project.to_string()));
        env.push(("STACK_SERVICE".into(), svc.name.clone()));
        for other in self.planned {
            let Some(p) = self.ports.get(&other.name).and_then(|v| main_of(v)) else {
                continue;
            };
            let (host, number) = address(svc.runtime, &other.name, other.runtime, p);
            let key = env_key(&other.name);
            env.push((
                format!("STACK_{key}_URL"),
                format!("http://{host}:{number}"),
            ));
            env.push((format!("STACK_{key}_HOST"), host));
            env.push((format!("STACK_{key}_PORT"), number.to_string()));
        }
        for (k, v) in &svc.env {
            let v = self.interp(v)?;
            env.retain(|(existing, _)| existing != k);
            env.push((k.clone(), v));
        }
        Ok(env)
    }

    /// What to start: a built-in as `stack serve` (with its config file), a command, or
    /// an image.
    fn launch(
        &self,
        state_dir: &Path,
        exe: &Path,
        overrides: &super::llm::Overrides,
    ) -> Result<Launched, ResolveError> {
        let svc = self.svc;
        let mut interp = |s: &str| self.interp(s);
        Ok(match &svc.kind {
            ServiceKind::Builtin { builtin, config } => {
                let mut config = interp_json(config, &mut interp)?;
                let mock_url = self
                    .planned
                    .iter()
                    .find(|s| s.builtin() == Some(BuiltinKind::Model))
                    .and_then(|m| {
                        self.reference(&Reference::Service {
                            service: m.name.clone(),
                            field: ServiceField::Url,
                        })
                        .ok()
                    });
                super::llm::apply(
                    *builtin,
                    &mut config,
                    &super::llm::Context {
                        overrides,
                        mock_url,
                        cwd: &svc.cwd,
                        state_dir,
                        services: self.planned,
                    },
                );
                if svc.runtime == RuntimeKind::Container {
                    // The stack's other containers reach it by its name.
                    allow_host(&mut config, &svc.name);
                }
                // The file reads `${VAR}` as the stack file does (see
                // `services::config::parse_config`): what is resolved here is kept literal.
                escape_dollars(&mut config);
                let yaml = serde_yaml::to_string(&config)
                    .map_err(|e| self.err(format!("cannot write the configuration: {e}")))?;
                let file = builtin_config_path(state_dir, &svc.name);
                let serve = |prefix: Vec<String>, host: &str| {
                    let mut argv = prefix;
                    argv.extend([
                        "serve".to_string(),
                        builtin.as_str().to_string(),
                        "--host".to_string(),
                        host.to_string(),
                        "--config".to_string(),
                        file.display().to_string(),
                    ]);
                    argv
                };
                let launch = match svc.runtime {
                    RuntimeKind::Process => Launch::Process {
                        argv: serve(vec![exe.display().to_string()], LOOPBACK),
                    },
                    // Inside the container it listens on every interface: the port is
                    // published on the host's 127.0.0.1 only.
                    RuntimeKind::Container => Launch::Container {
                        image: ContainerImage::Builtin,
                        command: Some(serve(Vec::new(), "0.0.0.0")),
                    },
                };
                let config = BuiltinConfig {
                    path: file,
                    yaml: Some(yaml),
                };
                (launch, Some(*builtin), Some(config))
            }
            ServiceKind::Command { command, image } => {
                let command = command.try_map(&mut interp)?;
                let launch = match (svc.runtime, image) {
                    (RuntimeKind::Container, Some(image)) => Launch::Container {
                        image: container_image(image),
                        command: Some(command.argv()),
                    },
                    _ => Launch::Process {
                        argv: command.argv(),
                    },
                };
                (launch, None, None)
            }
            ServiceKind::Image { image } => (
                Launch::Container {
                    image: container_image(image),
                    command: None,
                },
                None,
                None,
            ),
        })
    }

    /// The health check with its port and command resolved.
    fn health(&self) -> Result<Option<ResolvedHealth>, ResolveError> {
        let Some(h) = &self.svc.health else {
            return Ok(None);
        };
        let port_of = |name: &str| {
            self.own_ports
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| self.err(format!("no port `{name}`")))
        };
        let probe = match &h.probe {
            Probe::Http { path, port, status } => ResolvedProbe::Http {
                url: format!(
                    "http://{LOOPBACK}:{}{}",
                    port_of(port)?.host,
                    self.interp(path)?
                ),
                status: *status,
            },
            Probe::Tcp { port } => ResolvedProbe::Tcp {
                port: port_of(port)?.host,
            },
            Probe::Exec { command } => ResolvedProbe::Exec {
                argv: command.try_map(&mut |s: &str| self.interp(s))?.argv(),
            },
            Probe::Log { pattern } => ResolvedProbe::Log {
                pattern: pattern.clone(),
            },
        };
        Ok(Some(ResolvedHealth {
            probe,
            timing: h.clone(),
        }))
    }
}

/// Where a built-in's configuration file is written.
pub(crate) fn builtin_config_path(state_dir: &Path, service: &str) -> PathBuf {
    state_dir.join("run").join(format!("{service}.yaml"))
}

fn main_of(ports: &[ResolvedPort]) -> Option<&ResolvedPort> {
    ports
        .iter()
        .find(|p| p.name == "main")
        .or_else(|| ports.first())
}

fn container_image(image: &Image) -> ContainerImage {
    match image {
        Image::Reference(r) => ContainerImage::Reference(r.clone()),
        Image::Build {
            context,
            dockerfile,
        } => ContainerImage::Build {
            context: context.clone(),
            dockerfile: dockerfile.clone(),
        },
    }
}

/// Doubles every `$` in the strings of `v`, so a built-in reads them literally.
pub(crate) fn escape_dollars(v: &mut serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        J::Array(items) => items.iter_mut().for_each(escape_dollars),
        J::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// Adds `name` to a built-in configuration's `allowed_hosts:`.
fn allow_host(config: &mut serde_json::Value, name: &str) {
    use serde_json::Value as J;
    if config.is_null() {
        *config = J::Object(serde_json::Map::new());
    }
    let J::Object(map) = config else { return };
    let hosts = map
        .entry("allowed_hosts")
        .or_insert_with(|| J::Array(Vec::new()));
    if let J::Array(list) = hosts
        && !list.iter().any(|h| h.as_str() == Some(name))
    {
        list.push(J::String(name.to_string()));
    }
}

/// Pass-two interpolation of every string in a JSON value.
fn interp_json(
    v: &serde_json::Value,
    interp: &mut dyn FnMut(&str) -> Result<String, ResolveError>,
) -> Result<serde_json::Value, ResolveError> {
    use serde_json::Value as J;
    Ok(match v {
        J::String(s) => J::String(interp(s)?),
        J::Array(items) => J::Array(
            items
                .iter()
                .map(|i| interp_json(i, interp))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => J::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), interp_json(v, interp)?)))
                .collect::<Result<_, ResolveError>>()?,
        ),
        other => other.clone(),
    })
}
