//! The records' index: one `tasks` row per task (queries by URL, prefix, tag or host, failures
//! by task), beside the queue log's chunk rows.
//!
//! A large batch (at least [`DEFER_MIN`] tasks, none folded into an earlier task) is accepted
//! when its batch row, spans and chunks commit: the 202 goes out then, and its task rows are
//! written right after, in a second transaction on the same connection, before the writer lock is
//! released ([`write_deferred`]): every later write (an edge's failure report, the next batch)
//! finds them, and record queries wait for them (`SqliteStore`'s index gate). Writing a million
//! index rows took three quarters of the accept time (issue 15's profile). The batch row says
//! whether its rows are written (`indexed`); after a crash between the two transactions the open
//! writes them from the batch's chunks ([`write_pending`]), which hold every task of such a batch.

use rusqlite::{params, Connection, Transaction};

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

/// Writes the task rows of `tasks` placed as `placed` says.
pub fn insert_rows(tx: &Transaction<'_>, tasks: &[NewTask], placed: &Deferred) -> Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO tasks (id, batch, queue, qoffset, folded, kind, target, soft, size_bytes, cum_bytes, host)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (i, (task, &(queue, offset, folded, cum))) in tasks.iter().zip(&placed.placed).enumerate() {
        insert.execute(params![
            placed.first_task + i as i64,
            placed.batch as i64,
            queue,
            offset as i64,
            folded,
            kind_code(task.kind),
            task.target,
            task.soft,
            task.size_bytes as i64,
            cum as i64,
            task.host
        ])?;
    }
    Ok(())
}

/// Writes a deferred batch's task rows and marks it indexed, in one transaction.
pub fn write_deferred(conn: &mut Connection, tasks: &[NewTask], deferred: &Deferred) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    insert_rows(&tx, tasks, deferred)?;
    tx.execute("UPDATE batches SET indexed = 1 WHERE id = ?1", [deferred.batch as i64])?;
    tx.commit()?;
    Ok(())
}

/// Writes the task rows of every batch whose rows were deferred and not written (a crash between
/// the two transactions, or a failed second one), from its chunks; returns how many batches.
pub fn write_pending(conn: &Connection) -> Result<u64> {
    let batches: Vec<(i64, i64)> = conn
        .prepare("SELECT id, first_task FROM batches WHERE indexed = 0 ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut chunks = conn.prepare(
        "SELECT queue, first, cum_bytes - bytes, encoded FROM chunks WHERE batch = ?1 ORDER BY queue, first",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO tasks (id, batch, queue, qoffset, folded, kind, target, soft, size_bytes, cum_bytes, host)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for &(batch, first_task) in &batches {
        let rows: Vec<(u32, i64, i64, Vec<u8>)> = chunks
            .query_map([batch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut id = first_task;
        for (queue, first, mut cum, encoded) in rows {
            let tasks = edgepurge_wire::decode_tasks(&encoded).map_err(|e| Error::Backend(Box::new(e)))?;
            for (offset, task) in (first..).zip(tasks) {
                cum += task.size_bytes as i64;
                insert.execute(params![
                    id,
                    batch,
                    queue,
                    offset,
                    kind_code(task.kind.into()),
                    task.target,
                    task.soft,
                    task.size_bytes as i64,
                    cum,
                    task.host
                ])?;
                id += 1;
            }
        }
        conn.execute("UPDATE batches SET indexed = 1 WHERE id = ?1", [batch])?;
    }
    Ok(batches.len() as u64)
}
