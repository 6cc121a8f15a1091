//! The storage traits the API, the queue server and the queue selection are written against.
//!
//! They are async because the backends that come after SQLite (NATS JetStream for queues,
//! PostgreSQL for records) are network clients. Methods return `impl Future + Send` so callers
//! can spawn them on tokio; a caller is generic over the store (`S: ControlStore`) rather than
//! holding a `dyn`, which native async trait methods do not allow.
//!
//! A backend that splits queues and records over two systems still implements
//! [`QueueStore::append`] as one atomic step: reserve the batch (and its idempotency key) in the
//! record store as *pending*, publish the tasks (JetStream atomic batch publish), then mark the
//! batch committed with its offsets; pending batches are invisible to every query and are
//! finished or discarded on start-up. The README describes this.

use std::future::Future;

use crate::model::*;
use crate::{Result, TokenHash};

/// N durable queues of purge tasks.
pub trait QueueStore: Send + Sync {
    /// How many queues there are (indices `0..queue_count()`).
    fn queue_count(&self) -> u32;

    /// The identity of these queue logs: made once when the storage is created and kept in its
    /// backups, so a re-created store has another one. Offsets are positions in one log: an edge
    /// keeps this beside its watermarks and the queue server refuses offsets from another log.
    fn log_id(&self) -> &str;

    /// Records `batch` and appends its `tasks` in one atomic step, durable before it returns.
    ///
    /// Each task goes to the queue its [`Placement`] names, at the next offset there, in the order
    /// given; a folded task is recorded but not appended. On any error nothing of the batch is
    /// visible. If `batch.idempotency_key` was already used by the same token, nothing is appended
    /// and the first batch is returned with `created == false`.
    fn append(&self, batch: NewBatch, tasks: Vec<NewTask>) -> impl Future<Output = Result<Appended>> + Send;

    /// Up to `limit` tasks of `queue` with offsets ≥ `from`, in offset order.
    ///
    /// Fails with [`crate::Error::Trimmed`] when `from` is below the queue's first retained
    /// offset (the reader missed tasks and must purge everything, DESIGN decision 5).
    fn read(&self, queue: u32, from: u64, limit: usize) -> impl Future<Output = Result<Vec<QueuedTask>>> + Send;

    /// Whole chunks of `queue` holding offsets `from` and above, in offset order: the first may
    /// start below `from` (chunks are never split), and reading stops after the chunk that
    /// brings the tasks returned to `max_tasks` or more (at least one chunk when any exists).
    /// `Error::Trimmed` when `from` is below the first retained offset, as for
    /// [`read`](Self::read).
    fn read_chunks(&self, queue: u32, from: u64, max_tasks: usize) -> impl Future<Output = Result<Vec<Chunk>>> + Send;

    /// The first retained and the next offset of every queue, in queue order.
    fn queue_info(&self) -> impl Future<Output = Result<Vec<QueueInfo>>> + Send;

    /// Tasks and bytes of `queue` with offsets above `after` (e.g. the lowest watermark).
    fn pending(&self, queue: u32, after: u64) -> impl Future<Output = Result<Pending>> + Send;

    /// Drops the tasks of `queue` with offsets below `below` from the queue log (their records
    /// stay until [`RecordStore::expire`]). Returns how many became unreadable. Idempotent.
    fn trim(&self, queue: u32, below: u64) -> impl Future<Output = Result<u64>> + Send;

    /// Writes something small and durable (committed as an append is, then visible to nothing
    /// else), to tell whether the store can take a batch now: a store that still reads but can
    /// no longer write (full disk, read-only file system, a lock held elsewhere) fails here.
    /// Control's `/readyz` calls it at most once a second. A backend that splits queues and
    /// records over two systems writes to both.
    fn probe_write(&self) -> impl Future<Output = Result<()>> + Send;
}

/// Batches, edges, watermarks, progress and record queries.
pub trait RecordStore: Send + Sync {
    /// The batch with this id, if it exists.
    fn batch(&self, id: BatchId) -> impl Future<Output = Result<Option<Batch>>> + Send;

    /// Registers an edge; it counts for batches accepted at or after `at`. Registering a known edge
    /// again keeps its registration time, unless it was decommissioned: then it comes back as new,
    /// registered at `at` (it did not apply what was queued while it was gone).
    fn register_edge(&self, name: &str, at: Millis) -> impl Future<Output = Result<Edge>> + Send;

    /// Decommissions an edge: it no longer counts for any batch's progress nor holds back trims,
    /// and its watermarks are forgotten (if it comes back, it starts from what it then holds).
    fn decommission_edge(&self, name: &str, at: Millis) -> impl Future<Output = Result<()>> + Send;

    /// Every edge ever registered, by name.
    fn edges(&self) -> impl Future<Output = Result<Vec<Edge>>> + Send;

    /// Records that `edge` has applied every task of `queue` up to `applied`. Watermarks never go
    /// back: a lower value than the stored one (a late, reordered report) is ignored.
    fn set_watermark(
        &self,
        edge: &str,
        queue: u32,
        applied: u64,
        at: Millis,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records that `edge` could not apply the task at `offset` of `queue` (it still moves its
    /// watermark past it); the batch then ends `partially failed` instead of `done`. Reporting the
    /// same task again keeps the first report.
    fn report_failure(
        &self,
        edge: &str,
        queue: u32,
        offset: u64,
        reason: &str,
        at: Millis,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Writes one progress report of `edge` in one step: every `applied` watermark as
    /// [`RecordStore::set_watermark`] does and every failure as [`RecordStore::report_failure`]
    /// does, and marks the edge seen at `at`. Failures naming a task that is not in the queue log
    /// (e.g. already trimmed) are skipped, not fatal: returns how many were skipped. Fails, writing
    /// nothing, for an unknown edge or a queue that does not exist.
    fn record_report(&self, edge: &str, report: EdgeReport, at: Millis) -> impl Future<Output = Result<u64>> + Send;

    /// Records what `edge` reported after loading a policy (serving, or refused and why), and
    /// marks the edge seen at `at`. The latest report replaces the previous one.
    fn set_edge_policy(&self, edge: &str, policy: EdgePolicy, at: Millis) -> impl Future<Output = Result<()>> + Send;

    /// Lowers `edge`'s watermarks to at most the given offset per queue (queues not listed keep
    /// theirs), at `at`. The one exception to "watermarks never go back": the queue server calls
    /// it when a stream starts, because what the edge holds now (after losing its buffer, or
    /// after control refused its positions) is the truth, whatever it reported before.
    fn lower_watermarks(
        &self,
        edge: &str,
        caps: Vec<(u32, u64)>,
        at: Millis,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records an event of an edge's positions; an identical one (same edge, time and message)
    /// is kept once. Returns whether it was new.
    fn record_edge_event(&self, event: EdgeEvent) -> impl Future<Output = Result<bool>> + Send;

    /// The latest `limit` events of `edge` (of every edge when `None`), newest first.
    fn edge_events(&self, edge: Option<&str>, limit: usize) -> impl Future<Output = Result<Vec<EdgeEvent>>> + Send;

    /// Every stored watermark, by edge then queue.
    fn watermarks(&self) -> impl Future<Output = Result<Vec<Watermark>>> + Send;

    /// Per queue, the lowest watermark among registered, not decommissioned edges (0 for an edge
    /// with no report on that queue); `None` when no edge is registered.
    fn lowest_watermarks(&self) -> impl Future<Output = Result<Option<Vec<u64>>>> + Send;

    /// A batch's progress from the watermarks, or `None` if the batch does not exist.
    fn progress(&self, id: BatchId) -> impl Future<Output = Result<Option<Progress>>> + Send;

    /// Every request that covered `query`'s resource, oldest first, `limit` per page from `after`.
    fn records(
        &self,
        query: RecordQuery,
        after: Option<RecordCursor>,
        limit: usize,
    ) -> impl Future<Output = Result<RecordPage>> + Send;

    /// S2.3 folding: the latest task of the same `kind` and `target`, accepted at or after
    /// `since`, that some counted edge has not applied yet (its offset is above the queue's lowest
    /// watermark), and that is at least as strong (a soft request folds into a hard or soft task,
    /// a hard request only into a hard one). `None` when the request must be queued.
    fn find_fold_target(
        &self,
        kind: TaskKind,
        target: &str,
        soft: bool,
        since: Millis,
    ) -> impl Future<Output = Result<Option<TaskRef>>> + Send;

    /// Deletes the records of batches accepted before `before` whose tasks are all trimmed from the
    /// queue logs (a record never outlives the task an edge may still need). Returns how many
    /// batches went.
    fn expire(&self, before: Millis) -> impl Future<Output = Result<u64>> + Send;
}

/// API tokens, by hash only.
pub trait TokenStore: Send + Sync {
    /// Stores a token's hash and attributes. Fails with [`crate::Error::DuplicateToken`] if the
    /// name is taken.
    fn insert_token(&self, hash: TokenHash, token: ApiToken) -> impl Future<Output = Result<()>> + Send;

    /// The token whose hash is `hash` (hash the presented token with [`TokenHash::of`]).
    fn find_token(&self, hash: TokenHash) -> impl Future<Output = Result<Option<ApiToken>>> + Send;

    /// Deletes the token named `name`; returns whether it existed.
    fn delete_token(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// One queue's figures for `select-queue` and `GET /v1/queues`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Queue index.
    pub queue: u32,
    /// The lowest watermark of the counted edges (0 when none is registered).
    pub delivered: u64,
    /// What is still to deliver to the slowest edge.
    pub pending: Pending,
    /// First retained and next offsets.
    pub info: QueueInfo,
}

/// Everything the control role stores, plus the queries that combine queues and watermarks.
pub trait ControlStore: QueueStore + RecordStore + TokenStore {
    /// Per queue: what the slowest registered edge has still to apply (depth and pending bytes).
    /// With no edge registered everything retained is pending.
    fn queue_stats(&self) -> impl Future<Output = Result<Vec<QueueStats>>> + Send {
        async move {
            let lowest = self.lowest_watermarks().await?;
            let mut out = Vec::new();
            for info in self.queue_info().await? {
                let delivered = match &lowest {
                    Some(l) => l.get(info.queue as usize).copied().unwrap_or(0),
                    None => 0,
                };
                let after = delivered.max(info.first.saturating_sub(1));
                let pending = self.pending(info.queue, after).await?;
                out.push(QueueStats { queue: info.queue, delivered, pending, info });
            }
            Ok(out)
        }
    }

    /// Trims every queue below the lowest watermark of the registered edges (nothing when no edge
    /// is registered: there is nobody to say the tasks were delivered). Returns tasks trimmed.
    fn trim_delivered(&self) -> impl Future<Output = Result<u64>> + Send {
        async move {
            let Some(lowest) = self.lowest_watermarks().await? else { return Ok(0) };
            let mut trimmed = 0;
            for (queue, applied) in lowest.into_iter().enumerate() {
                trimmed += self.trim(queue as u32, applied + 1).await?;
            }
            Ok(trimmed)
        }
    }
}

impl<T: QueueStore + RecordStore + TokenStore> ControlStore for T {}
