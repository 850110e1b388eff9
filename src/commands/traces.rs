//! `stack traces` (reads the supervisor's window of spans from `.stack/telemetry/`, so it
//! works with the stack down too) and `stack dashboard` (asks the supervisor its URL).

use std::process::ExitCode;

use crate::cli::{DashboardArgs, GlobalArgs, TracesArgs};
use crate::control::{self, Message, Request};
use crate::error::{Error, Result};
use crate::telemetry::spans::{self, TraceSummary};
use crate::ui::{Console, errln, outln};

pub(crate) fn run(global: &GlobalArgs, args: &TracesArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let project = super::project::locate(global)?;
    let file = spans::file(&project.state.dir);
    let all = spans::read(&file);
    let traces: Vec<TraceSummary> = spans::traces(all.iter())
        .into_iter()
        .filter(|t| args.service.as_ref().is_none_or(|s| t.services.contains(s)))
        .filter(|t| !args.errors || t.errors > 0)
        .collect();
    if let Some(id) = &args.trace {
        let found: Vec<&TraceSummary> = traces
            .iter()
            .filter(|t| t.trace_id.starts_with(id.as_str()))
            .collect();
        return match found.as_slice() {
            [t] if args.json => print_json(&console, t),
            [t] => {
                outln!(console, "{}", waterfall(t));
                Ok(ExitCode::SUCCESS)
            }
            [] => Err(Error::input(
                format!("no trace `{id}` in the window ({})", file.display()),
                Some("`stack traces` lists the recent ones"),
            )),
            _ => Err(Error::input(
                format!("`{id}` starts {} traces' ids", found.len()),
                Some("give more of the id"),
            )),
        };
    }
    let shown: Vec<TraceSummary> = traces.into_iter().take(args.limit).collect();
    if args.json {
        return print_json(&console, &shown);
    }
    if shown.is_empty() {
        if !global.quiet {
            errln!(
                console,
                "no traces yet for `{}` (services report to the supervisor while the stack is up)",
                project.name
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    outln!(console, "{}", list(&shown));
    Ok(ExitCode::SUCCESS)
}

fn print_json(console: &Console, v: &impl serde::Serialize) -> Result<ExitCode> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::input(e.to_string(), None))?;
    outln!(console, "{text}");
    Ok(ExitCode::SUCCESS)
}

fn time(ns: u64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.strftime("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

fn duration(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

/// The list: one trace a line.
fn list(traces: &[TraceSummary]) -> String {
    let mut rows = vec![[
        "TRACE".to_string(),
        "STARTED".into(),
        "DURATION".into(),
        "SPANS".into(),
        "STATUS".into(),
        "MODEL".into(),
        "TOKENS".into(),
        "SERVICES".into(),
        "ROOT".into(),
    ]];
    for t in traces {
        let tokens = match (t.input_tokens, t.output_tokens) {
            (None, None) => "-".to_string(),
            (i, o) => format!(
                "{}/{}",
                i.map_or("-".into(), |v| v.to_string()),
                o.map_or("-".into(), |v| v.to_string())
            ),
        };
        rows.push([
            t.trace_id.chars().take(12).collect(),
            time(t.start_ns),
            duration(t.duration_ms),
            t.span_count.to_string(),
            if t.errors > 0 {
                format!("error ({})", t.errors)
            } else {
                "ok".into()
            },
            t.model.clone().unwrap_or_else(|| "-".into()),
            tokens,
            t.services.join(","),
            t.root.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == 8 {
                        c.clone()
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One trace's spans: indented by depth, with a bar on a 40-column timeline.
fn waterfall(t: &TraceSummary) -> String {
    const WIDTH: f64 = 40.0;
    let total = t.duration_ms.max(0.001);
    let depth = |s: &spans::SpanRecord| {
        let mut d = 0;
        let mut parent = s.parent_span_id.as_str();
        while let Some(p) = t.spans.iter().find(|x| x.span_id == parent) {
            d += 1;
            parent = p.parent_span_id.as_str();
            if d > 32 {
                break;
            }
        }
        d
    };
    let mut out = format!(
        "trace {}  {}  {} spans\n",
        t.trace_id,
        duration(t.duration_ms),
        t.span_count
    );
    for s in &t.spans {
        let start = (s.start_ns.saturating_sub(t.start_ns)) as f64 / 1e6;
        let from = (start / total * WIDTH).floor() as usize;
        let len = ((s.ms() / total * WIDTH).round() as usize).max(1);
        let bar = format!(
            "{}{}",
            " ".repeat(from.min(40)),
            "#".repeat(len.min(40 - from.min(39)))
        );
        let label = format!("{}{} {}", "  ".repeat(depth(s)), s.service, s.name);
        out.push_str(&format!(
            "{bar:<40}  {:>9}  {label}{}\n",
            duration(s.ms()),
            if s.error { "  [error]" } else { "" }
        ));
    }
    out.trim_end().to_string()
}

pub(crate) fn dashboard(global: &GlobalArgs, args: &DashboardArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let project = super::project::locate(global)?;
    let rt = super::runtime()?;
    let url = match rt.block_on(control::client::call(&project.state.socket(), &Request::Ps)) {
        Ok(Message::Ps(doc)) => doc.dashboard,
        _ => {
            return Err(Error::Environment {
                message: format!("project `{}` is not running", project.name),
                hint: Some("`stack up -d` starts it; the dashboard lives as long as it".into()),
            });
        }
    };
    let Some(url) = url else {
        return Err(Error::Environment {
            message: "the supervisor serves no dashboard (its port could not be bound)".into(),
            hint: Some("its log says why: .stack/supervisor.log".into()),
        });
    };
    outln!(console, "{url}");
    if args.open {
        open(&url).map_err(|e| Error::Environment {
            message: format!("cannot open a browser: {e}"),
            hint: Some("open the URL above yourself".into()),
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens `url` with the desktop's opener (`$BROWSER` first).
fn open(url: &str) -> std::io::Result<()> {
    let opener = std::env::var("BROWSER").ok().filter(|b| !b.is_empty());
    let candidates: Vec<String> = opener
        .into_iter()
        .chain(["xdg-open", "open"].map(String::from))
        .collect();
    for c in &candidates {
        match std::process::Command::new(c)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "none of {} is installed (set $BROWSER)",
        candidates.join(", ")
    )))
}
