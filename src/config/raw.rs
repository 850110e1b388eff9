//! The stack file as written: serde types that mirror SPEC §1 field by field.
//!
//! These types accept every spelling the file allows (a port as `auto`, a number or a
//! mapping; `depends_on` as a list or a map…) and reject unknown fields. They say nothing
//! about how fields relate to each other: that is [`super::validate`]'s job. The JSON
//! Schema printed by `stack schema` is generated from them.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::config::BuiltinKind;

/// A stack file (`stack.yaml`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "stack.yaml", description = "A `stack` stack file (SPEC §1)")]
#[expect(
    dead_code,
    reason = "the JSON Schema is derived from it; validate.rs reads the document field by field"
)]
pub(crate) struct RawStack {
    /// Project name; default: the folder's name. Isolates state, containers and networks.
    pub name: Option<String>,
    /// Default runtime of every service.
    pub runtime: Option<RuntimeKind>,
    /// `KEY=VALUE` file(s) feeding `${VAR}` interpolation, relative to the stack file.
    pub env_file: Option<OneOrMany>,
    /// How long file changes gather into one `watch:` action (default `100ms`).
    pub watch_debounce: Option<RawDuration>,
    /// Send every span, metric and log the stack's services report to this OTLP/HTTP
    /// collector too (`http://collector:4318`), besides the supervisor's own window.
    pub otlp_forward: Option<String>,
    /// The services, by name.
    #[serde(default)]
    pub services: IndexMap<String, RawService>,
}

/// One service as written.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    /// A built-in service, run as `stack serve <kind>`.
    pub builtin: Option<BuiltinKind>,
    /// The command: a list (run directly) or a string (run through `sh -c`).
    pub command: Option<RawCommand>,
    /// Container image (for `runtime: container`).
    pub image: Option<String>,
    /// Build the image from a folder with a Dockerfile (for `runtime: container`).
    pub build: Option<StringOr<RawBuild>>,
    /// `process` or `container`; default: the stack's `runtime`.
    pub runtime: Option<RuntimeKind>,
    /// Working folder, relative to the stack file.
    pub cwd: Option<String>,
    /// Shorthand for `ports: {main: …}`.
    pub port: Option<RawPort>,
    /// Named ports.
    pub ports: Option<IndexMap<String, RawPort>>,
    /// Extra environment variables.
    pub env: Option<RawEnv>,
    /// A built-in's configuration (SPEC §4), interpolated and handed over as a file.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub config: Option<serde_yaml::Value>,
    /// How to tell the service is ready.
    pub health: Option<RawHealth>,
    /// Restart policy.
    pub restart: Option<RestartPolicy>,
    /// Give up after this many restarts.
    pub max_restarts: Option<u32>,
    /// Grace period between the stop signal and SIGKILL.
    pub stop_timeout: Option<RawDuration>,
    /// The signal that asks the service to stop (default `SIGTERM`).
    pub stop_signal: Option<String>,
    /// Services this one waits for: a list (= started) or a map to a condition.
    pub depends_on: Option<RawDependsOn>,
    /// Only started when one of these profiles is active (`--profile`).
    pub profiles: Option<Vec<String>>,
    /// Containers: run an init process as PID 1 (default true).
    pub init: Option<bool>,
    /// What to do when files change (SPEC §3.1).
    pub watch: Option<Vec<RawWatch>>,
    /// How many instances `stack export` runs (default 1); locally one runs.
    #[schemars(range(min = 1))]
    pub replicas: Option<u32>,
}

/// One `watch:` rule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "WatchRule")]
pub(crate) struct RawWatch {
    /// A folder, file or glob, relative to the stack file.
    pub path: String,
    /// Globs (`.gitignore` syntax) of changes to ignore; `.gitignore` and `.stackignore`
    /// files are honoured as well.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// What a change does (default `restart`).
    #[serde(default)]
    pub action: WatchAction,
    /// `sync`: the folder inside the container the files go to.
    pub target: Option<String>,
    /// `restart`: restart the services that depend on this one too.
    #[serde(default)]
    pub cascade: bool,
}

/// What a `watch:` rule does when its files change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) enum WatchAction {
    /// Restart the service.
    #[default]
    #[serde(rename = "restart")]
    Restart,
    /// Copy the changed files into the running container at `target` (no restart).
    #[serde(rename = "sync")]
    Sync,
    /// Copy the files, then restart.
    #[serde(rename = "sync+restart")]
    SyncRestart,
    /// Rebuild the image and recreate the container.
    #[serde(rename = "rebuild")]
    Rebuild,
}

impl WatchAction {
    /// The name used in files and output.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WatchAction::Restart => "restart",
            WatchAction::Sync => "sync",
            WatchAction::SyncRestart => "sync+restart",
            WatchAction::Rebuild => "rebuild",
        }
    }

    /// Whether it copies files into the container.
    pub(crate) fn syncs(self) -> bool {
        matches!(self, WatchAction::Sync | WatchAction::SyncRestart)
    }
}

/// Where a service runs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RuntimeKind {
    /// A local process in its own process group.
    #[default]
    Process,
    /// A Docker container.
    Container,
}

impl RuntimeKind {
    /// The name used in files and output.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Process => "process",
            RuntimeKind::Container => "container",
        }
    }
}

/// Restart policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Restart after a non-zero exit or a failed liveness probe.
    OnFailure,
    /// Restart whenever it stops (but not when `stack` stops it).
    Always,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub(crate) fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A command: a list runs directly, a string runs through `sh -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawCommand {
    /// `sh -c STRING`
    Shell(String),
    /// argv
    Argv(Vec<String>),
}

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCommand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command: a string (run by `sh -c`) or a list of arguments")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCommand, E> {
                Ok(RawCommand::Shell(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCommand, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<Scalar>()? {
                    argv.push(arg.0);
                }
                Ok(RawCommand::Argv(argv))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawCommand {
    fn schema_name() -> Cow<'static, str> {
        "Command".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A string (run through `sh -c`) or a list of arguments (run directly)",
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": ["string", "number", "boolean"]}, "minItems": 1}
            ]
        })
    }
}

/// A scalar read as a string: YAML numbers and booleans in a command or env are text.
#[derive(Debug, Clone)]
pub(crate) struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A field written as a string (its short form) or as a mapping (`L`, its long form):
/// `build: ./dir` or `build: {context: ./dir}`. The parser of the mapping and the JSON
/// Schema both come from `L`'s derives, so the schema cannot drift from the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct StringOr<L>(pub L);

/// The long form of a [`StringOr`] field: what its short form means.
pub(crate) trait ShortForm: Sized {
    /// Both forms, for errors (`a folder, or {context, dockerfile}`).
    const EXPECTING: &'static str;
    /// The value the short form `s` stands for.
    fn from_short(s: &str) -> Self;
}

impl<L> std::ops::Deref for StringOr<L> {
    type Target = L;
    fn deref(&self) -> &L {
        &self.0
    }
}

impl<'de, L: ShortForm + Deserialize<'de>> Deserialize<'de> for StringOr<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<L>(std::marker::PhantomData<L>);
        impl<'de, L: ShortForm + Deserialize<'de>> Visitor<'de> for V<L> {
            type Value = StringOr<L>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(L::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringOr<L>, E> {
                Ok(StringOr(L::from_short(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StringOr<L>, A::Error> {
                L::deserialize(de::value::MapAccessDeserializer::new(map)).map(StringOr)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<L: ShortForm + JsonSchema> JsonSchema for StringOr<L> {
    fn schema_name() -> Cow<'static, str> {
        format!("StringOr{}", L::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let long = generator.subschema_for::<L>();
        json_schema!({
            "description": L::EXPECTING,
            "oneOf": [{"type": "string"}, long]
        })
    }
}

/// `build: ./dir` or `build: {context: ./dir, dockerfile: Dockerfile.dev}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Build")]
pub(crate) struct RawBuild {
    /// The folder sent to the engine, relative to the stack file.
    pub context: String,
    /// The Dockerfile inside the context.
    pub dockerfile: Option<String>,
}

impl ShortForm for RawBuild {
    const EXPECTING: &'static str = "a folder, or {context, dockerfile}";
    fn from_short(s: &str) -> RawBuild {
        RawBuild {
            context: s.to_string(),
            dockerfile: None,
        }
    }
}

/// A port: `auto`, a number, or for containers `{host: auto|N, container: N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawPort {
    /// A free port chosen at `up`.
    Auto,
    /// A fixed port.
    Fixed(u16),
    /// A container port published on a host port.
    Mapped {
        /// The host side: `None` = auto.
        host: Option<u16>,
        /// The port inside the container.
        container: u16,
    },
}

/// Checks a port number: 1–65535.
pub(crate) fn port_number(n: u64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{n} is not a TCP port (1–65535)")),
    }
}

/// Reads `auto` or a port number from a string (the result of interpolation).
fn port_from_str(v: &str) -> Result<Option<u16>, String> {
    let t = v.trim();
    if t == "auto" {
        return Ok(None);
    }
    match t.parse::<u64>() {
        Ok(n) => port_number(n).map(Some),
        Err(_) => Err(format!(
            "`{v}` is not a port: write `auto` or a number from 1 to 65535"
        )),
    }
}

impl<'de> Deserialize<'de> for RawPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPort;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`auto`, a port number, or {host: auto|N, container: N}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawPort, E> {
                port_number(v).map(RawPort::Fixed).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPort, E> {
                Err(E::custom(format!("{v} is not a TCP port (1–65535)")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPort, E> {
                Ok(port_from_str(v)
                    .map_err(E::custom)?
                    .map_or(RawPort::Auto, RawPort::Fixed))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawPort, A::Error> {
                let m = PortMapping::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawPort::Mapped {
                    host: m.host.0,
                    container: m.container.0,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `{host: auto|N, container: N}`: a container port published on a host port.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PortMapping {
    /// The host side: `auto` (the default) or a port number.
    #[serde(default)]
    host: HostPort,
    /// The port inside the container.
    container: PortNumber,
}

/// `auto` (None) or a port number.
#[derive(Default)]
struct HostPort(Option<u16>);

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawPort::deserialize(d)? {
            RawPort::Auto => Ok(HostPort(None)),
            RawPort::Fixed(p) => Ok(HostPort(Some(p))),
            RawPort::Mapped { .. } => Err(de::Error::custom("expected `auto` or a port number")),
        }
    }
}

impl JsonSchema for HostPort {
    fn schema_name() -> Cow<'static, str> {
        "HostPort".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let number = generator.subschema_for::<PortNumber>();
        json_schema!({"oneOf": [{"const": "auto"}, number]})
    }
}

/// A port number (not `auto`).
struct PortNumber(u16);

impl<'de> Deserialize<'de> for PortNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        HostPort::deserialize(d)?
            .0
            .map(PortNumber)
            .ok_or_else(|| de::Error::custom("`container` needs a port number, not `auto`"))
    }
}

impl JsonSchema for PortNumber {
    fn schema_name() -> Cow<'static, str> {
        "PortNumber".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": 1, "maximum": 65535})
    }
}

impl JsonSchema for RawPort {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let number = generator.subschema_for::<PortNumber>();
        let mapping = generator.subschema_for::<PortMapping>();
        json_schema!({
            "description": "`auto` (a free port chosen at `up`), a port number, or for containers {host: auto|N, container: N}",
            "oneOf": [
                {"const": "auto"},
                number,
                {"type": "string", "pattern": "^\\$\\{"},
                mapping
            ]
        })
    }
}

/// Environment variables: a map, or a list of `KEY=VALUE`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawEnv(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for RawEnv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEnv;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of variables, or a list of KEY=VALUE")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEnv, A::Error> {
                let mut vars = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Option<Scalar>>()? {
                    vars.push((k, v.map(|s| s.0).unwrap_or_default()));
                }
                Ok(RawEnv(vars))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEnv, A::Error> {
                let mut vars = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    let Some((k, v)) = item.split_once('=') else {
                        return Err(de::Error::custom(format!("`{item}` is not KEY=VALUE")));
                    };
                    vars.push((k.to_string(), v.to_string()));
                }
                Ok(RawEnv(vars))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawEnv {
    fn schema_name() -> Cow<'static, str> {
        "Env".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Environment variables: a map, or a list of KEY=VALUE",
            "oneOf": [
                {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
                {"type": "array", "items": {"type": "string", "pattern": "^[^=]+="}}
            ]
        })
    }
}

/// A duration with its unit: `500ms`, `2s`, `1m30s` (a bare `0` too). A bare number
/// is refused: `5` could be seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawDuration(pub Duration);

/// Parses `500ms`, `2s`, `1m30s` or a plain number of seconds.
pub(crate) fn parse_duration(v: &str) -> Result<Duration, String> {
    let t = v.trim();
    if let Ok(secs) = t.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(t)
        .map_err(|_| format!("`{v}` is not a duration: write e.g. `500ms`, `2s` or `1m30s`"))
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Scalar::deserialize(d)?;
        let t = s.0.trim();
        if t != "0" && t.parse::<f64>().is_ok_and(|n| n >= 0.0) {
            return Err(de::Error::custom(format!(
                "`{t}` has no unit: write `{t}s` (or `{t}ms`)"
            )));
        }
        parse_duration(&s.0)
            .map(RawDuration)
            .map_err(de::Error::custom)
    }
}

impl JsonSchema for RawDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration with its unit, such as `500ms`, `2s` or `1m30s`",
            "oneOf": [{"type": "string", "pattern": "^\\s*(0|[0-9.]+\\s*[a-zA-Zµ]+.*)\\s*$"}, {"const": 0}]
        })
    }
}

/// `depends_on`: a list (each = started) or a map from service to condition.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawDependsOn {
    /// Service and condition, in file order.
    pub entries: Vec<(String, Condition)>,
    /// Written as a map (entries are keys) rather than a list.
    pub map: bool,
}

/// What a dependent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Condition {
    /// The dependency's process or container is running.
    Started,
    /// Its health check passes.
    Healthy,
    /// It ran to completion with exit code 0 (a one-shot job).
    Completed,
}

impl Condition {
    /// The name used in files and output.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::Completed => "completed",
        }
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            condition: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Short(String),
            Long(Long),
        }
        let text = match Either::deserialize(d)? {
            Either::Short(s) | Either::Long(Long { condition: s }) => s,
        };
        // docker compose spells them service_started / service_healthy /
        // service_completed_successfully; accept those too.
        match text.as_str() {
            "started" | "service_started" => Ok(Condition::Started),
            "healthy" | "service_healthy" => Ok(Condition::Healthy),
            "completed" | "service_completed_successfully" => Ok(Condition::Completed),
            other => Err(de::Error::custom(format!(
                "`{other}` is not a condition: write `started`, `healthy` or `completed`"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for RawDependsOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDependsOn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of services, or a map {service: started|healthy|completed}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawDependsOn, A::Error> {
                let mut deps = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    deps.push((name, Condition::Started));
                }
                Ok(RawDependsOn {
                    entries: deps,
                    map: false,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDependsOn, A::Error> {
                let mut deps = Vec::new();
                while let Some((name, cond)) = map.next_entry::<String, Condition>()? {
                    deps.push((name, cond));
                }
                Ok(RawDependsOn {
                    entries: deps,
                    map: true,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawDependsOn {
    fn schema_name() -> Cow<'static, str> {
        "DependsOn".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A list of services (each = started), or a map {service: started|healthy|completed}",
            "oneOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "additionalProperties": {"enum": ["started", "healthy", "completed"]}}
            ]
        })
    }
}

/// A health check: exactly one of `http`, `tcp`, `exec`, `log`, plus timing.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    /// An HTTP GET that must answer 2xx (or `status`): a path, or {path, port, status}.
    pub http: Option<StringOr<RawHttpCheck>>,
    /// A TCP connect to a named port (or a port number).
    pub tcp: Option<RawPortRef>,
    /// A command that must exit 0: a list, or a string run by `sh -c`.
    pub exec: Option<RawCommand>,
    /// A regular expression a log line must match.
    pub log: Option<String>,
    /// Time between probes once the service is up (probes start fast and back off to this).
    pub interval: Option<RawDuration>,
    /// Time one probe may take.
    pub timeout: Option<RawDuration>,
    /// Failures in a row that make the service unhealthy.
    pub retries: Option<u32>,
    /// Grace period after start during which failures do not count.
    pub start_period: Option<RawDuration>,
}

/// `http: /health` or `http: {path, port, status}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HttpCheck")]
pub(crate) struct RawHttpCheck {
    /// The request path.
    #[serde(default = "slash")]
    pub path: String,
    /// The port (name or number); default: the main port.
    pub port: Option<RawPortRef>,
    /// The expected status; default: any 2xx.
    #[schemars(range(min = 100, max = 599))]
    pub status: Option<u16>,
}

fn slash() -> String {
    "/".to_string()
}

impl ShortForm for RawHttpCheck {
    const EXPECTING: &'static str = "a path such as `/health`, or {path, port, status}";
    fn from_short(s: &str) -> RawHttpCheck {
        RawHttpCheck {
            path: s.to_string(),
            port: None,
            status: None,
        }
    }
}

/// A port named by the service (`http`) or given as a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawPortRef {
    /// One of the service's named ports.
    Name(String),
    /// A port number.
    Number(u16),
}

impl<'de> Deserialize<'de> for RawPortRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawPortRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port name or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPortRef, E> {
                match v.parse::<u64>() {
                    Ok(n) => port_number(n).map(RawPortRef::Number).map_err(E::custom),
                    Err(_) => Ok(RawPortRef::Name(v.to_string())),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawPortRef, E> {
                port_number(v).map(RawPortRef::Number).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPortRef, E> {
                Err(E::custom(format!("{v} is not a TCP port (1–65535)")))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawPortRef {
    fn schema_name() -> Cow<'static, str> {
        "PortRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A port name of this service (e.g. `http`) or a port number",
            "type": ["string", "integer"]
        })
    }
}
