//! The durable half of the store: SQLite in WAL mode, one writer connection, and a
//! checkpoint thread of its own that ends with the store.

use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::services::context::config::Durability;

/// How often the WAL is copied into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A stored row, as the database holds it.
pub(super) struct Row {
    pub id: String,
    pub session_id: String,
    pub seq: i64,
    pub role: String,
    pub content: String,
    /// JSON text.
    pub metadata: Option<String>,
    pub tokens: u32,
    pub created_at: String,
}

/// The database.
#[derive(Debug)]
pub(super) struct Db {
    writer: Mutex<Connection>,
    _checkpoints: Checkpointer,
}

/// Makes the database file its owner's only, whatever the umask (SQLite gives its `-wal`
/// and `-shm` files the database's mode): conversations are private.
fn private_file(path: &Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path.as_os_str() == ":memory:" {
        return;
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path);
    if let Ok(f) = created {
        let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
}

impl Db {
    /// Opens (creating) the database at `path`.
    pub(super) fn open(path: &Path, durability: Durability) -> rusqlite::Result<Db> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        private_file(path);
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        // Checkpoints run on their own thread (see `Checkpointer`), never inside a write:
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
        Ok(Db {
            writer: Mutex::new(conn),
            _checkpoints: Checkpointer::start(path)?,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every row, by session and order; and how many there are.
    pub(super) fn load(&self, mut each: impl FnMut(Row)) -> rusqlite::Result<u64> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, session_id, seq, role, content, metadata, tokens, created_at
             FROM entries ORDER BY session_id, seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                session_id: r.get(1)?,
                seq: r.get(2)?,
                role: r.get(3)?,
                content: r.get(4)?,
                metadata: r.get(5)?,
                tokens: r.get(6)?,
                created_at: r.get(7)?,
            })
        })?;
        let mut n = 0;
        for row in rows {
            each(row?);
            n += 1;
        }
        Ok(n)
    }

    /// Commits a new row (durable when this returns).
    pub(super) fn insert(&self, row: &Row) -> rusqlite::Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO entries (id, session_id, seq, role, content, metadata, tokens, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                row.id,
                row.session_id,
                row.seq,
                row.role,
                row.content,
                row.metadata,
                row.tokens,
                row.created_at
            ])?;
        Ok(())
    }

    /// Replaces an entry's content.
    pub(super) fn update(
        &self,
        entry_id: &str,
        content: &str,
        tokens: u32,
    ) -> rusqlite::Result<()> {
        self.conn()
            .prepare_cached("UPDATE entries SET content = ?1, tokens = ?2 WHERE id = ?3")?
            .execute(params![content, tokens, entry_id])?;
        Ok(())
    }

    /// Deletes a session's entries up to `seq` (inclusive).
    pub(super) fn delete_through(&self, session_id: &str, seq: i64) -> rusqlite::Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM entries WHERE session_id = ?1 AND seq <= ?2")?
            .execute(params![session_id, seq])?;
        Ok(())
    }

    /// Deletes a session's entries.
    pub(super) fn delete_session(&self, session_id: &str) -> rusqlite::Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM entries WHERE session_id = ?1")?
            .execute(params![session_id])?;
        Ok(())
    }

    /// Whether the database answers.
    pub(super) fn ping(&self) -> bool {
        self.conn()
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .optional()
            .is_ok()
    }
}

/// Copies the WAL into the database every second on a connection of its own, so the WAL
/// stays small and writers never wait for a checkpoint. Dropped with the store, it stops
/// and its thread is joined.
#[derive(Debug)]
struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> rusqlite::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("context-checkpoint".into())
            .spawn(move || {
                // Until the store is dropped (the sender with it).
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    // PASSIVE: copies what it can without blocking writers.
                    if let Err(err) =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(%err, "WAL checkpoint failed");
                    }
                }
            });
        let thread = spawned
            .inspect_err(|err| {
                tracing::warn!(%err, "cannot start the checkpoint thread; the WAL will grow");
            })
            .ok();
        Ok(Checkpointer {
            stop: Some(stop),
            thread,
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
