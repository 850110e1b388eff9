//! The gateway's configuration (SPEC §4.3).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::services::config::{ConfigError, load_yaml};

/// `stack serve gateway --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// API keys clients must send (`Authorization: Bearer` or `x-api-key`); none = open.
    pub keys: Vec<KeySpec>,
    /// Upstreams by name: a URL, or a list of URLs tried in turn.
    pub upstreams: BTreeMap<String, Urls>,
    /// Model patterns to upstreams; the first match wins, else `default`.
    pub routes: Vec<Route>,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keys: Vec::new(),
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            context_url: None,
            context_token: None,
            context_max_tokens: 1000,
            retries: 2,
            retry_backoff_ms: 25,
            connect_timeout_ms: 2000,
            request_timeout_ms: 120_000,
            pool_idle_timeout_ms: 90_000,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

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

/// One URL or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Urls {
    /// One URL.
    One(String),
    /// URLs tried in turn.
    Many(Vec<String>),
}

impl Urls {
    /// The URLs in order.
    pub(crate) fn list(&self) -> Vec<String> {
        match self {
            Urls::One(u) => vec![u.clone()],
            Urls::Many(v) => v.clone(),
        }
    }
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

impl Config {
    /// Reads and checks the configuration; none gives the defaults.
    pub(crate) fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config: Config = load_yaml(path)?;
        config.check(path.unwrap_or(Path::new("<defaults>")))?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub(crate) fn check(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError::new(file, m));
        for (name, urls) in &self.upstreams {
            let list = urls.list();
            if list.is_empty() {
                return err(format!("upstream `{name}` has no URL"));
            }
            for u in list {
                if let Err(e) = parse_base(&u) {
                    return err(format!("upstream `{name}`: {e}"));
                }
            }
        }
        if !self.routes.is_empty() || !self.upstreams.is_empty() {
            for r in &self.routes {
                if !self.upstreams.contains_key(&r.upstream) {
                    return err(format!(
                        "route `{}` names upstream `{}`, which is not under `upstreams`",
                        r.model, r.upstream
                    ));
                }
            }
        }
        if let Some(u) = &self.context_url
            && let Err(e) = parse_base(u)
        {
            return err(format!("context_url: {e}"));
        }
        let mut seen = std::collections::HashSet::new();
        for k in &self.keys {
            if k.key().is_empty() {
                return err("a key is empty".into());
            }
            if !seen.insert(k.key()) {
                return err("a key is listed twice".into());
            }
            if k.rpm() == Some(0) || k.tpm() == Some(0) {
                return err("rpm and tpm must be at least 1 (leave them out for no limit)".into());
            }
        }
        Ok(())
    }
}

/// Checks an `http://host:port[/base]` URL.
pub(super) fn parse_base(u: &str) -> Result<axum::http::Uri, String> {
    let uri: axum::http::Uri = u.parse().map_err(|e| format!("`{u}` is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!(
            "`{u}` must be an http:// URL with a host (TLS is not spoken here)"
        ));
    }
    Ok(uri)
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
