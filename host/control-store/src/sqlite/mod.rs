//! The default backend: one SQLite database file per control node (DESIGN decision 8).
//!
//! WAL journal, `synchronous = FULL`: a committed append is in the fsynced WAL before `append`
//! returns. One connection behind a mutex serialises writers (SQLite has one writer anyway); a
//! small pool of read-only connections answers the queries, so status polls, record queries and
//! token checks go on while a million-URL batch is being written (WAL readers see the last
//! commit and never wait for the writer). Every call runs on tokio's blocking pool. The schema is
//! in `schema.rs`.

mod chunks;
mod index;
mod positions;
mod probe;
mod queue;
mod records;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension};

use crate::model::*;
use crate::traits::{QueueStore, RecordStore, TokenStore};
use crate::{Error, Result, TokenHash};

/// The schema version this build writes (`PRAGMA user_version`).
pub use schema::VERSION as SCHEMA_VERSION;

/// The SQLite store. Cheap to clone (the connection is shared); `Send + Sync`.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<ReadPool>,
    /// How many appended batches still have their task rows to write (`index`): record queries
    /// wait for 0.
    indexing: Arc<tokio::sync::watch::Sender<u32>>,
    queues: u32,
    path: PathBuf,
    log_id: Arc<str>,
}

/// Read-only connections: two, one per core of the smallest machine we run on, so a read never
/// waits behind another read for long, and few enough that their page caches stay small.
const READERS: usize = 2;

/// The read-only connections and where the next read starts looking for a free one.
struct ReadPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("queues", &self.queues).finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with `queues` queues, creating or
    /// migrating the schema. Blocking: call it at start-up, before serving.
    ///
    /// Fails if the file is not a database, was written by a newer build, or already has more
    /// queues than `queues` (their tasks would never be delivered).
    pub fn open(path: impl AsRef<Path>, queues: u32) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let mut conn = Connection::open(&path)?;
        let log_id = schema::prepare(&mut conn, queues)?.into();
        // Opened after `prepare`, so the file is in WAL mode and has its schema.
        let conns = (0..READERS).map(|_| schema::open_reader(&path).map(Mutex::new)).collect::<Result<_>>()?;
        let readers = Arc::new(ReadPool { conns, next: AtomicUsize::new(0) });
        let indexing = Arc::new(tokio::sync::watch::channel(0).0);
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)), readers, queues, path, log_id, indexing })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolves once the task rows of every batch appended through this store are written (a
    /// large batch's follow its 202, see `index`): what record queries wait for, and what a clean
    /// hand-over of the file (closing it for another process to open) should wait for.
    pub async fn indexed(&self) {
        let _ = self.indexing.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, u32) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let queues = self.queues;
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-done write behind (an open
            // transaction rolls back when dropped), so a poisoned lock is safe to keep using.
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn, queues)
        })
        .await
        .map_err(|e| Error::Backend(Box::new(e)))?
    }

    /// Runs the read-only `f` on a reader connection (a free one if any), in one read transaction
    /// so a query of several statements sees one snapshot.
    async fn read_run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, u32) -> Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        let queues = self.queues;
        tokio::task::spawn_blocking(move || {
            let n = pool.conns.len();
            let start = pool.next.fetch_add(1, Ordering::Relaxed) % n;
            let free = (0..n).find_map(|i| pool.conns[(start + i) % n].try_lock().ok());
            // All busy: wait for the one whose turn it is. Poisoning is harmless as in `run`.
            let conn = free.unwrap_or_else(|| pool.conns[start].lock().unwrap_or_else(|p| p.into_inner()));
            let tx = conn.unchecked_transaction()?;
            let out = f(&tx, queues);
            // Read-only: ending the transaction either way releases the snapshot.
            drop(tx);
            out
        })
        .await
        .map_err(|e| Error::Backend(Box::new(e)))?
    }
}

/// The integer stored for a task kind (part of the schema: never renumber).
fn kind_code(kind: TaskKind) -> i64 {
    match kind {
        TaskKind::Url => 0,
        TaskKind::Prefix => 1,
        TaskKind::Tag => 2,
        TaskKind::Host => 3,
        TaskKind::Everything => 4,
        TaskKind::Warm => 5,
    }
}

fn kind_from_code(code: i64) -> rusqlite::Result<TaskKind> {
    Ok(match code {
        0 => TaskKind::Url,
        1 => TaskKind::Prefix,
        2 => TaskKind::Tag,
        3 => TaskKind::Host,
        4 => TaskKind::Everything,
        5 => TaskKind::Warm,
        other => return Err(rusqlite::Error::IntegralValueOutOfRange(4, other)),
    })
}

/// A batch with its spans.
fn batch_by_id(conn: &Connection, id: BatchId) -> Result<Option<Batch>> {
    let batch = conn
        .prepare_cached("SELECT token_name, accepted_at, task_count, idempotency_key FROM batches WHERE id = ?1")?
        .query_row([id as i64], |r| {
            Ok(Batch {
                id,
                token_name: r.get(0)?,
                accepted_at: r.get::<_, i64>(1)? as u64,
                task_count: r.get::<_, i64>(2)? as u64,
                idempotency_key: r.get(3)?,
                spans: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut batch) = batch else { return Ok(None) };
    let mut stmt = conn.prepare_cached(
        "SELECT queue, first, last, own, folded, folded_last FROM batch_queues WHERE batch = ?1 ORDER BY queue",
    )?;
    let spans = stmt.query_map([id as i64], |r| {
        Ok(QueueSpan {
            queue: r.get(0)?,
            first: r.get::<_, i64>(1)? as u64,
            last: r.get::<_, i64>(2)? as u64,
            own: r.get::<_, i64>(3)? as u64,
            folded: r.get::<_, i64>(4)? as u64,
            folded_last: r.get::<_, i64>(5)? as u64,
        })
    })?;
    batch.spans = spans.collect::<rusqlite::Result<_>>()?;
    Ok(Some(batch))
}

impl QueueStore for SqliteStore {
    fn queue_count(&self) -> u32 {
        self.queues
    }

    fn log_id(&self) -> &str {
        &self.log_id
    }

    async fn append(&self, batch: NewBatch, tasks: Vec<NewTask>) -> Result<Appended> {
        let (conn, queues, indexing) = (self.conn.clone(), self.queues, self.indexing.clone());
        let (answer, answered) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            // Poisoning is harmless, as in `run`.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let deferred = match queue::append(&mut guard, queues, &batch, &tasks) {
                Ok((appended, deferred)) => {
                    if deferred.is_some() {
                        indexing.send_modify(|n| *n += 1);
                    }
                    let _ = answer.send(Ok(appended));
                    deferred
                }
                Err(e) => {
                    let _ = answer.send(Err(e));
                    None
                }
            };
            drop(guard);
            // Committed and answered: the task rows now, a piece at a time (see `index`). A
            // failure leaves the batch unindexed: whoever needs its rows next writes them.
            if let Some(deferred) = deferred {
                let _ = index::write_deferred(&conn, &tasks, &deferred);
                indexing.send_modify(|n| *n -= 1);
            }
        });
        answered.await.map_err(|e| Error::Backend(Box::new(e)))?
    }

    async fn read(&self, queue: u32, from: u64, limit: usize) -> Result<Vec<QueuedTask>> {
        self.read_run(move |c, q| queue::read(c, q, queue, from, limit)).await
    }

    async fn read_chunks(&self, queue: u32, from: u64, max_tasks: usize) -> Result<Vec<Chunk>> {
        self.read_run(move |c, q| queue::read_chunks(c, q, queue, from, max_tasks)).await
    }

    async fn queue_info(&self) -> Result<Vec<QueueInfo>> {
        self.read_run(|c, _| queue::queue_info(c)).await
    }

    async fn pending(&self, queue: u32, after: u64) -> Result<Pending> {
        self.read_run(move |c, q| queue::pending(c, q, queue, after)).await
    }

    async fn trim(&self, queue: u32, below: u64) -> Result<u64> {
        self.run(move |c, q| queue::trim(c, q, queue, below)).await
    }

    async fn probe_write(&self) -> Result<()> {
        self.run(|c, _| probe::probe_write(c)).await
    }
}

impl RecordStore for SqliteStore {
    async fn batch(&self, id: BatchId) -> Result<Option<Batch>> {
        self.read_run(move |c, _| batch_by_id(c, id)).await
    }

    async fn register_edge(&self, name: &str, at: Millis) -> Result<Edge> {
        let name = name.to_owned();
        self.run(move |c, _| records::register_edge(c, &name, at)).await
    }

    async fn decommission_edge(&self, name: &str, at: Millis) -> Result<()> {
        let name = name.to_owned();
        self.run(move |c, _| {
            let tx = c.transaction()?;
            records::decommission_edge(&tx, &name, at)?;
            positions::forget_watermarks(&tx, &name)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn edges(&self) -> Result<Vec<Edge>> {
        self.read_run(|c, _| records::edges(c)).await
    }

    async fn set_watermark(&self, edge: &str, queue: u32, applied: u64, at: Millis) -> Result<()> {
        let edge = edge.to_owned();
        self.run(move |c, q| records::set_watermark(c, q, &edge, queue, applied, at)).await
    }

    async fn report_failure(&self, edge: &str, queue: u32, offset: u64, reason: &str, at: Millis) -> Result<()> {
        let (edge, reason) = (edge.to_owned(), reason.to_owned());
        self.run(move |c, _| records::report_failure(c, &edge, queue, offset, &reason, at)).await
    }

    async fn record_report(&self, edge: &str, report: EdgeReport, at: Millis) -> Result<u64> {
        let edge = edge.to_owned();
        self.run(move |c, q| records::record_report(c, q, &edge, &report, at)).await
    }

    async fn set_edge_policy(&self, edge: &str, policy: EdgePolicy, at: Millis) -> Result<()> {
        let edge = edge.to_owned();
        self.run(move |c, _| records::set_edge_policy(c, &edge, &policy, at)).await
    }

    async fn lower_watermarks(&self, edge: &str, caps: Vec<(u32, u64)>, at: Millis) -> Result<()> {
        let edge = edge.to_owned();
        self.run(move |c, q| positions::lower_watermarks(c, q, &edge, &caps, at)).await
    }

    async fn record_edge_event(&self, event: EdgeEvent) -> Result<bool> {
        self.run(move |c, _| positions::record_edge_event(c, &event)).await
    }

    async fn edge_events(&self, edge: Option<&str>, limit: usize) -> Result<Vec<EdgeEvent>> {
        let edge = edge.map(str::to_owned);
        self.read_run(move |c, _| positions::edge_events(c, edge.as_deref(), limit)).await
    }

    async fn watermarks(&self) -> Result<Vec<Watermark>> {
        self.read_run(|c, _| records::watermarks(c)).await
    }

    async fn lowest_watermarks(&self) -> Result<Option<Vec<u64>>> {
        self.read_run(records::lowest_watermarks).await
    }

    async fn progress(&self, id: BatchId) -> Result<Option<Progress>> {
        self.read_run(move |c, q| records::progress(c, q, id)).await
    }

    async fn records(&self, query: RecordQuery, after: Option<RecordCursor>, limit: usize) -> Result<RecordPage> {
        // Batches accepted before this query are in its answer: wait for their task rows.
        self.indexed().await;
        self.read_run(move |c, _| records::records(c, &query, after, limit)).await
    }

    async fn find_fold_target(
        &self,
        kind: TaskKind,
        target: &str,
        soft: bool,
        since: Millis,
    ) -> Result<Option<TaskRef>> {
        let target = target.to_owned();
        self.read_run(move |c, q| records::find_fold_target(c, q, kind, &target, soft, since)).await
    }

    async fn expire(&self, before: Millis) -> Result<u64> {
        self.run(move |c, _| records::expire(c, before)).await
    }
}

impl TokenStore for SqliteStore {
    async fn insert_token(&self, hash: TokenHash, token: ApiToken) -> Result<()> {
        self.run(move |c, _| records::insert_token(c, hash, &token)).await
    }

    async fn find_token(&self, hash: TokenHash) -> Result<Option<ApiToken>> {
        self.read_run(move |c, _| records::find_token(c, hash)).await
    }

    async fn delete_token(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.run(move |c, _| records::delete_token(c, &name)).await
    }
}

#[cfg(test)]
mod tests;
