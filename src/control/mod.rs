//! The supervisor's control socket: JSON lines over a Unix socket in the project's state
//! folder. One request per connection; `subscribe` streams messages until the client goes.

pub(crate) mod client;
pub(crate) mod server;

use serde::{Deserialize, Serialize};

use crate::config::WatchAction;
use crate::events::Event;
use crate::events::diff::Change;
use crate::events::report::PsDocument;
use crate::plan::Plan;

/// What a client asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum Request {
    /// The `ps` document.
    Ps,
    /// Stop everything and exit; answered once every service is down.
    Down {
        /// Overrides every service's `stop_timeout`.
        timeout_ms: Option<u64>,
    },
    /// Stop these services; answered once they are down.
    Stop {
        /// Service names.
        services: Vec<String>,
    },
    /// Start these (stopped) services; answered at once.
    Start {
        /// Service names.
        services: Vec<String>,
    },
    /// Restart these services; answered at once.
    Restart {
        /// Service names.
        services: Vec<String>,
    },
    /// Stream events: first a `ps` snapshot, then every event as it happens.
    Subscribe,
    /// Run this plan from now on (reconcile, SPEC §3.1): answered with what changed once
    /// it is ready again, or at once with `dry_run`.
    Reconcile {
        /// The plan of the edited stack file.
        plan: Box<Plan>,
        /// Say what would change; change nothing.
        #[serde(default)]
        dry_run: bool,
        /// Restart every service the plan keeps, changed or not.
        #[serde(default)]
        force: bool,
        /// The services the stack file still has: a running one the plan does not select
        /// (`up SERVICE…`, another `--profile`) is left alone; only the others are removed.
        #[serde(default)]
        keep: Vec<String>,
    },
    /// Files a service watches changed: its rule's action (the files are already copied
    /// for a `sync`); answered once what it restarts is ready again.
    Watch {
        /// The service.
        service: String,
        /// What the rule does.
        action: WatchAction,
        /// The changed files, relative to the stack file.
        files: Vec<String>,
        /// Restart its dependents too.
        #[serde(default)]
        cascade: bool,
    },
}

/// What the supervisor answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Message {
    /// The `ps` document.
    Ps(PsDocument),
    /// Done.
    Ok,
    /// The request could not be carried out.
    Error {
        /// Why.
        message: String,
    },
    /// A service event.
    Event(Event),
    /// Every service is ready.
    Ready(PsDocument),
    /// The stack cannot come up.
    Failed {
        /// The service whose log explains it.
        service: Option<String>,
        /// What happened.
        message: String,
        /// The exit code (SPEC §2).
        code: u8,
    },
    /// The stack is being stopped.
    Stopping,
    /// What a reconcile changed (or would, with `dry_run`).
    Reconciled {
        /// Per service.
        changes: Vec<Change>,
        /// Services that failed to come back.
        #[serde(default)]
        failed: Vec<String>,
    },
}
