//! The queue log as chunk rows (schema v4, issue 15): a batch's queued tasks are appended as runs
//! of consecutive offsets of one queue, each encoded once with postcard as the wire sends it
//! (`edgepurge_wire::chunk`), so the queue server reads a thousand tasks as one row and sends the
//! bytes unchanged. The per-task rows of `tasks` stay: they are the records' index (queries by
//! URL, prefix, tag or host), never read to send a task.
//!
//! A chunk ends at [`CHUNK_TASKS`] tasks or [`CHUNK_BYTES`] encoded bytes, whichever comes
//! first, and never spans two batches (a chunk's tasks share one tenant and one record).

use edgepurge_wire::{encode_task_refs_into, task_id, WireTaskRef};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension};

use crate::model::NewTask;
use crate::{Error, Result};

/// At most this many tasks per chunk (what one `Tasks` frame and one edge buffer row hold).
pub const CHUNK_TASKS: usize = 1000;
/// A chunk ends once its encoded tasks reach about this many bytes.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The table (v4).
pub const SCHEMA: &str = "
CREATE TABLE chunks (
    queue   INTEGER NOT NULL,
    first   INTEGER NOT NULL,  -- offsets first ..= last of the queue, all of batch `batch`
    last    INTEGER NOT NULL,
    batch   INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,  -- sum of the tasks' size_bytes
    cum_bytes INTEGER NOT NULL, -- the queue's running byte total through `last`
    encoded BLOB NOT NULL,     -- postcard Vec<WireTask>, as a Tasks frame carries it
    PRIMARY KEY (queue, first)
);
";

/// One queue's run being collected.
struct Run<'a> {
    first: u64,
    bytes: u64,
    cum: u64,
    estimate: usize,
    tasks: Vec<WireTaskRef<'a>>,
}

/// Collects a batch's queued tasks per queue and writes each run as a chunk row.
pub struct ChunkWriter<'c, 'a> {
    insert: CachedStatement<'c>,
    batch: u64,
    tenant: &'a str,
    runs: Vec<Option<Run<'a>>>,
    /// One encoding buffer, reused for every chunk.
    buf: Vec<u8>,
}

impl<'c, 'a> ChunkWriter<'c, 'a> {
    /// A writer for `batch` of `tenant` over `queues` queues.
    pub fn new(conn: &'c Connection, batch: u64, tenant: &'a str, queues: usize) -> Result<Self> {
        let insert = conn.prepare_cached(
            "INSERT INTO chunks (queue, first, last, batch, bytes, cum_bytes, encoded)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        Ok(ChunkWriter { insert, batch, tenant, runs: (0..queues).map(|_| None).collect(), buf: Vec::new() })
    }

    /// Adds `task`, placed at `offset` of `queue` (the offset after the previous one pushed there),
    /// `cum` the queue's running byte total through it.
    pub fn push(&mut self, queue: u32, offset: u64, cum: u64, task: &'a NewTask) -> Result<()> {
        let wire = WireTaskRef {
            id: task_id(queue, offset),
            kind: task.kind.into(),
            target: &task.target,
            soft: task.soft,
            size_bytes: task.size_bytes,
            host: &task.host,
            tenant: self.tenant,
        };
        // Postcard: a few varints and the three strings with their lengths.
        let estimate = 24 + wire.target.len() + wire.host.len() + wire.tenant.len();
        let full = self.runs[queue as usize]
            .as_ref()
            .is_some_and(|run| run.tasks.len() >= CHUNK_TASKS || run.estimate + estimate > CHUNK_BYTES);
        if full {
            self.flush(queue)?;
        }
        let run = self.runs[queue as usize].get_or_insert_with(|| Run {
            first: offset,
            bytes: 0,
            cum,
            estimate: 0,
            tasks: Vec::with_capacity(CHUNK_TASKS.min(64)),
        });
        run.bytes += task.size_bytes;
        run.cum = cum;
        run.estimate += estimate;
        run.tasks.push(wire);
        Ok(())
    }

    /// Writes every run still collecting.
    pub fn finish(mut self) -> Result<()> {
        for queue in 0..self.runs.len() as u32 {
            self.flush(queue)?;
        }
        Ok(())
    }

    fn flush(&mut self, queue: u32) -> Result<()> {
        let Some(run) = self.runs[queue as usize].take() else { return Ok(()) };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let buf = encode_task_refs_into(&run.tasks, buf).map_err(|e| Error::Backend(Box::new(e)))?;
        let last = run.first + run.tasks.len() as u64 - 1;
        self.insert.execute(params![
            queue,
            run.first as i64,
            last as i64,
            self.batch as i64,
            run.bytes.min(i64::MAX as u64) as i64,
            run.cum.min(i64::MAX as u64) as i64,
            &buf
        ])?;
        self.buf = buf;
        Ok(())
    }
}

/// Writes the chunk rows of a v3 file's retained log from its task rows (the v3 → v4
/// migration, inside its transaction): runs of one batch's consecutive tasks per queue.
pub fn backfill(conn: &Connection) -> Result<()> {
    let queues: Vec<(u32, i64, i64)> = conn
        .prepare("SELECT queue, first_offset, next_offset FROM queues ORDER BY queue")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tenants = conn.prepare("SELECT token_name FROM batches WHERE id = ?1")?;
    let mut read = conn.prepare(
        "SELECT qoffset, batch, kind, target, soft, size_bytes, host, cum_bytes FROM tasks
         WHERE queue = ?1 AND qoffset >= ?2 AND folded = 0 ORDER BY qoffset",
    )?;
    for (queue, first, next) in queues {
        if first >= next {
            continue;
        }
        let tasks: Vec<(u64, u64, NewTask, u64)> = read
            .query_map(params![queue, first], |r| {
                let task = NewTask {
                    placement: crate::model::Placement::Queue(queue),
                    kind: super::kind_from_code(r.get(2)?)?,
                    target: r.get(3)?,
                    soft: r.get(4)?,
                    size_bytes: r.get::<_, i64>(5)? as u64,
                    host: r.get(6)?,
                };
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, task, r.get::<_, i64>(7)? as u64))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut start = 0;
        while start < tasks.len() {
            let batch = tasks[start].1;
            let end = (start..tasks.len()).find(|&i| tasks[i].1 != batch).unwrap_or(tasks.len());
            let tenant: String = tenants.query_row([batch as i64], |r| r.get(0)).optional()?.unwrap_or_default();
            let mut writer = ChunkWriter::new(conn, batch, &tenant, queue as usize + 1)?;
            for (offset, _, task, cum) in &tasks[start..end] {
                writer.push(queue, *offset, *cum, task)?;
            }
            writer.finish()?;
            start = end;
        }
    }
    Ok(())
}
