//! How services relate: dependencies that can be met, references that resolve, no
//! cycle, no shared fixed port or variable prefix, and the built-ins' own check of their
//! `config:`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::names::env_key;
use super::service::port_path;
use super::{Cx, humanize};
use crate::config::BuiltinKind;
use crate::config::cycles;
use crate::config::diagnostic::{Diagnostic, did_you_mean};
use crate::config::interpolate::{Reference, ServiceField};
use crate::config::model::*;
use crate::config::raw::{RawPort, RawService};
use crate::config::source::FieldPath;

/// No two services whose names become the same `STACK_<X>_*` prefix.
pub(super) fn check_env_prefixes(cx: &mut Cx, names: &[&str]) {
    let mut env_names: HashMap<String, &str> = HashMap::new();
    for n in names {
        if let Some(other) = env_names.insert(env_key(n), n) {
            cx.key_error(
                FieldPath::service(n),
                format!(
                    "`{n}` and `{other}` both become `STACK_{}_*` variables",
                    env_key(n)
                ),
            )
            .hint = Some("rename one of them".into());
        }
    }
}

/// No fixed host port claimed twice.
pub(super) fn check_fixed_ports(cx: &mut Cx, raws: &[(String, Option<RawService>)]) {
    let mut fixed_ports: BTreeMap<u16, FieldPath> = BTreeMap::new();
    for (svc, raw) in raws {
        let Some(raw) = raw else { continue };
        let declared = raw
            .port
            .iter()
            .map(|p| ("main".to_string(), *p))
            .chain(raw.ports.iter().flatten().map(|(n, p)| (n.clone(), *p)));
        for (pname, p) in declared {
            let host = match p {
                RawPort::Fixed(h) | RawPort::Mapped { host: Some(h), .. } => h,
                _ => continue,
            };
            let path = port_path(svc, raw, &pname);
            if let Some(first) = fixed_ports.get(&host) {
                cx.error(path, format!("port {host} is also used by `{first}`"))
                    .hint = Some("give each service its own port, or use `auto`".into());
            } else {
                fixed_ports.insert(host, path);
            }
        }
    }
}

/// No dependency cycle (each reported once, at its first service's `depends_on`).
pub(super) fn check_cycles(cx: &mut Cx, raws: &[(String, Option<RawService>)]) {
    let edges: Vec<(&str, Vec<&str>)> = raws
        .iter()
        .map(|(n, raw)| {
            let deps = raw
                .as_ref()
                .and_then(|r| r.depends_on.as_ref())
                .map(|d| d.entries.iter().map(|(t, _)| t.as_str()).collect())
                .unwrap_or_default();
            (n.as_str(), deps)
        })
        .collect();
    for cycle in cycles::cycles(&edges) {
        let first = &cycle[0];
        cx.key_error(
            FieldPath::service(first).key("depends_on"),
            format!("dependency cycle: {}", cycle.join(" → ")),
        )
        .hint = Some("remove one of these `depends_on` entries".into());
    }
}

/// Each `depends_on` condition can be met by its target.
pub(super) fn check_dependencies(cx: &mut Cx, services: &[Service]) {
    for s in services {
        for d in &s.depends_on {
            let Some(target) = services.iter().find(|t| t.name == d.service) else {
                continue;
            };
            let at = FieldPath::service(&s.name).key("depends_on");
            match d.condition {
                Condition::Healthy if target.health.is_none() => {
                    cx.key_error(
                        at,
                        format!(
                            "waits for `{}` to be healthy, but `{}` has no health check",
                            d.service, d.service
                        ),
                    )
                    .hint = Some(format!(
                        "add `health:` to `{}`, or wait for `started`",
                        d.service
                    ));
                }
                Condition::Completed if target.restart == RestartPolicy::Always => {
                    cx.key_error(
                        at,
                        format!(
                            "waits for `{}` to complete, but it has `restart: always`",
                            d.service
                        ),
                    )
                    .hint = Some(format!(
                        "use `restart: on-failure` on `{}`, or wait for `started`",
                        d.service
                    ));
                }
                _ => {}
            }
        }
    }
}

/// Checks `${services.X…}` and `${PORT}` references against the services' ports.
pub(super) fn check_refs(
    cx: &mut Cx,
    services: &[Service],
    names: &[&str],
    refs: &[(String, FieldPath, Reference)],
) {
    for (consumer, path, r) in refs {
        let message = match r {
            Reference::OwnPort => match services.iter().find(|s| &s.name == consumer) {
                Some(s) if s.main_port().is_none() => Some((
                    format!("`${{PORT}}` is used, but `{consumer}` declares no port"),
                    Some("add `port: auto` to the service".to_string()),
                )),
                _ => None,
            },
            Reference::Service { service, field } => {
                match services.iter().find(|s| &s.name == service) {
                    None if !names.contains(&service.as_str()) => Some((
                        format!("`{r}` names `{service}`, which is not a service of this stack"),
                        did_you_mean(service, names.iter().copied()),
                    )),
                    None => None,
                    Some(s) => match field {
                        ServiceField::NamedPort(p) if !s.ports.iter().any(|x| &x.name == p) => {
                            let declared: Vec<&str> =
                                s.ports.iter().map(|x| x.name.as_str()).collect();
                            Some((
                                format!("`{r}`: `{service}` has no port `{p}`"),
                                did_you_mean(p, declared.iter().copied()).or_else(|| {
                                    Some(if declared.is_empty() {
                                        format!("add `ports: {{{p}: auto}}` to `{service}`")
                                    } else {
                                        format!("`{service}` declares: {}", declared.join(", "))
                                    })
                                }),
                            ))
                        }
                        ServiceField::Url | ServiceField::Host | ServiceField::Port
                            if s.main_port().is_none() =>
                        {
                            Some((
                                format!("`{r}`: `{service}` declares no port"),
                                Some(format!("add `port: auto` to `{service}`")),
                            ))
                        }
                        _ => None,
                    },
                }
            }
        };
        if let Some((m, hint)) = message {
            let at = cx.positions.value(path);
            cx.push(Diagnostic::error(path.clone(), m).at(at).maybe_hint(hint));
        }
    }
}

/// What is wrong in a built-in's `config:`, found by the built-in itself (see
/// [`LoadOptions::check_builtin`]): where inside the config, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltinProblem {
    /// Where, relative to the `config:` map (`fixtures[2].match`).
    pub field: FieldPath,
    /// What is wrong (serde's words are put plainly here).
    pub message: String,
}

/// Checks a built-in's interpolated `config:` (relative files against the stack's folder).
pub(crate) type BuiltinCheck<'a> =
    &'a dyn Fn(BuiltinKind, &serde_json::Value, &Path) -> Vec<BuiltinProblem>;

/// Every built-in's `config:` checked by the built-in, each problem at its line.
pub(super) fn check_builtins(
    cx: &mut Cx,
    services: &[Service],
    dir: &Path,
    check: BuiltinCheck<'_>,
) {
    for svc in services {
        let ServiceKind::Builtin { builtin, config } = &svc.kind else {
            continue;
        };
        let at = FieldPath::service(&svc.name).key("config");
        for p in check(*builtin, config, dir) {
            let field = FieldPath(at.0.iter().chain(&p.field.0).cloned().collect());
            let (mut message, hint) = humanize(&p.message);
            // A value that is empty because its variable is unset: say which variable.
            if let Some(var) = unset_variable_at(cx, &field) {
                message = format!("{message} (`{var}` is not set)");
            }
            // An unknown field is best shown at its key, anything else at its value.
            let loc = if message.starts_with("unknown field") {
                cx.positions.key(&field)
            } else {
                cx.positions.value(&field)
            };
            cx.push(Diagnostic::error(field, message).at(loc).maybe_hint(hint));
        }
    }
}

/// The variable whose being unset left `field` empty, if pass one warned of one there.
fn unset_variable_at(cx: &Cx, field: &FieldPath) -> Option<String> {
    super::unset_variable(&cx.diagnostics, field)
}
