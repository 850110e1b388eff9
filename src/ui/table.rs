//! The service table: what `up` prints once healthy and what `ps` prints.

use super::{paint, service_style};
use crate::events::report::PsDocument;
use crate::events::{Health, State};

/// Renders `doc` as an aligned table (trailing newline included).
pub(crate) fn render(doc: &PsDocument, color: bool) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "SERVICE".into(),
        "STATE".into(),
        "HEALTH".into(),
        "URL".into(),
        "PID".into(),
        "RESTARTS".into(),
    ]];
    for s in &doc.services {
        let url = s
            .ports
            .get("main")
            .or_else(|| s.ports.values().next())
            .map(|p| p.url.clone())
            .unwrap_or_else(|| "-".into());
        let id = match (&s.pid, &s.container_id) {
            (Some(pid), _) => pid.to_string(),
            (None, Some(c)) => c.chars().take(12).collect(),
            _ => "-".into(),
        };
        let state = match (s.state, s.exit_code) {
            (State::Running, _) if doc.supervisor_pid.is_none() => "running, no supervisor".into(),
            (State::Exited | State::Failed, Some(code)) => {
                format!("{} ({code})", state_name(s.state))
            }
            (state, _) => state_name(state).to_string(),
        };
        rows.push([
            s.name.clone(),
            state,
            health_name(s.health).into(),
            url,
            id,
            match (&s.start_reason, s.restarts) {
                (Some(why), n) if n > 0 => format!("{n} ({why})"),
                (_, n) => n.to_string(),
            },
        ]);
        // Extra named ports get their own lines.
        for (name, p) in s.ports.iter().skip(1) {
            rows.push([
                format!("  {name}"),
                String::new(),
                String::new(),
                p.url.clone(),
                String::new(),
                String::new(),
            ]);
        }
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            let cell = format!("{c:<w$}", w = widths[i]);
            let cell = if n > 0 && i == 0 && !c.starts_with(' ') {
                paint(color, service_style(c), &cell)
            } else {
                cell
            };
            line.push_str(&cell);
            if i + 1 < r.len() {
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if let Some(mode) = doc.llm {
        out.push_str(&format!("llm: {mode} ({})\n", mode_note(mode)));
    }
    if let Some(url) = &doc.dashboard {
        out.push_str(&format!("dashboard: {url}\n"));
    }
    out
}

/// What a mode means, in the table.
fn mode_note(mode: crate::services::cassette::Mode) -> &'static str {
    use crate::services::cassette::Mode;
    match mode {
        Mode::Mock => "every model call answered by the built-in mock",
        Mode::Live => "model calls go to the configured providers",
        Mode::Record => "model calls go to the providers and are recorded",
        Mode::Replay => "model calls answered from the cassettes",
    }
}

/// The name of a state as in `ps`.
pub(crate) fn state_name(s: State) -> &'static str {
    match s {
        State::Created => "created",
        State::Starting => "starting",
        State::Running => "running",
        State::Exited => "exited",
        State::Failed => "failed",
        State::Stopped => "stopped",
    }
}

/// The name of a health as in `ps`.
pub(crate) fn health_name(h: Health) -> &'static str {
    match h {
        Health::None => "none",
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}
