//! The SQLite schema, its version and the connection settings that make appends durable and fast.

use rusqlite::Connection;

use crate::{Error, Result};

/// The schema version this build writes (`PRAGMA user_version`).
pub const VERSION: i64 = 5;

/// Version 1. `tasks` is both the queue log (rows with `folded = 0`, addressed by `(queue,
/// qoffset)`) and the record of every request (folded rows point at the task that carried them).
/// `queues.first_offset` hides trimmed rows from readers without deleting the records; running
/// byte totals (`cum_bytes`) make a queue's pending bytes two lookups instead of a scan.
pub(super) const V1: &str = "
CREATE TABLE queues (
    queue         INTEGER PRIMARY KEY,
    first_offset  INTEGER NOT NULL,  -- lowest readable offset; below it the log is trimmed
    next_offset   INTEGER NOT NULL,  -- offset of the next appended task
    total_bytes   INTEGER NOT NULL,  -- sum of size_bytes of offsets 1 .. next_offset - 1
    trimmed_bytes INTEGER NOT NULL   -- sum of size_bytes of offsets 1 .. first_offset - 1
);
CREATE TABLE batches (
    id              INTEGER PRIMARY KEY,
    token_name      TEXT NOT NULL,
    accepted_at     INTEGER NOT NULL,
    task_count      INTEGER NOT NULL,
    idempotency_key TEXT,
    first_task      INTEGER NOT NULL,  -- tasks.id range of the batch's rows (appended together)
    last_task       INTEGER NOT NULL
);
CREATE UNIQUE INDEX batches_idempotency ON batches (token_name, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX batches_accepted ON batches (accepted_at);
CREATE TABLE batch_queues (
    batch       INTEGER NOT NULL,
    queue       INTEGER NOT NULL,
    first       INTEGER NOT NULL,
    last        INTEGER NOT NULL,
    own         INTEGER NOT NULL,
    folded      INTEGER NOT NULL,
    folded_last INTEGER NOT NULL,
    PRIMARY KEY (batch, queue)
) WITHOUT ROWID;
CREATE TABLE tasks (
    id         INTEGER PRIMARY KEY,
    batch      INTEGER NOT NULL,
    queue      INTEGER NOT NULL,
    qoffset    INTEGER NOT NULL,  -- own offset, or the carrying task's offset when folded
    folded     INTEGER NOT NULL,  -- 1: folded into the task at (queue, qoffset) (S2.3)
    kind       INTEGER NOT NULL,  -- 0 url, 1 prefix, 2 tag, 3 host, 4 everything, 5 warm
    target     TEXT NOT NULL,
    soft       INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    cum_bytes  INTEGER NOT NULL,  -- the queue's total_bytes through this task (0 when folded)
    host       TEXT NOT NULL
);
CREATE UNIQUE INDEX tasks_log ON tasks (queue, qoffset) WHERE folded = 0;
CREATE INDEX tasks_target ON tasks (target, kind);
CREATE INDEX tasks_host ON tasks (host);
CREATE TABLE edges (
    name              TEXT PRIMARY KEY,
    registered_at     INTEGER NOT NULL,
    decommissioned_at INTEGER
);
CREATE TABLE watermarks (
    edge       TEXT NOT NULL,
    queue      INTEGER NOT NULL,
    applied    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (edge, queue)
) WITHOUT ROWID;
CREATE TABLE task_failures (
    edge   TEXT NOT NULL,
    task   INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (edge, task)
) WITHOUT ROWID;
CREATE INDEX task_failures_task ON task_failures (task);
CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    hash       BLOB NOT NULL UNIQUE,  -- SHA-256 of the token; the token itself is never stored
    hosts      TEXT NOT NULL,         -- patterns joined with newlines
    admin      INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
";

/// Version 2 (issue [4], the queue server): when each edge last spoke to this node and the last
/// policy load it reported. Added columns only, so a version 1 file migrates in place.
const V2: &str = "
ALTER TABLE edges ADD COLUMN last_seen INTEGER;
ALTER TABLE edges ADD COLUMN policy_name TEXT;      -- NULL until the edge reports a policy load
ALTER TABLE edges ADD COLUMN policy_version TEXT;
ALTER TABLE edges ADD COLUMN policy_sha256 TEXT;
ALTER TABLE edges ADD COLUMN policy_error TEXT;     -- NULL: the policy is serving on the edge
ALTER TABLE edges ADD COLUMN policy_at INTEGER;
";

/// Version 3 (issue 14, log identity): `meta.log_id` names this database's queue logs, so an
/// edge's offsets can be checked against the log that issued them; made once with the file (a
/// backup keeps it, a new or re-created file gets a new one). `edge_events` keeps what happened
/// to an edge's positions (reset, refused watermarks, notices the edge sent) for `GET /v1/edges`.
const V3: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('log_id', lower(hex(randomblob(16))));
CREATE TABLE edge_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    edge    TEXT NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE UNIQUE INDEX edge_events_once ON edge_events (edge, at, message);
";

/// Version 4 (issue 15, chunks): the queue log as chunk rows (`chunks::SCHEMA`), and whether a
/// batch's task rows are written yet (`index`: a large batch's rows follow its commit).
const V4: &str = "
ALTER TABLE batches ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1;
CREATE INDEX batches_unindexed ON batches (id) WHERE indexed = 0;
";

/// Version 5 (issue 15): no `(queue, qoffset)` index on `tasks`. Maintaining it was a fifth of
/// writing a bulk batch's rows, and the one lookup it served (the task an edge's failure report
/// names) is answered from the batch's span: rows are numbered in queue order (`index`), so
/// `batch_queues` (by queue and last offset) gives the row id (see `index::task_at`).
const V5: &str = "
DROP INDEX IF EXISTS tasks_log;
CREATE INDEX batch_queues_own ON batch_queues (queue, last) WHERE own > 0;
";

/// A read-only connection to the prepared database at `path` (the store's read pool).
pub fn open_reader(path: &std::path::Path) -> Result<Connection> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // A quarter of the writer's cache each: readers walk indexes, they do not build them.
    conn.pragma_update(None, "cache_size", -16384)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Only a checkpoint's brief lock can make a WAL reader wait.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Sets the connection up and creates or migrates the schema; makes sure `queues` queues exist.
/// Returns the log identity (`meta.log_id`).
pub fn prepare(conn: &mut Connection, queues: u32) -> Result<String> {
    // WAL: readers do not block the writer and a commit is one sequential write. FULL: the WAL is
    // fsynced at every commit, so an appended batch survives power loss before the API says 202.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // A 64 MiB page cache keeps the indexes of a million-row append in memory until the commit.
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;

    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > VERSION {
        return Err(Error::SchemaTooNew { found, supported: VERSION });
    }
    let tx = conn.transaction()?;
    if found < 1 {
        tx.execute_batch(V1)?;
    }
    if found < 2 {
        tx.execute_batch(V2)?;
    }
    if found < 3 {
        tx.execute_batch(V3)?;
    }
    if found < 4 {
        tx.execute_batch(super::chunks::SCHEMA)?;
        tx.execute_batch(V4)?;
        super::chunks::backfill(&tx)?;
    }
    if found < 5 {
        tx.execute_batch(V5)?;
    }
    // Task rows of a large batch are written after its commit (see `index`): a crash in between
    // leaves them to write now, before anything reads or writes the file.
    super::index::write_pending(&tx)?;
    // Later versions add `if found < 6 { ... }` here, each step in this same transaction.
    tx.pragma_update(None, "user_version", VERSION)?;

    let existing: u32 = tx.query_row("SELECT COUNT(*) FROM queues", [], |r| r.get(0))?;
    if existing > queues {
        return Err(Error::QueueCountShrunk { existing, configured: queues });
    }
    for q in existing..queues {
        tx.execute(
            "INSERT INTO queues (queue, first_offset, next_offset, total_bytes, trimmed_bytes) VALUES (?1, 1, 1, 0, 0)",
            [q],
        )?;
    }
    let log_id: String = tx.query_row("SELECT value FROM meta WHERE key = 'log_id'", [], |r| r.get(0))?;
    tx.commit()?;
    Ok(log_id)
}
