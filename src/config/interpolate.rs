//! `${…}` interpolation in two passes.
//!
//! Pass one ([`expand_env`], at load time) replaces `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?message}` and `${VAR?message}` from the environment and the
//! `env_file`s. It keeps `$$`, `${PORT}` and `${services.…}` as they are and reports the
//! references it saw, because ports are only known once the plan has resolved them.
//! Values it substitutes have their `$` doubled, so pass two never reads them as syntax.
//!
//! Pass two ([`resolve_refs`], at plan time) replaces `${PORT}` and `${services.…}` through
//! a resolver and turns `$$` into `$`. A `$` not followed by `{` or `$` is a literal `$`, so
//! shell snippets such as `echo $HOME` pass through untouched.

use std::fmt;

/// A reference to a value only known once ports are resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Reference {
    /// `${PORT}`: the service's own main port.
    OwnPort,
    /// `${services.NAME.FIELD}`.
    Service {
        /// The service named.
        service: String,
        /// What of it.
        field: ServiceField,
    },
}

/// What `${services.NAME.…}` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ServiceField {
    /// `url`: `http://host:port` of the main port.
    Url,
    /// `host`.
    Host,
    /// `port`: the main port.
    Port,
    /// `ports.NAME`: a named port.
    NamedPort(String),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::OwnPort => f.write_str("${PORT}"),
            Reference::Service { service, field } => match field {
                ServiceField::Url => write!(f, "${{services.{service}.url}}"),
                ServiceField::Host => write!(f, "${{services.{service}.host}}"),
                ServiceField::Port => write!(f, "${{services.{service}.port}}"),
                ServiceField::NamedPort(p) => write!(f, "${{services.{service}.ports.{p}}}"),
            },
        }
    }
}

/// An interpolation that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterpError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl InterpError {
    fn new(message: impl Into<String>, hint: Option<&str>) -> Self {
        Self {
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }
}

/// The result of pass one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Expanded {
    /// The text, with references and `$$` kept for pass two.
    pub text: String,
    /// The references seen.
    pub refs: Vec<Reference>,
    /// Variables that were not set and had no default (they became empty).
    pub unset: Vec<String>,
}

/// Pass one: substitutes environment variables.
pub(crate) fn expand_env(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded, InterpError> {
    let mut out = Expanded::default();
    expand_into(input, lookup, &mut out)?;
    Ok(out)
}

fn expand_into(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Expanded,
) -> Result<(), InterpError> {
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.text.push_str("$$");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let close = matching_brace(tail).ok_or_else(|| {
                InterpError::new(
                    format!("unterminated `${{` in `{input}`"),
                    Some("close it with `}`, or write `$$` for a literal `$`"),
                )
            })?;
            expand_braced(&tail[..close], lookup, out)?;
            rest = &tail[close + 1..];
        } else {
            // A lone `$` is literal; double it so pass two keeps it literal.
            out.text.push_str("$$");
            rest = after;
        }
    }
    out.text.push_str(rest);
    Ok(())
}

/// The index of the `}` closing a `${` whose content starts at `s`.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn expand_braced(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Expanded,
) -> Result<(), InterpError> {
    if let Some(reference) = parse_reference(body)? {
        out.text.push_str(&reference.to_string());
        out.refs.push(reference);
        return Ok(());
    }
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, op) = body.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(InterpError::new(
            format!("`${{{body}}}` does not name a variable"),
            Some(
                "write `${NAME}`, `${NAME:-default}` or `${NAME:?message}`; `$$` is a literal `$`",
            ),
        ));
    }
    let value = lookup(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (use_value, fallback, required) = match op {
        "" => (true, None, None),
        _ if op.starts_with(":-") => (set_nonempty, Some(&op[2..]), None),
        _ if op.starts_with('-') => (value.is_some(), Some(&op[1..]), None),
        _ if op.starts_with(":?") => (set_nonempty, None, Some(&op[2..])),
        _ if op.starts_with('?') => (value.is_some(), None, Some(&op[1..])),
        _ => {
            return Err(InterpError::new(
                format!("`${{{body}}}`: unknown operator `{op}`"),
                Some(
                    "use `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}` or `${NAME?message}`",
                ),
            ));
        }
    };
    if use_value {
        match value {
            Some(v) => out.text.push_str(&v.replace('$', "$$")),
            None => out.unset.push(name.to_string()),
        }
        return Ok(());
    }
    if let Some(default) = fallback {
        return expand_into(default, lookup, out);
    }
    if let Some(message) = required {
        let message = if message.is_empty() {
            format!("required variable `{name}` is not set")
        } else {
            format!("required variable `{name}` is not set: {message}")
        };
        return Err(InterpError::new(
            message,
            Some("set it in the environment or in the `env_file`"),
        ));
    }
    out.unset.push(name.to_string());
    Ok(())
}

/// Reads `PORT` or `services.NAME.FIELD`; other bodies are variables (`None`).
pub(crate) fn parse_reference(body: &str) -> Result<Option<Reference>, InterpError> {
    if body == "PORT" {
        return Ok(Some(Reference::OwnPort));
    }
    let Some(path) = body.strip_prefix("services.") else {
        return Ok(None);
    };
    let bad = || {
        InterpError::new(
            format!("`${{{body}}}` is not a service reference"),
            Some("write `${services.NAME.url}`, `.host`, `.port` or `.ports.PORTNAME`"),
        )
    };
    let (service, field) = path.split_once('.').ok_or_else(bad)?;
    if service.is_empty() {
        return Err(bad());
    }
    let field = match field {
        "url" => ServiceField::Url,
        "host" => ServiceField::Host,
        "port" => ServiceField::Port,
        _ => match field.strip_prefix("ports.") {
            Some(p) if !p.is_empty() && !p.contains('.') => ServiceField::NamedPort(p.to_string()),
            _ => return Err(bad()),
        },
    };
    Ok(Some(Reference::Service {
        service: service.to_string(),
        field,
    }))
}

/// Pass two: resolves references and turns `$$` into `$`.
pub(crate) fn resolve_refs(
    input: &str,
    resolve: &mut dyn FnMut(&Reference) -> Result<String, String>,
) -> Result<String, InterpError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let close = tail.find('}').ok_or_else(|| {
                InterpError::new(format!("unterminated `${{` in `{input}`"), None)
            })?;
            let body = &tail[..close];
            let reference = parse_reference(body)?.ok_or_else(|| {
                InterpError::new(format!("`${{{body}}}` was not interpolated"), None)
            })?;
            out.push_str(&resolve(&reference).map_err(|m| InterpError::new(m, None))?);
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/me".into()),
            "EMPTY" => Some(String::new()),
            "DOLLAR" => Some("a$b".into()),
            _ => None,
        }
    }

    fn one(s: &str) -> String {
        let e = expand_env(s, &env).expect("expands");
        resolve_refs(&e.text, &mut |r| Ok(format!("<{r}>"))).expect("resolves")
    }

    #[test]
    fn variables_and_defaults() {
        assert_eq!(one("${HOME}/x"), "/home/me/x");
        assert_eq!(one("${NOPE:-dflt}"), "dflt");
        assert_eq!(one("${EMPTY:-dflt}"), "dflt");
        assert_eq!(one("${EMPTY-dflt}"), "");
        assert_eq!(one("${NOPE-dflt}"), "dflt");
        assert_eq!(one("${NOPE:-${HOME}}"), "/home/me");
        assert_eq!(one("${NOPE}"), "");
    }

    #[test]
    fn dollars_stay_literal() {
        assert_eq!(one("$$HOME"), "$HOME");
        assert_eq!(one("echo $HOME"), "echo $HOME");
        assert_eq!(one("${DOLLAR}"), "a$b");
        assert_eq!(one("cost: 5$"), "cost: 5$");
        assert_eq!(one("$${services.a.url}"), "${services.a.url}");
    }

    #[test]
    fn references_are_kept_for_pass_two() {
        let e = expand_env(
            "http://${services.api.host}:${PORT}/${services.db.ports.admin}",
            &env,
        )
        .expect("expands");
        assert_eq!(e.refs.len(), 3);
        assert_eq!(one("${services.api.url}"), "<${services.api.url}>");
        assert_eq!(
            one("${NOPE:-${services.api.port}}"),
            "<${services.api.port}>"
        );
    }

    #[test]
    fn errors() {
        let err = expand_env("${NEED:?set NEED please}", &env).expect_err("required");
        assert_eq!(
            err.message,
            "required variable `NEED` is not set: set NEED please"
        );
        assert!(expand_env("${EMPTY:?x}", &env).is_err());
        assert!(expand_env("${EMPTY?x}", &env).is_ok());
        assert!(expand_env("${HOME", &env).is_err());
        assert!(expand_env("${1X}", &env).is_err());
        assert!(expand_env("${services.api}", &env).is_err());
        assert!(expand_env("${services.api.nope}", &env).is_err());
        assert!(expand_env("${HOME:=x}", &env).is_err());
    }
}
