//! What a reconcile changes (SPEC §3.1): per service, added, removed, changed (and which
//! fields), recreated, or unchanged. `stack up --dry-run` prints it.

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, ServicePlan};

/// One service's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Change {
    /// The service.
    pub service: String,
    /// What happens to it.
    pub kind: ChangeKind,
    /// The fields that differ (`env.LOG_LEVEL`, `config.keys`), for `changed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// What a reconcile does to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChangeKind {
    /// New in the stack file: started.
    Added,
    /// Gone from the stack file: stopped.
    Removed,
    /// What defines it changed: restarted with the new definition.
    Changed,
    /// Unchanged but restarted all the same (`--force-recreate`).
    Recreated,
    /// Left running as it is.
    Unchanged,
}

/// The changes from `old` to `new`, in `new`'s order then the ones `new` does not have:
/// removed, unless `keep` names them (the stack file still has them, and this `up` did
/// not select them). With `force`, every service `new` has is recreated.
pub(crate) fn diff(old: &Plan, new: &Plan, keep: &[String], force: bool) -> Vec<Change> {
    let mut changes: Vec<Change> = new
        .services
        .iter()
        .map(|s| match old.service(&s.name) {
            None => change(s, ChangeKind::Added, Vec::new()),
            Some(o) => {
                let fields = o.fingerprint.changes(&s.fingerprint);
                match (fields.is_empty(), force) {
                    (false, _) => change(s, ChangeKind::Changed, fields),
                    (true, true) => change(s, ChangeKind::Recreated, Vec::new()),
                    (true, false) => change(s, ChangeKind::Unchanged, Vec::new()),
                }
            }
        })
        .collect();
    for o in &old.services {
        if new.service(&o.name).is_none() {
            let kind = if keep.contains(&o.name) {
                ChangeKind::Unchanged
            } else {
                ChangeKind::Removed
            };
            changes.push(change(o, kind, Vec::new()));
        }
    }
    changes
}

fn change(s: &ServicePlan, kind: ChangeKind, fields: Vec<String>) -> Change {
    Change {
        service: s.name.clone(),
        kind,
        fields,
    }
}

impl Change {
    /// Why the service restarts, for `ps` (`reconcile: env.LOG_LEVEL changed`).
    pub(crate) fn reason(&self) -> Option<String> {
        Some(match self.kind {
            ChangeKind::Added => "reconcile: added".to_string(),
            ChangeKind::Recreated => "reconcile: --force-recreate".to_string(),
            ChangeKind::Changed => format!("reconcile: {} changed", summary(&self.fields)),
            ChangeKind::Removed | ChangeKind::Unchanged => return None,
        })
    }
}

/// `env.A, env.B, config.keys and 2 more`.
fn summary(fields: &[String]) -> String {
    const SHOWN: usize = 3;
    let head = fields[..fields.len().min(SHOWN)].join(", ");
    match fields.len().saturating_sub(SHOWN) {
        0 => head,
        more => format!("{head} and {more} more"),
    }
}

impl std::fmt::Display for Change {
    /// `+ api`, `- worker`, `~ gateway (env.LOG_LEVEL, config.keys)`, `= model`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = &self.service;
        match self.kind {
            ChangeKind::Added => write!(f, "+ {name}"),
            ChangeKind::Removed => write!(f, "- {name}"),
            ChangeKind::Changed => write!(f, "~ {name} ({})", self.fields.join(", ")),
            ChangeKind::Recreated => write!(f, "~ {name} (--force-recreate)"),
            ChangeKind::Unchanged => write!(f, "= {name}"),
        }
    }
}
