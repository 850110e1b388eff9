//! `stack doctor`: the troubleshooting guide for "connection refused", automated. Each
//! finding says what is wrong and how to fix it; it works with no stack running (then it
//! checks the stack file and whether the fixed ports are free).

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{DoctorArgs, GlobalArgs};
use crate::config::{Probe, Service, Stack};
use crate::control::{self, Message, Request};
use crate::error::Result;
use crate::events::State;
use crate::events::report::PsService;
use crate::exit;
use crate::logs;
use crate::plan::ResolvedProbe;
use crate::procfs::{self, Holder};
use crate::ui::{Console, paint};
use crate::ui::{out, outln};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Level {
    /// All good.
    Ok,
    /// Neither good nor bad: worth knowing (Docker is down, and no service needs it).
    Note,
    /// Worth a look.
    Warning,
    /// The likely cause of trouble.
    Error,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Finding {
    /// The service it is about (none: the stack, the engine).
    pub service: Option<String>,
    /// How bad.
    pub level: Level,
    /// What was found.
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
}

struct Report {
    findings: Vec<Finding>,
}

impl Report {
    fn add(
        &mut self,
        service: Option<&str>,
        level: Level,
        message: impl Into<String>,
        fix: Option<String>,
    ) {
        self.findings.push(Finding {
            service: service.map(str::to_string),
            level,
            message: message.into(),
            fix,
        });
    }
}

pub(crate) fn run(global: &GlobalArgs, args: DoctorArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let mut r = Report {
        findings: Vec::new(),
    };
    let project = super::project::locate(global)?;
    let stack = match super::load::stack(global, None) {
        Ok(l) => {
            r.add(
                None,
                Level::Ok,
                format!("{} is valid", l.stack.file.display()),
                None,
            );
            Some(l.stack)
        }
        Err(e) => {
            r.add(
                None,
                Level::Error,
                format!("the stack file is invalid: {}", first_line(&e.to_string())),
                Some("`stack validate` shows every problem with its line".into()),
            );
            None
        }
    };
    let rt = super::runtime()?;
    let doc = match rt.block_on(control::client::call(&project.state.socket(), &Request::Ps)) {
        Ok(Message::Ps(doc)) => {
            r.add(
                None,
                Level::Ok,
                format!(
                    "project `{}` is up (supervisor pid {})",
                    doc.project,
                    doc.supervisor_pid.map_or("?".into(), |p| p.to_string())
                ),
                None,
            );
            Some(doc)
        }
        _ => {
            r.add(
                None,
                Level::Warning,
                format!("project `{}` is not running", project.name),
                Some("start it with `stack up` (or `stack up -d`)".into()),
            );
            None
        }
    };
    let mut names: Vec<String> = match (&stack, &doc) {
        (Some(s), _) => s.services.iter().map(|s| s.name.clone()).collect(),
        (None, Some(d)) => d.services.iter().map(|s| s.name.clone()).collect(),
        _ => Vec::new(),
    };
    if let Some(only) = &args.service {
        if !names.contains(only) {
            return Err(crate::error::Error::input(
                format!("no service `{only}` in this stack"),
                None,
            ));
        }
        names.retain(|n| n == only);
    }
    for name in &names {
        let svc = stack.as_ref().and_then(|s| s.service(name));
        let running = doc
            .as_ref()
            .and_then(|d| d.services.iter().find(|s| &s.name == name));
        check_service(&mut r, &project.state, name, svc, running, &rt);
    }
    check_docker(&mut r, stack.as_ref(), &rt);
    if let (Some(doc), Some(dir)) = (&doc, project.file.parent()) {
        check_agent_files(&mut r, dir, doc);
    }

    let errors = r
        .findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .count();
    if args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "project": project.name,
            "errors": errors,
            "findings": r.findings,
        }))
        .unwrap_or_default();
        outln!(console, "{text}");
    } else {
        out!(
            console,
            "{}",
            render(&r.findings, Console::new(global).out_color())
        );
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::SERVICE_FAILED)
    })
}

/// The agent files `stack mcp --config … --write` wrote: does each URL still point at a
/// port of the running stack? (Auto ports change from one `up` to the next.)
fn check_agent_files(
    r: &mut Report,
    dir: &std::path::Path,
    doc: &crate::events::report::PsDocument,
) {
    for e in super::mcp::agents::registered(dir) {
        let owner = doc
            .services
            .iter()
            .find(|s| s.ports.values().any(|p| p.port == e.port));
        if owner.is_some() {
            continue;
        }
        let now = e
            .name
            .strip_prefix(super::mcp::agents::ENTRY_PREFIX)
            .and_then(|n| n.strip_prefix('-'))
            .and_then(|svc| doc.services.iter().find(|s| s.name == svc))
            .and_then(|s| s.ports.values().next())
            .map(|p| format!(" (it is at {} now)", p.url))
            .unwrap_or_default();
        r.add(
            None,
            Level::Warning,
            format!(
                "{}: server `{}` points at {}, a port this stack no longer uses{now}",
                e.file, e.name, e.url
            ),
            Some(format!(
                "`stack mcp --config {} --write` updates it",
                clap::ValueEnum::to_possible_value(&e.agent)
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default()
            )),
        );
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn check_service(
    r: &mut Report,
    state: &crate::state::StateDir,
    name: &str,
    svc: Option<&Service>,
    running: Option<&PsService>,
    rt: &tokio::runtime::Runtime,
) {
    let log = logs::path(&state.dir, name);
    check_state(r, name, running);
    check_ports(r, name, svc, running);
    let up = running.is_some_and(|p| p.state == State::Running);
    if let (true, Some(svc), Some(p)) = (up, svc, running) {
        check_health(r, name, svc, p, &state.dir, &log, rt);
    }
    check_log(r, name, &log);
}

/// Running, or why not.
fn check_state(r: &mut Report, name: &str, running: Option<&PsService>) {
    let s = Some(name);
    match running {
        Some(p) if p.state == State::Running => {
            let what = match (p.pid, &p.container_id) {
                (Some(pid), _) => format!("running (pid {pid}, {} restarts)", p.restarts),
                (None, Some(id)) => format!("running (container {})", &id[..id.len().min(12)]),
                _ => "running".to_string(),
            };
            r.add(s, Level::Ok, what, None);
        }
        Some(p) => r.add(
            s,
            Level::Error,
            format!("not running: {}", crate::ui::table::state_name(p.state)),
            Some(format!(
                "`stack logs {name}` shows why; `stack start {name}` starts it again"
            )),
        ),
        None => {}
    }
}

/// Ports: who holds them, and on which address.
fn check_ports(r: &mut Report, name: &str, svc: Option<&Service>, running: Option<&PsService>) {
    let s = Some(name);
    let ports: Vec<(String, u16, bool)> = match (running, svc) {
        (Some(p), _) => p
            .ports
            .iter()
            .map(|(n, port)| (n.clone(), port.port, true))
            .collect(),
        (None, Some(svc)) => svc
            .ports
            .iter()
            .filter_map(|p| p.host.map(|h| (p.name.clone(), h, false)))
            .collect(),
        _ => Vec::new(),
    };
    let up = running.is_some_and(|p| p.state == State::Running);
    for (pname, port, resolved) in &ports {
        let label = if pname == "main" {
            format!("port {port}")
        } else {
            format!("port {port} (`{pname}`)")
        };
        let holder = procfs::port_holder(*port);
        match (holder, up) {
            (None, true) if running.is_some_and(|p| p.container_id.is_none()) => r.add(
                s,
                Level::Error,
                format!("nothing listens on {label}"),
                Some(format!(
                    "the program must listen on 127.0.0.1:$PORT (PORT={port} is in its environment); `stack logs {name}` may say where it listens instead"
                )),
            ),
            (None, true) => {}
            (None, false) if !*resolved => r.add(s, Level::Ok, format!("{label} is free"), None),
            (None, false) => {}
            (Some(h), true) => check_holder(r, name, &label, &h, running.and_then(|p| p.pid)),
            (Some(h), false) => r.add(
                s,
                Level::Error,
                format!("{label} is already in use by {h}; `stack up` will refuse to start"),
                Some("stop that process, or set this port to `auto`".into()),
            ),
        }
    }
}

/// The health check of a running service, once.
fn check_health(
    r: &mut Report,
    name: &str,
    svc: &Service,
    p: &PsService,
    state_dir: &std::path::Path,
    log: &std::path::Path,
    rt: &tokio::runtime::Runtime,
) {
    let Some(h) = &svc.health else {
        return;
    };
    let port_of = |n: &str| p.ports.get(n).map(|x| x.port);
    let probe = match &h.probe {
        Probe::Http { path, port, status } => port_of(port).map(|n| ResolvedProbe::Http {
            url: format!("http://127.0.0.1:{n}{path}"),
            status: *status,
        }),
        Probe::Tcp { port } => port_of(port).map(|n| ResolvedProbe::Tcp { port: n }),
        Probe::Exec { command } => Some(ResolvedProbe::Exec {
            argv: command.argv(),
        }),
        Probe::Log { pattern } => Some(ResolvedProbe::Log {
            pattern: pattern.clone(),
        }),
    };
    let Some(probe) = probe else {
        return;
    };
    let matched = matches!(&probe, ResolvedProbe::Log { pattern } if log_has(log, pattern));
    let (tx, rx) = tokio::sync::watch::channel(matched);
    drop(tx);
    let outcome = rt.block_on(async {
        let cx = crate::runtime::health::ProbeContext {
            http: crate::runtime::health::http_client(),
            env: Vec::new(),
            cwd: svc.cwd.clone(),
            log_matched: Some(rx),
            container: None,
            launcher: crate::runtime::process::Launcher::new(state_dir)
                .map_err(|e| format!("cannot start the probe: {e}"))?,
        };
        crate::runtime::health::probe(&probe, h.timeout, &cx).await
    });
    match outcome {
        Ok(()) => r.add(Some(name), Level::Ok, "its health check passes", None),
        Err(e) => r.add(
            Some(name),
            Level::Error,
            format!("its health check fails: {e}"),
            Some(format!("`stack logs {name}` shows what the service says")),
        ),
    }
}

/// Errors in the last lines of its log.
fn check_log(r: &mut Report, name: &str, log: &std::path::Path) {
    let tail = logs::tail(name, log, 50);
    let bad: Vec<&logs::Line> = tail.iter().filter(|l| is_error_line(&l.text)).collect();
    if let Some(last) = bad.last() {
        r.add(
            Some(name),
            Level::Warning,
            format!(
                "its log has {} error line(s) lately; the last: {}",
                bad.len(),
                last.text.trim()
            ),
            Some(format!("`stack logs -n 50 {name}`")),
        );
    }
}

/// Whether a log line reports an error: by its level when it has one (a JSON line's
/// `level`/`severity`, or a level word among its first tokens: `INFO`, `[warn]`,
/// `level=error`…), so an `INFO` access-log line that mentions "error" is not one; by the
/// words of trouble (`panic`, `Traceback`, `address already in use`…) when it has none.
fn is_error_line(text: &str) -> bool {
    let level = |word: &str| -> Option<bool> {
        // `level=error`, `lvl:warn`, `[INFO]`, `ERROR:`
        let word = word
            .rsplit(['=', ':'])
            .find(|w| !w.is_empty())
            .unwrap_or(word);
        let word = word
            .trim_matches(|c: char| !c.is_ascii_alphabetic())
            .to_ascii_lowercase();
        match word.as_str() {
            "trace" | "debug" | "info" | "notice" | "warn" | "warning" => Some(false),
            "error" | "err" | "fatal" | "critical" | "crit" | "panic" | "alert" | "emerg" => {
                Some(true)
            }
            _ => None,
        }
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(doc)) = serde_json::from_str(trimmed)
        && let Some(l) = ["level", "severity", "levelname", "lvl"]
            .iter()
            .find_map(|k| doc.get(*k).and_then(serde_json::Value::as_str))
        && let Some(is_error) = level(l)
    {
        return is_error;
    }
    if let Some(is_error) = trimmed.split_whitespace().take(4).find_map(level) {
        return is_error;
    }
    let t = text.to_ascii_lowercase();
    [
        "error",
        "panic",
        "exception",
        "fatal",
        "traceback",
        "refused",
        "address already in use",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Whether the holder of a running service's port is that service, on a reachable address.
fn check_holder(r: &mut Report, name: &str, label: &str, h: &Holder, service_pid: Option<u32>) {
    let s = Some(name);
    let ours = match (h.pid, service_pid) {
        (Some(holder), Some(leader)) => holder == leader || procfs::pgid(holder) == Some(leader),
        // A container's port is held by docker-proxy or the engine.
        (_, None) => true,
        _ => false,
    };
    if !ours {
        r.add(
            s,
            Level::Error,
            format!("{label} is held by {h}, not by `{name}`"),
            Some("stop that process, or move the service to another port (`auto`)".into()),
        );
        return;
    }
    match h.addr {
        IpAddr::V4(a) if a.is_loopback() => {
            r.add(s, Level::Ok, format!("listens on {label} at {a}"), None)
        }
        IpAddr::V4(a) if a.is_unspecified() => r.add(
            s,
            Level::Warning,
            format!("listens on {label} at 0.0.0.0: reachable from other machines"),
            Some("bind 127.0.0.1 unless it must be reachable from the network".into()),
        ),
        IpAddr::V6(a) if a.is_unspecified() => r.add(
            s,
            Level::Warning,
            format!("listens on {label} at [::]: reachable from other machines"),
            Some("bind 127.0.0.1 unless it must be reachable from the network".into()),
        ),
        IpAddr::V6(a) if a.is_loopback() => r.add(
            s,
            Level::Error,
            format!(
                "listens on {label} at [::1] only: clients of 127.0.0.1 get \"connection refused\""
            ),
            Some("bind 127.0.0.1 (what `localhost` resolves to first for most clients)".into()),
        ),
        a => r.add(
            s,
            Level::Error,
            format!("listens on {label} at {a} only: not reachable at 127.0.0.1"),
            Some("bind 127.0.0.1".into()),
        ),
    }
}

fn log_has(path: &std::path::Path, pattern: &str) -> bool {
    let Ok(re) = regex::Regex::new(pattern) else {
        return false;
    };
    std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| re.is_match(l)))
}

fn check_docker(r: &mut Report, stack: Option<&Stack>, rt: &tokio::runtime::Runtime) {
    let needs = stack.is_some_and(|s| {
        s.services
            .iter()
            .any(|x| x.runtime == crate::config::RuntimeKind::Container)
    });
    let version = async {
        let docker = crate::runtime::docker::Docker::connect()
            .await
            .map_err(|e| e.to_string())?;
        docker.version().await.map_err(|e| e.to_string())
    };
    match rt.block_on(async { tokio::time::timeout(Duration::from_secs(4), version).await }) {
        Ok(Ok(v)) => r.add(
            None,
            Level::Ok,
            format!("the Docker engine answers (version {v})"),
            None,
        ),
        // The error says what it is ("the Docker engine is not reachable: …").
        Ok(Err(e)) if needs => r.add(
            None,
            Level::Error,
            e,
            Some(
                "start it (`sudo systemctl start docker`, or `dockerd &`), or set DOCKER_HOST"
                    .into(),
            ),
        ),
        Ok(Err(e)) => r.add(
            None,
            Level::Note,
            format!("{e} (no service needs it)"),
            None,
        ),
        Err(_) => r.add(
            None,
            if needs { Level::Error } else { Level::Note },
            "the Docker engine does not answer within 4 s",
            Some("check that dockerd runs and DOCKER_HOST points at it".into()),
        ),
    }
}

fn render(findings: &[Finding], color: bool) -> String {
    use anstyle::{AnsiColor, Style};
    let mut out = String::new();
    let mut last: Option<Option<String>> = None;
    for f in findings {
        if last.as_ref() != Some(&f.service) {
            let title = f
                .service
                .as_deref()
                .map_or("stack".to_string(), |s| format!("service `{s}`"));
            out.push_str(&format!("{title}\n"));
            last = Some(f.service.clone());
        }
        let (mark, style) = match f.level {
            Level::Ok => ("✔", Style::new().fg_color(Some(AnsiColor::Green.into()))),
            Level::Note => ("·", Style::new().dimmed()),
            Level::Warning => ("!", Style::new().fg_color(Some(AnsiColor::Yellow.into()))),
            Level::Error => ("✘", Style::new().fg_color(Some(AnsiColor::Red.into()))),
        };
        out.push_str(&format!("  {} {}\n", paint(color, style, mark), f.message));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("    fix: {fix}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_error_line;

    #[test]
    fn log_lines_are_judged_by_their_level_first() {
        for line in [
            r#"{"level":"INFO","message":"request","path":"/v1/errors","status":200}"#,
            "2026-12-01T10:00:00Z  INFO gateway: retrying after upstream error",
            "[info] error budget at 3%",
            "level=debug msg=\"no error\"",
            "WARN connection refused, retrying",
        ] {
            assert!(!is_error_line(line), "{line}");
        }
        for line in [
            r#"{"level":"error","message":"db down"}"#,
            "2026-12-01T10:00:00Z ERROR api: boom",
            "[FATAL] cannot bind",
            "Traceback (most recent call last):",
            "thread 'main' panicked at src/main.rs:3:5",
            "OSError: [Errno 98] Address already in use",
        ] {
            assert!(is_error_line(line), "{line}");
        }
    }
}
