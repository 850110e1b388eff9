//! The validated stack: what the planner works from. Every value here has been checked;
//! strings may still hold `${PORT}` / `${services.…}` references and `$$`, resolved by
//! the plan once ports are known.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use super::raw::{Condition, RestartPolicy, RuntimeKind, WatchAction};
use crate::config::BuiltinKind;

/// A validated stack file.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stack {
    /// The project name (isolates state, containers and networks).
    pub name: String,
    /// The name the project has without `-p` (from `name:` or the folder).
    pub default_name: String,
    /// The stack file, absolute.
    pub file: PathBuf,
    /// Its folder: relative paths and `.stack/` live here.
    pub dir: PathBuf,
    /// Every service, in file order (profiles not yet applied).
    pub services: Vec<Service>,
    /// How long file changes gather into one `watch:` action.
    #[serde(with = "humantime_serde")]
    pub watch_debounce: Duration,
    /// The `env_file:` files (absolute), watched with the stack file while it runs.
    pub env_files: Vec<PathBuf>,
    /// Where telemetry is forwarded too (`otlp_forward:`), an `http(s)://` base URL.
    #[serde(default)]
    pub otlp_forward: Option<String>,
}

impl Stack {
    /// The service called `name`.
    pub(crate) fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// One validated service.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Service {
    /// Its name in `services:`.
    pub name: String,
    /// What runs.
    pub kind: ServiceKind,
    /// Where it runs.
    pub runtime: RuntimeKind,
    /// The working folder, absolute.
    pub cwd: PathBuf,
    /// Declared ports; the first is the main one unless one is called `main`.
    pub ports: Vec<PortSpec>,
    /// Extra environment, in file order.
    pub env: Vec<(String, String)>,
    /// The health check, if any.
    pub health: Option<HealthCheck>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Restarts allowed before giving up (`None`: no limit).
    pub max_restarts: Option<u32>,
    /// Grace period after the stop signal.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    /// The signal that asks it to stop.
    pub stop_signal: StopSignal,
    /// What it waits for.
    pub depends_on: Vec<Dependency>,
    /// Profiles that enable it (empty: always enabled).
    pub profiles: Vec<String>,
    /// Containers: run an init process as PID 1.
    pub init: bool,
    /// What to do when files change.
    pub watch: Vec<WatchRule>,
    /// Instances in an export (locally one runs).
    pub replicas: u32,
}

/// A validated `watch:` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WatchRule {
    /// The folder (or file) watched, absolute: the path up to its first glob.
    pub root: PathBuf,
    /// The glob a changed path must match (relative to `root`), when the path had one.
    pub glob: Option<String>,
    /// `.gitignore`-syntax patterns of changes to ignore.
    pub ignore: Vec<String>,
    /// What a change does.
    pub action: WatchAction,
    /// `sync`: the folder inside the container.
    pub target: Option<String>,
    /// Restart dependents too.
    pub cascade: bool,
}

impl Service {
    /// Which built-in it is, if one.
    pub(crate) fn builtin(&self) -> Option<BuiltinKind> {
        match &self.kind {
            ServiceKind::Builtin { builtin, .. } => Some(*builtin),
            _ => None,
        }
    }

    /// The main port: the one called `main`, else the first declared.
    pub(crate) fn main_port(&self) -> Option<&PortSpec> {
        self.ports
            .iter()
            .find(|p| p.name == "main")
            .or_else(|| self.ports.first())
    }
}

/// What a service runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ServiceKind {
    /// `stack serve <kind>` with its configuration.
    Builtin {
        /// Which built-in.
        builtin: BuiltinKind,
        /// Its `config:` map (pass-one interpolated).
        config: serde_json::Value,
    },
    /// A command (processes; for containers it overrides the image's).
    Command {
        /// What to run.
        command: Command,
        /// The image, for containers.
        image: Option<Image>,
    },
    /// A container image with its own command.
    Image {
        /// The image.
        image: Image,
    },
}

/// Where a container image comes from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Image {
    /// Pulled (or present) by reference.
    Reference(String),
    /// Built from a folder.
    Build {
        /// The context folder, absolute.
        context: PathBuf,
        /// The Dockerfile within it.
        dockerfile: Option<String>,
    },
}

/// A command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Command {
    /// Run through `sh -c`.
    Shell(String),
    /// Run directly.
    Argv(Vec<String>),
}

impl Command {
    /// The argument vector to execute.
    pub(crate) fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
            Command::Argv(v) => v.clone(),
        }
    }

    /// Applies `f` to every string of the command.
    pub(crate) fn try_map<E>(
        &self,
        mut f: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<Self, E> {
        Ok(match self {
            Command::Shell(s) => Command::Shell(f(s)?),
            Command::Argv(v) => Command::Argv(v.iter().map(|a| f(a)).collect::<Result<_, _>>()?),
        })
    }
}

/// A declared port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PortSpec {
    /// Its name (`main` for `port:`).
    pub name: String,
    /// The host port: `None` = auto.
    pub host: Option<u16>,
    /// The port inside a container (defaults to the host port's number).
    pub container: Option<u16>,
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Probe {
    /// HTTP GET on a port.
    Http {
        /// Path (with query, if any).
        path: String,
        /// The port's name in [`Service::ports`].
        port: String,
        /// Expected status; `None` = any 2xx.
        status: Option<u16>,
    },
    /// TCP connect to a port.
    Tcp {
        /// The port's name.
        port: String,
    },
    /// A command that must exit 0.
    Exec {
        /// The command.
        command: Command,
    },
    /// A log line matching a regular expression.
    Log {
        /// The pattern (validated).
        pattern: String,
    },
}

/// A health check with its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HealthCheck {
    /// What to probe.
    pub probe: Probe,
    /// Probe period once up (probes start fast and back off to this).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Time one probe may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Failures in a row that make a service unhealthy.
    pub retries: u32,
    /// Failures in this period after start do not count.
    #[serde(with = "humantime_serde")]
    pub start_period: Duration,
}

impl HealthCheck {
    /// Default timing: 1 s interval, 2 s timeout, 30 retries, no start period.
    pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    /// Default probe timeout.
    pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default failures in a row before unhealthy.
    pub(crate) const DEFAULT_RETRIES: u32 = 30;

    /// How long a starting service may take to become healthy: the start period plus
    /// `retries` intervals.
    pub(crate) fn startup_budget(&self) -> Duration {
        self.start_period + self.interval * self.retries.max(1)
    }
}

/// An edge of the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Dependency {
    /// The service waited for.
    pub service: String,
    /// What is waited for.
    pub condition: Condition,
}

/// A stop signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StopSignal(pub i32);

impl StopSignal {
    /// SIGTERM.
    pub(crate) const TERM: StopSignal = StopSignal(libc::SIGTERM);

    /// Reads `SIGTERM`, `TERM`, `term` or `15`.
    pub(crate) fn parse(s: &str) -> Option<StopSignal> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            return (1..=64).contains(&n).then_some(StopSignal(n));
        }
        let upper = t.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        let n = match name {
            "TERM" => libc::SIGTERM,
            "INT" => libc::SIGINT,
            "QUIT" => libc::SIGQUIT,
            "HUP" => libc::SIGHUP,
            "KILL" => libc::SIGKILL,
            "USR1" => libc::SIGUSR1,
            "USR2" => libc::SIGUSR2,
            "WINCH" => libc::SIGWINCH,
            _ => return None,
        };
        Some(StopSignal(n))
    }

    /// The name, `SIGTERM` style.
    pub(crate) fn name(self) -> String {
        match self.0 {
            libc::SIGTERM => "SIGTERM".into(),
            libc::SIGINT => "SIGINT".into(),
            libc::SIGQUIT => "SIGQUIT".into(),
            libc::SIGHUP => "SIGHUP".into(),
            libc::SIGKILL => "SIGKILL".into(),
            libc::SIGUSR1 => "SIGUSR1".into(),
            libc::SIGUSR2 => "SIGUSR2".into(),
            libc::SIGWINCH => "SIGWINCH".into(),
            n => n.to_string(),
        }
    }
}

/// Serialises durations as `1s`, `500ms` in `stack config`.
mod humantime_serde {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}
