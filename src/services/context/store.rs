//! The context store: SQLite (WAL) for durability, and every session in memory for fast
//! retrieval (entries with their token counts and term frequencies, kept in step with the
//! database on every write).
//!
//! A write is committed (and, with `durability: full`, fsynced) before it is acknowledged,
//! so it survives kill -9. Writes are serialised on one connection; reads never touch the
//! database. Sessions are isolated: each has its own entries and lock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use super::config::Durability;
use super::tokens;

/// One stored turn.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Its id.
    pub id: String,
    /// Order within the session.
    pub seq: i64,
    /// `user`, `assistant`, `system` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Free-form metadata.
    pub metadata: Option<Value>,
    /// Tokens of `content`.
    pub tokens: u32,
    /// When it was stored (RFC 3339).
    pub created_at: String,
    /// Term frequencies for BM25: (term id, count), sorted by id.
    pub terms: Box<[(u32, u16)]>,
    /// Number of terms.
    pub length: u32,
}

impl Entry {
    /// How often term `id` occurs.
    pub(super) fn tf(&self, id: u32) -> u16 {
        self.terms
            .binary_search_by_key(&id, |(t, _)| *t)
            .map_or(0, |i| self.terms[i].1)
    }
}

/// A session in memory.
#[derive(Debug, Default)]
pub(super) struct Session {
    /// Its entries, oldest first.
    pub entries: Vec<Entry>,
    /// When the first entry was stored.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Term ids: each distinct term of the session once.
    vocab: HashMap<Box<str>, u32>,
    /// In how many entries each term (by id) occurs.
    doc_freqs: Vec<u32>,
    /// Sum of entry lengths (terms).
    pub total_length: u64,
    next_seq: i64,
}

impl Session {
    /// The id of `term`, if the session has seen it.
    pub(super) fn term_id(&self, term: &str) -> Option<u32> {
        self.vocab.get(term).copied()
    }

    /// In how many entries term `id` occurs.
    pub(super) fn doc_freq(&self, id: u32) -> u32 {
        self.doc_freqs.get(id as usize).copied().unwrap_or(0)
    }

    /// Term frequencies of `text` with this session's term ids, and its length.
    fn index(&mut self, text: &str) -> (Box<[(u32, u16)]>, u32) {
        let mut counts: HashMap<u32, u16> = HashMap::new();
        let mut n = 0u32;
        for t in terms(text) {
            let next = self.vocab.len() as u32;
            let id = *self.vocab.entry(t.into_boxed_str()).or_insert(next);
            if id as usize >= self.doc_freqs.len() {
                self.doc_freqs.push(0);
            }
            let c = counts.entry(id).or_default();
            *c = c.saturating_add(1);
            n += 1;
        }
        let mut v: Vec<(u32, u16)> = counts.into_iter().collect();
        v.sort_unstable_by_key(|(id, _)| *id);
        (v.into_boxed_slice(), n)
    }

    fn add_terms(&mut self, e: &Entry) {
        for (id, _) in e.terms.iter() {
            if let Some(df) = self.doc_freqs.get_mut(*id as usize) {
                *df += 1;
            }
        }
        self.total_length += u64::from(e.length);
    }

    fn remove_terms(&mut self, e: &Entry) {
        for (id, _) in e.terms.iter() {
            if let Some(df) = self.doc_freqs.get_mut(*id as usize) {
                *df = df.saturating_sub(1);
            }
        }
        self.total_length -= u64::from(e.length);
    }

    /// Tokens of all entries.
    pub(super) fn tokens(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e.tokens)).sum()
    }
}

/// Lower-cased alphanumeric words.
pub(super) fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

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
    writer: Mutex<Connection>,
    sessions: RwLock<HashMap<String, Arc<RwLock<Session>>>>,
    ids: AtomicU64,
}

impl Store {
    /// Opens (creating) the database at `path` and loads every session.
    pub(super) fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        // Checkpoints run on their own thread (see `checkpointer`), never inside a write:
        // an automatic one stalls the commit that triggers it for tens of milliseconds.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS entries (
                 id TEXT PRIMARY KEY,
                 session_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 role TEXT NOT NULL,
                 content TEXT NOT NULL,
                 metadata TEXT,
                 tokens INTEGER NOT NULL,
                 created_at TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS entries_by_session ON entries (session_id, seq);",
        )?;
        let mut sessions: HashMap<String, Session> = HashMap::new();
        {
            let mut stmt = conn.prepare(
                "SELECT id, session_id, seq, role, content, metadata, tokens, created_at
                 FROM entries ORDER BY session_id, seq",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, u32>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })?;
            for row in rows {
                let (id, sid, seq, role, content, metadata, tokens, created_at) = row?;
                let s = sessions.entry(sid).or_default();
                let (terms, length) = s.index(&content);
                let entry = Entry {
                    id,
                    seq,
                    role,
                    metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
                    content,
                    tokens,
                    created_at,
                    terms,
                    length,
                };
                if s.entries.is_empty() {
                    s.created_at = entry.created_at.clone();
                }
                s.updated_at = entry.created_at.clone();
                s.next_seq = entry.seq + 1;
                s.add_terms(&entry);
                s.entries.push(entry);
            }
        }
        let counter = conn
            .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0);
        checkpointer(path)?;
        Ok(Store {
            writer: Mutex::new(conn),
            sessions: RwLock::new(
                sessions
                    .into_iter()
                    .map(|(k, v)| (k, Arc::new(RwLock::new(v))))
                    .collect(),
            ),
            ids: AtomicU64::new(counter as u64),
        })
    }

    /// The session, if it exists.
    pub(super) fn session(&self, id: &str) -> Option<Arc<RwLock<Session>>> {
        self.sessions.read().ok()?.get(id).cloned()
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
        let tokens = tokens::count(content);
        let id = self.new_id();
        let created_at = now();
        let session = self.session_or_new(session_id);
        // The session's write lock orders its writes; the connection lock serialises the
        // database.
        let mut s = write(&session);
        let seq = s.next_seq;
        {
            let conn = lock(&self.writer);
            conn.prepare_cached(
                "INSERT INTO entries (id, session_id, seq, role, content, metadata, tokens, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                id,
                session_id,
                seq,
                role,
                content,
                metadata.as_ref().map(Value::to_string),
                tokens,
                created_at
            ])?;
        }
        let (terms, length) = s.index(content);
        let entry = Entry {
            id: id.clone(),
            seq,
            role: role.to_string(),
            content: content.to_string(),
            metadata,
            tokens,
            created_at: created_at.clone(),
            terms,
            length,
        };
        if s.entries.is_empty() {
            s.created_at = created_at.clone();
        }
        s.updated_at = created_at;
        s.next_seq = seq + 1;
        s.add_terms(&entry);
        s.entries.push(entry);
        Ok(Stored {
            id,
            session_id: session_id.to_string(),
            tokens,
        })
    }

    /// Replaces an entry's content.
    pub(super) fn update(
        &self,
        session_id: &str,
        entry_id: &str,
        content: &str,
    ) -> Result<Stored, StoreError> {
        let session = self
            .session(session_id)
            .ok_or_else(|| StoreError::UnknownSession(session_id.to_string()))?;
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
        {
            let conn = lock(&self.writer);
            conn.prepare_cached("UPDATE entries SET content = ?1, tokens = ?2 WHERE id = ?3")?
                .execute(params![content, tokens, entry_id])?;
        }
        let old = s.entries[idx].clone();
        s.remove_terms(&old);
        let (terms, length) = s.index(content);
        let e = &mut s.entries[idx];
        e.content = content.to_string();
        e.tokens = tokens;
        e.terms = terms;
        e.length = length;
        let updated = e.clone();
        s.add_terms(&updated);
        s.updated_at = now();
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
        let session = self
            .session(session_id)
            .ok_or_else(|| StoreError::UnknownSession(session_id.to_string()))?;
        let mut s = write(&session);
        let n = s.entries.len();
        let mut keep = keep_last.unwrap_or(n).min(n);
        if let Some(budget) = max_tokens {
            let mut used = 0u64;
            let mut fit = 0;
            for e in s.entries.iter().rev() {
                if fit > 0 && used + u64::from(e.tokens) > budget {
                    break;
                }
                used += u64::from(e.tokens);
                fit += 1;
            }
            keep = keep.min(fit.max(1.min(n)));
        }
        let cut = n - keep;
        if cut > 0 {
            let last_removed = s.entries[cut - 1].seq;
            let conn = lock(&self.writer);
            conn.prepare_cached("DELETE FROM entries WHERE session_id = ?1 AND seq <= ?2")?
                .execute(params![session_id, last_removed])?;
        }
        let removed: Vec<Entry> = s.entries.drain(..cut).collect();
        for e in &removed {
            s.remove_terms(e);
        }
        if cut > 0 {
            s.updated_at = now();
        }
        Ok(Pruned {
            session_id: session_id.to_string(),
            removed: cut,
            remaining: s.entries.len(),
            tokens: s.tokens(),
        })
    }

    /// Deletes a session and its entries; returns how many entries it had.
    pub(super) fn delete(&self, session_id: &str) -> Result<usize, StoreError> {
        let existed = self
            .session(session_id)
            .ok_or_else(|| StoreError::UnknownSession(session_id.to_string()))?;
        {
            let conn = lock(&self.writer);
            conn.prepare_cached("DELETE FROM entries WHERE session_id = ?1")?
                .execute(params![session_id])?;
        }
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
        lock(&self.writer)
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .optional()
            .is_ok()
    }
}

/// Copies the WAL into the database every second on a connection of its own, so the WAL
/// stays small and writers never wait for a checkpoint. The thread ends when the database
/// can no longer be opened (the process is shutting down).
fn checkpointer(path: &Path) -> Result<(), StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    let spawned = std::thread::Builder::new()
        .name("context-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                // PASSIVE: copies what it can without blocking writers.
                if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(%err, "WAL checkpoint failed");
                }
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(%err, "cannot start the checkpoint thread; the WAL will grow");
    }
    Ok(())
}

fn now() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
