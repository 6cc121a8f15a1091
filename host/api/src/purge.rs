//! The documents of one purge batch: the `202` of `POST /v1/purges` ([`Accepted`]) and its
//! status ([`BatchStatus`], from `GET /v1/purges/{id}` and as each `progress` event).

use serde::{Deserialize, Serialize};

use crate::{Document, TaskKind};

/// The `202` body of `POST /v1/purges`: the batch is committed and fsynced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The batch id (`GET /v1/purges/{id}`), increasing per control node's store.
    pub id: u64,
    /// Tasks the batch became, after duplicates collapsed (folded ones included).
    pub tasks: u64,
    /// How many of them were folded into earlier, still undelivered tasks (S2.3) instead of
    /// queued; `GET /v1/records` shows which task carries each.
    pub folded: u64,
    /// When the batch was accepted (RFC 3339).
    pub queued_at: String,
    /// True when an `Idempotency-Key` matched an earlier batch and nothing new was queued (the
    /// other fields are that batch's).
    pub replayed: bool,
}

impl Document for Accepted {
    const SCHEMA: &'static str = "Accepted";

    fn example() -> Self {
        Accepted { id: 7, tasks: 3, folded: 1, queued_at: "2026-11-22T01:02:03.456Z".into(), replayed: false }
    }
}

/// Where a batch is, from the edges' watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchState {
    /// `queued`: no edge has applied any of its tasks yet.
    Queued,
    /// `in-progress`: some edge has applied some of its tasks.
    InProgress,
    /// `done`: every counted edge applied every task.
    Done,
    /// `partially-failed`: every counted edge went past every task, some reported failures.
    PartiallyFailed,
}

impl BatchState {
    /// Whether the batch will not change any more (`done` or `partially-failed`).
    pub fn is_done(self) -> bool {
        matches!(self, BatchState::Done | BatchState::PartiallyFailed)
    }

    /// Its name in the JSON (`queued`, `in-progress`, `done`, `partially-failed`).
    pub fn name(self) -> &'static str {
        match self {
            BatchState::Queued => "queued",
            BatchState::InProgress => "in-progress",
            BatchState::Done => "done",
            BatchState::PartiallyFailed => "partially-failed",
        }
    }
}

/// The status of one batch: `GET /v1/purges/{id}`, and the data of each `progress` event of
/// `GET /v1/purges/{id}/events` (which carries no `eta_ms`/`eta`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStatus {
    /// The batch id.
    pub id: u64,
    /// Where it is.
    pub state: BatchState,
    /// Tasks in the batch.
    pub tasks: u64,
    /// Percent (0–100) of the batch's task applications done over all counted edges.
    pub percent: f64,
    /// Tasks the edges reported they could not apply, summed over the edges.
    pub failed: u64,
    /// When the batch was accepted (RFC 3339).
    pub queued_at: String,
    /// The same instant in milliseconds since the Unix epoch.
    pub queued_at_ms: u64,
    /// The name of the token that submitted it.
    pub token: String,
    /// The `Idempotency-Key` it was submitted with; `null` without one.
    pub idempotency_key: Option<String>,
    /// One entry per edge that counts for this batch (registered when it was accepted, not
    /// decommissioned).
    pub edges: Vec<EdgeProgress>,
    /// The first failure reports of the batch, oldest first (`edges[].failed` counts them all).
    /// Read as empty when absent (control roles older than failure reports).
    #[serde(default)]
    pub failures: Vec<FailureReport>,
    /// The queue spans the batch's tasks occupy.
    pub queues: Vec<BatchSpan>,
    /// Until done, the expected wait in milliseconds of the slowest queue the batch uses (S0.3).
    /// Absent once done, in `progress` events, and while an edge that has not applied the batch
    /// is disconnected (`edges[].connected`): it applies nothing until it is back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_ms: Option<u64>,
    /// `eta_ms` from now as an instant (RFC 3339). Absent when `eta_ms` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
}

/// One edge's progress on a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeProgress {
    /// The edge's name (from its certificate).
    pub edge: String,
    /// Tasks of the batch the edge has applied.
    pub applied: u64,
    /// Tasks of the batch the edge must apply.
    pub total: u64,
    /// Tasks of the batch not yet applied on this edge (`total - applied`).
    pub lag: u64,
    /// Tasks the edge reported it could not apply.
    pub failed: u64,
    /// `applied` as a percent (0–100) of `total`; 100 when `total` is 0.
    pub percent: f64,
    /// Whether the edge's queue stream to this control node is open now. An edge that is not
    /// connected applies nothing until it reconnects, so the batch has no ETA while one that has
    /// not applied it is disconnected. Read as `true` when absent (control roles older than this
    /// field), so an old answer never makes an edge look lost.
    #[serde(default = "connected_when_absent")]
    pub connected: bool,
    /// When this control node last heard from the edge on its stream (RFC 3339): the latest ack,
    /// else when that stream opened. `null` when this node has seen no stream of it since it
    /// started.
    #[serde(default)]
    pub last_seen: Option<String>,
}

/// What a status document without `connected` means: nothing is known against the edge.
fn connected_when_absent() -> bool {
    true
}

/// A task an edge reported it could not apply as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReport {
    /// The edge that reported it.
    pub edge: String,
    /// The task's queue index.
    pub queue: u32,
    /// The task's offset in that queue.
    pub offset: u64,
    /// What the task asked for.
    pub kind: TaskKind,
    /// The task's normalised target (URL, prefix, tag or host; empty for `everything`).
    pub target: String,
    /// What the edge said went wrong.
    pub reason: String,
    /// When the edge reported it (RFC 3339).
    pub at: String,
}

/// A run of a batch's tasks on one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSpan {
    /// The queue index.
    pub queue: u32,
    /// The offset of the span's first task.
    pub first: u64,
    /// The offset of the span's last task.
    pub last: u64,
    /// The batch's tasks the span carries (its own plus those folded into it).
    pub tasks: u64,
}

impl Document for BatchStatus {
    const SCHEMA: &'static str = "Status";

    fn example() -> Self {
        BatchStatus {
            id: 7,
            state: BatchState::InProgress,
            tasks: 2,
            percent: 50.0,
            failed: 1,
            queued_at: "2026-11-22T01:02:03.456Z".into(),
            queued_at_ms: 1_795_309_323_456,
            token: "ci".into(),
            idempotency_key: Some("deploy-42".into()),
            edges: vec![EdgeProgress {
                edge: "edge-1".into(),
                applied: 1,
                total: 2,
                lag: 1,
                failed: 1,
                percent: 50.0,
                connected: true,
                last_seen: Some("2026-11-22T01:02:04.000Z".into()),
            }],
            failures: vec![FailureReport {
                edge: "edge-1".into(),
                queue: 0,
                offset: 5,
                kind: TaskKind::Warm,
                target: "http://a.com/x".into(),
                reason: "origin refused the warm fetch".into(),
                at: "2026-11-22T01:02:04.000Z".into(),
            }],
            queues: vec![BatchSpan { queue: 0, first: 5, last: 6, tasks: 2 }],
            eta_ms: Some(1500),
            eta: Some("2026-11-22T01:02:05.500Z".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::round_trip;
    use serde_json::json;

    #[test]
    fn the_status_document_keeps_its_shape() {
        let doc = round_trip(&BatchStatus::example());
        assert_eq!(doc["state"], "in-progress");
        assert_eq!(doc["failures"][0]["kind"], "warm");
        assert_eq!(doc["edges"][0]["lag"], 1);
        assert_eq!(
            (&doc["edges"][0]["connected"], &doc["edges"][0]["last_seen"]),
            (&json!(true), &json!("2026-11-22T01:02:04.000Z"))
        );
        // An answer of an older control role (no liveness fields) reads as connected, never seen.
        let old: EdgeProgress = serde_json::from_value(
            json!({"edge": "e", "applied": 0, "total": 1, "lag": 1, "failed": 0, "percent": 0.0}),
        )
        .unwrap();
        assert_eq!((old.connected, old.last_seen), (true, None));
        let mut done = BatchStatus::example();
        (done.state, done.idempotency_key, done.eta_ms, done.eta) = (BatchState::PartiallyFailed, None, None, None);
        let doc = round_trip(&done);
        assert!(doc["idempotency_key"].is_null() && doc.get("idempotency_key").is_some(), "null, not omitted");
        assert!(doc.get("eta_ms").is_none() && doc.get("eta").is_none(), "no ETA once done: {doc}");
        assert_eq!(doc["state"], "partially-failed");
        assert!(done.state.is_done() && !BatchState::Queued.is_done());
        assert_eq!(serde_json::to_value(BatchState::InProgress).unwrap(), BatchState::InProgress.name());
    }

    #[test]
    fn the_accepted_document_keeps_its_shape() {
        assert_eq!(
            round_trip(&Accepted::example()),
            json!({"id": 7, "tasks": 3, "folded": 1, "queued_at": "2026-11-22T01:02:03.456Z", "replayed": false})
        );
    }
}
