//! The mock model's configuration (SPEC §4.2), read from YAML and checked before the
//! server binds.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::BuiltinProblem;
use crate::config::source::FieldPath;
use crate::services::config::{ConfigError, located, parse_config, parse_yaml};

/// `stack serve model --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Listed by `GET /v1/models`; any model name is answered.
    pub models: Vec<String>,
    /// API keys; when set, a key is required (`Authorization: Bearer` or `x-api-key`).
    pub keys: Vec<KeySpec>,
    /// Simulated latency.
    pub latency: Latency,
    /// Faults for every key.
    pub faults: Vec<Fault>,
    /// Seed of the fault dice (`rate`): the same seed and request order give the same faults.
    pub seed: u64,
    /// Prompt patterns mapped to replies, tool calls or errors: a YAML file, or the list.
    pub fixtures: Option<Fixtures>,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Length of embedding vectors when the request does not ask for `dimensions`.
    pub embedding_dimensions: usize,
    /// Serve HTTPS (and plain HTTP to clients that do not start a handshake), to stand in
    /// for a provider.
    pub tls: Option<TlsFiles>,
    /// Refuse what the real APIs refuse (unknown fields, wrong types, a message sequence
    /// they reject) with their 400s, to stand in for a provider in tests.
    pub strict: bool,
    /// Names besides the loopback ones that requests may carry in `Host` (and browsers in
    /// `Origin`): `api.internal`, `*.corp.example`, `*` for any. Others are refused (DNS
    /// rebinding).
    pub allowed_hosts: Vec<String>,
    /// Answer from recorded exchanges instead (SPEC §4.4, `--llm replay`).
    pub replay: Option<ReplayConfig>,
}

/// `replay: {cassettes, speed, notes}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayConfig {
    /// The cassette folder (relative to the working folder).
    pub cassettes: PathBuf,
    /// 1 plays streams at their recorded pace, 2 twice as fast, 0 without waiting.
    #[serde(default = "one")]
    pub speed: f64,
    /// A file to append a line to for every answer (hit or miss), for `stack run`.
    #[serde(default)]
    pub notes: Option<PathBuf>,
}

fn one() -> f64 {
    1.0
}

/// `tls: {cert, key}`: PEM files, relative to the working folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            models: vec!["mock-gpt".into(), "mock-claude".into(), "mock-embed".into()],
            keys: Vec::new(),
            latency: Latency::default(),
            faults: Vec::new(),
            replay: None,
            seed: 42,
            fixtures: None,
            max_body_bytes: 4 * 1024 * 1024,
            embedding_dimensions: 1536,
            tls: None,
            strict: false,
            allowed_hosts: Vec::new(),
        }
    }
}

/// A key, with faults of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum KeySpec {
    /// `sk-dev`
    Plain(String),
    /// `{key: sk-limited, faults: [...]}`
    WithFaults {
        /// The key.
        key: String,
        /// Faults only this key gets.
        #[serde(default)]
        faults: Vec<Fault>,
    },
}

impl KeySpec {
    /// The key itself.
    pub(crate) fn key(&self) -> &str {
        match self {
            KeySpec::Plain(k) | KeySpec::WithFaults { key: k, .. } => k,
        }
    }

    /// Its own faults.
    pub(crate) fn faults(&self) -> &[Fault] {
        match self {
            KeySpec::Plain(_) => &[],
            KeySpec::WithFaults { faults, .. } => faults,
        }
    }
}

/// Simulated latency; 0 = as fast as possible.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Latency {
    /// Delay before the first token (or the whole non-streamed answer).
    pub first_token_ms: u64,
    /// Tokens per second after the first.
    pub tokens_per_second: f64,
}

/// A fault: an error answer (or a delay) by rate or every Nth request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fault {
    /// The HTTP status to answer (429, 500, 529…); none with `delay_ms` alone.
    pub status: Option<u16>,
    /// Probability per request, 0–1 (seeded).
    pub rate: Option<f64>,
    /// Every Nth request (1 = every request).
    pub every: Option<u64>,
    /// The error message.
    pub message: Option<String>,
    /// For 429/503/529: seconds in `Retry-After` (default 1).
    pub retry_after: Option<f64>,
    /// Streaming only: fail after this many tokens, mid-stream, as the APIs do.
    pub after_tokens: Option<u32>,
    /// Answer this much later (a slow upstream, to trigger client timeouts).
    pub delay_ms: Option<u64>,
}

/// Fixtures: a file, or the list inline.
#[derive(Debug, Clone)]
pub(crate) enum Fixtures {
    /// A YAML file with the list.
    File(PathBuf),
    /// The list.
    Inline(Vec<Fixture>),
}

impl<'de> Deserialize<'de> for Fixtures {
    /// A string names a file; a list is the fixtures, whose errors keep their field paths
    /// (an untagged enum would hide them behind "did not match any variant").
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Fixtures;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a fixtures file's path, or a list of fixtures")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Fixtures, E> {
                Ok(Fixtures::File(PathBuf::from(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Fixtures, A::Error> {
                let de = serde::de::value::SeqAccessDeserializer::new(seq);
                Vec::<Fixture>::deserialize(de).map(Fixtures::Inline)
            }
        }
        d.deserialize_any(V)
    }
}

/// A prompt pattern and what to answer.
///
/// A fixture answers the turn where the user asked; with `after_tool` (or a
/// `tool_result` pattern) it answers instead the turn that follows the results of tool
/// calls, so a tool loop can be scripted step by step and always ends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fixture {
    /// A regular expression matched against the user message that asked.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Answer with this text.
    pub reply: Option<String>,
    /// Answer with a tool call.
    pub tool_call: Option<ToolCall>,
    /// Answer with several tool calls at once (parallel calls).
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Answer with an error.
    pub error: Option<FixtureError>,
    /// Answer the turn after tool results rather than the user's question.
    #[serde(default)]
    pub after_tool: bool,
    /// Only after a tool result whose text matches this regular expression (implies
    /// `after_tool`).
    pub tool_result: Option<String>,
}

/// A tool call answered by a fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolCall {
    /// The function name.
    pub name: String,
    /// Its arguments (an object); left out, they are made from the tool's parameter
    /// schema in the request.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// An error answered by a fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FixtureError {
    /// The HTTP status.
    pub status: u16,
    /// The message.
    pub message: Option<String>,
}

/// A problem `serde` cannot see, with where it is written in the configuration.
pub(crate) type Problem = BuiltinProblem;

/// Checks a built-in model's `config:` from a stack file: what serde refuses, what
/// [`Config::problems`] finds, and a fixtures file (relative to `dir`), read and checked.
pub(crate) fn check_value(value: &serde_json::Value, dir: &Path) -> Vec<Problem> {
    let config: Config = match serde_path_to_error::deserialize(value) {
        Ok(c) => c,
        Err(e) => {
            return vec![Problem {
                field: FieldPath::root().join_serde(e.path()),
                message: e.into_inner().to_string(),
            }];
        }
    };
    let mut out = config.problems();
    if let Some(tls) = &config.tls
        && let Err(e) =
            crate::services::tls::server_config(&dir.join(&tls.cert), &dir.join(&tls.key))
    {
        out.push(Problem {
            field: FieldPath::root().key("tls"),
            message: e,
        });
    }
    if let Some(Fixtures::File(name)) = &config.fixtures
        && let Err(e) = load_fixtures(&dir.join(name.strip_prefix(".").unwrap_or(name)))
    {
        out.push(Problem {
            field: FieldPath::root().key("fixtures"),
            message: e.to_string(),
        });
    }
    out
}

impl Config {
    /// Reads and checks the configuration; none gives the defaults. A fixtures file is
    /// read (relative to the working folder) and checked too, and kept inline.
    pub(crate) fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigError::new(path, format!("cannot read: {err}")))?;
        Config::from_text(path, &text, Path::new("."))
    }

    /// Parses and checks `text`, read from `file`; a fixtures file resolves against `base`.
    pub(crate) fn from_text(file: &Path, text: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = parse_config(file, text)?;
        if let Some(p) = config.problems().into_iter().next() {
            return Err(located(file, text, p));
        }
        if let Some(Fixtures::File(name)) = &config.fixtures {
            let list = load_fixtures(&base.join(name))?;
            config.fixtures = Some(Fixtures::Inline(list));
        }
        Ok(config)
    }

    /// The fixtures (inline; [`Config::from_text`] has read any file).
    pub(crate) fn fixture_list(&self) -> &[Fixture] {
        match &self.fixtures {
            Some(Fixtures::Inline(list)) => list,
            _ => &[],
        }
    }

    /// Checks what serde cannot: fault and fixture rules, patterns, ranges.
    pub(crate) fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: FieldPath, message: String| out.push(Problem { field, message });
        if let Some(r) = &self.replay
            && !(r.speed >= 0.0 && r.speed.is_finite())
        {
            bad(
                FieldPath::root().key("replay").key("speed"),
                "`speed` is a factor of 0 or more (1 = as recorded, 0 = no waiting)".into(),
            );
        }
        let key_faults = self.keys.iter().enumerate().flat_map(|(k, spec)| {
            spec.faults().iter().enumerate().map(move |(i, f)| {
                (
                    FieldPath::root()
                        .key("keys")
                        .index(k)
                        .key("faults")
                        .index(i),
                    f,
                )
            })
        });
        let global = self
            .faults
            .iter()
            .enumerate()
            .map(|(i, f)| (FieldPath::root().key("faults").index(i), f));
        for (at, f) in global.chain(key_faults) {
            match (f.rate, f.every) {
                (None, None) => bad(at.clone(), "give `rate` (0–1) or `every` (N)".into()),
                (Some(r), _) if !(0.0..=1.0).contains(&r) => {
                    bad(at.key("rate"), format!("rate {r} is not between 0 and 1"));
                }
                (_, Some(0)) => bad(at.key("every"), "`every` must be at least 1".into()),
                _ => {}
            }
            match f.status {
                None if f.delay_ms.is_none() => {
                    bad(at, "give a `status` (e.g. 429, 500) or a `delay_ms`".into());
                }
                Some(s) if !(400..=599).contains(&s) => {
                    bad(
                        at.key("status"),
                        format!("status {s} is not an error status (400–599)"),
                    );
                }
                _ => {}
            }
        }
        if self.latency.tokens_per_second < 0.0 {
            bad(
                FieldPath::root().key("latency").key("tokens_per_second"),
                "cannot be negative".into(),
            );
        }
        if self.embedding_dimensions == 0 {
            bad(
                FieldPath::root().key("embedding_dimensions"),
                "must be at least 1".into(),
            );
        }
        if let Some(Fixtures::Inline(list)) = &self.fixtures {
            out.extend(fixture_problems(list, &FieldPath::root().key("fixtures")));
        }
        out
    }
}

/// Reads a fixtures file (a YAML list) and checks every fixture, each error at its line.
pub(crate) fn load_fixtures(path: &Path) -> Result<Vec<Fixture>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError::new(path, format!("cannot read the fixtures file: {err}")))?;
    let list: Vec<Fixture> = parse_yaml(path, &text)?;
    match fixture_problems(&list, &FieldPath::root())
        .into_iter()
        .next()
    {
        Some(p) => Err(located(path, &text, p)),
        None => Ok(list),
    }
}

/// What is wrong with fixtures listed at `base`.
fn fixture_problems(list: &[Fixture], base: &FieldPath) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, fx) in list.iter().enumerate() {
        let at = base.index(i);
        let mut bad = |field: FieldPath, message: String| out.push(Problem { field, message });
        let answers = [
            fx.reply.is_some(),
            fx.tool_call.is_some(),
            fx.tool_calls.is_some(),
            fx.error.is_some(),
        ];
        if answers.iter().filter(|x| **x).count() != 1 {
            bad(
                at.clone(),
                "give exactly one of `reply`, `tool_call`, `tool_calls`, `error`".into(),
            );
        }
        for (key, pattern) in [
            ("match", Some(&fx.pattern)),
            ("tool_result", fx.tool_result.as_ref()),
        ] {
            if let Some(p) = pattern
                && let Err(e) = regex::Regex::new(p)
            {
                let why = e.to_string();
                let why = why.lines().last().unwrap_or_default().trim();
                let why = why.strip_prefix("error: ").unwrap_or(why);
                bad(
                    at.key(key),
                    format!("invalid regular expression `{p}`: {why}"),
                );
            }
        }
        if let Some(e) = &fx.error
            && !(400..=599).contains(&e.status)
        {
            bad(
                at.key("error").key("status"),
                format!("status {} is not an error status (400–599)", e.status),
            );
        }
        let calls = fx.tool_call.iter().map(|c| (at.key("tool_call"), c)).chain(
            fx.tool_calls
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, c)| (at.key("tool_calls").index(j), c)),
        );
        for (field, call) in calls {
            if call.name.trim().is_empty() {
                bad(field.key("name"), "a tool call needs a `name`".into());
            }
            if !matches!(
                call.arguments,
                serde_json::Value::Null | serde_json::Value::Object(_)
            ) {
                bad(
                    field.key("arguments"),
                    "`arguments` must be a mapping (or left out, to be made from the tool's schema)".into(),
                );
            }
        }
        if fx.tool_calls.as_ref().is_some_and(Vec::is_empty) {
            bad(at.key("tool_calls"), "`tool_calls` lists no call".into());
        }
    }
    out
}
