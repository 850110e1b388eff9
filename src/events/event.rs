//! What the supervisor tells the rest of the tool: per-service status (published on a
//! watch channel) and events (state changes, in order).

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a service is in its life (the `state` of `stack ps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    /// Waiting for its dependencies, or not started yet.
    Created,
    /// Being started (or restarted after a back-off).
    Starting,
    /// Its process or container runs.
    Running,
    /// It ended on its own.
    Exited,
    /// It could not start, a dependency failed, or restarts ran out.
    Failed,
    /// `stack` stopped it.
    Stopped,
}

/// The `health` of `stack ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Health {
    /// No health check.
    None,
    /// Checks have not passed yet.
    Starting,
    /// The last checks passed.
    Healthy,
    /// Checks failed `retries` times in a row (or the start budget ran out).
    Unhealthy,
}

/// A service's current status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Status {
    /// Life state.
    pub state: State,
    /// Health.
    pub health: Health,
    /// The process (group leader) pid.
    pub pid: Option<u32>,
    /// The pid's start time in clock ticks since boot (identifies it across pid reuse).
    pub pid_start: Option<u64>,
    /// The container id, for containers.
    pub container_id: Option<String>,
    /// When the current run started.
    pub started_at: Option<Timestamp>,
    /// How many times it was restarted.
    pub restarts: u32,
    /// The exit code of the last run.
    pub exit_code: Option<i32>,
    /// Why it failed, exited or was last restarted.
    pub reason: Option<String>,
    /// Why the current run was started, when not by `up`: `restart requested`,
    /// `start requested`, `restart policy: exited with exit code 1`.
    #[serde(default)]
    pub start_reason: Option<String>,
    /// No further run will happen without a command (`start`/`restart`).
    pub settled: bool,
    /// How many restarts and new definitions it has taken in: the dispatcher waits for
    /// this to pass a number to know a rollout step has begun.
    #[serde(default)]
    pub generation: u64,
}

impl Status {
    /// The status before anything happened.
    pub(crate) fn created(has_health: bool) -> Status {
        Status {
            state: State::Created,
            health: if has_health {
                Health::Starting
            } else {
                Health::None
            },
            pid: None,
            pid_start: None,
            container_id: None,
            started_at: None,
            restarts: 0,
            exit_code: None,
            reason: None,
            start_reason: None,
            settled: false,
            generation: 0,
        }
    }

    /// Whether it is down for good (nothing of it runs, nothing will without a command).
    pub(crate) fn is_down(&self) -> bool {
        matches!(self.state, State::Exited | State::Failed | State::Stopped) && self.settled
    }
}

/// Something that happened to a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum EventKind {
    /// Waiting for these dependencies.
    Waiting {
        /// Their names.
        on: Vec<String>,
    },
    /// Being started.
    Starting,
    /// Preparing what it needs (an image being pulled or built…).
    Preparing {
        /// What is happening.
        detail: String,
    },
    /// Running.
    Started {
        /// Process pid.
        pid: Option<u32>,
        /// Container id.
        container_id: Option<String>,
    },
    /// Its health check passed.
    Healthy {
        /// Time from start to the first passing check.
        #[serde(with = "millis")]
        after: Duration,
    },
    /// Its health check failed.
    Unhealthy {
        /// The last failure.
        reason: String,
        /// During start (the start budget ran out) rather than later.
        starting: bool,
    },
    /// It ended.
    Exited {
        /// Exit code, if it exited.
        code: Option<i32>,
        /// Signal, if it was killed.
        signal: Option<i32>,
    },
    /// It will be started again after `delay`.
    Restarting {
        /// Restart number.
        attempt: u32,
        /// Back-off before the restart.
        #[serde(with = "millis")]
        delay: Duration,
        /// Why.
        reason: String,
    },
    /// Being stopped.
    Stopping,
    /// Stopped by `stack`.
    Stopped,
    /// It took in a new definition (reconcile).
    Redefined {
        /// Why it restarts with it; `None`: it applies from its next start.
        why: Option<String>,
    },
    /// Files it watches changed.
    Watch {
        /// What is done (`restart`, `sync`, `sync+restart`, `rebuild`).
        action: crate::config::WatchAction,
        /// The changed files, relative to the stack file.
        files: Vec<String>,
    },
    /// It could not start or gave up.
    Failed {
        /// Why.
        reason: String,
        /// The dependency whose failure caused this one, if that is the cause.
        dependency: Option<String>,
    },
}

/// An event with its service and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Event {
    /// The service.
    pub service: String,
    /// When.
    pub at: Timestamp,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

mod millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventKind::Waiting { on } => write!(f, "waiting for {}", on.join(", ")),
            EventKind::Starting => f.write_str("starting"),
            EventKind::Preparing { detail } => f.write_str(detail),
            EventKind::Started { pid: Some(pid), .. } => write!(f, "running (pid {pid})"),
            EventKind::Started {
                container_id: Some(id),
                ..
            } => write!(f, "running (container {})", &id[..id.len().min(12)]),
            EventKind::Started { .. } => f.write_str("running"),
            EventKind::Healthy { after } => write!(f, "healthy after {}", ms(*after)),
            EventKind::Unhealthy { reason, .. } => write!(f, "unhealthy: {reason}"),
            EventKind::Exited { code: Some(c), .. } => write!(f, "exited with code {c}"),
            EventKind::Exited {
                signal: Some(s), ..
            } => write!(f, "killed by {}", crate::config::StopSignal(*s).name()),
            EventKind::Exited { .. } => f.write_str("exited"),
            EventKind::Restarting {
                attempt,
                delay,
                reason,
            } => write!(
                f,
                "{reason}; restarting in {} (restart {attempt})",
                ms(*delay)
            ),
            EventKind::Stopping => f.write_str("stopping"),
            EventKind::Stopped => f.write_str("stopped"),
            EventKind::Failed { reason, .. } => write!(f, "failed: {reason}"),
            EventKind::Redefined { why: Some(why) } => write!(f, "restarting ({why})"),
            EventKind::Redefined { why: None } => {
                f.write_str("definition updated (applies from its next start)")
            }
            EventKind::Watch { action, files } => {
                let what = match action {
                    crate::config::WatchAction::Restart => "restarting",
                    crate::config::WatchAction::Sync => "syncing",
                    crate::config::WatchAction::SyncRestart => "syncing and restarting",
                    crate::config::WatchAction::Rebuild => "rebuilding",
                };
                write!(f, "{what} ({} changed)", files_summary(files))
            }
        }
    }
}

/// `src/app.py`, `src/app.py and 2 more`.
pub(crate) fn files_summary(files: &[String]) -> String {
    match files {
        [] => "files".to_string(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}

fn ms(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
