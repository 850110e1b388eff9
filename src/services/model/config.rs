//! The mock model's configuration (SPEC §4.2), read from YAML and checked before the
//! server binds.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::services::config::{ConfigError, load_yaml};

/// `stack serve model --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            models: vec!["mock-gpt".into(), "mock-claude".into(), "mock-embed".into()],
            keys: Vec::new(),
            latency: Latency::default(),
            faults: Vec::new(),
            seed: 42,
            fixtures: None,
            max_body_bytes: 4 * 1024 * 1024,
            embedding_dimensions: 1536,
        }
    }
}

/// A key, with faults of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeySpec {
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
    pub fn key(&self) -> &str {
        match self {
            KeySpec::Plain(k) | KeySpec::WithFaults { key: k, .. } => k,
        }
    }

    /// Its own faults.
    pub fn faults(&self) -> &[Fault] {
        match self {
            KeySpec::Plain(_) => &[],
            KeySpec::WithFaults { faults, .. } => faults,
        }
    }
}

/// Simulated latency; 0 = as fast as possible.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Latency {
    /// Delay before the first token (or the whole non-streamed answer).
    pub first_token_ms: u64,
    /// Tokens per second after the first.
    pub tokens_per_second: f64,
}

/// A fault: an error answer (or a delay) by rate or every Nth request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
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
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Fixtures {
    /// A YAML file with the list.
    File(PathBuf),
    /// The list.
    Inline(Vec<Fixture>),
}

/// A prompt pattern and what to answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// A regular expression matched against the last user message.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Answer with this text.
    pub reply: Option<String>,
    /// Answer with a tool call.
    pub tool_call: Option<ToolCall>,
    /// Answer with an error.
    pub error: Option<FixtureError>,
}

/// A tool call answered by a fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The function name.
    pub name: String,
    /// Its arguments (an object).
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// An error answered by a fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureError {
    /// The HTTP status.
    pub status: u16,
    /// The message.
    pub message: Option<String>,
}

impl Config {
    /// Reads and checks the configuration; none gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config: Config = load_yaml(path)?;
        let file = path.unwrap_or(Path::new("<defaults>"));
        config.check_at(file)?;
        Ok(config)
    }

    /// The fixtures, read from their file if need be.
    pub fn fixture_list(&self, file: &Path) -> Result<Vec<Fixture>, ConfigError> {
        match &self.fixtures {
            None => Ok(Vec::new()),
            Some(Fixtures::Inline(list)) => Ok(list.clone()),
            Some(Fixtures::File(p)) => {
                let list: Vec<Fixture> = load_yaml(Some(p)).map_err(|mut e| {
                    e.message = format!("{} (fixtures named in {})", e.message, file.display());
                    e
                })?;
                Ok(list)
            }
        }
    }

    /// Checks what serde cannot: fault and fixture rules, patterns, ranges.
    pub fn check_at(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError::new(file, m));
        let key_faults = self.keys.iter().flat_map(|k| k.faults().iter());
        for (i, f) in self.faults.iter().chain(key_faults).enumerate() {
            match (f.rate, f.every) {
                (None, None) => return err(format!("fault {i}: give `rate` (0–1) or `every` (N)")),
                (Some(r), _) if !(0.0..=1.0).contains(&r) => {
                    return err(format!("fault {i}: rate {r} is not between 0 and 1"));
                }
                (_, Some(0)) => return err(format!("fault {i}: `every` must be at least 1")),
                _ => {}
            }
            match f.status {
                None if f.delay_ms.is_none() => {
                    return err(format!(
                        "fault {i}: give a `status` (e.g. 429, 500) or a `delay_ms`"
                    ));
                }
                Some(s) if !(400..=599).contains(&s) => {
                    return err(format!(
                        "fault {i}: status {s} is not an error status (400–599)"
                    ));
                }
                _ => {}
            }
        }
        if self.latency.tokens_per_second < 0.0 {
            return err("latency.tokens_per_second cannot be negative".into());
        }
        for (i, fx) in self.fixture_list(file)?.iter().enumerate() {
            let n = [
                fx.reply.is_some(),
                fx.tool_call.is_some(),
                fx.error.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if n != 1 {
                return err(format!(
                    "fixture {i}: give exactly one of `reply`, `tool_call`, `error`"
                ));
            }
            if let Err(e) = regex::Regex::new(&fx.pattern) {
                return err(format!(
                    "fixture {i}: invalid pattern `{}`: {e}",
                    fx.pattern
                ));
            }
            if let Some(e) = &fx.error
                && !(400..=599).contains(&e.status)
            {
                return err(format!(
                    "fixture {i}: status {} is not an error status",
                    e.status
                ));
            }
        }
        if self.embedding_dimensions == 0 {
            return err("embedding_dimensions must be at least 1".into());
        }
        Ok(())
    }
}
