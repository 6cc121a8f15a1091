//! What the buffer keeps so control can check the edge's positions (issue 14): per node key,
//! the identity of the log its offsets came from, and per queue the fingerprint of the task
//! received at the `received` watermark. Also the reset control orders when it refuses them.

use edgepurge_wire::{LogId, Offset, QueueId};
use rusqlite::{params, Connection, OptionalExtension};

use super::{insert_event, sql, ReceiveBuffer, Result};

/// Events recorded under this node key concern every node (the buffer itself was replaced);
/// they are the notices an edge sends to each node in `Positions`.
pub const ALL_NODES: &str = "*";
/// Notices older than this are not sent again (one day).
const NOTICE_HORIZON_MS: u64 = 86_400_000;
/// At most this many notices go in one `Positions`.
const NOTICES: usize = 10;

/// What `Positions` says for one node key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    /// The log the offsets came from, if the node ever said.
    pub log_id: Option<LogId>,
    /// Per queue: the `received` watermark and the fingerprint of the task received there (queues
    /// whose last task is not known, e.g. after a trim, are left out).
    pub last: Vec<(QueueId, Offset, u64)>,
    /// Recent buffer-wide notices, oldest first.
    pub notices: Vec<(u64, String)>,
}

/// Remembers the fingerprint of the task at `offset`, the queue's new `received` watermark.
pub(super) fn set_print(conn: &Connection, node: &str, queue: QueueId, offset: Offset, print: u64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO received_prints (node, queue, offset, print) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (node, queue) DO UPDATE SET offset = ?3, print = ?4",
    )?
    // SQLite integers are signed: the bits are kept, the sign is not a meaning.
    .execute(params![node, queue, sql(offset)?, print as i64])?;
    Ok(())
}

impl ReceiveBuffer {
    /// The `Positions` of `node` at `now_ms`.
    pub fn positions(&self, node: &str, now_ms: u64) -> Result<Positions> {
        let log_id = self.conn.query_row("SELECT log_id FROM logs WHERE node = ?1", [node], |r| r.get(0)).optional()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.queue, p.offset, p.print FROM received_prints p JOIN watermarks w
               ON w.node = p.node AND w.queue = p.queue AND w.received = p.offset
             WHERE p.node = ?1 ORDER BY p.queue",
        )?;
        let last = stmt
            .query_map([node], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64)))?
            .collect::<rusqlite::Result<_>>()?;
        let since = now_ms.saturating_sub(NOTICE_HORIZON_MS) as i64;
        let mut stmt = self.conn.prepare_cached(
            "SELECT at_ms, message FROM events WHERE node = ?1 AND at_ms >= ?2 ORDER BY id DESC LIMIT ?3",
        )?;
        let mut notices: Vec<(u64, String)> = stmt
            .query_map(params![ALL_NODES, since, NOTICES as i64], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        notices.reverse();
        Ok(Positions { log_id, last, notices })
    }

    /// Remembers that `node`'s offsets are positions in log `log_id` (control accepted them).
    pub fn set_log_id(&mut self, node: &str, log_id: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO logs (node, log_id) VALUES (?1, ?2) ON CONFLICT (node) DO UPDATE SET log_id = ?2",
            params![node, log_id],
        )?;
        Ok(())
    }

    /// Control refused `node`'s positions (the caller purged everything): drops what is held for
    /// it, sets every watermark to `start − 1` (lower too: the old offsets were another log's),
    /// adopts `log_id` and records `reason`, in one transaction.
    pub fn reset_positions(
        &mut self,
        node: &str,
        log_id: &str,
        start: &[(QueueId, Offset)],
        reason: &str,
        at_ms: u64,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let freed: i64 =
            tx.query_row("SELECT COALESCE(SUM(size), 0) FROM chunks WHERE node = ?1", [node], |r| r.get(0))?;
        tx.execute("DELETE FROM chunks WHERE node = ?1", [node])?;
        tx.execute("DELETE FROM watermarks WHERE node = ?1", [node])?;
        tx.execute("DELETE FROM received_prints WHERE node = ?1", [node])?;
        for &(queue, next) in start {
            let mark = sql(next.saturating_sub(1))?;
            tx.execute(
                "INSERT INTO watermarks (node, queue, received, applied) VALUES (?1, ?2, ?3, ?3)",
                params![node, queue, mark],
            )?;
        }
        tx.execute(
            "INSERT INTO logs (node, log_id) VALUES (?1, ?2) ON CONFLICT (node) DO UPDATE SET log_id = ?2",
            params![node, log_id],
        )?;
        insert_event(&tx, at_ms, node, &format!("positions reset by control: {reason}"))?;
        tx.commit()?;
        self.used = self.used.saturating_sub(freed.max(0) as u64);
        Ok(())
    }
}
