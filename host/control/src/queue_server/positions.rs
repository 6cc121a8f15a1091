//! Whether an edge's resume positions are positions in this node's log (issue 14).
//!
//! An edge's offsets mean something only against the log that issued them. Believing offsets
//! from another log drops purges and reports them applied: after control's database was lost or
//! re-created, an edge resuming at 250,009 against a log of 1 task would be counted as having
//! applied every new purge until the log caught up. So when a stream starts, the edge's
//! `Positions` are checked, and refused (the edge purges everything and starts at the log's
//! current start) when:
//!
//! - they name another log identity (`other_log`);
//! - an offset is beyond what this log has issued (`beyond_log_end`: the database was restored
//!   from an older backup, or the edge's watermark is wrong);
//! - the task this log holds at the edge's last offset is not the one the edge received there
//!   (`other_task`: a restored backup that has since reissued those offsets to new tasks).
//!
//! An edge of protocol 1.0 sends no `Positions`: its offsets get the end-of-log check only.

use edgepurge_control_store::{ControlStore, EdgeEvent, EdgeEventKind, Error as StoreError, QueueInfo};
use edgepurge_wire::{fingerprint, Offset, QueueId};

use crate::state::QueueState;

/// What the edge said about its positions (its `Hello` and, from 1.1, its `Positions`).
#[derive(Debug, Default)]
pub struct Claimed {
    /// Per queue, the next offset the edge wants.
    pub resume: Vec<(QueueId, Offset)>,
    /// The log its offsets came from; `None` when it does not know (fresh, or protocol 1.0).
    pub log_id: Option<String>,
    /// Per queue: last received offset and the fingerprint of the task received there.
    pub last: Vec<(QueueId, Offset, u64)>,
}

/// The verdict: where the stream starts each queue, and why the edge must reset, if it must.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    /// Per queue (index = queue), the next offset to send.
    pub next: Vec<Offset>,
    /// `Some((reason label, message))` when the positions were refused.
    pub reset: Option<(&'static str, String)>,
}

/// Checks `claimed` against the log; see the module documentation.
pub async fn check<S: ControlStore>(
    state: &QueueState<S>,
    edge: &str,
    claimed: &Claimed,
) -> Result<Checked, StoreError> {
    let infos = state.store.queue_info().await?;
    let restart = |reason: &'static str, message: String| Checked {
        next: infos.iter().map(|i| i.first.max(1)).collect(),
        reset: Some((reason, message)),
    };
    let ours = state.store.log_id();
    if let Some(theirs) = claimed.log_id.as_deref().filter(|t| *t != ours) {
        return Ok(restart(
            "other_log",
            format!(
                "edge {edge} resumed with offsets of log {theirs}, but this control node's log is {ours} (its \
                 database was replaced or re-created): the edge purged everything and starts at the log's start"
            ),
        ));
    }
    let mut next: Vec<Offset> = vec![1; infos.len()];
    for &(queue, offset) in &claimed.resume {
        let Some(info) = infos.get(queue as usize) else {
            tracing::warn!(%edge, queue, "resume names a queue this node does not have; ignored");
            continue;
        };
        if offset > info.next {
            return Ok(restart("beyond_log_end", beyond_end(edge, info, offset)));
        }
        next[queue as usize] = offset;
    }
    for &(queue, offset, print) in &claimed.last {
        let Some(info) = infos.get(queue as usize) else { continue };
        // Only a task the log still holds can be compared; below `first` it was trimmed.
        if offset < info.first || offset >= info.next {
            continue;
        }
        let held = state.store.read(queue, offset, 1).await;
        let task = match held {
            Ok(mut tasks) if tasks.first().is_some_and(|t| t.at.offset == offset) => tasks.swap_remove(0),
            Ok(_) | Err(StoreError::Trimmed { .. }) => continue,
            Err(e) => return Err(e),
        };
        if fingerprint(&task.to_wire(String::new())) != print {
            return Ok(restart(
                "other_task",
                format!(
                    "edge {edge} received another task at queue {queue} offset {offset} than this log holds there \
                     (the database was restored from an older backup and reissued the offset): the edge purged \
                     everything and starts at the log's start"
                ),
            ));
        }
    }
    Ok(Checked { next, reset: None })
}

fn beyond_end(edge: &str, info: &QueueInfo, offset: Offset) -> String {
    format!(
        "edge {edge} resumed queue {} at offset {offset}, but this log has issued only up to {} (the database was \
         restored from an older backup, or the edge's watermark is wrong): the edge purged everything and starts at \
         the log's start",
        info.queue,
        info.next.saturating_sub(1)
    )
}

/// Records an event of `edge`'s positions, logging a store failure (the stream goes on).
pub async fn record<S: ControlStore>(state: &QueueState<S>, edge: &str, at: u64, kind: EdgeEventKind, message: String) {
    let event = EdgeEvent { edge: edge.to_owned(), at, kind, message };
    if let Err(e) = state.store.record_edge_event(event).await {
        tracing::warn!(%edge, error = %e, "cannot record an event of the edge's positions");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_edge_the_queue_and_the_log_end() {
        let info = QueueInfo { queue: 2, first: 1, next: 2 };
        let m = beyond_end("edge-1", &info, 250_010);
        assert!(m.contains("edge edge-1 resumed queue 2 at offset 250010"), "{m}");
        assert!(m.contains("issued only up to 1"), "{m}");
        assert!(m.contains("purged everything"), "{m}");
    }
}
