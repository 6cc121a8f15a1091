//! The records' index: one `tasks` row per task (queries by URL, prefix, tag or host, failures
//! by task), beside the queue log's chunk rows.
//!
//! A large batch (at least [`DEFER_MIN`] tasks, none folded into an earlier task) is accepted
//! when its batch row, spans and chunks commit: the 202 goes out then, and its task rows are
//! written right after, in transactions of [`PIECE`] rows, taking the writer lock for each, so an
//! edge's acks (watermarks) go on being written in between and progress keeps moving. Writing a
//! million index rows took three quarters of the accept time (issue 15's profile).
//!
//! The batch row says whether its rows are written (`indexed`). Their ids are fixed by the batch
//! (`first_task` on, in queue then offset order: the order of its chunks), so writing them is
//! idempotent (`INSERT OR IGNORE`) and anyone may finish the job: a failure report for one of
//! its tasks, the next append and the next open each call [`write_pending`], which writes every
//! unindexed batch's rows from its chunks (the chunks of such a batch hold all its tasks).
//! Record queries wait until none is left (`SqliteStore`'s index gate).

use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::kind_code;
use super::queue::Deferred;
use crate::model::{NewTask, Placement};
use crate::{Error, Result};

/// Batches of at least this many tasks write their task rows after their commit.
pub const DEFER_MIN: usize = 1000;

/// Whether `tasks`' rows are written after the append's commit: a large batch with no folded
/// task (a folded task is in no chunk, so only its row records it).
pub fn defers(tasks: &[NewTask]) -> bool {
    tasks.len() >= DEFER_MIN && tasks.iter().all(|t| matches!(t.placement, Placement::Queue(_)))
}

/// Rows per transaction when a deferred batch's rows are written after its commit.
pub const PIECE: usize = 50_000;

const INSERT: &str = "INSERT OR IGNORE INTO tasks
    (id, batch, queue, qoffset, folded, kind, target, soft, size_bytes, cum_bytes, host)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The order of a batch's task rows: its queued tasks by (queue, offset), the order of its chunks
/// and so of [`write_pending`]; then its folded tasks in request order. Row `first_task + i` is
/// task `order[i]`. (A stable sort by queue is enough: a batch's offsets in one queue grow in
/// request order.)
pub fn row_order(deferred: &Deferred) -> Vec<usize> {
    let mut order: Vec<usize> = (0..deferred.placed.len()).collect();
    order.sort_by_key(|&i| {
        let placed = deferred.placed[i];
        (placed.folded, if placed.folded { 0 } else { placed.queue })
    });
    order
}

/// One task row, as [`INSERT`] binds it.
struct Row<'a> {
    id: i64,
    batch: i64,
    queue: u32,
    offset: u64,
    folded: bool,
    kind: crate::model::TaskKind,
    target: &'a str,
    soft: bool,
    size_bytes: u64,
    cum: u64,
    host: &'a str,
}

/// The id of the row of the task at `offset` in `queue` (not a folded one), if it is written.
///
/// Found from the batch's span in that queue without an index on `tasks`: a batch's own tasks
/// in a queue have consecutive offsets, and its rows are numbered by queue, then offset
/// ([`row_order`]), so the row is `first_task` + the batch's own tasks in lower queues + the
/// offset's place in the span. The row found is checked; rows numbered otherwise (batches of
/// files from before version 4) are looked for among the batch's rows.
pub fn task_at(conn: &Connection, queue: u32, offset: u64) -> Result<Option<i64>> {
    let span: Option<(i64, i64, i64, i64, bool, i64)> = conn
        .prepare_cached(
            "SELECT s.batch, s.first, b.first_task, b.last_task, b.indexed,
                    (SELECT COALESCE(SUM(own), 0) FROM batch_queues WHERE batch = s.batch AND queue < s.queue)
             FROM batch_queues s JOIN batches b ON b.id = s.batch
             WHERE s.queue = ?1 AND s.last >= ?2 AND s.own > 0 ORDER BY s.last LIMIT 1",
        )?
        .query_row(params![queue, offset as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .optional()?;
    let Some((batch, first, first_task, last_task, indexed, before)) = span.filter(|s| s.1 <= offset as i64) else {
        return Ok(None);
    };
    let row = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<Option<i64>> {
        Ok(conn.prepare_cached(sql)?.query_row(params, |r| r.get(0)).optional()?)
    };
    let (queue, offset) = (queue as i64, offset as i64);
    let id = first_task + before + (offset - first);
    let at = "SELECT id FROM tasks WHERE id = ?1 AND batch = ?2 AND queue = ?3 AND qoffset = ?4 AND folded = 0";
    if let Some(id) = row(at, &[&id, &batch, &queue, &offset])? {
        return Ok(Some(id));
    }
    // A batch whose rows are still to be written numbers them in queue order: not written yet.
    if !indexed {
        return Ok(None);
    }
    let among = "SELECT id FROM tasks WHERE id BETWEEN ?1 AND ?2 AND queue = ?3 AND qoffset = ?4 AND folded = 0";
    row(among, &[&first_task, &last_task, &queue, &offset])
}

/// Writes `row` with the prepared [`INSERT`].
fn insert(stmt: &mut rusqlite::CachedStatement<'_>, row: Row<'_>) -> Result<()> {
    stmt.execute(params![
        row.id,
        row.batch,
        row.queue,
        row.offset as i64,
        row.folded,
        kind_code(row.kind),
        row.target,
        row.soft,
        row.size_bytes as i64,
        row.cum as i64,
        row.host
    ])?;
    Ok(())
}

/// Writes rows `order[range]` of `tasks` placed as `placed` says.
pub fn insert_rows(
    tx: &Transaction<'_>,
    tasks: &[NewTask],
    placed: &Deferred,
    order: &[usize],
    range: std::ops::Range<usize>,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(INSERT)?;
    for row in range {
        let (task, at) = (&tasks[order[row]], placed.placed[order[row]]);
        let id = placed.first_task + row as i64;
        insert(
            &mut stmt,
            Row {
                id,
                batch: placed.batch as i64,
                queue: at.queue,
                offset: at.offset,
                folded: at.folded,
                kind: task.kind,
                target: &task.target,
                soft: task.soft,
                size_bytes: task.size_bytes,
                cum: at.cum,
                host: &task.host,
            },
        )?;
    }
    Ok(())
}

/// Writes a deferred batch's task rows, [`PIECE`] rows per transaction, locking the writer
/// connection `conn` for each, and marks the batch indexed with the last piece.
pub fn write_deferred(conn: &Mutex<Connection>, tasks: &[NewTask], deferred: &Deferred) -> Result<()> {
    let order = row_order(deferred);
    let mut start = 0;
    loop {
        let end = (start + PIECE).min(order.len());
        // Poisoning is harmless, as in `SqliteStore::run`.
        let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        insert_rows(&tx, tasks, deferred, &order, start..end)?;
        if end == order.len() {
            tx.execute("UPDATE batches SET indexed = 1 WHERE id = ?1", [deferred.batch as i64])?;
            tx.commit()?;
            return Ok(());
        }
        tx.commit()?;
        start = end;
    }
}

/// Writes the task rows still missing of every batch not marked indexed (being written, or left
/// by a crash or a failed write), from its chunks, and marks them indexed; returns how many.
pub fn write_pending(conn: &Connection) -> Result<u64> {
    let batches: Vec<(i64, i64)> = conn
        .prepare("SELECT id, first_task FROM batches WHERE indexed = 0 ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut chunks = conn.prepare(
        "SELECT queue, first, cum_bytes - bytes, encoded FROM chunks WHERE batch = ?1 ORDER BY queue, first",
    )?;
    let mut stmt = conn.prepare_cached(INSERT)?;
    for &(batch, first_task) in &batches {
        let rows: Vec<(u32, i64, i64, Vec<u8>)> = chunks
            .query_map([batch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut id = first_task;
        for (queue, first, cum_before, encoded) in rows {
            let tasks = edgepurge_wire::decode_tasks(&encoded).map_err(|e| Error::Backend(Box::new(e)))?;
            let mut cum = cum_before as u64;
            for (offset, task) in (first as u64..).zip(tasks) {
                cum += task.size_bytes;
                let (target, host) = (task.target.as_str(), task.host.as_str());
                let kind = task.kind.into();
                let row = Row {
                    id,
                    batch,
                    queue,
                    offset,
                    folded: false,
                    kind,
                    target,
                    soft: task.soft,
                    size_bytes: task.size_bytes,
                    cum,
                    host,
                };
                insert(&mut stmt, row)?;
                id += 1;
            }
        }
        conn.execute("UPDATE batches SET indexed = 1 WHERE id = ?1", [batch])?;
    }
    Ok(batches.len() as u64)
}
