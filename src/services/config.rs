//! Loading a built-in service's YAML configuration with errors that name the file, the
//! line and column, and the field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// The field path (`latency.first_token_ms`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "`{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl ConfigError {
    /// An error about the whole file (or a value found after parsing).
    pub(crate) fn new(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            location: None,
            field: None,
            message: message.into(),
        }
    }
}

/// Parses YAML `text` (read from `path`) into `T`; an empty document gives `T::default()`.
pub(crate) fn parse_yaml<T: DeserializeOwned + Default>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        ConfigError {
            path: path.to_path_buf(),
            location: inner.location().map(|l| (l.line(), l.column())),
            field: (field != ".").then_some(field),
            message: strip_location(&inner.to_string()),
        }
    })
}

/// A built-in's configuration file: [`parse_yaml`], where its strings may read environment
/// variables as the stack file's do (`${GATEWAY_KEY}`, `${GATEWAY_KEY:-dev-key}`; `$$` is a
/// literal `$`). That is how an exported stack hands a built-in its keys without writing
/// them into the file.
pub(crate) fn parse_config<T: DeserializeOwned + Default>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    if !text.contains('$') || text.trim().is_empty() {
        return parse_yaml(path, text);
    }
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|err| ConfigError {
        path: path.to_path_buf(),
        location: err.location().map(|l| (l.line(), l.column())),
        field: None,
        message: strip_location(&err.to_string()),
    })?;
    let env = |name: &str| std::env::var(name).ok();
    expand_strings(&mut doc, &crate::config::source::FieldPath::root(), &env).map_err(
        |(field, message)| located(path, text, crate::config::BuiltinProblem { field, message }),
    )?;
    serde_path_to_error::deserialize(doc).map_err(|err| {
        let field = crate::config::source::FieldPath::root().join_serde(err.path());
        let message = strip_location(&err.into_inner().to_string());
        located(path, text, crate::config::BuiltinProblem { field, message })
    })
}

/// Substitutes environment variables in every string of `value`.
fn expand_strings(
    value: &mut serde_yaml::Value,
    at: &crate::config::source::FieldPath,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (crate::config::source::FieldPath, String)> {
    use crate::config::interpolate::{expand_env, resolve_refs};
    use serde_yaml::Value;
    match value {
        Value::String(s) => {
            let expanded = expand_env(s, env).map_err(|e| (at.clone(), e.message))?;
            *s = resolve_refs(&expanded.text, &mut |r| {
                Err(format!(
                    "`{r}` means something only in a stack file; a configuration file reads environment variables only"
                ))
            })
            .map_err(|e| (at.clone(), e.message))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_strings(item, &at.index(i), env)?;
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?").to_string();
                expand_strings(v, &at.key(key), env)?;
            }
        }
        Value::Tagged(t) => expand_strings(&mut t.value, at, env)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// serde_yaml puts the field path before its messages and " at line L column C" after;
/// both are shown apart.
fn strip_location(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    let message = match message.split_once(": ") {
        Some((path, rest)) if path.starts_with(['.', '[']) && !path.contains(' ') => rest,
        _ => message,
    };
    message.to_string()
}

/// `problem` as an error at its line and column in `text`.
pub(crate) fn located(
    file: &Path,
    text: &str,
    problem: crate::config::BuiltinProblem,
) -> ConfigError {
    let location = crate::config::source::Positions::parse(text)
        .ok()
        .and_then(|p| p.value(&problem.field))
        .map(|l| (l.line, l.column));
    ConfigError {
        path: file.to_path_buf(),
        location,
        field: (!problem.field.0.is_empty()).then(|| problem.field.to_string()),
        message: problem.message,
    }
}
