//! The durable receive buffer: `state-dir/receive-buffer.sqlite` (WAL, `synchronous=FULL`).
//!
//! Tasks a control node sent are written here before the edge acknowledges them as received, one
//! row per received `Tasks` frame holding its chunk as control encoded it (see `chunks`), and
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
//!
//! A damaged file (SQLite reports it corrupt or not a database, it is truncated, or it was
//! deleted or replaced under the running edge) is an error of its own ([`BufferError::damage`]):
//! [`SharedBuffer`] refuses further calls and wakes whoever waits in
//! [`SharedBuffer::damage_reported`] (the consumer's recovery, which replaces the buffer). A
//! single row that does not decode is not damage: [`ReceiveBuffer::pending`] returns it as
//! [`Pending::Unreadable`] beside the good rows.

mod chunks;
mod damage;
mod positions;
mod shared;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use chunks::{Pending, PendingChunk};
use damage::{check_tables, damage_of, file_id, keep_files, sqlite_hint, Check};
use edgepurge_wire::{encode_tasks, Offset, QueueId, TaskFailure, WireTask};
pub use positions::Positions;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
pub use shared::SharedBuffer;

/// The buffer's file name inside `state-dir`.
pub const FILE_NAME: &str = "receive-buffer.sqlite";

/// What can go wrong with the receive buffer.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The state directory or database could not be created or opened (a permission, directory
    /// or disk problem, not a damaged file: see [`BufferError::Damaged`]).
    #[error("cannot open the receive buffer {}: {message}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why, and what to check.
        message: String,
    },
    /// The file is damaged: unreadable as a database, truncated, or deleted or replaced under the
    /// running edge. The consumer moves it aside and starts a fresh buffer (or stops serving).
    #[error("the receive buffer {} is damaged: {cause}", path.display())]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        cause: String,
    },
    /// No buffer is in use: it was found damaged and is being replaced (or, with
    /// `on-buffer-failure = "stop-serving"`, waits to be readable again).
    #[error("the receive buffer is not in use: {0}")]
    Unavailable(String),
    /// SQLite failed (disk full, busy, I/O error, corrupt file); the hint depends on the code.
    #[error("receive buffer: {0}; {hint}", hint = sqlite_hint(.0))]
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
    /// The database file and its identity when opened.
    path: PathBuf,
    file_id: (u64, u64),
    /// Unique per open (see [`ReceiveBuffer::id`]).
    id: u64,
}

/// The next [`ReceiveBuffer::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The tables verified in full at open: all small (a few rows per node and queue; at most
/// [`FAILURE_ROWS`] failures; one row per event).
const CHECKED_TABLES: [&str; 6] = ["watermarks", "nodes", "failures", "events", "logs", "received_prints"];

/// How long a failure report is kept for re-sending after reconnects (1 hour).
const FAILURE_RETENTION_MS: u64 = 3_600_000;
/// At most this many failure reports are kept.
const FAILURE_ROWS: i64 = 10_000;

fn sql(offset: Offset) -> Result<i64> {
    i64::try_from(offset).map_err(|_| BufferError::OffsetTooLarge(offset))
}

const SCHEMA: &str = "
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
    /// bytes, and checks it: [`BufferError::Damaged`] when the file is damaged, [`BufferError::Open`]
    /// (naming the directory or disk problem) when it cannot be opened for another reason.
    pub fn open(dir: &Path, capacity: u64) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        std::fs::create_dir_all(dir).map_err(|e| BufferError::Open {
            path: path.clone(),
            message: format!(
                "cannot create the directory {}: {e}; control.state-dir must name a directory the edge can write",
                dir.display()
            ),
        })?;
        let failed = |e: rusqlite::Error| match damage_of(&e) {
            Some(cause) => BufferError::Damaged { path: path.clone(), cause },
            None => BufferError::Open { path: path.clone(), message: format!("{e}; {}", sqlite_hint(&e)) },
        };
        let conn = Connection::open(&path).map_err(failed)?;
        let used = match Self::prepare(&conn) {
            Ok(used) => used,
            Err(e) => {
                keep_files(conn);
                return Err(match e {
                    Check::Sqlite(e) => failed(e),
                    Check::Problem(cause) => BufferError::Damaged { path, cause },
                });
            }
        };
        let file_id = file_id(&path).map_err(|e| BufferError::Open {
            path: path.clone(),
            message: format!("cannot read its metadata: {e}; check control.state-dir"),
        })?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(ReceiveBuffer { conn, capacity, used, path, file_id, id })
    }

    /// Sets `conn` up and checks it: the bytes held, or what is wrong.
    fn prepare(conn: &Connection) -> Result<u64, Check> {
        // FULL: a task acknowledged as received must survive a power cut, not only a crash.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoints every 32 MiB of log instead of SQLite's 4 MiB: chunk rows are written and
        // deleted within seconds, so most of their pages are rewritten in the log before a
        // checkpoint copies them, once, to the database file.
        conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(chunks::SCHEMA)?;
        chunks::migrate_task_rows(conn)?;
        // The check, cheap for a large buffer: `PRAGMA quick_check` of the whole file verifies
        // every page of every b-tree, O(file size) on top of reading it, at every start. Instead
        // the small tables are verified (`quick_check(table)`: every page, cell and NOT NULL
        // column of that table and its indexes), and the chunks table, the only large one, is
        // walked once by the SUM(size) the open needs anyway: that visits every page of its
        // b-tree and decodes every row's header, so a garbage page there fails the open too.
        // Damage inside one chunk's bytes shows when the row is read (`Pending::Unreadable`,
        // answered by purging its hosts).
        if let Some(problem) = check_tables(conn)? {
            return Err(Check::Problem(problem));
        }
        let used: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM chunks", [], |r| r.get(0))?;
        Ok(used.max(0) as u64)
    }

    /// Closes the buffer leaving its files as they are, for a damaged buffer about to be moved
    /// aside: without the checkpoint SQLite makes when the last connection closes, which would
    /// copy the log into the damaged file and delete the `-wal`.
    pub fn close_as_is(self) {
        keep_files(self.conn);
    }

    /// Which open of a buffer this is: unique in the process, so work read from a buffer that
    /// was since replaced (after damage) is not recorded in its successor.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Fails with [`BufferError::Damaged`] when the file was deleted or another was put in its
    /// place since the open (SQLite would go on using the old one unnoticed).
    pub fn check_file(&self) -> Result<()> {
        let cause = match file_id(&self.path) {
            Ok(id) if id == self.file_id => return Ok(()),
            Ok(_) => "another file was put in its place under the running edge",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "it was deleted under the running edge",
            // Cannot tell (a permission change, say): SQLite reports what is wrong when it is used.
            Err(_) => return Ok(()),
        };
        Err(BufferError::Damaged { path: self.path.clone(), cause: cause.into() })
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

    /// Writes a `Tasks` run in one transaction (see [`ReceiveBuffer::store_chunk`]), encoding it
    /// first: for callers holding decoded tasks only.
    pub fn store(&mut self, node: &str, queue: QueueId, first_offset: Offset, tasks: &[WireTask]) -> Result<Stored> {
        let chunk = encode_tasks(tasks).expect("WireTasks encode");
        self.store_chunk(node, queue, first_offset, &chunk, tasks)
    }

    /// Writes a received `Tasks` frame as one row in one transaction: `chunk` is its tasks as
    /// received (postcard `Vec<WireTask>`), `tasks` the same decoded. Offsets at or below the
    /// received watermark are duplicates (the row is stored whole, its older part skipped when
    /// read); the rest must continue the watermark without a gap.
    pub fn store_chunk(
        &mut self,
        node: &str,
        queue: QueueId,
        first_offset: Offset,
        chunk: &[u8],
        tasks: &[WireTask],
    ) -> Result<Stored> {
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
        let size: u64 = fresh.iter().map(|t| t.size_bytes).sum();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO chunks (node, queue, from_offset, first, last, size, hosts, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            node,
            queue,
            sql(received + 1)?,
            sql(first_offset)?,
            sql(last)?,
            sql(size)?,
            chunks::hosts_of(fresh),
            chunk
        ])?;
        tx.prepare_cached(
            "INSERT INTO watermarks (node, queue, received, applied) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (node, queue) DO UPDATE SET received = ?3",
        )?
        .execute(params![node, queue, sql(last)?, sql(applied)?])?;
        let print = fresh.last().map(edgepurge_wire::fingerprint).unwrap_or_default();
        positions::set_print(&tx, node, queue, last, print)?;
        tx.commit()?;
        self.used += size;
        Ok(Stored { inserted: fresh.len() as u64, duplicates: skip, received: last })
    }

    /// The rows of (`node`, `queue`) not yet applied, in offset order, whole rows until they
    /// cover at least `limit` offsets: their tasks, or [`Pending::Unreadable`] for a row whose
    /// bytes do not decode (the others still come back).
    pub fn pending(&self, node: &str, queue: QueueId, limit: usize) -> Result<Vec<PendingChunk>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM chunks WHERE node = ?1 AND queue = ?2 ORDER BY from_offset",
            chunks::COLUMNS
        ))?;
        let mut rows = stmt.query(params![node, queue])?;
        let (mut out, mut count) = (Vec::new(), 0u64);
        while count < limit as u64 {
            let Some(row) = rows.next()? else { break };
            let chunk = chunks::read_row(row, node, queue)?;
            count += chunk.len();
            out.push(chunk);
        }
        Ok(out)
    }

    /// Every (node, queue) holding tasks not yet applied (to resume applying after a restart).
    pub fn pending_queues(&self) -> Result<Vec<(String, QueueId)>> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT node, queue FROM chunks ORDER BY node, queue")?;
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
            "SELECT COALESCE(SUM(size), 0) FROM chunks WHERE node = ?1 AND queue = ?2 AND last <= ?3",
            params![node, queue, sql(through)?],
            |r| r.get(0),
        )?;
        tx.execute(
            "DELETE FROM chunks WHERE node = ?1 AND queue = ?2 AND last <= ?3",
            params![node, queue, sql(through)?],
        )?;
        let freed = freed.max(0) as u64 + chunks::apply_part(&tx, node, queue, through)?;
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
        self.used = self.used.saturating_sub(freed);
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
            "SELECT COALESCE(SUM(size), 0) FROM chunks WHERE node = ?1 AND queue = ?2",
            params![node, queue],
            |r| r.get(0),
        )?;
        tx.execute("DELETE FROM chunks WHERE node = ?1 AND queue = ?2", params![node, queue])?;
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

#[cfg(test)]
#[path = "receive_buffer_tests.rs"]
mod tests;
