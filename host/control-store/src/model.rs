//! The values that cross the storage traits: what callers hand in and what stores hand back.
//!
//! Everything here is plain data with no backend types, so the API and the queue-selection code
//! compile against these alone and a NATS JetStream or PostgreSQL backend returns the same values.
//! Times are milliseconds since the Unix epoch chosen by the caller (the store never reads the
//! clock), which keeps the stores deterministic under test.

pub use edgepurge_sdk::TaskKind;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// Identifies one accepted batch within a control node's store. Assigned by the store, increasing.
pub type BatchId = u64;

/// The position of a task in the queue log: its queue index and its offset there.
///
/// Offsets start at 1 and increase by one per task on each queue, so an edge's watermark of `w`
/// means "every task with offset ≤ `w` is applied" and `0` means "nothing applied yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskRef {
    /// Queue index, `0..queue_count`.
    pub queue: u32,
    /// Offset within that queue, from 1.
    pub offset: u64,
}

/// Where a new task goes: a queue of the caller's choice, or into an earlier task (S2.3 folding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Appended to this queue (chosen by the `select-queue` hook).
    Queue(u32),
    /// Not appended: the earlier, still-undelivered task at this position carries it. The record
    /// still lists the request, pointing at that task (found with `RecordStore::find_fold_target`).
    FoldInto(TaskRef),
}

/// One task of a batch as the task generator made it (target already normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// Which queue it goes to, or which earlier task carries it.
    pub placement: Placement,
    /// What it purges (or warms).
    pub kind: TaskKind,
    /// The normalised URL, prefix, tag or host; empty for `everything`.
    pub target: String,
    /// Soft purge: mark stale instead of removing.
    pub soft: bool,
    /// Size of the task message in bytes (S0.3's `a_i`).
    pub size_bytes: u64,
    /// The host the task applies to; empty for `everything` and cross-host tags.
    pub host: String,
}

impl NewTask {
    /// A task for `queue` with size computed from the target, the common case in tests and tools.
    pub fn new(queue: u32, kind: TaskKind, target: impl Into<String>, host: impl Into<String>) -> Self {
        let target = target.into();
        // Roughly what a postcard frame of the task costs: the target plus a small header.
        let size_bytes = target.len() as u64 + 16;
        NewTask { placement: Placement::Queue(queue), kind, target, soft: false, size_bytes, host: host.into() }
    }
}

/// What the API accepted: the batch's own fields, the tasks travel beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatch {
    /// The token that submitted it (by name; records say "by which token").
    pub token_name: String,
    /// When the API accepted it; also the instant that fixes which edges its progress counts.
    pub accepted_at: Millis,
    /// The `Idempotency-Key` header, unique per token: a repeat returns the first batch.
    pub idempotency_key: Option<String>,
}

/// What one batch needs applied on one queue.
///
/// A batch is appended in one atomic step, so its own tasks on one queue are contiguous offsets
/// `first..=last`. Tasks folded into earlier tasks (S2.3) are counted apart: they are applied
/// once the furthest task they were folded into is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpan {
    /// Queue index.
    pub queue: u32,
    /// First offset of the batch's own tasks here (0 when it has none on this queue).
    pub first: u64,
    /// Last offset of the batch's own tasks here (0 when it has none).
    pub last: u64,
    /// Number of its own tasks here (`last - first + 1`, or 0).
    pub own: u64,
    /// Number of its tasks folded into earlier tasks of this queue.
    pub folded: u64,
    /// The furthest offset those were folded into (0 when none).
    pub folded_last: u64,
}

impl QueueSpan {
    /// The offset an edge's watermark must reach for the whole span to be applied.
    pub fn needed(&self) -> u64 {
        self.last.max(self.folded_last)
    }

    /// How many of the span's tasks an edge with watermark `applied` has applied.
    pub fn applied(&self, applied: u64) -> u64 {
        let own = if self.own == 0 || applied < self.first { 0 } else { (applied - self.first + 1).min(self.own) };
        // Folded tasks count as one group: exact per-task counting would need the folded rows,
        // and folding is for small repeated purges where the difference does not matter.
        let folded = if self.folded > 0 && applied >= self.folded_last { self.folded } else { 0 };
        own + folded
    }
}

/// An accepted batch as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The store-assigned id.
    pub id: BatchId,
    /// The submitting token's name.
    pub token_name: String,
    /// When it was accepted.
    pub accepted_at: Millis,
    /// Number of tasks (requests) in it, folded ones included.
    pub task_count: u64,
    /// The idempotency key it was submitted with, if any.
    pub idempotency_key: Option<String>,
    /// Per queue it touched, the offsets it needs applied.
    pub spans: Vec<QueueSpan>,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The batch: the new one, or the first one submitted with the same idempotency key.
    pub batch: Batch,
    /// False when the idempotency key matched an earlier batch and nothing was appended.
    pub created: bool,
}

/// A task read back from a queue, as the queue server sends it to edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedTask {
    /// Its position.
    pub at: TaskRef,
    /// The batch it belongs to.
    pub batch: BatchId,
    /// What it purges.
    pub kind: TaskKind,
    /// Normalised target.
    pub target: String,
    /// Soft purge.
    pub soft: bool,
    /// Message size in bytes.
    pub size_bytes: u64,
    /// The host it applies to.
    pub host: String,
}

/// A run of consecutive tasks of one queue from one batch, encoded once when it was appended
/// (issue 15): `encoded` is postcard's `Vec<WireTask>` (`edgepurge_wire::encode_tasks`, task ids
/// `edgepurge_wire::task_id`, tenant = the batch's token name), which the queue server splices
/// into a `Tasks` frame for every edge without decoding it (`edgepurge_wire::tasks_frame`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The queue.
    pub queue: u32,
    /// Offset of its first task.
    pub first: u64,
    /// Offset of its last task (`first + number of tasks - 1`).
    pub last: u64,
    /// The batch its tasks belong to.
    pub batch: BatchId,
    /// Sum of its tasks' `size_bytes` (what flow control and S0.3 count).
    pub bytes: u64,
    /// The encoded tasks.
    pub encoded: Vec<u8>,
}

impl QueuedTask {
    /// Its wire form with the submitting token's name as the tenant (task id
    /// `edgepurge_wire::task_id` of its position): what chunks encode and what positions are
    /// fingerprinted against.
    pub fn to_wire(self, tenant: String) -> edgepurge_wire::WireTask {
        edgepurge_wire::WireTask {
            id: edgepurge_wire::task_id(self.at.queue, self.at.offset),
            kind: self.kind.into(),
            target: self.target,
            soft: self.soft,
            size_bytes: self.size_bytes,
            host: self.host,
            tenant,
        }
    }
}

/// Work a queue still has to deliver above some offset (S0.3's `n` and `Σa_i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    /// Number of tasks.
    pub tasks: u64,
    /// Sum of their sizes in bytes.
    pub bytes: u64,
}

/// The state of one queue's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueInfo {
    /// Queue index.
    pub queue: u32,
    /// The lowest offset still readable (everything below was trimmed). 1 when nothing was.
    pub first: u64,
    /// The offset the next appended task will get.
    pub next: u64,
}

/// A registered edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Its identity (from its certificate).
    pub name: String,
    /// When it was registered: it counts for batches accepted at or after this instant.
    pub registered_at: Millis,
    /// When it was decommissioned; it then counts for no batch's progress.
    pub decommissioned_at: Option<Millis>,
    /// When the edge last spoke to this control node (registered on a connection, reported
    /// progress or a policy load); `None` before its first report.
    pub last_seen: Option<Millis>,
    /// The last policy load the edge reported, and when.
    pub policy: Option<(EdgePolicy, Millis)>,
}

/// Something that happened to an edge's positions, kept for `GET /v1/edges` (issue 14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeEvent {
    /// The edge.
    pub edge: String,
    /// When, milliseconds since the Unix epoch.
    pub at: Millis,
    /// What kind of event.
    pub kind: EdgeEventKind,
    /// What happened and what it did to the edge's cache, for operators.
    pub message: String,
}

/// The kinds of [`EdgeEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeEventKind {
    /// Control refused the edge's resume positions (another log, beyond the log's end, another
    /// task at that offset) and made it purge everything and start at the log's start.
    PositionsReset,
    /// Control refused a watermark beyond what it had sent the edge.
    WatermarkRefused,
    /// The edge reported something about itself (its receive buffer was damaged and replaced, it
    /// purged everything).
    Notice,
}

impl EdgeEventKind {
    /// The stored and reported name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PositionsReset => "positions-reset",
            Self::WatermarkRefused => "watermark-refused",
            Self::Notice => "edge-notice",
        }
    }

    /// The kind named `name` ([`EdgeEventKind::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::PositionsReset, Self::WatermarkRefused, Self::Notice].into_iter().find(|k| k.as_str() == name)
    }
}

/// The outcome of an edge loading a policy the control node sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgePolicy {
    /// The policy's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Lowercase hex SHA-256 of the component the edge received.
    pub sha256: String,
    /// `None` when the policy is serving on the edge; otherwise why the edge refused it (its
    /// previous policy keeps serving).
    pub error: Option<String>,
}

/// One progress report of an edge, written in one step by [`crate::RecordStore::record_report`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeReport {
    /// Per queue, the edge's applied watermark (lower than stored: ignored).
    pub applied: Vec<(u32, u64)>,
    /// Tasks the edge applied but could not apply as asked, with the reason.
    pub failures: Vec<(TaskRef, String)>,
}

/// One edge's applied offset on one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// The edge.
    pub edge: String,
    /// The queue.
    pub queue: u32,
    /// Every task with offset ≤ this is applied on the edge.
    pub applied: u64,
    /// When the edge reported it.
    pub updated_at: Millis,
}

/// One edge's progress on a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeProgress {
    /// The edge.
    pub edge: String,
    /// Tasks of the batch the edge has applied.
    pub applied: u64,
    /// Tasks of the batch (the same for every edge).
    pub total: u64,
    /// Tasks of the batch the edge reported it could not apply (counted in `applied`: the edge
    /// moved past them).
    pub failed: u64,
}

/// A batch's progress, computed from watermarks (DESIGN decision 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The batch.
    pub batch: Batch,
    /// One entry per edge that counts: registered at or before acceptance, not decommissioned.
    pub edges: Vec<EdgeProgress>,
    /// Every counted edge has applied every task (also true when no edge counts).
    pub done: bool,
    /// The first [`Progress::FAILURE_SAMPLE`] failure reports of the batch, oldest first (the
    /// per-edge counts in `edges` cover all of them).
    pub failures: Vec<TaskFailureRecord>,
}

/// One task an edge reported it could not apply, as the records keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailureRecord {
    /// The edge that reported it.
    pub edge: String,
    /// Where the task is in the queue log.
    pub task: TaskRef,
    /// What the task does.
    pub kind: TaskKind,
    /// Its target (normalised URL, prefix, tag or host; empty for `everything`).
    pub target: String,
    /// What the edge said went wrong.
    pub reason: String,
    /// When the edge reported it.
    pub at: Millis,
}

impl Progress {
    /// How many failure reports a progress carries at most.
    pub const FAILURE_SAMPLE: usize = 20;

    /// Applied tasks over all counted edges as a percentage (100 when no edge counts).
    pub fn percent(&self) -> f64 {
        let total: u64 = self.edges.iter().map(|e| e.total).sum();
        if total == 0 {
            return 100.0;
        }
        let applied: u64 = self.edges.iter().map(|e| e.applied).sum();
        applied as f64 * 100.0 / total as f64
    }
}

/// What a record query asks for (S0.8): every request that covered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordQuery {
    /// A normalised URL with its host: URL and warm tasks for it, prefix tasks whose prefix it
    /// starts with, host tasks of its host, and `everything` tasks. (A tag purge may have covered
    /// it too, but which tags an object carries is known only at the edge.)
    Url {
        /// The normalised URL.
        url: String,
        /// Its normalised host.
        host: String,
    },
    /// A normalised prefix: URL, warm and prefix tasks under it, prefix tasks it starts with, and
    /// `everything` tasks.
    Prefix(String),
    /// Tag tasks for this tag and `everything` tasks.
    Tag(String),
    /// Every task of this host (URL, prefix, tag, host kinds) and `everything` tasks.
    Host(String),
}

/// Where the next page of a record query starts. Opaque; pass back what the last page returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordCursor(pub u64);

/// One request that covered the queried resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// The batch that carried the request.
    pub batch: BatchId,
    /// The token that submitted it.
    pub token_name: String,
    /// When it was accepted.
    pub accepted_at: Millis,
    /// The task's kind.
    pub kind: TaskKind,
    /// The task's target.
    pub target: String,
    /// Soft purge.
    pub soft: bool,
    /// The task's host.
    pub host: String,
    /// The task that carried it to the edges; an edge has applied it when its watermark on
    /// `carried_by.queue` is ≥ `carried_by.offset`.
    pub carried_by: TaskRef,
    /// True when the request was folded into an earlier task (S2.3).
    pub folded: bool,
}

/// One page of a record query, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPage {
    /// The entries.
    pub entries: Vec<RecordEntry>,
    /// Pass this to get the next page; `None` when this was the last.
    pub next: Option<RecordCursor>,
}

/// A stored API token: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its unique name (what records show).
    pub name: String,
    /// Host patterns it may purge (`example.com`, `*.example.com`); matching is the API's job.
    pub hosts: Vec<String>,
    /// May purge `everything` and change policies.
    pub admin: bool,
    /// When it was created.
    pub created_at: Millis,
}
