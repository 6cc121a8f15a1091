//! The queue log in SQLite: the atomic batch append, reads, pending figures and trimming.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::batch_by_id;
use super::chunks::ChunkWriter;
use crate::model::*;
use crate::{Error, Result};

/// One queue's row in `queues`, as the append updates it.
struct QueueRow {
    first: u64,
    next: u64,
    total_bytes: u64,
}

/// Records `batch` and appends `tasks` in one transaction (see `QueueStore::append`): the batch,
/// its spans and its chunks. The task rows (the records' index) are written in the same
/// transaction, or, for a large batch without folded tasks, returned as [`Deferred`] for
/// [`super::index::write_deferred`] to write right after the commit (see `index`).
pub fn append(
    conn: &mut Connection,
    queues: u32,
    batch: &NewBatch,
    tasks: &[NewTask],
) -> Result<(Appended, Option<Deferred>)> {
    // IMMEDIATE: take the write lock now, so the offsets read below stay ours until the commit.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // A batch whose deferred rows could not be written (disk full, say) gets them first (the
    // row ids below follow them).
    super::index::write_pending(&tx)?;
    if let Some(key) = &batch.idempotency_key {
        let first: Option<u64> = tx
            .query_row(
                "SELECT id FROM batches WHERE token_name = ?1 AND idempotency_key = ?2",
                params![batch.token_name, key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = first {
            let batch = batch_by_id(&tx, id)?.expect("the batch just found exists");
            return Ok((Appended { batch, created: false }, None));
        }
    }
    if tasks.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let mut rows = load_queues(&tx)?;
    // Row ids are given, not left to SQLite, so deferred rows get the ids the batch records; the
    // latest batch reserved the highest (its rows may not all be written yet).
    let first_task: i64 = tx.query_row(
        "SELECT MAX(COALESCE((SELECT last_task FROM batches ORDER BY id DESC LIMIT 1), 0),
                    COALESCE((SELECT MAX(id) FROM tasks), 0)) + 1",
        [],
        |r| r.get(0),
    )?;
    let last_task = first_task + tasks.len() as i64 - 1;
    let defer = super::index::defers(tasks);
    tx.execute(
        "INSERT INTO batches (token_name, accepted_at, task_count, idempotency_key, first_task, last_task, indexed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            batch.token_name,
            batch.accepted_at as i64,
            tasks.len() as i64,
            batch.idempotency_key,
            first_task,
            last_task,
            !defer
        ],
    )?;
    let id = tx.last_insert_rowid() as u64;
    let mut spans: Vec<QueueSpan> =
        (0..queues).map(|queue| QueueSpan { queue, first: 0, last: 0, own: 0, folded: 0, folded_last: 0 }).collect();
    let placed = place_tasks(&tx, id, &batch.token_name, tasks, &mut rows, &mut spans)?;
    let deferred = Deferred { batch: id, first_task, placed };
    let deferred = if defer {
        Some(deferred)
    } else {
        let order = super::index::row_order(&deferred);
        super::index::insert_rows(&tx, tasks, &deferred, &order, 0..order.len())?;
        None
    };
    spans.retain(|s| s.own + s.folded > 0);
    {
        let mut span_stmt = tx.prepare(
            "INSERT INTO batch_queues (batch, queue, first, last, own, folded, folded_last)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for s in &spans {
            span_stmt.execute(params![
                id,
                s.queue,
                s.first as i64,
                s.last as i64,
                s.own as i64,
                s.folded as i64,
                s.folded_last as i64
            ])?;
        }
        let mut queue_stmt = tx.prepare("UPDATE queues SET next_offset = ?1, total_bytes = ?2 WHERE queue = ?3")?;
        for (q, row) in rows.iter().enumerate() {
            queue_stmt.execute(params![row.next as i64, row.total_bytes as i64, q as i64])?;
        }
    }
    tx.commit()?;
    let batch = Batch {
        id,
        token_name: batch.token_name.clone(),
        accepted_at: batch.accepted_at,
        task_count: tasks.len() as u64,
        idempotency_key: batch.idempotency_key.clone(),
        spans,
    };
    Ok((Appended { batch, created: true }, deferred))
}

/// Where one task of an appended batch went.
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    /// Its queue.
    pub queue: u32,
    /// Its own offset, or the offset of the task that carries it.
    pub offset: u64,
    /// Folded into the task at `offset`.
    pub folded: bool,
    /// The queue's running byte total through it (0 when folded).
    pub cum: u64,
}

/// An appended batch's placements (per task, in request order) with the batch and its first row
/// id: what its task rows are written from (`index`, which fixes their order).
pub struct Deferred {
    /// The batch.
    pub batch: u64,
    /// The row id of its first task row.
    pub first_task: i64,
    /// Per task, in request order.
    pub placed: Vec<Placed>,
}

/// Places each task (a queue offset, or the task that carries it) and writes the queued ones as
/// chunk rows (the log, see `chunks`); returns where each went. Any error returns early and the
/// caller's transaction rolls back, so nothing becomes visible.
fn place_tasks(
    tx: &Transaction<'_>,
    batch: u64,
    tenant: &str,
    tasks: &[NewTask],
    rows: &mut [QueueRow],
    spans: &mut [QueueSpan],
) -> Result<Vec<Placed>> {
    let queues = rows.len() as u32;
    let mut placed = Vec::with_capacity(tasks.len());
    let mut chunks = ChunkWriter::new(tx, batch, tenant, rows.len())?;
    for task in tasks {
        placed.push(match task.placement {
            Placement::Queue(queue) => {
                let row = rows.get_mut(queue as usize).ok_or(Error::NoSuchQueue { queue, queues })?;
                let offset = row.next;
                row.next += 1;
                row.total_bytes += task.size_bytes;
                let span = &mut spans[queue as usize];
                if span.own == 0 {
                    span.first = offset;
                }
                span.last = offset;
                span.own += 1;
                chunks.push(queue, offset, row.total_bytes, task)?;
                Placed { queue, offset, folded: false, cum: row.total_bytes }
            }
            Placement::FoldInto(at) => {
                let row = rows.get(at.queue as usize).ok_or(Error::NoSuchQueue { queue: at.queue, queues })?;
                // Only a task still in the log can carry another (a trimmed one was delivered);
                // every offset from the first retained to the next is a queued task.
                if at.offset < row.first || at.offset >= row.next {
                    return Err(Error::NoSuchTask(at));
                }
                let span = &mut spans[at.queue as usize];
                span.folded += 1;
                span.folded_last = span.folded_last.max(at.offset);
                Placed { queue: at.queue, offset: at.offset, folded: true, cum: 0 }
            }
        });
    }
    chunks.finish()?;
    Ok(placed)
}

fn load_queues(conn: &Connection) -> Result<Vec<QueueRow>> {
    let mut stmt = conn.prepare("SELECT first_offset, next_offset, total_bytes FROM queues ORDER BY queue")?;
    let rows = stmt.query_map([], |r| {
        Ok(QueueRow {
            first: r.get::<_, i64>(0)? as u64,
            next: r.get::<_, i64>(1)? as u64,
            total_bytes: r.get::<_, i64>(2)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every queue's first retained and next offsets.
pub fn queue_info(conn: &Connection) -> Result<Vec<QueueInfo>> {
    Ok(load_queues(conn)?
        .into_iter()
        .enumerate()
        .map(|(q, row)| QueueInfo { queue: q as u32, first: row.first, next: row.next })
        .collect())
}

fn queue_row(conn: &Connection, queue: u32, queues: u32) -> Result<(QueueRow, u64)> {
    if queue >= queues {
        return Err(Error::NoSuchQueue { queue, queues });
    }
    let row = conn.query_row(
        "SELECT first_offset, next_offset, total_bytes, trimmed_bytes FROM queues WHERE queue = ?1",
        [queue],
        |r| {
            let row = QueueRow {
                first: r.get::<_, i64>(0)? as u64,
                next: r.get::<_, i64>(1)? as u64,
                total_bytes: r.get::<_, i64>(2)? as u64,
            };
            Ok((row, r.get::<_, i64>(3)? as u64))
        },
    )?;
    Ok(row)
}

/// Up to `limit` tasks of `queue` from `from` (see `QueueStore::read`), decoded from the chunks
/// that hold them (the log; task rows may be written after the append, see `index`).
pub fn read(conn: &Connection, queues: u32, queue: u32, from: u64, limit: usize) -> Result<Vec<QueuedTask>> {
    if limit == 0 {
        // Nothing to return, but a trimmed `from` is still an error.
        return read_chunks(conn, queues, queue, from, 1).map(|_| Vec::new());
    }
    let mut out = Vec::new();
    let mut next = from;
    while out.len() < limit {
        let chunks = read_chunks(conn, queues, queue, next, (limit - out.len()).min(10_000))?;
        let Some(last) = chunks.last().map(|c| c.last) else { break };
        for chunk in chunks {
            let tasks = edgepurge_wire::decode_tasks(&chunk.encoded).map_err(|e| Error::Backend(Box::new(e)))?;
            for (offset, task) in (chunk.first..).zip(tasks) {
                if offset >= from && out.len() < limit {
                    out.push(QueuedTask {
                        at: TaskRef { queue, offset },
                        batch: chunk.batch,
                        kind: task.kind.into(),
                        target: task.target,
                        soft: task.soft,
                        size_bytes: task.size_bytes,
                        host: task.host,
                    });
                }
            }
        }
        next = last + 1;
    }
    Ok(out)
}

/// Whole chunks of `queue` from the one holding `from` (see `QueueStore::read_chunks`).
pub fn read_chunks(conn: &Connection, queues: u32, queue: u32, from: u64, max_tasks: usize) -> Result<Vec<Chunk>> {
    let (row, _) = queue_row(conn, queue, queues)?;
    if from < row.first && !(from == 0 && row.first == 1) {
        return Err(Error::Trimmed { queue, from, first: row.first });
    }
    let from = from.max(1);
    let start: Option<i64> = conn
        .prepare_cached("SELECT MAX(first) FROM chunks WHERE queue = ?1 AND first <= ?2")?
        .query_row(params![queue, from as i64], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "SELECT first, last, batch, bytes, encoded FROM chunks WHERE queue = ?1 AND first >= ?2 ORDER BY first",
    )?;
    let mut rows = stmt.query(params![queue, start.unwrap_or(from as i64)])?;
    let (mut out, mut count) = (Vec::new(), 0u64);
    while count < max_tasks.max(1) as u64 {
        let Some(r) = rows.next()? else { break };
        let chunk = Chunk {
            queue,
            first: r.get::<_, i64>(0)? as u64,
            last: r.get::<_, i64>(1)? as u64,
            batch: r.get::<_, i64>(2)? as u64,
            bytes: r.get::<_, i64>(3)? as u64,
            encoded: r.get(4)?,
        };
        if chunk.last < from {
            continue;
        }
        count += chunk.last + 1 - chunk.first.max(from);
        out.push(chunk);
    }
    Ok(out)
}

/// The running byte total of `queue` through `offset` (which must be retained, or `first - 1`):
/// the total of the chunk holding it, less the tasks after it in that chunk.
fn cum_bytes_at(conn: &Connection, queue: u32, offset: u64, row: &QueueRow, trimmed_bytes: u64) -> Result<u64> {
    if offset + 1 == row.first {
        return Ok(trimmed_bytes);
    }
    let (first, last, cum, encoded): (i64, i64, i64, Vec<u8>) = conn
        .prepare_cached(
            "SELECT first, last, cum_bytes, encoded FROM chunks WHERE queue = ?1 AND first <= ?2
             ORDER BY first DESC LIMIT 1",
        )?
        .query_row(params![queue, offset as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let (first, last, cum) = (first as u64, last as u64, cum as u64);
    if offset >= last {
        return Ok(cum);
    }
    let tasks = edgepurge_wire::decode_tasks(&encoded).map_err(|e| Error::Backend(Box::new(e)))?;
    let after: u64 = tasks.iter().skip((offset + 1 - first) as usize).map(|t| t.size_bytes).sum();
    Ok(cum - after)
}

/// Tasks and bytes above `after` (see `QueueStore::pending`).
pub fn pending(conn: &Connection, queues: u32, queue: u32, after: u64) -> Result<Pending> {
    let (row, trimmed_bytes) = queue_row(conn, queue, queues)?;
    // Below the trim point nothing can be delivered any more: count from the first retained task.
    let after = after.max(row.first - 1);
    if after + 1 >= row.next {
        return Ok(Pending::default());
    }
    let below = cum_bytes_at(conn, queue, after, &row, trimmed_bytes)?;
    Ok(Pending { tasks: row.next - 1 - after, bytes: row.total_bytes - below })
}

/// Moves the queue's first readable offset up to `below` (see `QueueStore::trim`).
pub fn trim(conn: &mut Connection, queues: u32, queue: u32, below: u64) -> Result<u64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (row, trimmed_bytes) = queue_row(&tx, queue, queues)?;
    let below = below.min(row.next);
    if below <= row.first {
        return Ok(0);
    }
    let cum = cum_bytes_at(&tx, queue, below - 1, &row, trimmed_bytes)?;
    tx.execute(
        "UPDATE queues SET first_offset = ?1, trimmed_bytes = ?2 WHERE queue = ?3",
        params![below as i64, cum as i64, queue],
    )?;
    // The log below the trim point is never read again (the task rows stay: they are records).
    tx.execute("DELETE FROM chunks WHERE queue = ?1 AND last < ?2", params![queue, below as i64])?;
    tx.commit()?;
    Ok(below - row.first)
}
