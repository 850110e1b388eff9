//! Live progress of `stack up`: a spinner per service on a terminal, one plain line per
//! state change otherwise; the URL table (or the `ps` JSON document) once everything is
//! ready; the error with the failing service's last log lines.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::{Console, error_label, paint, service_style, table};
use crate::events::report::PsDocument;
use crate::events::{Event, EventKind};
use crate::logs;
use crate::plan::Plan;
use crate::supervisor::Observer;

/// How many log lines accompany a failure.
pub(crate) const TAIL_LINES: usize = 20;

/// The foreground observer.
pub(crate) struct Progress {
    console: Console,
    plan: std::sync::Arc<Plan>,
    json: bool,
    bars: HashMap<String, ProgressBar>,
    width: usize,
    up: bool,
    /// Print the table on stderr (`stack run`: stdout is the command's).
    table_on_stderr: bool,
}

impl Progress {
    /// Shows the services of `plan`; `json` prints the `ps` document instead of the table.
    pub(crate) fn new(console: Console, plan: std::sync::Arc<Plan>, json: bool) -> Progress {
        let width = plan
            .services
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
        let mut bars = HashMap::new();
        if let Some(multi) = console.spinners() {
            let style = ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✔");
            for s in &plan.services {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(paint(
                    console.err_color(),
                    service_style(&s.name),
                    &format!("{:<width$}", s.name),
                ));
                bar.set_message("created");
                bar.enable_steady_tick(Duration::from_millis(80));
                bars.insert(s.name.clone(), bar);
            }
        }
        Progress {
            console,
            plan,
            json,
            bars,
            width,
            up: false,
            table_on_stderr: false,
        }
    }

    /// Prints the ready table on stderr rather than stdout.
    pub(crate) fn table_on_stderr(mut self) -> Progress {
        self.table_on_stderr = true;
        self
    }

    fn line(&self, service: &str, message: &str) {
        if self.console.quiet() {
            return;
        }
        let name = paint(
            self.console.err_color(),
            service_style(service),
            &format!("{service:<w$}", w = self.width),
        );
        self.console.err(&format!("{name}  {message}\n"));
    }

    /// Takes the spinners off the screen for good, leaving each one's last state as a plain
    /// line, in the plan's order: what follows (the URL table, an error) comes after them,
    /// and no spinner is drawn again below it.
    fn settle(&mut self, mark: impl Fn(&str) -> &'static str) {
        let mut lines = String::new();
        for s in &self.plan.services {
            if let Some(bar) = self.bars.remove(&s.name) {
                lines.push_str(&format!(
                    "{} {} {}\n",
                    mark(&s.name),
                    bar.prefix(),
                    bar.message()
                ));
                bar.finish_and_clear();
            }
        }
        if !lines.is_empty() && !self.console.quiet() {
            self.console.err(&lines);
        }
    }

    /// The log file of a service.
    fn log_path(&self, service: &str) -> PathBuf {
        logs::path(&self.plan.state_dir(), service)
    }
}

/// One line describing an event.
pub(crate) fn describe(kind: &EventKind) -> String {
    kind.to_string()
}

impl Observer for Progress {
    fn event(&mut self, event: &Event) {
        let message = describe(&event.kind);
        match (self.up, self.bars.get(&event.service)) {
            (false, Some(bar)) => match &event.kind {
                EventKind::Healthy { .. } => bar.finish_with_message(paint(
                    self.console.err_color(),
                    anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Green.into())),
                    &message,
                )),
                EventKind::Failed { .. } | EventKind::Unhealthy { starting: true, .. } => {
                    bar.abandon_with_message(paint(
                        self.console.err_color(),
                        anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Red.into())),
                        &message,
                    ));
                }
                _ => bar.set_message(message),
            },
            _ => self.line(&event.service, &message),
        }
    }

    fn ready(&mut self, doc: &PsDocument) {
        self.up = true;
        self.settle(|_| "✔");
        if self.json {
            match serde_json::to_string_pretty(doc) {
                Ok(j) => self.console.out(&format!("{j}\n")),
                Err(e) => self.console.err(&format!("cannot print JSON: {e}\n")),
            }
        } else if self.table_on_stderr {
            if !self.console.quiet() {
                self.console
                    .err(&table::render(doc, self.console.err_color()));
            }
        } else {
            self.console
                .out(&table::render(doc, self.console.out_color()));
        }
    }

    fn failed(&mut self, service: Option<&str>, message: &str, _code: u8) {
        self.settle(|s| if Some(s) == service { "✘" } else { "·" });
        self.up = true;
        let mut text = format!("{} {message}\n", error_label(self.console.err_color()));
        if let Some(s) = service {
            let tail = logs::tail(s, &self.log_path(s), TAIL_LINES);
            if !tail.is_empty() {
                text.push_str(&format!(
                    "last lines of `{s}` ({}):\n",
                    self.log_path(s).display()
                ));
                for l in tail {
                    text.push_str(&format!("  {} {}\n", l.stream.tag(), l.text));
                }
            }
        }
        self.console.err(&text);
    }

    fn stopping(&mut self, kill: bool) {
        if self.console.quiet() {
            return;
        }
        self.up = true;
        let msg = if kill {
            "killing every service now\n"
        } else {
            "stopping (press Ctrl-C again to kill at once)\n"
        };
        self.console.err(msg);
    }
}
