//! An edge's positions beyond the plain watermarks: lowering them when a stream starts, and the
//! events that explain why they moved (issue 14, log identity and offset checks).

use rusqlite::{params, Connection};

use crate::model::*;
use crate::{Error, Result};

/// Lowers `edge`'s watermarks to the given caps (see `RecordStore::lower_watermarks`).
pub fn lower_watermarks(conn: &mut Connection, queues: u32, edge: &str, caps: &[(u32, u64)], at: Millis) -> Result<()> {
    let tx = conn.transaction()?;
    for &(queue, cap) in caps {
        if queue >= queues {
            return Err(Error::NoSuchQueue { queue, queues });
        }
        tx.prepare_cached(
            "UPDATE watermarks SET applied = ?3, updated_at = ?4 WHERE edge = ?1 AND queue = ?2 AND applied > ?3",
        )?
        .execute(params![edge, queue, cap.min(i64::MAX as u64) as i64, at as i64])?;
    }
    tx.commit()?;
    Ok(())
}

/// Forgets every watermark of `edge` (on decommissioning).
pub fn forget_watermarks(conn: &Connection, edge: &str) -> Result<()> {
    conn.execute("DELETE FROM watermarks WHERE edge = ?1", [edge])?;
    Ok(())
}

/// How many events are kept per edge; older ones go when a new one arrives.
const EVENTS_PER_EDGE: i64 = 100;

/// Records an event once (see `RecordStore::record_edge_event`).
pub fn record_edge_event(conn: &mut Connection, event: &EdgeEvent) -> Result<bool> {
    let tx = conn.transaction()?;
    let added = tx.execute(
        "INSERT OR IGNORE INTO edge_events (edge, at, kind, message) VALUES (?1, ?2, ?3, ?4)",
        params![event.edge, event.at as i64, event.kind.as_str(), event.message],
    )? == 1;
    if added {
        tx.execute(
            "DELETE FROM edge_events WHERE edge = ?1 AND id <= (SELECT MAX(id) FROM edge_events WHERE edge = ?1) - ?2",
            params![event.edge, EVENTS_PER_EDGE],
        )?;
    }
    tx.commit()?;
    Ok(added)
}

/// The latest events, newest first (see `RecordStore::edge_events`).
pub fn edge_events(conn: &Connection, edge: Option<&str>, limit: usize) -> Result<Vec<EdgeEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT edge, at, kind, message FROM edge_events WHERE ?1 IS NULL OR edge = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![edge, limit.min(i64::MAX as usize) as i64], |r| {
        let kind: String = r.get(2)?;
        Ok(EdgeEvent {
            edge: r.get(0)?,
            at: r.get::<_, i64>(1)? as u64,
            // A kind written by a newer build reads as a notice rather than failing the view.
            kind: EdgeEventKind::parse(&kind).unwrap_or(EdgeEventKind::Notice),
            message: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
