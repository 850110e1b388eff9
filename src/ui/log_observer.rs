//! The observer of a detached supervisor: one line per event in `supervisor.log`.

use jiff::Timestamp;

use crate::events::Event;
use crate::events::report::PsDocument;
use crate::supervisor::Observer;

/// The observer of a detached supervisor: one line per event in `supervisor.log`.
#[derive(Debug, Default)]
pub(crate) struct LogObserver;

impl Observer for LogObserver {
    fn event(&mut self, event: &Event) {
        eprintln!("{} {}: {}", event.at, event.service, event.kind);
    }

    fn ready(&mut self, doc: &PsDocument) {
        eprintln!(
            "{} every service is ready ({})",
            Timestamp::now(),
            doc.services.len()
        );
    }

    fn failed(&mut self, service: Option<&str>, message: &str, code: u8) {
        let _ = service;
        eprintln!("{} error: {message} (exit code {code})", Timestamp::now());
    }

    fn stopping(&mut self, kill: bool) {
        let how = if kill { "killing" } else { "stopping" };
        eprintln!("{} {how} every service", Timestamp::now());
    }
}
