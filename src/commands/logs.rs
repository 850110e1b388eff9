//! `stack logs`: the log files merged by time; works whether or not the stack runs.

use std::process::ExitCode;
use std::time::Duration;

use jiff::Timestamp;

use crate::cli::{GlobalArgs, LogsArgs};
use crate::error::{Error, Result};
use crate::logs::{self, Follower, Line};
use crate::ui::{Console, logstream};

pub(crate) fn run(global: &GlobalArgs, args: LogsArgs) -> Result<ExitCode> {
    let project = super::project::locate(global)?;
    let dir = project.state.logs_dir();
    let mut services = logs::services_in(&dir);
    if !args.services.is_empty() {
        for s in &args.services {
            if !services.contains(s) {
                return Err(Error::input(
                    format!("no logs for `{s}` in {}", dir.display()),
                    Some("a service has logs once it has been started by `stack up`"),
                ));
            }
        }
        services.retain(|s| args.services.contains(s));
    }
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let console = Console::new(global);
    let width = services.iter().map(String::len).max().unwrap_or(0);

    // What is there now: per service, filtered by time, the last N; then merged by time.
    let mut lines: Vec<Line> = Vec::new();
    let mut followers = Vec::new();
    for s in &services {
        let path = logs::path(&project.state.dir, s);
        let mut f = Follower::new(s, &path, 0);
        let mut own: Vec<Line> = f.read_new();
        if let Some(t) = &since {
            own.retain(|l| l.time.as_str() >= t.as_str());
        }
        if let Some(n) = args.tail {
            own.drain(..own.len().saturating_sub(n));
        }
        lines.extend(own);
        followers.push(f);
    }
    // Times have a fixed width, so text order is time order; the sort is stable.
    lines.sort_by(|a, b| a.time.cmp(&b.time));
    print_lines(&console, &lines, width, args.json);
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let rt = super::runtime()?;
    rt.block_on(async {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let mut new: Vec<Line> = followers.iter_mut().flat_map(Follower::read_new).collect();
            new.sort_by(|a, b| a.time.cmp(&b.time));
            print_lines(&console, &new, width, args.json);
        }
    });
    Ok(ExitCode::SUCCESS)
}

fn print_lines(console: &Console, lines: &[Line], width: usize, json: bool) {
    if lines.is_empty() {
        return;
    }
    let mut out = String::new();
    for l in lines {
        if json {
            if let Ok(j) = serde_json::to_string(l) {
                out.push_str(&j);
                out.push('\n');
            }
        } else {
            out.push_str(&logstream::format_line(console, l, width));
        }
    }
    console.out(&out);
}

/// `--since`: a duration back from now (`5m`) or an RFC 3339 time; returned in the log
/// files' format, for text comparison.
pub(super) fn parse_since(s: &str) -> Result<String> {
    let t = match crate::config::raw::parse_duration(s) {
        Ok(d) => {
            let span =
                jiff::SignedDuration::try_from(d).map_err(|e| Error::input(e.to_string(), None))?;
            Timestamp::now()
                .checked_sub(span)
                .map_err(|e| Error::input(e.to_string(), None))?
        }
        Err(_) => s.parse::<Timestamp>().map_err(|_| {
            Error::input(
                format!("`{s}` is neither a duration nor a time"),
                Some("write e.g. `--since 5m`, `--since 1h30m` or `--since 2026-11-24T10:00:00Z`"),
            )
        })?,
    };
    Ok(t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}
