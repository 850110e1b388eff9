//! What a name may be: projects, services, ports and profiles, and the environment
//! variables a service name becomes.

use std::path::Path;

use super::Cx;
use crate::config::diagnostic::Diagnostic;
use crate::config::source::FieldPath;

/// The project's own name: `name:`, else the folder's name, sanitised.
pub(super) fn default_project_name(cx: &mut Cx, dir: &Path, raw: Option<String>) -> String {
    if let Some(n) = raw {
        if n.len() > MAX_PROJECT_NAME {
            cx.error(
                FieldPath::root().key("name"),
                format!(
                    "the project name is {} characters; at most {MAX_PROJECT_NAME} fit in the container and network names it becomes",
                    n.len()
                ),
            )
            .hint = Some(format!("shorten it, e.g. `{}`", sanitize_project_name(&n)));
        } else if !valid_project_name(&n) {
            cx.error(
                FieldPath::root().key("name"),
                format!("`{n}` is not a valid project name"),
            )
            .hint = Some(format!(
                "use lowercase letters, digits, `-` and `_`, e.g. `{}`",
                sanitize_project_name(&n)
            ));
        }
        return n;
    }
    let folder = dir.file_name().and_then(|s| s.to_str()).unwrap_or("stack");
    sanitize_project_name(folder)
}

/// Checks a name given with `-p/--project-name`.
pub(super) fn check_explicit_name(cx: &mut Cx, n: &str) {
    if n.len() > MAX_PROJECT_NAME {
        cx.push(
            Diagnostic::error(
                FieldPath::root(),
                format!(
                    "the project name from -p/--project-name is {} characters; at most {MAX_PROJECT_NAME} fit",
                    n.len()
                ),
            )
            .hint("shorten it"),
        );
    } else if !valid_project_name(n) {
        cx.push(
            Diagnostic::error(
                FieldPath::root(),
                format!("`{n}` (from -p/--project-name) is not a valid project name"),
            )
            .hint("use lowercase letters, digits, `-` and `_`, starting with a letter or digit"),
        );
    }
}

/// The longest project name: it becomes part of DNS labels (a network, a container's
/// name), which hold 63 characters.
const MAX_PROJECT_NAME: usize = 63;

/// Whether `n` may name a project: `[a-z0-9][a-z0-9_-]*`.
fn valid_project_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A valid project name made from a folder name.
pub(crate) fn sanitize_project_name(n: &str) -> String {
    let s: String = n
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s: String = s
        .trim_start_matches(['-', '_'])
        .chars()
        .take(MAX_PROJECT_NAME)
        .collect();
    if s.is_empty() { "stack".to_string() } else { s }
}

pub(super) fn valid_service_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `STACK_<X>_…`: upper-cased, non-alphanumerics → `_`.
pub(crate) fn env_key(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether `n` may name a port or a profile: `[a-z0-9_-]+`.
pub(super) fn valid_port_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}
