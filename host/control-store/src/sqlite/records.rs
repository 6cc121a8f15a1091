//! Records in SQLite: edges, watermarks, progress, record queries, folding, expiry and tokens.

use rusqlite::{params, Connection, OptionalExtension};

use super::{batch_by_id, kind_code, kind_from_code};
use crate::model::*;
use crate::{Error, Result, TokenHash};

/// The columns `edge_from_row` reads, in order.
const EDGE_COLUMNS: &str = "name, registered_at, decommissioned_at, last_seen, policy_name, policy_version, \
                            policy_sha256, policy_error, policy_at";

fn edge_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Edge> {
    let policy = match (r.get::<_, Option<String>>(4)?, r.get::<_, Option<i64>>(8)?) {
        (Some(name), Some(at)) => {
            Some((EdgePolicy { name, version: r.get(5)?, sha256: r.get(6)?, error: r.get(7)? }, at as u64))
        }
        _ => None,
    };
    Ok(Edge {
        name: r.get(0)?,
        registered_at: r.get::<_, i64>(1)? as u64,
        decommissioned_at: r.get::<_, Option<i64>>(2)?.map(|t| t as u64),
        last_seen: r.get::<_, Option<i64>>(3)?.map(|t| t as u64),
        policy,
    })
}

/// Registers or re-registers an edge (see `RecordStore::register_edge`).
pub fn register_edge(conn: &Connection, name: &str, at: Millis) -> Result<Edge> {
    // A decommissioned edge that comes back starts afresh: it did not apply what was queued
    // while it was gone, so it counts only for batches from now on.
    conn.execute(
        "INSERT INTO edges (name, registered_at, last_seen) VALUES (?1, ?2, ?2) ON CONFLICT (name) DO UPDATE SET
           registered_at = CASE WHEN decommissioned_at IS NULL THEN registered_at ELSE excluded.registered_at END,
           decommissioned_at = NULL,
           last_seen = MAX(COALESCE(last_seen, 0), excluded.last_seen)",
        params![name, at as i64],
    )?;
    Ok(conn.query_row(&format!("SELECT {EDGE_COLUMNS} FROM edges WHERE name = ?1"), [name], edge_from_row)?)
}

/// Decommissions an edge.
pub fn decommission_edge(conn: &Connection, name: &str, at: Millis) -> Result<()> {
    let changed = conn.execute("UPDATE edges SET decommissioned_at = ?2 WHERE name = ?1", params![name, at as i64])?;
    if changed == 0 {
        return Err(Error::UnknownEdge(name.to_owned()));
    }
    Ok(())
}

/// Every edge, by name.
pub fn edges(conn: &Connection) -> Result<Vec<Edge>> {
    let mut stmt = conn.prepare(&format!("SELECT {EDGE_COLUMNS} FROM edges ORDER BY name"))?;
    let rows = stmt.query_map([], edge_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Raises an edge's watermark on a queue (never lowers it).
pub fn set_watermark(conn: &Connection, queues: u32, edge: &str, queue: u32, applied: u64, at: Millis) -> Result<()> {
    if queue >= queues {
        return Err(Error::NoSuchQueue { queue, queues });
    }
    let known: bool = conn.prepare_cached("SELECT 1 FROM edges WHERE name = ?1")?.exists([edge])?;
    if !known {
        return Err(Error::UnknownEdge(edge.to_owned()));
    }
    conn.prepare_cached(
        "INSERT INTO watermarks (edge, queue, applied, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (edge, queue) DO UPDATE SET applied = excluded.applied, updated_at = excluded.updated_at
         WHERE excluded.applied > applied",
    )?
    .execute(params![edge, queue, applied as i64, at as i64])?;
    Ok(())
}

/// Every watermark, by edge then queue.
pub fn watermarks(conn: &Connection) -> Result<Vec<Watermark>> {
    let mut stmt = conn.prepare("SELECT edge, queue, applied, updated_at FROM watermarks ORDER BY edge, queue")?;
    let rows = stmt.query_map([], |r| {
        Ok(Watermark {
            edge: r.get(0)?,
            queue: r.get(1)?,
            applied: r.get::<_, i64>(2)? as u64,
            updated_at: r.get::<_, i64>(3)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Per counted edge (not decommissioned, registered at or before `accepted_before` when given), its
/// watermark on each queue (0 where it has none), by edge name.
fn edge_marks(conn: &Connection, queues: u32, accepted_before: Option<Millis>) -> Result<Vec<(String, Vec<u64>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.name, w.queue, w.applied FROM edges e LEFT JOIN watermarks w ON w.edge = e.name
         WHERE e.decommissioned_at IS NULL AND e.registered_at <= ?1 ORDER BY e.name",
    )?;
    let limit = accepted_before.map_or(i64::MAX, |t| t as i64);
    let mut out: Vec<(String, Vec<u64>)> = Vec::new();
    let mut rows = stmt.query([limit])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        if out.last().is_none_or(|(n, _)| *n != name) {
            out.push((name, vec![0; queues as usize]));
        }
        if let (Some(q), Some(applied)) = (r.get::<_, Option<u32>>(1)?, r.get::<_, Option<i64>>(2)?) {
            if let Some(slot) = out.last_mut().and_then(|(_, marks)| marks.get_mut(q as usize)) {
                *slot = applied as u64;
            }
        }
    }
    Ok(out)
}

/// The lowest watermark per queue over the active edges; `None` with no active edge.
pub fn lowest_watermarks(conn: &Connection, queues: u32) -> Result<Option<Vec<u64>>> {
    let marks = edge_marks(conn, queues, None)?;
    if marks.is_empty() {
        return Ok(None);
    }
    let lowest = (0..queues as usize).map(|q| marks.iter().map(|(_, m)| m[q]).min().unwrap_or(0)).collect();
    Ok(Some(lowest))
}

// A batch's tasks are the id range first_task..=last_task (appended in one transaction), so the
// failure queries search that range through task_failures' indexes: their cost follows the
// batch's failures, not the number of tasks recorded (`tasks.batch` has no index; filtering on it
// scanned every task on each status read, seconds per read once millions were recorded).

/// How many of a batch's (?2) tasks an edge (?1) reported failed.
pub(crate) const FAILED_COUNT_SQL: &str = "SELECT COUNT(*) FROM task_failures WHERE edge = ?1 AND task BETWEEN \
     (SELECT first_task FROM batches WHERE id = ?2) AND (SELECT last_task FROM batches WHERE id = ?2)";

/// The first ?2 failure reports of a batch (?1).
pub(crate) const FAILURE_SAMPLE_SQL: &str = "SELECT f.edge, t.queue, t.qoffset, t.kind, t.target, f.reason, f.at \
     FROM task_failures f JOIN tasks t ON t.id = f.task WHERE f.task BETWEEN (SELECT first_task FROM batches \
     WHERE id = ?1) AND (SELECT last_task FROM batches WHERE id = ?1) ORDER BY f.at, f.edge, t.id LIMIT ?2";

/// A batch's progress.
pub fn progress(conn: &Connection, queues: u32, id: BatchId) -> Result<Option<Progress>> {
    let Some(batch) = batch_by_id(conn, id)? else { return Ok(None) };
    let mut failed = conn.prepare_cached(FAILED_COUNT_SQL)?;
    let edges: Vec<EdgeProgress> = edge_marks(conn, queues, Some(batch.accepted_at))?
        .into_iter()
        .map(|(edge, marks)| {
            let applied = batch.spans.iter().map(|s| s.applied(marks[s.queue as usize])).sum();
            let failed: i64 = failed.query_row(params![edge, id as i64], |r| r.get(0))?;
            Ok(EdgeProgress { edge, applied, total: batch.task_count, failed: failed as u64 })
        })
        .collect::<Result<_>>()?;
    let done = edges.iter().all(|e| e.applied >= e.total);
    let failures = conn
        .prepare_cached(FAILURE_SAMPLE_SQL)?
        .query_map(params![id as i64, Progress::FAILURE_SAMPLE as i64], |r| {
            Ok(TaskFailureRecord {
                edge: r.get(0)?,
                task: TaskRef { queue: r.get(1)?, offset: r.get::<_, i64>(2)? as u64 },
                kind: kind_from_code(r.get(3)?)?,
                target: r.get(4)?,
                reason: r.get(5)?,
                at: r.get::<_, i64>(6)? as u64,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(Progress { batch, edges, done, failures }))
}

/// Records a task an edge could not apply (see `RecordStore::report_failure`).
pub fn report_failure(conn: &Connection, edge: &str, queue: u32, offset: u64, reason: &str, at: Millis) -> Result<()> {
    let known: bool = conn.prepare_cached("SELECT 1 FROM edges WHERE name = ?1")?.exists([edge])?;
    if !known {
        return Err(Error::UnknownEdge(edge.to_owned()));
    }
    // Not found: it may be a task of a large batch whose rows are still being written (see
    // `index`): write them now, then look again.
    let task = match super::index::task_at(conn, queue, offset)? {
        Some(task) => Some(task),
        None if super::index::write_pending(conn)? > 0 => super::index::task_at(conn, queue, offset)?,
        None => None,
    };
    let task = task.ok_or(Error::UnknownTask { queue, offset })?;
    let reason: String = reason.chars().take(500).collect();
    conn.execute(
        "INSERT OR IGNORE INTO task_failures (edge, task, reason, at) VALUES (?1, ?2, ?3, ?4)",
        params![edge, task, reason, at as i64],
    )?;
    Ok(())
}

/// Marks `edge` seen at `at` (never moving back); fails for an unknown edge.
fn touch_edge(conn: &Connection, edge: &str, at: Millis) -> Result<()> {
    let changed = conn
        .prepare_cached("UPDATE edges SET last_seen = MAX(COALESCE(last_seen, 0), ?2) WHERE name = ?1")?
        .execute(params![edge, at as i64])?;
    if changed == 0 {
        return Err(Error::UnknownEdge(edge.to_owned()));
    }
    Ok(())
}

/// Writes one progress report in one transaction (see `RecordStore::record_report`).
pub fn record_report(conn: &mut Connection, queues: u32, edge: &str, report: &EdgeReport, at: Millis) -> Result<u64> {
    let tx = conn.transaction()?;
    touch_edge(&tx, edge, at)?;
    for &(queue, applied) in &report.applied {
        set_watermark(&tx, queues, edge, queue, applied, at)?;
    }
    let mut skipped = 0;
    for (task, reason) in &report.failures {
        if task.queue >= queues {
            return Err(Error::NoSuchQueue { queue: task.queue, queues });
        }
        match report_failure(&tx, edge, task.queue, task.offset, reason, at) {
            Ok(()) => {}
            Err(Error::UnknownTask { .. }) => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    tx.commit()?;
    Ok(skipped)
}

/// Stores an edge's latest policy report (see `RecordStore::set_edge_policy`).
pub fn set_edge_policy(conn: &Connection, edge: &str, policy: &EdgePolicy, at: Millis) -> Result<()> {
    let changed = conn.execute(
        "UPDATE edges SET policy_name = ?2, policy_version = ?3, policy_sha256 = ?4, policy_error = ?5,
           policy_at = ?6, last_seen = MAX(COALESCE(last_seen, 0), ?6) WHERE name = ?1",
        params![edge, policy.name, policy.version, policy.sha256, policy.error, at as i64],
    )?;
    if changed == 0 {
        return Err(Error::UnknownEdge(edge.to_owned()));
    }
    Ok(())
}

/// The smallest string greater than every string that starts with `prefix` (for index ranges).
fn prefix_end(prefix: &str) -> String {
    // Targets are normalised URLs (ASCII), so nothing sorts after U+10FFFF in practice; the
    // substr() test in the query keeps the answer exact regardless.
    format!("{prefix}\u{10FFFF}")
}

/// One page of records (see `RecordStore::records`).
pub fn records(
    conn: &Connection,
    query: &RecordQuery,
    after: Option<RecordCursor>,
    limit: usize,
) -> Result<RecordPage> {
    use rusqlite::types::Value;
    // Each part of a query is one index range (`tasks_target`, `tasks_host`; both end in the row
    // id), cut at the cursor and at the page size, so a page costs the same on page 1 and 1000
    // and on a host with ten rows or ten million. ?1 is the cursor, ?2 the page size + 1.
    let part = |condition: String| {
        format!("SELECT id FROM (SELECT id FROM tasks WHERE {condition} AND id > ?1 ORDER BY id LIMIT ?2)")
    };
    let k = |kind| kind_code(kind);
    let everything = part(format!("target = '' AND kind = {}", k(TaskKind::Everything)));
    // The prefixes of ?3: prefix tasks whose target is one of them cover ?3.
    let covering_prefixes = part(format!(
        "kind = {} AND target IN (WITH RECURSIVE p(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM p WHERE n < length(?3)) \
         SELECT substr(?3, 1, n) FROM p)",
        k(TaskKind::Prefix)
    ));
    let (parts, args) = match query {
        RecordQuery::Url { url, host } => (
            vec![
                part(format!("target = ?3 AND kind IN ({}, {})", k(TaskKind::Url), k(TaskKind::Warm))),
                covering_prefixes,
                part(format!("target = ?4 AND kind = {}", k(TaskKind::Host))),
                everything,
            ],
            vec![url.clone(), host.clone()],
        ),
        RecordQuery::Prefix(prefix) => (
            vec![
                part(format!(
                    "target >= ?3 AND target < ?4 AND substr(target, 1, length(?3)) = ?3 AND kind IN ({}, {}, {})",
                    k(TaskKind::Url),
                    k(TaskKind::Prefix),
                    k(TaskKind::Warm)
                )),
                covering_prefixes,
                everything,
            ],
            vec![prefix.clone(), prefix_end(prefix)],
        ),
        RecordQuery::Tag(tag) => {
            (vec![part(format!("target = ?3 AND kind = {}", k(TaskKind::Tag))), everything], vec![tag.clone()])
        }
        RecordQuery::Host(host) => (
            vec![
                part("host = ?3".to_owned()),
                part(format!("target = ?3 AND kind = {}", k(TaskKind::Host))),
                everything,
            ],
            vec![host.clone()],
        ),
    };
    let sql = format!(
        "SELECT t.id, t.batch, b.token_name, b.accepted_at, t.kind, t.target, t.soft, t.host, t.queue, t.qoffset, \
         t.folded FROM tasks t JOIN batches b ON b.id = t.batch WHERE t.id IN ({}) ORDER BY t.id LIMIT ?2",
        parts.join(" UNION ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let limit = limit.clamp(1, 1 << 20);
    let from = after.map_or(0, |c| c.0 as i64);
    let mut values = vec![Value::Integer(from), Value::Integer(limit as i64 + 1)];
    values.extend(args.into_iter().map(Value::Text));
    let mut rows: Vec<(u64, RecordEntry)> = stmt
        .query_map(rusqlite::params_from_iter(values), |r| {
            let entry = RecordEntry {
                batch: r.get::<_, i64>(1)? as u64,
                token_name: r.get(2)?,
                accepted_at: r.get::<_, i64>(3)? as u64,
                kind: kind_from_code(r.get(4)?)?,
                target: r.get(5)?,
                soft: r.get(6)?,
                host: r.get(7)?,
                carried_by: TaskRef { queue: r.get(8)?, offset: r.get::<_, i64>(9)? as u64 },
                folded: r.get(10)?,
            };
            Ok((r.get::<_, i64>(0)? as u64, entry))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // One row beyond the page tells whether another page exists without a COUNT.
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(id, _)| RecordCursor(*id))
    } else {
        None
    };
    let entries = rows.into_iter().map(|(_, e)| e).collect();
    Ok(RecordPage { entries, next })
}

/// The S2.3 fold target (see `RecordStore::find_fold_target`).
pub fn find_fold_target(
    conn: &Connection,
    queues: u32,
    kind: TaskKind,
    target: &str,
    soft: bool,
    since: Millis,
) -> Result<Option<TaskRef>> {
    let lowest = lowest_watermarks(conn, queues)?;
    let firsts = super::queue::queue_info(conn)?;
    // Newest first: the latest matching task is the one most likely still undelivered. The limit
    // bounds the work when a target was purged many times; older candidates are delivered anyway.
    let mut stmt = conn.prepare_cached(
        "SELECT t.queue, t.qoffset FROM tasks t JOIN batches b ON b.id = t.batch
         WHERE t.target = ?1 AND t.kind = ?2 AND t.folded = 0 AND t.soft <= ?3 AND b.accepted_at >= ?4
         ORDER BY t.id DESC LIMIT 64",
    )?;
    let candidates = stmt.query_map(params![target, kind_code(kind), soft, since as i64], |r| {
        Ok(TaskRef { queue: r.get(0)?, offset: r.get::<_, i64>(1)? as u64 })
    })?;
    for candidate in candidates {
        let at = candidate?;
        let q = at.queue as usize;
        let retained = firsts.get(q).is_some_and(|info| at.offset >= info.first);
        let undelivered = lowest.as_ref().is_none_or(|l| l.get(q).is_some_and(|&w| at.offset > w));
        if retained && undelivered {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// Deletes old, fully trimmed batches (see `RecordStore::expire`).
pub fn expire(conn: &mut Connection, before: Millis) -> Result<u64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let firsts = super::queue::queue_info(&tx)?;
    let ids: Vec<u64> = tx
        .prepare("SELECT id FROM batches WHERE accepted_at < ?1 ORDER BY id")?
        .query_map([before as i64], |r| Ok(r.get::<_, i64>(0)? as u64))?
        .collect::<rusqlite::Result<_>>()?;
    let mut expired = 0;
    for id in ids {
        let batch = batch_by_id(&tx, id)?.expect("listed batch exists");
        // A batch whose tasks an edge may still read keeps its record, whatever its age.
        let trimmed = batch.spans.iter().all(|s| firsts.get(s.queue as usize).is_some_and(|i| s.needed() < i.first));
        if !trimmed {
            continue;
        }
        tx.execute(
            "DELETE FROM tasks WHERE id BETWEEN (SELECT first_task FROM batches WHERE id = ?1)
             AND (SELECT last_task FROM batches WHERE id = ?1)",
            [id as i64],
        )?;
        tx.execute(
            "DELETE FROM task_failures WHERE task BETWEEN (SELECT first_task FROM batches WHERE id = ?1)
             AND (SELECT last_task FROM batches WHERE id = ?1)",
            [id as i64],
        )?;
        tx.execute("DELETE FROM batch_queues WHERE batch = ?1", [id as i64])?;
        tx.execute("DELETE FROM batches WHERE id = ?1", [id as i64])?;
        expired += 1;
    }
    tx.commit()?;
    Ok(expired)
}

/// Stores a token's hash.
pub fn insert_token(conn: &Connection, hash: TokenHash, token: &ApiToken) -> Result<()> {
    let taken: bool = conn.prepare_cached("SELECT 1 FROM tokens WHERE name = ?1")?.exists([&token.name])?;
    if taken {
        return Err(Error::DuplicateToken(token.name.clone()));
    }
    conn.execute(
        "INSERT INTO tokens (name, hash, hosts, admin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![token.name, &hash.0[..], token.hosts.join("\n"), token.admin, token.created_at as i64],
    )?;
    Ok(())
}

/// The token with this hash.
pub fn find_token(conn: &Connection, hash: TokenHash) -> Result<Option<ApiToken>> {
    Ok(conn
        .prepare_cached("SELECT name, hosts, admin, created_at FROM tokens WHERE hash = ?1")?
        .query_row([&hash.0[..]], |r| {
            let hosts: String = r.get(1)?;
            Ok(ApiToken {
                name: r.get(0)?,
                hosts: hosts.split('\n').filter(|h| !h.is_empty()).map(str::to_owned).collect(),
                admin: r.get(2)?,
                created_at: r.get::<_, i64>(3)? as u64,
            })
        })
        .optional()?)
}

/// Deletes a token by name.
pub fn delete_token(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM tokens WHERE name = ?1", [name])? > 0)
}
