//! The gateway's configuration (SPEC §4.3).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::BuiltinProblem as Problem;
use crate::config::raw::{ShortForm, StringOr};
use crate::config::source::FieldPath;
use crate::services::cassette::Mode;
use crate::services::config::{ConfigError, located, parse_config};

/// `stack serve gateway --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// API keys clients must send (`Authorization: Bearer` or `x-api-key`); none = open.
    pub keys: Vec<KeySpec>,
    /// Upstreams by name: a URL, a provider entry, or a list of them tried in turn.
    pub upstreams: BTreeMap<String, Upstream>,
    /// Model patterns to upstreams; the first match wins, else `default`.
    pub routes: Vec<Route>,
    /// Model aliases: the name the app asks for, and the upstream and model it means.
    pub models: BTreeMap<String, Alias>,
    /// Extra trusted roots (PEM) for `https://` upstreams, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// The context server, for `/mcp`, `/v1/sessions…` and context enrichment.
    pub context_url: Option<String>,
    /// The bearer token of the context server, if it wants one.
    pub context_token: Option<String>,
    /// Token budget of the context prepended to a request with `X-Session-Id`.
    pub context_max_tokens: u32,
    /// Retries of one upstream URL (connection errors, 5xx, 429) before the next URL.
    pub retries: u32,
    /// First back-off between retries, doubled each time.
    pub retry_backoff_ms: u64,
    /// Connecting to an upstream.
    pub connect_timeout_ms: u64,
    /// Waiting for an upstream's response head.
    pub request_timeout_ms: u64,
    /// An upstream connection idle this long is closed.
    pub pool_idle_timeout_ms: u64,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Names besides the loopback ones that requests may carry in `Host` (and browsers in
    /// `Origin`): `api.internal`, `*.corp.example`, `*` for any. Others are refused (DNS
    /// rebinding).
    pub allowed_hosts: Vec<String>,
    /// Where model requests go (SPEC §4.4): `mock`, `live`, `record` or `replay`; unset,
    /// `STACK_LLM` decides, else `live`.
    pub llm: Option<Mode>,
    /// The mock model's URL, where `mock` and `replay` send every model request (in a
    /// stack, the built-in model's).
    pub mock: Option<String>,
    /// The cassette folder `record` writes (relative to the current folder).
    pub cassettes: PathBuf,
    /// How fast `replay` plays recorded streams back: 1 as recorded, 2 twice as fast, 0
    /// without waiting (read by the mock that replays).
    pub replay_speed: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keys: Vec::new(),
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            models: BTreeMap::new(),
            ca_file: None,
            context_url: None,
            context_token: None,
            context_max_tokens: 1000,
            retries: 2,
            retry_backoff_ms: 25,
            connect_timeout_ms: 2000,
            request_timeout_ms: 120_000,
            pool_idle_timeout_ms: 90_000,
            max_body_bytes: 16 * 1024 * 1024,
            allowed_hosts: Vec::new(),
            llm: None,
            mock: None,
            cassettes: PathBuf::from("cassettes"),
            replay_speed: 1.0,
        }
    }
}

/// The environment variable that sets the mode when the configuration does not.
pub(crate) const LLM_ENV: &str = "STACK_LLM";

/// A client key with its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum KeySpec {
    /// `dev-key`: no limits.
    Plain(String),
    /// `{key, rpm, tpm}`.
    Limited {
        /// The key.
        key: String,
        /// Requests per minute.
        rpm: Option<u32>,
        /// Tokens per minute (prompt estimate plus completion tokens).
        tpm: Option<u64>,
    },
}

impl KeySpec {
    /// The key.
    pub(crate) fn key(&self) -> &str {
        match self {
            KeySpec::Plain(k) | KeySpec::Limited { key: k, .. } => k,
        }
    }

    /// Requests per minute, if limited.
    pub(crate) fn rpm(&self) -> Option<u32> {
        match self {
            KeySpec::Plain(_) => None,
            KeySpec::Limited { rpm, .. } => *rpm,
        }
    }

    /// Tokens per minute, if limited.
    pub(crate) fn tpm(&self) -> Option<u64> {
        match self {
            KeySpec::Plain(_) => None,
            KeySpec::Limited { tpm, .. } => *tpm,
        }
    }
}

/// One upstream: a target, or several tried in turn.
#[derive(Debug, Clone)]
pub(crate) struct Upstream(pub Vec<Target>);

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, SeqAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Upstream;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a URL, {url, provider, api_key, headers}, or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Upstream, E> {
                Ok(Upstream(vec![Target::from_short(v)]))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Upstream, A::Error> {
                Target::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| Upstream(vec![t]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Upstream, A::Error> {
                let mut targets = Vec::new();
                while let Some(t) = seq.next_element::<StringOr<Target>>()? {
                    targets.push(t.0);
                }
                Ok(Upstream(targets))
            }
        }
        d.deserialize_any(V)
    }
}

/// Which API an upstream speaks, and how it authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Provider {
    /// Both wire formats, as the mock does (ollama, vLLM, LM Studio, the mock); a key, if
    /// any, as `Authorization: Bearer`.
    #[default]
    OpenaiCompatible,
    /// OpenAI: chat completions, `Authorization: Bearer`.
    Openai,
    /// Anthropic: messages, `x-api-key` and `anthropic-version`.
    Anthropic,
}

/// One URL of an upstream, with the credentials the gateway sends it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Target {
    /// `http://` or `https://`, with an optional path prefix.
    pub url: String,
    /// The API it speaks.
    #[serde(default)]
    pub provider: Provider,
    /// The provider key the gateway sends (never the caller's gateway key).
    pub api_key: Option<String>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &without_userinfo(&self.url).0)
            .field("provider", &self.provider)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ShortForm for Target {
    const EXPECTING: &'static str = "a URL, or {url, provider, api_key, headers}";
    fn from_short(s: &str) -> Target {
        Target {
            url: s.to_string(),
            provider: Provider::default(),
            api_key: None,
            headers: BTreeMap::new(),
        }
    }
}

/// `fast: {upstream: claude, model: claude-haiku-4-5}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Alias {
    /// The upstream's name.
    pub upstream: String,
    /// The model the upstream is asked for.
    pub model: String,
}

/// `{model: "claude-*", upstream: anthropic}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Route {
    /// A glob over model names (`*` matches any run of characters).
    pub model: String,
    /// The upstream's name.
    pub upstream: String,
}

/// Checks a built-in gateway's `config:` from a stack file: what serde refuses and what
/// [`Config::problems`] finds, a `ca_file` resolved against `dir`.
pub(crate) fn check_value(value: &serde_json::Value, dir: &Path) -> Vec<Problem> {
    match serde_path_to_error::deserialize::<_, Config>(value) {
        Ok(c) => c.problems(dir),
        Err(e) => vec![Problem {
            field: FieldPath::root().join_serde(e.path()),
            message: e.into_inner().to_string(),
        }],
    }
}

impl Config {
    /// Reads and checks the configuration; none gives the defaults.
    pub(crate) fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigError::new(path, format!("cannot read: {err}")))?;
        let mut config: Config = parse_config(path, &text)?;
        let mode = config.mode().map_err(|e| ConfigError::new(path, e))?;
        config.llm = Some(mode);
        let mut problems = config.problems(Path::new("."));
        problems.extend(config.mode_problems(mode));
        match problems.into_iter().next() {
            Some(p) => Err(located(path, &text, p)),
            None => Ok(config),
        }
    }

    /// The mode in force: `llm:`, else `STACK_LLM`, else `live`.
    pub(crate) fn mode(&self) -> Result<Mode, String> {
        if let Some(m) = self.llm {
            return Ok(m);
        }
        match std::env::var(LLM_ENV) {
            Ok(v) if !v.is_empty() => <Mode as clap::ValueEnum>::from_str(&v, true).map_err(|_| {
                format!("{LLM_ENV}=`{v}` is not a mode: use mock, live, record or replay")
            }),
            _ => Ok(Mode::Live),
        }
    }

    /// What `mode` needs of the configuration: a mock to send to, or the providers' keys.
    pub(crate) fn mode_problems(&self, mode: Mode) -> Vec<Problem> {
        let root = FieldPath::root();
        let mut out = Vec::new();
        if mode.to_mock() && self.mock.is_none() {
            out.push(Problem {
                field: root.key("mock"),
                message: format!(
                    "`llm: {mode}` sends every model request to the mock model: set `mock:` to its URL"
                ),
            });
        }
        if let (Mode::Replay, Some(url)) = (mode, &self.mock)
            && !on_this_machine(url)
        {
            out.push(Problem {
                field: root.key("mock"),
                message: format!(
                    "`llm: replay` never leaves the machine, and `mock:` ({}) is not on it",
                    without_userinfo(url).0
                ),
            });
        }
        if !mode.to_mock() {
            out.extend(self.empty_keys().into_iter().map(|(field, _)| Problem {
                field,
                message: "`api_key` is empty: is its variable set?".into(),
            }));
        }
        out
    }

    /// The upstream targets whose `api_key` is empty (an unset variable), with their
    /// upstream's name.
    pub(crate) fn empty_keys(&self) -> Vec<(FieldPath, String)> {
        let root = FieldPath::root();
        let mut out = Vec::new();
        for (name, upstream) in &self.upstreams {
            let at = root.key("upstreams").key(name.clone());
            let many = upstream.0.len() > 1;
            for (i, t) in upstream.0.iter().enumerate() {
                if t.api_key.as_deref() == Some("") {
                    let at = if many { at.index(i) } else { at.clone() };
                    out.push((at.key("api_key"), name.clone()));
                }
            }
        }
        out
    }

    /// What serde cannot see, each at its field; files resolve against `dir`. URLs that
    /// still hold a `${…}` reference (resolved once ports are known) are not checked.
    pub(crate) fn problems(&self, dir: &Path) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: FieldPath, message: String| out.push(Problem { field, message });
        let root = FieldPath::root();
        for (name, upstream) in &self.upstreams {
            let at = root.key("upstreams").key(name.clone());
            if upstream.0.is_empty() {
                bad(at.clone(), format!("upstream `{name}` has no URL"));
            }
            let many = upstream.0.len() > 1;
            for (i, t) in upstream.0.iter().enumerate() {
                let at = if many { at.index(i) } else { at.clone() };
                let plain = t.api_key.is_none() && t.headers.is_empty();
                let url_at = if plain { at.clone() } else { at.key("url") };
                if !t.url.contains("${")
                    && let Err(e) = parse_base(&without_userinfo(&t.url).0)
                {
                    bad(url_at, e);
                }
                for (h, v) in &t.headers {
                    if axum::http::HeaderName::try_from(h.as_str()).is_err()
                        || axum::http::HeaderValue::try_from(v.as_str()).is_err()
                    {
                        bad(
                            at.key("headers").key(h.clone()),
                            format!("`{h}` is not a valid header"),
                        );
                    }
                }
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if !self.upstreams.contains_key(&r.upstream) {
                bad(
                    root.key("routes").index(i).key("upstream"),
                    format!(
                        "route `{}` names upstream `{}`, which is not under `upstreams`",
                        r.model, r.upstream
                    ),
                );
            }
        }
        for (name, alias) in &self.models {
            if !self.upstreams.contains_key(&alias.upstream) {
                bad(
                    root.key("models").key(name.clone()).key("upstream"),
                    format!(
                        "model `{name}` names upstream `{}`, which is not under `upstreams`",
                        alias.upstream
                    ),
                );
            }
        }
        if let Some(ca) = &self.ca_file {
            let file = dir.join(ca);
            if !file.is_file() {
                bad(
                    root.key("ca_file"),
                    format!("`{}` does not exist", ca.display()),
                );
            } else if let Err(e) = crate::services::tls::read_certificates(&file) {
                bad(root.key("ca_file"), e);
            }
        }
        if let Some(u) = &self.context_url
            && !u.contains("${")
            && let Err(e) = parse_base(u)
        {
            bad(root.key("context_url"), e);
        }
        if !(self.replay_speed >= 0.0 && self.replay_speed.is_finite()) {
            bad(
                root.key("replay_speed"),
                "`replay_speed` is a factor of 0 or more (1 = as recorded, 0 = no waiting)".into(),
            );
        }
        if let Some(u) = &self.mock
            && !u.contains("${")
            && let Err(e) = parse_base(u)
        {
            bad(root.key("mock"), e);
        }
        let mut seen = std::collections::HashSet::new();
        for (i, k) in self.keys.iter().enumerate() {
            let at = root.key("keys").index(i);
            if k.key().is_empty() {
                bad(at, "a key is empty: is its variable set?".into());
            } else if !seen.insert(k.key()) {
                bad(at, "a key is listed twice".into());
            } else if k.rpm() == Some(0) || k.tpm() == Some(0) {
                bad(
                    at,
                    "rpm and tpm must be at least 1 (leave them out for no limit)".into(),
                );
            }
        }
        out
    }
}

/// Whether `url`'s host is this machine's loopback or a name on the stack's own network
/// (a container's service name: one label).
fn on_this_machine(url: &str) -> bool {
    let Ok(uri) = without_userinfo(url).0.parse::<axum::http::Uri>() else {
        return false;
    };
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".localhost") || !host.contains('.'),
    }
}

/// Checks an `http://` or `https://` `host[:port][/base]` URL.
pub(super) fn parse_base(u: &str) -> Result<axum::http::Uri, String> {
    let uri: axum::http::Uri = u.parse().map_err(|e| format!("`{u}` is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(format!(
            "`{u}` must be an http:// or https:// URL with a host"
        ));
    }
    Ok(uri)
}

/// `url` without its `user:password@` (shown and connected to), and the credentials it
/// held (sent as `Authorization: Basic`, as curl and browsers do): a password in an
/// upstream URL never reaches `/health`, an error body or a log.
pub(super) fn without_userinfo(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_string(), None);
    };
    let userinfo = &rest[..at];
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (decode(u), decode(p)),
        None => (decode(userinfo), String::new()),
    };
    (
        format!("{scheme}://{}", &rest[at + 1..]),
        Some((user, password)),
    )
}

/// Whether `model` matches the glob `pattern`.
pub(super) fn glob(pattern: &str, model: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == model;
    }
    let mut rest = model;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("claude-*", "claude-3-opus"));
        assert!(!glob("claude-*", "gpt-4"));
        assert!(glob("*", "anything"));
        assert!(glob("gpt-*-mini", "gpt-4o-mini"));
        assert!(!glob("gpt-*-mini", "gpt-4o"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
    }
}
