//! The control role's storage: durable purge queues, batch records, edge watermarks and API
//! tokens, behind backend-neutral traits (DESIGN decision 8).
//!
//! - [`QueueStore`] — N durable queues. A batch's tasks are appended in one atomic step, durable
//!   before the call returns (so the API can answer `202`); each queue numbers its tasks with
//!   increasing offsets from 1; edges read from an offset; logs are trimmed below an offset.
//! - [`RecordStore`] — batches (with idempotency keys), registered edges and their per-queue
//!   applied watermarks, progress computed from those watermarks (DESIGN decision 6: never rows per
//!   (task, edge)), record queries by URL, prefix, tag and host (S0.8), and the S2.3 folding query.
//! - [`TokenStore`] — API tokens, stored only as SHA-256 hashes ([`TokenHash`]).
//! - [`ControlStore`] — all three together, with the queries that combine them
//!   ([`ControlStore::queue_stats`], [`ControlStore::trim_delivered`]).
//!
//! [`SqliteStore`] is the default backend: one SQLite file per control node, WAL, `synchronous =
//! FULL`. Other backends run the same [`conformance`] suite (see the README for how one plugs in).
//!
//! The traits are async (`impl Future + Send` in the trait, usable generically but not as `dyn`):
//! the future backends are network clients, and the API awaits storage from tokio tasks. The
//! SQLite backend runs its blocking work on tokio's blocking pool, so a million-row append never
//! stalls the runtime's worker threads.

#![deny(missing_docs)]

pub mod conformance;
mod model;
mod sqlite;
mod token;
mod traits;

pub use model::*;
pub use sqlite::{SqliteStore, SCHEMA_VERSION};
pub use token::TokenHash;
pub use traits::{ControlStore, QueueStats, QueueStore, RecordStore, TokenStore};

/// A storage error. Messages say what went wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend itself failed (I/O, corruption, lost connection).
    #[error("storage backend failed: {0}; check that the database is reachable, writable and not full, then retry")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A queue index outside `0..queues`.
    #[error("queue {queue} does not exist (this store has {queues} queues); choose a queue index below {queues}")]
    NoSuchQueue {
        /// The index asked for.
        queue: u32,
        /// How many queues exist.
        queues: u32,
    },
    /// A read below the trimmed part of a queue.
    #[error(
        "queue {queue} offsets below {first} were trimmed (asked from {from}); the reader must purge everything \
         it holds and resume from {first}"
    )]
    Trimmed {
        /// The queue.
        queue: u32,
        /// The offset asked for.
        from: u64,
        /// The lowest offset still readable.
        first: u64,
    },
    /// A task asked to fold into a task that is not in the queue log.
    #[error("no task at queue {}, offset {} to fold into; look it up again with find_fold_target", .0.queue, .0.offset)]
    NoSuchTask(TaskRef),
    /// A batch with no tasks.
    #[error("a batch needs at least one task; submit at least one URL, prefix, tag or host")]
    EmptyBatch,
    /// An edge name that was never registered.
    #[error("edge {0:?} is not registered; register it before reporting its progress")]
    UnknownEdge(String),
    /// A failure report for a task that is not in the queue log.
    #[error("no task at offset {offset} of queue {queue}; report failures for tasks the edge was sent")]
    UnknownTask {
        /// The queue.
        queue: u32,
        /// The offset.
        offset: u64,
    },
    /// A token name already taken.
    #[error("a token named {0:?} already exists; choose another name")]
    DuplicateToken(String),
    /// A database written by a newer build.
    #[error("the database has schema version {found}, newer than this build's {supported}; run a newer edgepurge")]
    SchemaTooNew {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Fewer queues configured than the database already has.
    #[error(
        "the database has {existing} queues but {configured} are configured; configure at least {existing} so \
         no queued task is stranded"
    )]
    QueueCountShrunk {
        /// Queues in the database.
        existing: u32,
        /// Queues asked for.
        configured: u32,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Backend(Box::new(e))
    }
}
