//! The durable receive buffer: `state-dir/receive-buffer.sqlite` (WAL, `synchronous=FULL`).
//!
//! Tasks a control node sent are written here before the edge acknowledges them as received, and
//! deleted once applied, so a crash or restart loses nothing that control already considers
//! delivered. Per (node, queue) it keeps the `received` watermark (the highest offset with
//! everything at or below held or applied) and the `applied` watermark; `resume` on reconnect is
//! `received + 1`. A node is keyed by the `control_id` of its `Hello` (its URL until one has
//! arrived), so a node that moves to another address keeps its offsets. Beside them, per node,
//! the identity of the log they came from and the fingerprint of the last task received per
//! queue (`positions`), which a 1.1 control node checks before it believes them.
//!
//! All calls are blocking: the consumer runs them through [`SharedBuffer::call`] on tokio's
//! blocking pool, never on the async runtime's threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use edgepurge_wire::{Offset, QueueId, TaskFailure, WireTask};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// The buffer's file name inside `state-dir`.
pub const FILE_NAME: &str = "receive-buffer.sqlite";

/// What can go wrong with the receive buffer.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The state directory or database could not be created or opened.
    #[error("cannot open the receive buffer {}: {message}; check that control.state-dir is a writable directory", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// SQLite failed (disk full, I/O error, corrupt file).
    #[error("receive buffer: {0}; check the disk holding control.state-dir")]
    Sqlite(#[from] rusqlite::Error),
    /// A `Tasks` run does not continue what was received: tasks in between would be missing.
    #[error(
        "node {node} queue {queue}: tasks start at offset {first} but only {received} was received; \
         the control node skipped offsets — reconnecting to resume from {next}",
        next = received + 1
    )]
    Gap {
        /// The node key.
        node: String,
        /// The queue.
        queue: QueueId,
        /// The received watermark.
        received: Offset,
        /// The first offset of the run.
        first: Offset,
    },
    /// A stored row does not decode (the file was edited or is from an incompatible build).
    #[error("receive buffer row {queue}/{offset} of node {node} is unreadable: {message}")]
    Corrupt {
        /// The node key.
        node: String,
        /// The queue.
        queue: QueueId,
        /// The offset.
        offset: Offset,
        /// The decoder's message.
        message: String,
    },
    /// An offset does not fit SQLite's signed 64-bit integers.
    #[error("offset {0} is beyond what the receive buffer can store")]
    OffsetTooLarge(Offset),
    /// The blocking task running the call panicked or was cancelled.
    #[error("receive buffer call failed: {0}")]
    Task(String),
}

/// Shorthand for the buffer's results.
pub type Result<T, E = BufferError> = std::result::Result<T, E>;

/// The outcome of storing one `Tasks` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Tasks newly written.
    pub inserted: u64,
    /// Tasks at offsets already received (ignored).
    pub duplicates: u64,
    /// The queue's received watermark afterwards.
    pub received: Offset,
}

/// One queue's watermarks for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueMarks {
    /// The queue.
    pub queue: QueueId,
    /// Highest offset durably received (everything below too).
    pub received: Offset,
    /// Highest offset applied (everything below too).
    pub applied: Offset,
}

/// One recorded event (a trim, a node changing identity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The node key.
    pub node: String,
    /// What happened.
    pub message: String,
}

/// The receive buffer (blocking; see the module documentation).
pub struct ReceiveBuffer {
    conn: Connection,
    capacity: u64,
    /// Sum of `size_bytes` of the rows held (received, not applied).
    used: u64,
}

/// How long a failure report is kept for re-sending after reconnects (1 hour).
const FAILURE_RETENTION_MS: u64 = 3_600_000;
/// At most this many failure reports are kept.
const FAILURE_ROWS: i64 = 10_000;

fn sql(offset: Offset) -> Result<i64> {
    i64::try_from(offset).map_err(|_| BufferError::OffsetTooLarge(offset))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    node TEXT NOT NULL, queue INTEGER NOT NULL, offset INTEGER NOT NULL,
    size INTEGER NOT NULL, task TEXT NOT NULL,
    PRIMARY KEY (node, queue, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watermarks (
    node TEXT NOT NULL, queue INTEGER NOT NULL,
    received INTEGER NOT NULL, applied INTEGER NOT NULL,
    PRIMARY KEY (node, queue)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (url TEXT PRIMARY KEY, control_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, queue INTEGER NOT NULL, offset INTEGER NOT NULL,
    reason TEXT NOT NULL, at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (node TEXT PRIMARY KEY, log_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS received_prints (
    node TEXT NOT NULL, queue INTEGER NOT NULL, offset INTEGER NOT NULL, print INTEGER NOT NULL,
    PRIMARY KEY (node, queue)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, node TEXT NOT NULL, message TEXT NOT NULL
);
";

impl ReceiveBuffer {
    /// Opens (creating `dir` and the database if missing) the buffer in `dir` with `capacity`
    /// bytes.
    pub fn open(dir: &Path, capacity: u64) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let open_err = |e: &dyn std::fmt::Display| BufferError::Open { path: path.clone(), message: e.to_string() };
        std::fs::create_dir_all(dir).map_err(|e| open_err(&e))?;
        let conn = Connection::open(&path).map_err(|e| open_err(&e))?;
        // FULL: a task acknowledged as received must survive a power cut, not only a crash.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| open_err(&e))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| open_err(&e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| open_err(&e))?;
        conn.execute_batch(SCHEMA).map_err(|e| open_err(&e))?;
        let used: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM tasks", [], |r| r.get(0))?;
        Ok(ReceiveBuffer { conn, capacity, used: used.max(0) as u64 })
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes received but not yet applied.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// `capacity − used`, what control may still send beyond the received watermarks.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used)
    }

    /// The `control_id` last seen at `url`, if any.
    pub fn node_key(&self, url: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT control_id FROM nodes WHERE url = ?1", [url], |r| r.get(0)).optional()?)
    }

    /// Remembers that `url` is control node `control_id`.
    pub fn set_node_key(&mut self, url: &str, control_id: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO nodes (url, control_id) VALUES (?1, ?2) ON CONFLICT (url) DO UPDATE SET control_id = ?2",
            params![url, control_id],
        )?;
        Ok(())
    }

    /// Per queue of `node`, the received and applied watermarks.
    pub fn watermarks(&self, node: &str) -> Result<Vec<QueueMarks>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT queue, received, applied FROM watermarks WHERE node = ?1 ORDER BY queue")?;
        let rows = stmt.query_map([node], |r| {
            Ok(QueueMarks {
                queue: r.get(0)?,
                received: r.get::<_, i64>(1)? as u64,
                applied: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The `Hello.resume` list for `node`: per known queue, `received + 1`.
    pub fn resume(&self, node: &str) -> Result<Vec<(QueueId, Offset)>> {
        Ok(self.watermarks(node)?.into_iter().map(|m| (m.queue, m.received + 1)).collect())
    }

    fn marks(&self, node: &str, queue: QueueId) -> Result<(Offset, Offset)> {
        let marks = self
            .conn
            .query_row(
                "SELECT received, applied FROM watermarks WHERE node = ?1 AND queue = ?2",
                params![node, queue],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .optional()?;
        Ok(marks.unwrap_or((0, 0)))
    }

    /// Writes a `Tasks` run in one transaction: offsets at or below the received watermark are
    /// duplicates and ignored; the rest must continue the watermark without a gap.
    pub fn store(&mut self, node: &str, queue: QueueId, first_offset: Offset, tasks: &[WireTask]) -> Result<Stored> {
        let (received, applied) = self.marks(node, queue)?;
        if tasks.is_empty() {
            return Ok(Stored { inserted: 0, duplicates: 0, received });
        }
        if first_offset > received + 1 {
            return Err(BufferError::Gap { node: node.to_owned(), queue, received, first: first_offset });
        }
        let skip = (received + 1 - first_offset).min(tasks.len() as u64);
        let fresh = &tasks[skip as usize..];
        if fresh.is_empty() {
            return Ok(Stored { inserted: 0, duplicates: skip, received });
        }
        let last = received + fresh.len() as u64;
        let tx = self.conn.transaction()?;
        let mut added = 0u64;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO tasks (node, queue, offset, size, task) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (i, task) in fresh.iter().enumerate() {
                let json = serde_json::to_string(task).expect("a WireTask serialises");
                let size = sql(task.size_bytes)?;
                if insert.execute(params![node, queue, sql(received + 1 + i as u64)?, size, json])? == 1 {
                    added += task.size_bytes;
                }
            }
            tx.execute(
                "INSERT INTO watermarks (node, queue, received, applied) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (node, queue) DO UPDATE SET received = ?3",
                params![node, queue, sql(last)?, sql(applied)?],
            )?;
            let print = fresh.last().map(edgepurge_wire::fingerprint).unwrap_or_default();
            positions::set_print(&tx, node, queue, last, print)?;
        }
        tx.commit()?;
        self.used += added;
        Ok(Stored { inserted: fresh.len() as u64, duplicates: skip, received: last })
    }

    /// Up to `limit` tasks of (`node`, `queue`) not yet applied, in offset order.
    pub fn pending(&self, node: &str, queue: QueueId, limit: usize) -> Result<Vec<(Offset, WireTask)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT offset, task FROM tasks WHERE node = ?1 AND queue = ?2 ORDER BY offset LIMIT ?3")?;
        let rows = stmt.query_map(params![node, queue, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (offset, json) = row?;
            let task = serde_json::from_str(&json).map_err(|e| BufferError::Corrupt {
                node: node.to_owned(),
                queue,
                offset,
                message: e.to_string(),
            })?;
            out.push((offset, task));
        }
        Ok(out)
    }

    /// Every (node, queue) holding tasks not yet applied (to resume applying after a restart).
    pub fn pending_queues(&self) -> Result<Vec<(String, QueueId)>> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT node, queue FROM tasks ORDER BY node, queue")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that everything of (`node`, `queue`) through `through` is applied: deletes those
    /// rows, advances the applied watermark and stores the tasks' failure reports (so a report
    /// survives a crash or a dropped connection), in one transaction.
    pub fn mark_applied(
        &mut self,
        node: &str,
        queue: QueueId,
        through: Offset,
        failures: &[TaskFailure],
        at_ms: u64,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let freed: i64 = tx.query_row(
            "SELECT COALESCE(SUM(size), 0) FROM tasks WHERE node = ?1 AND queue = ?2 AND offset <= ?3",
            params![node, queue, sql(through)?],
            |r| r.get(0),
        )?;
        tx.execute(
            "DELETE FROM tasks WHERE node = ?1 AND queue = ?2 AND offset <= ?3",
            params![node, queue, sql(through)?],
        )?;
        // Never above `received`: an applier finishing a round of tasks that a reset dropped must
        // not lift the watermark back into the old log's offsets.
        tx.execute(
            "UPDATE watermarks SET applied = MAX(applied, MIN(?3, received)) WHERE node = ?1 AND queue = ?2",
            params![node, queue, sql(through)?],
        )?;
        for f in failures {
            tx.execute(
                "INSERT INTO failures (node, queue, offset, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![node, f.queue, sql(f.offset)?, f.reason, at_ms as i64],
            )?;
        }
        if !failures.is_empty() {
            let horizon = at_ms.saturating_sub(FAILURE_RETENTION_MS) as i64;
            tx.execute(
                "DELETE FROM failures WHERE at_ms < ?1 OR id <= (SELECT MAX(id) FROM failures) - ?2",
                params![horizon, FAILURE_ROWS],
            )?;
        }
        tx.commit()?;
        self.used = self.used.saturating_sub(freed.max(0) as u64);
        Ok(())
    }

    /// The failure reports of `node` stored after row `after` (oldest first, at most 1,000), with
    /// their row ids. A connection sends each once; a new connection sends them all again,
    /// because control confirms nothing and records a report only once anyway.
    pub fn failures_after(&self, node: &str, after: i64) -> Result<Vec<(i64, TaskFailure)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, queue, offset, reason FROM failures WHERE node = ?1 AND id > ?2 ORDER BY id LIMIT 1000",
        )?;
        let rows = stmt.query_map(params![node, after], |r| {
            let failure = TaskFailure { queue: r.get(1)?, offset: r.get::<_, i64>(2)? as u64, reason: r.get(3)? };
            Ok((r.get::<_, i64>(0)?, failure))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a `Trimmed`: drops what is held for the queue (everything was purged instead), sets
    /// both watermarks to `first_retained − 1` and logs an event, in one transaction.
    pub fn trimmed(&mut self, node: &str, queue: QueueId, first_retained: Offset, at_ms: u64) -> Result<()> {
        let mark = first_retained.saturating_sub(1);
        let tx = self.conn.transaction()?;
        let freed: i64 = tx.query_row(
            "SELECT COALESCE(SUM(size), 0) FROM tasks WHERE node = ?1 AND queue = ?2",
            params![node, queue],
            |r| r.get(0),
        )?;
        tx.execute("DELETE FROM tasks WHERE node = ?1 AND queue = ?2", params![node, queue])?;
        tx.execute(
            "INSERT INTO watermarks (node, queue, received, applied) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (node, queue) DO UPDATE SET received = MAX(received, ?3), applied = MAX(applied, ?3)",
            params![node, queue, sql(mark)?],
        )?;
        tx.execute("DELETE FROM received_prints WHERE node = ?1 AND queue = ?2", params![node, queue])?;
        let message = format!(
            "trimmed: queue {queue} no longer holds the offsets this edge needed (it resumes at {first_retained}); \
             purged everything at {at_ms} ms"
        );
        insert_event(&tx, at_ms, node, &message)?;
        tx.commit()?;
        self.used = self.used.saturating_sub(freed.max(0) as u64);
        Ok(())
    }

    /// Appends an event.
    pub fn record_event(&mut self, at_ms: u64, node: &str, message: &str) -> Result<()> {
        insert_event(&self.conn, at_ms, node, message)
    }

    /// The latest `limit` events, newest first.
    pub fn events(&self, limit: usize) -> Result<Vec<Event>> {
        let mut stmt = self.conn.prepare_cached("SELECT at_ms, node, message FROM events ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(Event { at_ms: r.get::<_, i64>(0)? as u64, node: r.get(1)?, message: r.get(2)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn insert_event(conn: &Connection, at_ms: u64, node: &str, message: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO events (at_ms, node, message) VALUES (?1, ?2, ?3)",
        params![at_ms.min(i64::MAX as u64) as i64, node, message],
    )?;
    Ok(())
}

/// The buffer shared by the connections and appliers; calls run on the blocking pool.
#[derive(Clone)]
pub struct SharedBuffer {
    inner: Arc<Mutex<ReceiveBuffer>>,
}

impl SharedBuffer {
    /// Wraps an open buffer.
    pub fn new(buffer: ReceiveBuffer) -> Self {
        SharedBuffer { inner: Arc::new(Mutex::new(buffer)) }
    }

    /// Runs `f` on the buffer on tokio's blocking pool.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ReceiveBuffer) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&mut inner.lock().unwrap_or_else(|e| e.into_inner())))
            .await
            .map_err(|e| BufferError::Task(e.to_string()))?
    }
}

mod positions;
pub use positions::Positions;

#[cfg(test)]
#[path = "receive_buffer_tests.rs"]
mod tests;
