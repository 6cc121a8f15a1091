//! The frames: what control sends to an edge ([`ControlFrame`]) and what an edge sends back
//! ([`EdgeFrame`]).
//!
//! Both enums are encoded by postcard, which writes an enum as its variant *index*, so the order
//! of variants is part of the protocol: `Hello` stays variant 0 in both directions forever (so any
//! two versions can at least read each other's greeting and refuse politely), and new variants or
//! fields only ever go at the end together with a minor version bump. Anything else (reordering,
//! removing, changing a field's type) is a major version bump, refused at `Hello`.

use edgepurge_sdk::{Task, TaskKind};
use serde::{Deserialize, Serialize};

use crate::ProtocolVersion;

/// Index of a purge queue, `0..queue_count` (the control store's `TaskRef::queue`).
pub type QueueId = u32;

/// Offset of a task within its queue, from 1 (the control store's `TaskRef::offset`); a watermark
/// of `w` means every task with offset ≤ `w`, and 0 means none.
pub type Offset = u64;

/// A frame control sends to an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlFrame {
    /// The first frame on a stream: who is speaking and which protocol.
    Hello {
        /// The sender's protocol version; checked with [`crate::check_version`].
        protocol_version: ProtocolVersion,
        /// The control node's identity, for the edge's logs and records.
        control_id: String,
    },
    /// A run of consecutive tasks of one queue: `tasks[i]` has offset `first_offset + i`.
    ///
    /// One queue per frame keeps offsets implicit (8 bytes saved per task) and makes "in queue
    /// order" the only order an edge can receive them in.
    Tasks {
        /// The queue they belong to.
        queue: QueueId,
        /// Offset of `tasks[0]`.
        first_offset: Offset,
        /// The tasks, in offset order.
        tasks: Vec<WireTask>,
    },
    /// The edge asked to resume below what the queue still holds: the tasks in between are gone,
    /// so the edge must purge everything it holds and continue from `first_retained`.
    Trimmed {
        /// The queue that was trimmed.
        queue: QueueId,
        /// The lowest offset the queue still holds; the next `Tasks` frame starts here.
        first_retained: Offset,
    },
    /// A policy module to load and swap in (issue \[4\] item 4).
    Policy {
        /// The policy's name.
        name: String,
        /// Its version as the control records it.
        version: String,
        /// Lowercase hex SHA-256 of `bytes`, so the edge can verify what it received and report
        /// what it runs.
        sha256: String,
        /// The Wasm component.
        bytes: Vec<u8>,
    },
    /// Liveness: sent when the stream has been idle, so a dead peer is noticed.
    Heartbeat {
        /// Sender's clock, milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Protocol 1.1: the answer to the edge's [`EdgeFrame::Positions`], sent before any `Tasks`:
    /// which log the offsets belong to and where this stream starts each queue.
    Log {
        /// The identity of control's queue logs ([`LogId`]); the edge keeps it beside its
        /// watermarks and names it in its next `Positions`.
        log_id: LogId,
        /// `Some(why)` when the edge's positions are not positions in this log (another log's
        /// identity, an offset beyond the log's end, a task that is not the one the edge holds at
        /// that offset): the edge must purge everything it holds, drop what it buffered from this
        /// node, and continue from `start`. `None`: the positions were accepted.
        reset: Option<String>,
        /// Per queue, the next offset this stream sends (with `reset`, the log's current start).
        start: Vec<(QueueId, Offset)>,
    },
}

/// The identity of a control store's queue logs: created with the store, kept in its backups.
/// Offsets mean something only against the log they were issued by.
pub type LogId = String;

/// A frame an edge sends to control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EdgeFrame {
    /// The first frame on a stream: the protocol and where to resume.
    Hello {
        /// The sender's protocol version; checked with [`crate::check_version`].
        protocol_version: ProtocolVersion,
        /// Per queue, the next offset the edge wants (its last durably received offset + 1).
        /// Queues not listed start from offset 1.
        resume: Vec<(QueueId, Offset)>,
        /// Free space in the edge's receive buffer, in bytes, for flow control.
        buffer_free: u64,
    },
    /// Progress report. Offsets are watermarks: everything at or below is covered.
    Ack {
        /// Per queue, the highest offset durably written to the receive buffer.
        received: Vec<(QueueId, Offset)>,
        /// Per queue, the highest offset applied to the cache.
        applied: Vec<(QueueId, Offset)>,
        /// Tasks that were applied but failed (they still count as applied).
        failures: Vec<TaskFailure>,
        /// Free space in the edge's receive buffer, in bytes.
        buffer_free: u64,
    },
    /// The outcome of loading a [`ControlFrame::Policy`].
    PolicyLoaded {
        /// The policy's name, as sent.
        name: String,
        /// Its version, as sent.
        version: String,
        /// The SHA-256 the edge computed over the bytes it received.
        sha256: String,
        /// `None` when the policy is now serving; otherwise why it was refused (the previous
        /// policy keeps serving).
        error: Option<String>,
    },
    /// Liveness: sent when the stream has been idle, so a dead peer is noticed.
    Heartbeat {
        /// Sender's clock, milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Protocol 1.1: sent once, right after the control node's `Hello` when that names minor ≥ 1,
    /// and answered by [`ControlFrame::Log`]. Says which log the `Hello`'s resume offsets come
    /// from, so control can refuse offsets that are not its own instead of believing them.
    Positions {
        /// The log the edge's offsets for this node were issued by; `None` when it holds none
        /// (a new edge, a fresh buffer, or offsets kept by a build before protocol 1.1).
        log_id: Option<LogId>,
        /// Per queue: the last offset received and the [`fingerprint`] of the task the edge
        /// received at that offset, so a log restored from an older backup, which reissues the
        /// same offsets for other tasks, is told apart.
        last: Vec<(QueueId, Offset, u64)>,
        /// The edge's latest notices for this node (a damaged buffer replaced, positions reset),
        /// milliseconds since the Unix epoch and the message; control records each once.
        notices: Vec<(u64, String)>,
    },
}

/// One task that an edge could not apply as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// The task's queue.
    pub queue: QueueId,
    /// The task's offset.
    pub offset: Offset,
    /// What went wrong, for the records and the purge status.
    pub reason: String,
}

/// A purge task on the wire: [`edgepurge_sdk::Task`] with a wire-stable encoding.
///
/// A separate type (not `Task` itself) because `Task`'s serde form is kebab-case JSON with
/// `deny_unknown_fields`, and changes there must not silently change the queue protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTask {
    /// Unique id of the task within the control node.
    pub id: u64,
    /// What the task does.
    pub kind: WireTaskKind,
    /// The normalised URL, prefix, tag or host; empty for `everything`.
    pub target: String,
    /// Soft purge: mark stale instead of removing.
    pub soft: bool,
    /// Size of the task message in bytes.
    pub size_bytes: u64,
    /// The host the task applies to; empty for `everything` and cross-host tags.
    pub host: String,
    /// The tenant that submitted the purge.
    pub tenant: String,
}

/// [`TaskKind`] on the wire. Its own enum so that postcard's variant indices are fixed here: a
/// reordering of `TaskKind` cannot change what an older edge decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WireTaskKind {
    /// One URL.
    Url,
    /// Every URL starting with the target.
    Prefix,
    /// Every object carrying the tag.
    Tag,
    /// Every object of the host.
    Host,
    /// Every object.
    Everything,
    /// Prefetch the URL.
    Warm,
}

impl From<TaskKind> for WireTaskKind {
    fn from(kind: TaskKind) -> Self {
        match kind {
            TaskKind::Url => Self::Url,
            TaskKind::Prefix => Self::Prefix,
            TaskKind::Tag => Self::Tag,
            TaskKind::Host => Self::Host,
            TaskKind::Everything => Self::Everything,
            TaskKind::Warm => Self::Warm,
        }
    }
}

impl From<WireTaskKind> for TaskKind {
    fn from(kind: WireTaskKind) -> Self {
        match kind {
            WireTaskKind::Url => Self::Url,
            WireTaskKind::Prefix => Self::Prefix,
            WireTaskKind::Tag => Self::Tag,
            WireTaskKind::Host => Self::Host,
            WireTaskKind::Everything => Self::Everything,
            WireTaskKind::Warm => Self::Warm,
        }
    }
}

impl From<Task> for WireTask {
    fn from(task: Task) -> Self {
        Self {
            id: task.id,
            kind: task.kind.into(),
            target: task.target,
            soft: task.soft,
            size_bytes: task.size_bytes,
            host: task.host,
            tenant: task.tenant,
        }
    }
}

impl From<&Task> for WireTask {
    fn from(task: &Task) -> Self {
        task.clone().into()
    }
}

impl From<WireTask> for Task {
    fn from(task: WireTask) -> Self {
        Self {
            id: task.id,
            kind: task.kind.into(),
            target: task.target,
            soft: task.soft,
            size_bytes: task.size_bytes,
            tenant: task.tenant,
            host: task.host,
        }
    }
}

impl ControlFrame {
    /// The frame's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "Hello",
            Self::Tasks { .. } => "Tasks",
            Self::Trimmed { .. } => "Trimmed",
            Self::Policy { .. } => "Policy",
            Self::Heartbeat { .. } => "Heartbeat",
            Self::Log { .. } => "Log",
        }
    }
}

/// A task's fingerprint: FNV-1a (64-bit) over what the task does — kind, target, soft, host and
/// size, not its id (which is derived from its position) nor its tenant (which control fills in
/// from a record that may have expired). Stable across builds and platforms, unlike std's hasher.
pub fn fingerprint(task: &WireTask) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    eat(&[task.kind as u8, u8::from(task.soft)]);
    // Lengths first, so ("ab", "c") and ("a", "bc") differ.
    for part in [task.target.as_bytes(), task.host.as_bytes()] {
        eat(&(part.len() as u64).to_le_bytes());
        eat(part);
    }
    eat(&task.size_bytes.to_le_bytes());
    hash
}

impl ControlFrame {
    /// For a `Tasks` frame, its queue and the offset of each task, in order; `None` for other
    /// frames. Call on a frame that passed [`ControlFrame::validate`] (every decoded one has).
    pub fn task_offsets(&self) -> Option<(QueueId, impl Iterator<Item = (Offset, &WireTask)>)> {
        match self {
            Self::Tasks { queue, first_offset, tasks } => {
                // Not `first_offset..`: a RangeFrom panics on stepping past u64::MAX, which a valid
                // run ending exactly there would do. Wrapping only matters for unvalidated frames.
                let first = *first_offset;
                Some((*queue, tasks.iter().enumerate().map(move |(i, task)| (first.wrapping_add(i as u64), task))))
            }
            _ => None,
        }
    }

    /// Checks what postcard cannot: offsets start at 1 and a run's last offset fits in a `u64`.
    /// A frame breaking this would corrupt the edge's watermarks, so the decoder refuses it.
    pub fn validate(&self) -> Result<(), &'static str> {
        match self {
            Self::Tasks { first_offset, tasks, .. } => check_run(*first_offset, tasks.len() as u64),
            Self::Trimmed { first_retained: 0, .. } => Err("Trimmed.first_retained is 0; offsets start at 1"),
            Self::Log { start, .. } if start.iter().any(|&(_, next)| next == 0) => {
                Err("Log.start has next offset 0; offsets start at 1")
            }
            _ => Ok(()),
        }
    }
}

/// The offset rules of a `Tasks` run of `len` tasks from `first_offset` (shared by
/// [`ControlFrame::validate`] and the spliced frames of `chunk::tasks_frame`).
pub(crate) fn check_run(first_offset: Offset, len: u64) -> Result<(), &'static str> {
    if first_offset == 0 {
        return Err("Tasks.first_offset is 0; offsets start at 1");
    }
    if first_offset.checked_add(len.saturating_sub(1)).is_none() {
        return Err("Tasks run goes past the largest offset");
    }
    Ok(())
}

impl EdgeFrame {
    /// Checks what postcard cannot: a resume point is a next offset, so at least 1 (watermarks in
    /// `Ack` may be 0, "nothing yet").
    pub fn validate(&self) -> Result<(), &'static str> {
        match self {
            Self::Hello { resume, .. } if resume.iter().any(|&(_, next)| next == 0) => {
                Err("Hello.resume has next offset 0; offsets start at 1")
            }
            _ => Ok(()),
        }
    }
}

impl EdgeFrame {
    /// The frame's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "Hello",
            Self::Ack { .. } => "Ack",
            Self::PolicyLoaded { .. } => "PolicyLoaded",
            Self::Heartbeat { .. } => "Heartbeat",
            Self::Positions { .. } => "Positions",
        }
    }
}
