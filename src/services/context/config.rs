//! The context server's configuration (SPEC §4.1).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::BuiltinProblem;
use crate::config::source::FieldPath;
use crate::services::config::{ConfigError, located, parse_config};

/// `stack serve context --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// The store: an SQLite file (created with its folders; relative to the current
    /// folder), or a PostgreSQL URL (`postgres://user:password@host:5432/db`) that several
    /// replicas share.
    pub db: PathBuf,
    /// When set, every `/v1` and `/mcp` request needs `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// Browser origins allowed to call the server (`http://localhost:*` style). Requests
    /// with another `Origin` are refused with 403; requests without one pass.
    pub allowed_origins: Vec<String>,
    /// Names besides the loopback ones that requests may carry in `Host` (and browsers in
    /// `Origin`): `api.internal`, `*.corp.example`, `*` for any. Others are refused (DNS
    /// rebinding).
    pub allowed_hosts: Vec<String>,
    /// The budget of `retrieve_context` when the caller gives none.
    pub default_max_tokens: u32,
    /// Largest entry content, in bytes (413 beyond).
    pub max_content_bytes: usize,
    /// `normal` (the default: an acknowledged write survives the process being killed,
    /// kill -9 included) or `full` (every commit fsynced: it also survives a power cut).
    pub durability: Durability,
    /// Sessions to load at start, each as `GET /v1/sessions/{id}` answers (JSON lines);
    /// a session the store has already is left as it is.
    pub snapshot: Option<PathBuf>,
}

/// How hard a write is pushed to disk before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Durability {
    /// `synchronous=FULL`: every commit is fsynced.
    Full,
    /// `synchronous=NORMAL` in WAL mode: a committed write survives the process being
    /// killed, not a power cut.
    Normal,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            db: PathBuf::from(".stack/data/context.db"),
            token: None,
            allowed_hosts: Vec::new(),
            allowed_origins: vec![
                "http://localhost:*".into(),
                "http://127.0.0.1:*".into(),
                "http://[::1]:*".into(),
            ],
            default_max_tokens: 4000,
            max_content_bytes: 1024 * 1024,
            durability: Durability::Normal,
            snapshot: None,
        }
    }
}

/// Checks a built-in context server's `config:` from a stack file.
pub(crate) fn check_value(value: &serde_json::Value) -> Vec<BuiltinProblem> {
    match serde_path_to_error::deserialize::<_, Config>(value) {
        Ok(c) => c.problems(),
        Err(e) => vec![BuiltinProblem {
            field: FieldPath::root().join_serde(e.path()),
            message: e.into_inner().to_string(),
        }],
    }
}

impl Config {
    /// Reads the configuration; none gives the defaults.
    pub(crate) fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigError::new(path, format!("cannot read: {err}")))?;
        let config: Config = parse_config(path, &text)?;
        match config.problems().into_iter().next() {
            Some(p) => Err(located(path, &text, p)),
            None => Ok(config),
        }
    }

    /// What serde cannot see, each at its field.
    fn problems(&self) -> Vec<BuiltinProblem> {
        let mut out = Vec::new();
        if self.default_max_tokens == 0 {
            out.push(BuiltinProblem {
                field: FieldPath::root().key("default_max_tokens"),
                message: "default_max_tokens must be at least 1".into(),
            });
        }
        // In a stack file, `${services.…}` is resolved only once ports are known.
        if let Some(url) = self
            .db
            .to_str()
            .filter(|d| super::store::is_postgres(d) && !d.contains("${"))
            && let Err(e) = url.parse::<tokio_postgres::Config>()
        {
            out.push(BuiltinProblem {
                field: FieldPath::root().key("db"),
                message: format!("not a PostgreSQL URL: {e}"),
            });
        }
        if self.token.as_deref().is_some_and(str::is_empty) {
            out.push(BuiltinProblem {
                field: FieldPath::root().key("token"),
                message: "`token` is empty: is its variable set? (remove it for no token)".into(),
            });
        }
        out
    }
}
