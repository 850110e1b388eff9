//! `resources/subscribe`: MCP sessions watching `context://sessions` or one session, told
//! (`notifications/resources/updated`) whenever a write changes it — through MCP or REST.

use std::sync::Mutex;

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::{Peer, RoleServer};

struct Subscription {
    uri: String,
    session: String,
    peer: Peer<RoleServer>,
}

/// The current subscriptions.
#[derive(Default)]
pub(super) struct Subscribers {
    list: Mutex<Vec<Subscription>>,
}

impl std::fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscribers")
    }
}

impl Subscribers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscription>> {
        self.list
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// MCP session `session` watches `uri`.
    pub(super) fn add(&self, uri: String, session: String, peer: Peer<RoleServer>) {
        let mut list = self.lock();
        if !list.iter().any(|s| s.uri == uri && s.session == session) {
            list.push(Subscription { uri, session, peer });
        }
    }

    /// MCP session `session` stops watching `uri`.
    pub(super) fn remove(&self, uri: &str, session: &str) {
        self.lock()
            .retain(|s| !(s.uri == uri && s.session == session));
    }

    /// Tells every watcher of `context_session` (and of the session list) that it changed;
    /// watchers whose transport is gone are dropped.
    pub(super) async fn changed(&self, context_session: &str) {
        let one = format!("context://sessions/{context_session}");
        let targets: Vec<(String, Peer<RoleServer>)> = self
            .lock()
            .iter()
            .filter(|s| s.uri == one || s.uri == "context://sessions")
            .map(|s| (s.uri.clone(), s.peer.clone()))
            .collect();
        if targets.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        for (uri, peer) in targets {
            if peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri.clone()))
                .await
                .is_err()
            {
                gone.push(uri);
            }
        }
        if !gone.is_empty() {
            self.lock()
                .retain(|s| !(gone.contains(&s.uri) && s.peer.is_transport_closed()));
        }
    }
}
