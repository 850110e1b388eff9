//! The context store: SQLite (WAL) for durability ([`db`]), and every session in memory
//! for fast retrieval ([`index`]: entries with their token counts and term frequencies),
//! the memory updated after the database on every write. On PostgreSQL ([`pg`]) several
//! replicas share one store; [`Backend`] is what the server calls, whichever it is.
//!
//! A write is committed (and, with `durability: full`, fsynced) before it is acknowledged,
//! so it survives kill -9. Writes are serialised on one connection; reads never touch the
//! database. Sessions are isolated: each has its own entries and lock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::config::Durability;
use super::tokens;

mod db;
mod index;
mod pg;

use db::{Db, Row};
pub(super) use index::{Entry, Session, terms};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub(super) enum StoreError {
    /// No such session.
    #[error("no session `{0}`")]
    UnknownSession(String),
    /// No such entry.
    #[error("no entry `{entry}` in session `{session}`")]
    UnknownEntry {
        /// The session.
        session: String,
        /// The entry.
        entry: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("database error: {0}")]
    Postgres(String),
    /// The blocking task of a write failed.
    #[error("the store task failed: {0}")]
    Task(String),
}

/// What a write reports.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(super) struct Stored {
    /// The entry id.
    pub id: String,
    /// The session.
    pub session_id: String,
    /// Tokens of the content.
    pub tokens: u32,
}

/// What a prune reports.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(super) struct Pruned {
    /// The session.
    pub session_id: String,
    /// Entries removed.
    pub removed: usize,
    /// Entries left.
    pub remaining: usize,
    /// Tokens left.
    pub tokens: u64,
}

/// A line of `list_sessions`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(super) struct SessionInfo {
    /// The session id.
    pub id: String,
    /// Its entries.
    pub entries: usize,
    /// Their tokens.
    pub tokens: u64,
    /// First write.
    pub created_at: String,
    /// Last write.
    pub updated_at: String,
}

/// The store.
#[derive(Debug)]
pub(super) struct Store {
    db: Db,
    sessions: RwLock<HashMap<String, Arc<RwLock<Session>>>>,
    ids: AtomicU64,
}

impl Store {
    /// Opens (creating) the database at `path` and loads every session.
    pub(super) fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let db = Db::open(path, durability)?;
        let mut sessions: HashMap<String, Session> = HashMap::new();
        let count = db.load(|row| {
            let s = sessions.entry(row.session_id).or_default();
            let (terms, length) = s.index(&row.content);
            s.push(Entry {
                id: row.id,
                seq: row.seq,
                role: row.role,
                metadata: row.metadata.and_then(|m| serde_json::from_str(&m).ok()),
                content: row.content,
                tokens: row.tokens,
                created_at: row.created_at,
                terms,
                length,
            });
        })?;
        Ok(Store {
            db,
            sessions: RwLock::new(
                sessions
                    .into_iter()
                    .map(|(k, v)| (k, Arc::new(RwLock::new(v))))
                    .collect(),
            ),
            ids: AtomicU64::new(count),
        })
    }

    /// The session, if it exists.
    pub(super) fn session(&self, id: &str) -> Option<Arc<RwLock<Session>>> {
        self.sessions.read().ok()?.get(id).cloned()
    }

    fn existing(&self, id: &str) -> Result<Arc<RwLock<Session>>, StoreError> {
        self.session(id)
            .ok_or_else(|| StoreError::UnknownSession(id.to_string()))
    }

    fn session_or_new(&self, id: &str) -> Arc<RwLock<Session>> {
        if let Some(s) = self.session(id) {
            return s;
        }
        let mut map = match self.sessions.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(id.to_string()).or_default().clone()
    }

    fn new_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let micros = Timestamp::now().as_microsecond();
        format!("ent_{micros:013x}{n:05x}")
    }

    /// Stores a turn; durable when this returns.
    pub(super) fn append(
        &self,
        session_id: &str,
        role: &str,
        content: &str,
        metadata: Option<Value>,
    ) -> Result<Stored, StoreError> {
        let session = self.session_or_new(session_id);
        // The session's write lock orders its writes; the database serialises its own.
        let mut s = write(&session);
        let row = Row {
            id: self.new_id(),
            session_id: session_id.to_string(),
            seq: s.next_seq(),
            role: role.to_string(),
            content: content.to_string(),
            metadata: metadata.as_ref().map(Value::to_string),
            tokens: tokens::count(content),
            created_at: now(),
        };
        self.db.insert(&row)?;
        let (terms, length) = s.index(content);
        let stored = Stored {
            id: row.id.clone(),
            session_id: row.session_id,
            tokens: row.tokens,
        };
        s.push(Entry {
            id: row.id,
            seq: row.seq,
            role: row.role,
            content: row.content,
            metadata,
            tokens: row.tokens,
            created_at: row.created_at,
            terms,
            length,
        });
        Ok(stored)
    }

    /// Replaces an entry's content.
    pub(super) fn update(
        &self,
        session_id: &str,
        entry_id: &str,
        content: &str,
    ) -> Result<Stored, StoreError> {
        let session = self.existing(session_id)?;
        let mut s = write(&session);
        let idx = s
            .entries
            .iter()
            .position(|e| e.id == entry_id)
            .ok_or_else(|| StoreError::UnknownEntry {
                session: session_id.to_string(),
                entry: entry_id.to_string(),
            })?;
        let tokens = tokens::count(content);
        self.db.update(entry_id, content, tokens)?;
        s.replace(idx, content, tokens, now());
        Ok(Stored {
            id: entry_id.to_string(),
            session_id: session_id.to_string(),
            tokens,
        })
    }

    /// Removes the oldest entries: keeping the last `keep_last`, or as many of the newest
    /// as fit in `max_tokens` (the newest always stays).
    pub(super) fn prune(
        &self,
        session_id: &str,
        max_tokens: Option<u64>,
        keep_last: Option<usize>,
    ) -> Result<Pruned, StoreError> {
        let session = self.existing(session_id)?;
        let mut s = write(&session);
        let cut = s.entries.len() - s.keep_count(max_tokens, keep_last);
        if cut > 0 {
            self.db.delete_through(session_id, s.entries[cut - 1].seq)?;
        }
        s.cut(cut, now());
        Ok(Pruned {
            session_id: session_id.to_string(),
            removed: cut,
            remaining: s.entries.len(),
            tokens: s.tokens(),
        })
    }

    /// Deletes a session and its entries; returns how many entries it had.
    pub(super) fn delete(&self, session_id: &str) -> Result<usize, StoreError> {
        let existed = self.existing(session_id)?;
        self.db.delete_session(session_id)?;
        let n = read(&existed).entries.len();
        if let Ok(mut map) = self.sessions.write() {
            map.remove(session_id);
        }
        Ok(n)
    }

    /// Every session, by id.
    pub(super) fn list(&self) -> Vec<SessionInfo> {
        let map = match self.sessions.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let mut out: Vec<SessionInfo> = map
            .iter()
            .map(|(id, s)| {
                let s = read(s);
                SessionInfo {
                    id: id.clone(),
                    entries: s.entries.len(),
                    tokens: s.tokens(),
                    created_at: s.created_at.clone(),
                    updated_at: s.updated_at.clone(),
                }
            })
            .filter(|s| s.entries > 0)
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Whether the database answers (for `/health`).
    pub(super) fn ping(&self) -> bool {
        self.db.ping()
    }
}

/// The store the server runs on: SQLite (one process), or PostgreSQL (`db: postgres://…`,
/// shared by replicas). Writes to SQLite run off the async threads.
#[derive(Debug, Clone)]
pub(super) enum Backend {
    /// One process's SQLite file, every session in memory.
    Sqlite(Arc<Store>),
    /// A PostgreSQL database, sessions in memory as they are read.
    Postgres(Arc<pg::PgStore>),
}

/// Whether `db` names a PostgreSQL database rather than an SQLite file.
pub(crate) fn is_postgres(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

impl Backend {
    /// Opens the store `db` names: a PostgreSQL URL, else an SQLite file.
    pub(super) async fn open(db: &Path, durability: Durability) -> Result<Backend, String> {
        match db.to_str().filter(|d| is_postgres(d)) {
            Some(url) => Ok(Backend::Postgres(Arc::new(pg::PgStore::open(url).await?))),
            None => Store::open(db, durability)
                .map(|s| Backend::Sqlite(Arc::new(s)))
                .map_err(|e| format!("cannot open the context database `{}`: {e}", db.display())),
        }
    }

    /// Stores a turn; durable when this returns.
    pub(super) async fn append(
        &self,
        session: String,
        role: String,
        content: String,
        metadata: Option<Value>,
    ) -> Result<Stored, StoreError> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.append(&session, &role, &content, metadata)).await
            }
            Backend::Postgres(p) => p.append(&session, &role, &content, metadata).await,
        }
    }

    /// Replaces an entry's content.
    pub(super) async fn update(
        &self,
        session: String,
        entry: String,
        content: String,
    ) -> Result<Stored, StoreError> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.update(&session, &entry, &content)).await
            }
            Backend::Postgres(p) => p.update(&session, &entry, &content).await,
        }
    }

    /// Removes a session's oldest entries.
    pub(super) async fn prune(
        &self,
        session: String,
        max_tokens: Option<u64>,
        keep_last: Option<usize>,
    ) -> Result<Pruned, StoreError> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.prune(&session, max_tokens, keep_last)).await
            }
            Backend::Postgres(p) => p.prune(&session, max_tokens, keep_last).await,
        }
    }

    /// Deletes a session; how many entries it had.
    pub(super) async fn delete(&self, session: String) -> Result<usize, StoreError> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.delete(&session)).await
            }
            Backend::Postgres(p) => p.delete(&session).await,
        }
    }

    /// The session as it is now, if it exists.
    pub(super) async fn session(
        &self,
        id: &str,
    ) -> Result<Option<Arc<RwLock<Session>>>, StoreError> {
        match self {
            Backend::Sqlite(s) => Ok(s.session(id)),
            Backend::Postgres(p) => p.session(id).await,
        }
    }

    /// Every session with entries, by id.
    pub(super) async fn list(&self) -> Result<Vec<SessionInfo>, StoreError> {
        match self {
            Backend::Sqlite(s) => Ok(s.list()),
            Backend::Postgres(p) => p.list().await,
        }
    }

    /// Whether the database answers (for `/health`).
    pub(super) async fn ping(&self) -> bool {
        match self {
            Backend::Sqlite(s) => s.ping(),
            Backend::Postgres(p) => p.ping().await,
        }
    }
}

fn now() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Reads a session (a poisoned lock still holds consistent data: writers update memory
/// only after the database).
pub(super) fn read(s: &RwLock<Session>) -> std::sync::RwLockReadGuard<'_, Session> {
    s.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(s: &RwLock<Session>) -> std::sync::RwLockWriteGuard<'_, Session> {
    s.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_updates_prunes_and_reloads() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sub/ctx.db");
        let store = Store::open(&path, Durability::Normal).expect("open");
        for i in 0..5 {
            store
                .append("s1", "user", &format!("turn {i} about rust"), None)
                .expect("append");
        }
        let other = store
            .append("s2", "user", "elsewhere", Some(serde_json::json!({"k": 1})))
            .expect("append");
        let first = read(&store.session("s1").expect("s1")).entries[0]
            .id
            .clone();
        store.update("s1", &first, "changed text").expect("update");
        assert!(matches!(
            store.update("s1", "nope", "x"),
            Err(StoreError::UnknownEntry { .. })
        ));
        let p = store.prune("s1", None, Some(3)).expect("prune");
        assert_eq!((p.removed, p.remaining), (2, 3));
        drop(store);
        let store = Store::open(&path, Durability::Normal).expect("reopen");
        let s1 = store.session("s1").expect("s1");
        let s1 = read(&s1);
        assert_eq!(s1.entries.len(), 3);
        assert_eq!(s1.entries[0].content, "turn 2 about rust");
        let rust = s1.term_id("rust").expect("rust is a term");
        assert_eq!(s1.doc_freq(rust), 3);
        let infos = store.list();
        assert_eq!(infos.len(), 2);
        assert_eq!(store.delete("s2").expect("delete"), 1);
        assert!(store.session("s2").is_none());
        assert!(!other.id.is_empty());
    }

    #[test]
    fn prune_by_budget_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("c.db"), Durability::Normal).expect("open");
        for _ in 0..10 {
            store
                .append("s", "user", "one two three four five six seven eight", None)
                .expect("append");
        }
        let p = store.prune("s", Some(0), None).expect("prune");
        assert_eq!(p.remaining, 1, "the newest turn always stays");
    }
}
