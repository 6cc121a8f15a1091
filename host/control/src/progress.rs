//! A batch's status document ([`BatchStatus`]) as a token may see it, computed from the edges'
//! watermarks and which edges the hub has connected now: what `GET /v1/purges/{id}` answers (with
//! an ETA added there when [`eta_estimable`]) and what each `progress` event of
//! `GET /v1/purges/{id}/events` carries.

use edgepurge_api::{BatchSpan, BatchState, BatchStatus, EdgeProgress, FailureReport};
use edgepurge_control_store::{ApiToken, BatchId, ControlStore};

use crate::state::QueueState;
use crate::{rfc3339, Error};

/// The status document of batch `id` as `token` may see it (no ETA: `eta_ms`/`eta` are `None`);
/// `state.is_done()` says whether the batch is done. Each edge's `connected` and `last_seen`
/// come from the hub's live streams (an edge with no stream since this node started is not
/// connected, never seen).
pub async fn batch_status<S: ControlStore>(
    queues: &QueueState<S>,
    token: &ApiToken,
    id: &str,
) -> Result<BatchStatus, Error> {
    let store = &queues.store;
    let not_found = || Error::NotFound(format!("no purge batch `{id}`"));
    let batch_id: BatchId = id.parse().map_err(|_| not_found())?;
    let progress = store.progress(batch_id).await?.ok_or_else(not_found)?;
    // Another tenant's batch is reported as missing, not forbidden: ids are sequential and a 403
    // would confirm that a batch exists.
    if progress.batch.token_name != token.name && !token.admin {
        return Err(not_found());
    }
    let applied: u64 = progress.edges.iter().map(|e| e.applied).sum();
    let failed: u64 = progress.edges.iter().map(|e| e.failed).sum();
    let state = if progress.done && failed > 0 {
        BatchState::PartiallyFailed
    } else if progress.done {
        BatchState::Done
    } else if applied == 0 {
        BatchState::Queued
    } else {
        BatchState::InProgress
    };
    let live = queues.queue.live_edges();
    let edges = progress
        .edges
        .iter()
        .map(|e| {
            let stream = live.get(&e.edge);
            EdgeProgress {
                edge: e.edge.clone(),
                applied: e.applied,
                total: e.total,
                lag: e.total - e.applied,
                failed: e.failed,
                percent: if e.total == 0 { 100.0 } else { e.applied as f64 * 100.0 / e.total as f64 },
                connected: stream.is_some_and(|s| s.connected),
                last_seen: stream.map(|s| rfc3339(s.last_seen())),
            }
        })
        .collect();
    let b = &progress.batch;
    let queues = b
        .spans
        .iter()
        .map(|s| BatchSpan { queue: s.queue, first: s.first, last: s.last, tasks: s.own + s.folded })
        .collect();
    // The first reports only (`Progress::FAILURE_SAMPLE`); `edges[].failed` counts them all.
    let failures = progress
        .failures
        .iter()
        .map(|f| FailureReport {
            edge: f.edge.clone(),
            queue: f.task.queue,
            offset: f.task.offset,
            kind: f.kind,
            target: f.target.clone(),
            reason: f.reason.clone(),
            at: rfc3339(f.at),
        })
        .collect();
    Ok(BatchStatus {
        id: b.id,
        state,
        tasks: b.task_count,
        percent: progress.percent(),
        failed,
        queued_at: rfc3339(b.accepted_at),
        queued_at_ms: b.accepted_at,
        token: b.token_name.clone(),
        idempotency_key: b.idempotency_key.clone(),
        edges,
        failures,
        queues,
        eta_ms: None,
        eta: None,
    })
}

/// Whether the batch's ETA can be estimated: not while an edge that has not applied all of it is
/// disconnected (it applies nothing until it is back, however short the queues are).
pub fn eta_estimable(doc: &BatchStatus) -> bool {
    !doc.edges.iter().any(|e| e.applied < e.total && !e.connected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_api::Document;

    #[test]
    fn no_eta_while_an_edge_that_has_not_applied_the_batch_is_disconnected() {
        let edge = |name: &str, applied, connected| EdgeProgress {
            edge: name.into(),
            applied,
            total: 2,
            lag: 2 - applied,
            failed: 0,
            percent: applied as f64 * 50.0,
            connected,
            last_seen: None,
        };
        let doc = |edges| BatchStatus { edges, ..BatchStatus::example() };
        assert!(eta_estimable(&doc(vec![edge("a", 0, true), edge("b", 1, true)])));
        assert!(!eta_estimable(&doc(vec![edge("a", 0, true), edge("b", 1, false)])), "b still has work");
        assert!(eta_estimable(&doc(vec![edge("a", 0, true), edge("b", 2, false)])), "b is through the batch");
        assert!(eta_estimable(&doc(Vec::new())));
    }
}
