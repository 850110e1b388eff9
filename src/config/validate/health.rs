//! A service's health check: one probe, its port resolved against the service's ports,
//! its timing; and the default check of a built-in.

use std::time::Duration;

use super::Cx;
use super::service::command;
use crate::config::diagnostic::did_you_mean;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::source::FieldPath;

/// The service's health check: its `health:`, else a built-in's `GET /health`.
pub(super) fn health(
    cx: &mut Cx,
    path: &FieldPath,
    raw: &RawService,
    ports: &[PortSpec],
) -> Option<HealthCheck> {
    let hpath = path.key("health");
    let Some(h) = &raw.health else {
        return raw.builtin.map(|_| builtin_health(ports));
    };
    let kinds = [
        h.http.is_some(),
        h.tcp.is_some(),
        h.exec.is_some(),
        h.log.is_some(),
    ];
    let n = kinds.iter().filter(|k| **k).count();
    if n != 1 {
        let msg = if n == 0 {
            "a health check needs a probe"
        } else {
            "a health check has one probe"
        };
        cx.error(hpath.clone(), msg).hint =
            Some("set exactly one of `http`, `tcp`, `exec` or `log`".into());
        return None;
    }
    let probe = if let Some(http) = &h.http {
        http_probe(cx, &hpath, http, ports)?
    } else if let Some(tcp) = &h.tcp {
        Probe::Tcp {
            port: probe_port(cx, &hpath.key("tcp"), "tcp", Some(tcp), ports)?,
        }
    } else if let Some(exec) = &h.exec {
        Probe::Exec {
            command: command(cx, &hpath.key("exec"), exec)?,
        }
    } else {
        log_probe(cx, &hpath.key("log"), h.log.clone().unwrap_or_default())?
    };
    for (name, d) in [("interval", h.interval), ("timeout", h.timeout)] {
        if d.is_some_and(|d| d.0.is_zero()) {
            cx.error(
                hpath.key(name),
                format!("a health check `{name}` of 0 means the check can never pass"),
            )
            .hint = Some(format!("give it a length, e.g. `{name}: 1s`"));
            return None;
        }
    }
    Some(HealthCheck {
        probe,
        interval: h.interval.map_or(HealthCheck::DEFAULT_INTERVAL, |d| d.0),
        timeout: h.timeout.map_or(HealthCheck::DEFAULT_TIMEOUT, |d| d.0),
        retries: h.retries.unwrap_or(HealthCheck::DEFAULT_RETRIES),
        start_period: h.start_period.map_or(Duration::ZERO, |d| d.0),
    })
}

/// Built-ins answer `GET /health` on their main port.
fn builtin_health(ports: &[PortSpec]) -> HealthCheck {
    HealthCheck {
        probe: Probe::Http {
            path: "/health".into(),
            port: ports
                .first()
                .map_or_else(|| "main".into(), |p| p.name.clone()),
            status: None,
        },
        interval: HealthCheck::DEFAULT_INTERVAL,
        timeout: HealthCheck::DEFAULT_TIMEOUT,
        retries: HealthCheck::DEFAULT_RETRIES,
        start_period: Duration::ZERO,
    }
}

fn http_probe(
    cx: &mut Cx,
    hpath: &FieldPath,
    http: &RawHttpCheck,
    ports: &[PortSpec],
) -> Option<Probe> {
    let at = hpath.key("http");
    let port = probe_port(cx, &at, "http", http.port.as_ref(), ports)?;
    if !http.path.starts_with('/') {
        cx.error(at, format!("`{}` is not a path", http.path)).hint =
            Some("write a path starting with `/`, e.g. `/health`".into());
        return None;
    }
    if let Some(s) = http.status
        && !(100..=599).contains(&s)
    {
        cx.error(at.key("status"), format!("{s} is not an HTTP status"));
        return None;
    }
    Some(Probe::Http {
        path: http.path.clone(),
        port,
        status: http.status,
    })
}

fn log_probe(cx: &mut Cx, at: &FieldPath, pattern: String) -> Option<Probe> {
    if let Err(err) = regex::Regex::new(&pattern) {
        let detail = err.to_string();
        let last = detail.lines().last().unwrap_or_default().trim().to_string();
        cx.error(at.clone(), format!("invalid regular expression: {last}"))
            .hint =
            Some("the pattern uses Rust regex syntax; escape special characters with `\\`".into());
        return None;
    }
    Some(Probe::Log { pattern })
}

/// The name of the port a `kind` probe at `at` targets: the one it names (by name or
/// number), else the service's main port.
fn probe_port(
    cx: &mut Cx,
    at: &FieldPath,
    kind: &str,
    named: Option<&RawPortRef>,
    ports: &[PortSpec],
) -> Option<String> {
    let found = match named {
        None => ports.iter().find(|p| p.name == "main").or(ports.first()),
        Some(RawPortRef::Name(n)) => ports.iter().find(|p| &p.name == n),
        Some(RawPortRef::Number(num)) => ports
            .iter()
            .find(|p| p.host == Some(*num) || p.container == Some(*num)),
    };
    if let Some(p) = found {
        return Some(p.name.clone());
    }
    let (message, hint) = match named {
        None => (
            format!("a `{kind}` health check needs a port, and the service declares none"),
            "add `port: auto` to the service".to_string(),
        ),
        Some(RawPortRef::Name(n)) => {
            let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
            let hint = did_you_mean(n, names.iter().copied()).unwrap_or_else(|| {
                if names.is_empty() {
                    "declare it under `ports:`".to_string()
                } else {
                    format!("declared ports: {}", names.join(", "))
                }
            });
            (
                format!("names port `{n}`, which the service does not declare"),
                hint,
            )
        }
        Some(RawPortRef::Number(num)) => (
            format!("names port {num}, which the service does not declare"),
            "declare it under `ports:` and name it here".to_string(),
        ),
    };
    cx.error(at.clone(), message).hint = Some(hint);
    None
}
