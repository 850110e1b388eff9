//! Resumable SSE streams (SEP-1699): every event `/mcp` sends on a stream is kept for a
//! while, under an id the client gets with it, so a client whose connection dropped
//! reconnects with `Last-Event-ID` and receives what it missed, even when the request
//! finished meanwhile (rmcp's own cache forgets a request's stream once it answered).
//! In memory and bounded: the newest [`MAX_EVENTS`] events of streams used within [`TTL`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream,
};

/// How many events are kept in all.
const MAX_EVENTS: usize = 4096;
/// How long a stream nobody wrote to is kept.
const TTL: Duration = Duration::from_secs(120);

/// The events of recent streams.
#[derive(Debug, Default)]
pub(super) struct Events {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<String, Stream>,
    /// Stream ids, oldest first (the eviction order).
    order: VecDeque<String>,
    total: usize,
}

#[derive(Debug)]
struct Stream {
    events: Vec<ServerSseMessage>,
    touched: Instant,
}

/// An event id: `<stream id>/<index in the stream>`. Stream ids are rmcp's (the session
/// id and a request number, or a random UUID for a stateless request): not guessable by
/// another client.
fn event_id(stream: &str, index: usize) -> String {
    format!("{stream}/{index}")
}

impl Inner {
    fn evict(&mut self, now: Instant) {
        while let Some(oldest) = self.order.front() {
            let stale = self
                .streams
                .get(oldest)
                .is_none_or(|s| now.duration_since(s.touched) > TTL);
            if !stale && self.total <= MAX_EVENTS {
                break;
            }
            if let Some(id) = self.order.pop_front()
                && let Some(s) = self.streams.remove(&id)
            {
                self.total -= s.events.len();
            }
        }
    }
}

#[async_trait::async_trait]
impl EventStore for Events {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        let now = Instant::now();
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| "the event store is poisoned")?;
        if !inner.streams.contains_key(stream_id) {
            inner.order.push_back(stream_id.to_string());
        }
        let stream = inner
            .streams
            .entry(stream_id.to_string())
            .or_insert_with(|| Stream {
                events: Vec::new(),
                touched: now,
            });
        let id = event_id(stream_id, stream.events.len());
        let mut kept = event.clone();
        kept.event_id = Some(id.clone());
        stream.events.push(kept);
        stream.touched = now;
        inner.total += 1;
        inner.evict(now);
        Ok(id)
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        let (stream, index) = last_event_id
            .rsplit_once('/')
            .and_then(|(s, i)| Some((s, i.parse::<usize>().ok()?)))
            .ok_or_else(|| format!("`{last_event_id}` is not an event id of this server"))?;
        let inner = self
            .inner
            .lock()
            .map_err(|_| "the event store is poisoned")?;
        let s = inner
            .streams
            .get(stream)
            .ok_or_else(|| format!("the stream of event `{last_event_id}` is no longer kept"))?;
        let after: Vec<ServerSseMessage> = s.events.iter().skip(index + 1).cloned().collect();
        Ok(Box::pin(futures::stream::iter(after)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn priming() -> ServerSseMessage {
        ServerSseMessage::retry(Duration::from_secs(1))
    }

    #[tokio::test]
    async fn replays_only_later_events_of_the_same_stream() {
        let store = Events::default();
        let a0 = store.store_event("s:1", &priming()).await.expect("store");
        let _b0 = store.store_event("s:2", &priming()).await.expect("store");
        let a1 = store.store_event("s:1", &priming()).await.expect("store");
        let replayed: Vec<_> = store
            .replay_events_after(&a0)
            .await
            .expect("replay")
            .collect()
            .await;
        let ids: Vec<_> = replayed.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(ids, vec![Some(a1.clone())]);
        let none: Vec<_> = store
            .replay_events_after(&a1)
            .await
            .expect("replay")
            .collect()
            .await;
        assert!(none.is_empty());
        assert!(store.replay_events_after("nonsense").await.is_err());
        assert!(store.replay_events_after("s:9/0").await.is_err());
    }

    #[tokio::test]
    async fn keeps_at_most_max_events() {
        let store = Events::default();
        for i in 0..(MAX_EVENTS + 10) {
            store
                .store_event(&format!("s:{i}"), &priming())
                .await
                .expect("store");
        }
        let inner = store.inner.lock().expect("lock");
        assert!(inner.total <= MAX_EVENTS && inner.streams.len() <= MAX_EVENTS);
        assert!(!inner.streams.contains_key("s:0"));
    }
}
