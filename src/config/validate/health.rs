//! A service's health check: one probe, its port resolved against the service's ports,
//! its timing; and the default check of a built-in.

use std::time::Duration;

use super::Cx;
use super::service::command;
use crate::config::diagnostic::did_you_mean;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::source::FieldPath;

pub(super) fn health(
    cx: &mut Cx,
    path: &FieldPath,
    raw: &RawService,
    ports: &[PortSpec],
) -> Option<HealthCheck> {
    let hpath = path.key("health");
    let Some(h) = &raw.health else {
        // Built-ins answer GET /health on their main port.
        return raw.builtin.map(|_| HealthCheck {
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
        });
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
    let main = ports.iter().find(|p| p.name == "main").or(ports.first());
    let port_for = |cx: &mut Cx, field: &str, r: Option<&RawPortRef>| -> Option<String> {
        let fpath = hpath.key(field);
        match r {
            None => {
                match main {
                    Some(p) => Some(p.name.clone()),
                    None => {
                        cx.error(fpath, format!("a `{field}` health check needs a port, and the service declares none"))
                        .hint = Some("add `port: auto` to the service".into());
                        None
                    }
                }
            }
            Some(RawPortRef::Name(n)) => match ports.iter().find(|p| &p.name == n) {
                Some(p) => Some(p.name.clone()),
                None => {
                    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                    let hint = did_you_mean(n, names.iter().copied()).unwrap_or_else(|| {
                        if names.is_empty() {
                            "declare it under `ports:`".to_string()
                        } else {
                            format!("declared ports: {}", names.join(", "))
                        }
                    });
                    cx.error(
                        fpath,
                        format!("names port `{n}`, which the service does not declare"),
                    )
                    .hint = Some(hint);
                    None
                }
            },
            Some(RawPortRef::Number(num)) => match ports
                .iter()
                .find(|p| p.host == Some(*num) || p.container == Some(*num))
            {
                Some(p) => Some(p.name.clone()),
                None => {
                    cx.error(
                        fpath,
                        format!("names port {num}, which the service does not declare"),
                    )
                    .hint = Some("declare it under `ports:` and name it here".into());
                    None
                }
            },
        }
    };
    let probe = if let Some(http) = &h.http {
        let port = port_for(cx, "http", http.port.as_ref())?;
        if !http.path.starts_with('/') {
            cx.error(hpath.key("http"), format!("`{}` is not a path", http.path))
                .hint = Some("write a path starting with `/`, e.g. `/health`".into());
            return None;
        }
        if let Some(s) = http.status
            && !(100..=599).contains(&s)
        {
            cx.error(
                hpath.key("http").key("status"),
                format!("{s} is not an HTTP status"),
            );
            return None;
        }
        Probe::Http {
            path: http.path.clone(),
            port,
            status: http.status,
        }
    } else if let Some(tcp) = &h.tcp {
        Probe::Tcp {
            port: port_for(cx, "tcp", Some(tcp))?,
        }
    } else if let Some(exec) = &h.exec {
        Probe::Exec {
            command: command(cx, &hpath.key("exec"), exec)?,
        }
    } else {
        let pattern = h.log.clone().unwrap_or_default();
        if let Err(err) = regex::Regex::new(&pattern) {
            let detail = err.to_string();
            let last = detail.lines().last().unwrap_or_default().trim().to_string();
            cx.error(
                hpath.key("log"),
                format!("invalid regular expression: {last}"),
            )
            .hint = Some(
                "the pattern uses Rust regex syntax; escape special characters with `\\`".into(),
            );
            return None;
        }
        Probe::Log { pattern }
    };
    Some(HealthCheck {
        probe,
        interval: h.interval.map_or(HealthCheck::DEFAULT_INTERVAL, |d| d.0),
        timeout: h.timeout.map_or(HealthCheck::DEFAULT_TIMEOUT, |d| d.0),
        retries: h.retries.unwrap_or(HealthCheck::DEFAULT_RETRIES),
        start_period: h.start_period.map_or(Duration::ZERO, |d| d.0),
    })
}

