//! The store on PostgreSQL (`db: postgres://…`), which several replicas share.
//!
//! Every write is one statement, so one transaction: an acknowledged write is committed.
//! A session's row in `sessions` orders its writes, whichever replica takes them: an
//! append takes that row's lock to draw the next `seq`. The row also counts its changes
//! (`version`) and the changes that were not appends (`rewrites`: an update, a prune).
//!
//! Each replica keeps the sessions it has served in memory, indexed for retrieval as the
//! SQLite store keeps all of them, and checks them before every read with one query of
//! the session's row: unchanged, the memory answers; only appended to, the new entries are
//! read (`seq` past the last one it has); otherwise the session is read anew.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio_postgres::NoTls;

use super::index::{Entry, Session};
use super::{Pruned, SessionInfo, StoreError, Stored, now, read, write};
use crate::services::context::tokens;

/// The schema, created on start when missing (`IF NOT EXISTS`: every replica may run it).
const MIGRATIONS: &str = "
SET LOCAL client_min_messages = warning;
CREATE TABLE IF NOT EXISTS stack_context_sessions (
    id TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    rewrites BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stack_context_entries (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES stack_context_sessions (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    metadata TEXT,
    tokens INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
";

/// Serialises the migrations of replicas starting together (an advisory lock's key).
const MIGRATION_LOCK: i64 = 0x5354_4143_4b43_5458;

/// The store on PostgreSQL.
#[derive(Debug)]
pub(in crate::services::context) struct PgStore {
    pool: Pool,
    /// The URL with its password masked, for messages.
    shown: String,
    sessions: RwLock<HashMap<String, Arc<RwLock<Session>>>>,
}

/// `url` with its password replaced by `***`.
pub(crate) fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

fn pg(e: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(e.to_string())
}

impl PgStore {
    /// Connects to `url` and creates the tables when missing; an unreachable database is
    /// an error naming the URL (its password masked).
    pub(in crate::services::context) async fn open(url: &str) -> Result<PgStore, String> {
        let shown = masked(url);
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("`{shown}` is not a PostgreSQL URL: {e}"))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| format!("cannot set up the connections to `{shown}`: {e}"))?;
        let unreachable = |e: &dyn std::fmt::Display| {
            format!("cannot reach the PostgreSQL database `{shown}`: {e}")
        };
        let mut client = tokio::time::timeout(std::time::Duration::from_secs(10), pool.get())
            .await
            .map_err(|_| unreachable(&"no answer within 10 s"))?
            .map_err(|e| unreachable(&source_chain(&e)))?;
        let tx = client.transaction().await.map_err(|e| unreachable(&e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| unreachable(&e))?;
        tx.batch_execute(MIGRATIONS)
            .await
            .map_err(|e| format!("cannot create the tables in `{shown}`: {e}"))?;
        tx.commit().await.map_err(|e| unreachable(&e))?;
        Ok(PgStore {
            pool,
            shown,
            sessions: RwLock::new(HashMap::new()),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| pg(format!("`{}`: {}", self.shown, source_chain(&e))))
    }

    fn cached(&self, id: &str) -> Option<Arc<RwLock<Session>>> {
        self.sessions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn forget(&self, id: &str) {
        self.sessions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    /// The session as the database has it now (see the module's notes), if it exists.
    pub(in crate::services::context) async fn session(
        &self,
        id: &str,
    ) -> Result<Option<Arc<RwLock<Session>>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT version, rewrites, created_at, updated_at FROM stack_context_sessions WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(pg)?;
        let Some(row) = row else {
            self.forget(id);
            return Ok(None);
        };
        let (version, rewrites): (i64, i64) = (row.get(0), row.get(1));
        let cached = self.cached(id);
        let (from_seq, fresh) = match &cached {
            Some(s) => {
                let s = read(s);
                if s.version == version {
                    drop(s);
                    return Ok(cached);
                }
                if s.rewrites == rewrites {
                    (s.next_seq() - 1, false)
                } else {
                    (0, true)
                }
            }
            None => (0, true),
        };
        let rows = client
            .query(
                "SELECT id, seq, role, content, metadata, tokens, created_at
                 FROM stack_context_entries WHERE session_id = $1 AND seq > $2 ORDER BY seq",
                &[&id, &from_seq],
            )
            .await
            .map_err(pg)?;
        let session = match (cached, fresh) {
            (Some(s), false) => s,
            _ => {
                let s = Arc::new(RwLock::new(Session::default()));
                self.sessions
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id.to_string(), s.clone());
                s
            }
        };
        {
            let mut s = write(&session);
            for r in rows {
                let seq: i64 = r.get(1);
                if seq < s.next_seq() {
                    continue; // Another read of this replica got it first.
                }
                let content: String = r.get(3);
                let (terms, length) = s.index(&content);
                let metadata: Option<String> = r.get(4);
                let tokens: i32 = r.get(5);
                s.push(Entry {
                    id: r.get(0),
                    seq,
                    role: r.get(2),
                    content,
                    metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
                    tokens: u32::try_from(tokens).unwrap_or_default(),
                    created_at: r.get(6),
                    terms,
                    length,
                });
            }
            s.version = s.version.max(version);
            s.rewrites = rewrites;
            s.created_at = row.get(2);
            s.updated_at = row.get(3);
        }
        Ok(Some(session))
    }

    /// Stores a turn; committed when this returns.
    pub(in crate::services::context) async fn append(
        &self,
        session_id: &str,
        role: &str,
        content: &str,
        metadata: Option<Value>,
    ) -> Result<Stored, StoreError> {
        let id = new_id();
        let tokens = tokens::count(content);
        let at = now();
        let meta = metadata.as_ref().map(Value::to_string);
        let client = self.client().await?;
        // The upsert locks the session's row: concurrent appends, from any replica, draw
        // their `seq` one after the other.
        let row = client
            .query_one(
                "WITH s AS (
                     INSERT INTO stack_context_sessions AS t (id, last_seq, version, rewrites, created_at, updated_at)
                     VALUES ($1, 1, 1, 0, $7, $7)
                     ON CONFLICT (id) DO UPDATE
                         SET last_seq = t.last_seq + 1, version = t.version + 1, updated_at = $7
                     RETURNING last_seq, version
                 )
                 INSERT INTO stack_context_entries (id, session_id, seq, role, content, metadata, tokens, created_at)
                 SELECT $2, $1, s.last_seq, $3, $4, $5, $6, $7 FROM s
                 RETURNING seq, (SELECT version FROM s)",
                &[
                    &session_id,
                    &id,
                    &role,
                    &content,
                    &meta,
                    &i32::try_from(tokens).unwrap_or(i32::MAX),
                    &at,
                ],
            )
            .await
            .map_err(pg)?;
        let (seq, version): (i64, i64) = (row.get(0), row.get(1));
        // This replica's memory takes the entry when it is the next one it expects;
        // otherwise the next read catches up.
        if let Some(s) = self.cached(session_id) {
            let mut s = write(&s);
            if s.version == version - 1 && s.next_seq() == seq {
                let (terms, length) = s.index(content);
                s.push(Entry {
                    id: id.clone(),
                    seq,
                    role: role.to_string(),
                    content: content.to_string(),
                    metadata,
                    tokens,
                    created_at: at,
                    terms,
                    length,
                });
                s.version = version;
            }
        }
        Ok(Stored {
            id,
            session_id: session_id.to_string(),
            tokens,
        })
    }

    /// Replaces an entry's content.
    pub(in crate::services::context) async fn update(
        &self,
        session_id: &str,
        entry_id: &str,
        content: &str,
    ) -> Result<Stored, StoreError> {
        let tokens = tokens::count(content);
        let client = self.client().await?;
        let n = client
            .execute(
                "WITH e AS (
                     UPDATE stack_context_entries SET content = $3, tokens = $4
                     WHERE session_id = $1 AND id = $2 RETURNING 1
                 )
                 UPDATE stack_context_sessions
                 SET version = version + 1, rewrites = rewrites + 1, updated_at = $5
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM e)",
                &[
                    &session_id,
                    &entry_id,
                    &content,
                    &i32::try_from(tokens).unwrap_or(i32::MAX),
                    &now(),
                ],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(match self.session(session_id).await? {
                None => StoreError::UnknownSession(session_id.to_string()),
                Some(_) => StoreError::UnknownEntry {
                    session: session_id.to_string(),
                    entry: entry_id.to_string(),
                },
            });
        }
        Ok(Stored {
            id: entry_id.to_string(),
            session_id: session_id.to_string(),
            tokens,
        })
    }

    /// Removes the oldest entries (see [`Session::keep_count`]).
    pub(in crate::services::context) async fn prune(
        &self,
        session_id: &str,
        max_tokens: Option<u64>,
        keep_last: Option<usize>,
    ) -> Result<Pruned, StoreError> {
        let session = self
            .session(session_id)
            .await?
            .ok_or_else(|| StoreError::UnknownSession(session_id.to_string()))?;
        let (through, removed, remaining, tokens) = {
            let s = read(&session);
            let keep = s.keep_count(max_tokens, keep_last);
            let cut = s.entries.len() - keep;
            let through = cut.checked_sub(1).map(|i| s.entries[i].seq);
            let tokens: u64 = s.entries[cut..].iter().map(|e| u64::from(e.tokens)).sum();
            (through, cut, keep, tokens)
        };
        if let Some(seq) = through {
            let client = self.client().await?;
            client
                .execute(
                    "WITH d AS (
                         DELETE FROM stack_context_entries WHERE session_id = $1 AND seq <= $2
                     )
                     UPDATE stack_context_sessions
                     SET version = version + 1, rewrites = rewrites + 1, updated_at = $3
                     WHERE id = $1",
                    &[&session_id, &seq, &now()],
                )
                .await
                .map_err(pg)?;
        }
        Ok(Pruned {
            session_id: session_id.to_string(),
            removed,
            remaining,
            tokens,
        })
    }

    /// Deletes a session; how many entries it had.
    pub(in crate::services::context) async fn delete(
        &self,
        session_id: &str,
    ) -> Result<usize, StoreError> {
        let client = self.client().await?;
        // The count is read in the statement's snapshot: before the cascade.
        let row = client
            .query_opt(
                "DELETE FROM stack_context_sessions WHERE id = $1
                 RETURNING (SELECT count(*) FROM stack_context_entries WHERE session_id = $1)",
                &[&session_id],
            )
            .await
            .map_err(pg)?;
        self.forget(session_id);
        let row = row.ok_or_else(|| StoreError::UnknownSession(session_id.to_string()))?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or_default())
    }

    /// Every session with entries, by id.
    pub(in crate::services::context) async fn list(&self) -> Result<Vec<SessionInfo>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT s.id, count(e.id), coalesce(sum(e.tokens), 0)::BIGINT, s.created_at, s.updated_at
                 FROM stack_context_sessions s JOIN stack_context_entries e ON e.session_id = s.id
                 GROUP BY s.id ORDER BY s.id",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| SessionInfo {
                id: r.get(0),
                entries: usize::try_from(r.get::<_, i64>(1)).unwrap_or_default(),
                tokens: u64::try_from(r.get::<_, i64>(2)).unwrap_or_default(),
                created_at: r.get(3),
                updated_at: r.get(4),
            })
            .collect())
    }

    /// Whether the database answers.
    pub(in crate::services::context) async fn ping(&self) -> bool {
        match self.client().await {
            Ok(c) => c.query_one("SELECT 1", &[]).await.is_ok(),
            Err(_) => false,
        }
    }
}

/// An entry id unique across replicas: the time and 32 random bits.
fn new_id() -> String {
    let micros = jiff::Timestamp::now().as_microsecond();
    let random = uuid::Uuid::new_v4().as_u128() as u32;
    format!("ent_{micros:013x}{random:08x}")
}

/// An error with its causes (a pool error's own text leaves out why it could not connect).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            super::masked("postgres://app:s3cret@db:5432/ctx?sslmode=disable"),
            "postgres://app:***@db:5432/ctx?sslmode=disable"
        );
        assert_eq!(
            super::masked("postgres://app@db/ctx"),
            "postgres://app@db/ctx"
        );
        assert_eq!(super::masked("postgresql://db/ctx"), "postgresql://db/ctx");
    }
}
