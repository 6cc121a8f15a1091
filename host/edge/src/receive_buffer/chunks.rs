//! The receive buffer's rows: one per received `Tasks` frame (a chunk), holding the frame's
//! tasks exactly as control encoded them (postcard `Vec<WireTask>`, see `edgepurge_wire::chunk`),
//! so a chunk of a thousand tasks is one durable write and one read, not a thousand.
//!
//! A row covers offsets `first..=last`; `from_offset` is the first of them not yet applied nor
//! received before (a resent frame overlapping what was already held is stored whole, its older
//! part skipped at read). Beside the bytes, the row keeps the hosts its tasks name (`*` when one
//! names none: an `everything` purge or a cross-host tag), so a row whose bytes no longer decode
//! is answered by purging those hosts instead of everything.
//!
//! Also here: converting a buffer written by an edge of before chunks (one JSON row per task)
//! into chunk rows at open, in one transaction.

use std::collections::BTreeSet;

use edgepurge_wire::{decode_tasks, encode_tasks, Offset, QueueId, WireTask};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// The marker in `hosts` for a chunk holding a task that names no host.
const ANY_HOST: &str = "*";
/// At most this many tasks per chunk row made from a pre-chunk buffer.
const MIGRATED_CHUNK: usize = 1000;

/// The chunk table (a rowid table: its rows are large, see SQLite's advice on WITHOUT ROWID).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chunks (
    node TEXT NOT NULL, queue INTEGER NOT NULL, from_offset INTEGER NOT NULL,
    first INTEGER NOT NULL, last INTEGER NOT NULL, size INTEGER NOT NULL,
    hosts TEXT NOT NULL, body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS chunks_order ON chunks (node, queue, from_offset);
";

/// One chunk row of [`ReceiveBuffer::pending`](super::ReceiveBuffer::pending): offsets
/// `from..=last` of a queue, not yet applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChunk {
    /// The first offset to apply.
    pub from: Offset,
    /// The last offset.
    pub last: Offset,
    /// Its tasks, or why they cannot be read.
    pub tasks: Pending,
}

/// What a chunk row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// The tasks at `from..=last`, in offset order.
    Tasks(Vec<WireTask>),
    /// The row's bytes do not decode (damaged or edited): its tasks cannot be applied as sent.
    Unreadable {
        /// Why, naming the row.
        reason: String,
        /// The hosts its tasks named; `None` when one named no host or the list is unreadable
        /// too (then only purging everything is safe).
        hosts: Option<Vec<String>>,
    },
}

impl PendingChunk {
    /// How many offsets the row covers.
    pub fn len(&self) -> u64 {
        self.last + 1 - self.from
    }

    /// Always false: a row covers at least one offset.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The `hosts` column for `tasks`: their distinct hosts, one per line, or [`ANY_HOST`].
pub(super) fn hosts_of(tasks: &[WireTask]) -> String {
    let mut hosts = BTreeSet::new();
    for task in tasks {
        if task.host.is_empty() {
            return ANY_HOST.to_owned();
        }
        hosts.insert(task.host.as_str());
    }
    hosts.into_iter().collect::<Vec<_>>().join("\n")
}

/// The columns `pending` selects, in this order.
pub(super) const COLUMNS: &str = "from_offset, first, last, hosts, body";

/// Reads one row selected with [`COLUMNS`] (of `node`, `queue`).
pub(super) fn read_row(row: &Row<'_>, node: &str, queue: QueueId) -> rusqlite::Result<PendingChunk> {
    read_at(row, 0, node, queue)
}

/// Reads the [`COLUMNS`] starting at column `at` of `row`.
fn read_at(row: &Row<'_>, at: usize, node: &str, queue: QueueId) -> rusqlite::Result<PendingChunk> {
    let from = row.get::<_, i64>(at)? as u64;
    let first = row.get::<_, i64>(at + 1)? as u64;
    let last = row.get::<_, i64>(at + 2)? as u64;
    let unreadable = |why: String, row: &Row<'_>| {
        let hosts = match row.get_ref(at + 3) {
            Ok(ValueRef::Text(t)) if t != ANY_HOST.as_bytes() => std::str::from_utf8(t)
                .ok()
                .map(|t| t.lines().filter(|h| !h.is_empty()).map(str::to_owned).collect::<Vec<_>>())
                .filter(|h| !h.is_empty()),
            _ => None,
        };
        let reason =
            format!("tasks {queue}/{from}..={last} of node {node} are unreadable in the receive buffer: {why}");
        PendingChunk { from, last, tasks: Pending::Unreadable { reason, hosts } }
    };
    // Any column type: a damaged row may hold text, a number or nothing.
    let decoded = match row.get_ref(at + 4)? {
        ValueRef::Blob(b) | ValueRef::Text(b) => decode_tasks(b).map_err(|e| e.to_string()),
        other => Err(format!("it holds {}, not a chunk", other.data_type())),
    };
    let mut tasks = match decoded {
        Ok(tasks) => tasks,
        Err(why) => return Ok(unreadable(why, row)),
    };
    if first > from || last < from || tasks.len() as u64 != last - first + 1 {
        let why = format!("it holds {} tasks for offsets {first}..={last} from {from}", tasks.len());
        return Ok(unreadable(why, row));
    }
    tasks.drain(..(from - first) as usize);
    Ok(PendingChunk { from, last, tasks: Pending::Tasks(tasks) })
}

/// For the row of (`node`, `queue`) applied in part through `through` (the applier takes whole
/// rows, so only after a change of that): moves its `from_offset` past `through` and takes the
/// applied tasks' sizes off its `size`; returns the bytes freed.
pub(super) fn apply_part(conn: &Connection, node: &str, queue: QueueId, through: Offset) -> rusqlite::Result<u64> {
    let through_sql = through.min(i64::MAX as u64) as i64;
    let row = conn
        .query_row(
            &format!("SELECT rowid, size, {COLUMNS} FROM chunks WHERE node = ?1 AND queue = ?2 AND from_offset <= ?3"),
            params![node, queue, through_sql],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, read_at(r, 2, node, queue)?)),
        )
        .optional()?;
    let Some((rowid, size, chunk)) = row else { return Ok(0) };
    let freed = match &chunk.tasks {
        Pending::Tasks(tasks) => tasks.iter().take((through + 1 - chunk.from) as usize).map(|t| t.size_bytes).sum(),
        Pending::Unreadable { .. } => 0,
    };
    let size = (size.max(0) as u64).saturating_sub(freed);
    conn.execute(
        "UPDATE chunks SET from_offset = ?2, size = ?3 WHERE rowid = ?1",
        params![rowid, through_sql + 1, size.min(i64::MAX as u64) as i64],
    )?;
    Ok(freed)
}

/// Converts the per-task JSON rows of a pre-chunk buffer (table `tasks`) into chunk rows, runs of
/// consecutive offsets up to [`MIGRATED_CHUNK`] tasks; a row that does not decode becomes a chunk
/// row of its own that does not decode either (with its host, when its text still names one),
/// so it is answered as before. Drops the old table. One transaction: a crash leaves the old
/// rows or the new ones.
pub(super) fn migrate_task_rows(conn: &Connection) -> rusqlite::Result<()> {
    let exists: Option<String> = conn
        .query_row("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'tasks'", [], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    {
        let mut read = tx.prepare("SELECT node, queue, offset, task FROM tasks ORDER BY node, queue, offset")?;
        let mut rows = read.query([])?;
        let mut run: Option<(String, QueueId, Offset, Vec<WireTask>)> = None;
        while let Some(row) = rows.next()? {
            let (node, queue, offset): (String, QueueId, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            let offset = offset as u64;
            let text = match row.get_ref(3)? {
                ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
                _ => None,
            };
            let task = text.as_deref().and_then(|t| serde_json::from_slice::<WireTask>(t).ok());
            let continues = matches!(&run, Some((n, q, first, tasks))
                if *n == node && *q == queue && first + tasks.len() as u64 == offset && tasks.len() < MIGRATED_CHUNK);
            if !continues || task.is_none() {
                if let Some((n, q, first, tasks)) = run.take() {
                    insert_migrated(&tx, &n, q, first, &tasks)?;
                }
            }
            match task {
                Some(task) => match &mut run {
                    Some((_, _, _, tasks)) => tasks.push(task),
                    None => run = Some((node, queue, offset, vec![task])),
                },
                None => {
                    let host = text
                        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
                        .and_then(|v| v.get("host")?.as_str().map(str::to_owned))
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| ANY_HOST.to_owned());
                    let o = offset as i64;
                    tx.execute(
                        "INSERT OR IGNORE INTO chunks (node, queue, from_offset, first, last, size, hosts, body)
                         VALUES (?1, ?2, ?3, ?3, ?3, 0, ?4, X'')",
                        params![node, queue, o, host],
                    )?;
                }
            }
        }
        if let Some((n, q, first, tasks)) = run.take() {
            insert_migrated(&tx, &n, q, first, &tasks)?;
        }
    }
    tx.execute_batch("DROP TABLE tasks")?;
    tx.commit()
}

fn insert_migrated(
    conn: &Connection,
    node: &str,
    queue: QueueId,
    first: Offset,
    tasks: &[WireTask],
) -> rusqlite::Result<()> {
    let body = encode_tasks(tasks).expect("WireTasks encode");
    let size: u64 = tasks.iter().map(|t| t.size_bytes).sum();
    let last = first + tasks.len() as u64 - 1;
    conn.execute(
        "INSERT OR IGNORE INTO chunks (node, queue, from_offset, first, last, size, hosts, body)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)",
        params![node, queue, first as i64, last as i64, size.min(i64::MAX as u64) as i64, hosts_of(tasks), body],
    )?;
    Ok(())
}
