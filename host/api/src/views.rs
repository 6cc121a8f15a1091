//! The read-only views: `GET /v1/queues` ([`QueueList`]), `GET /v1/records` ([`RecordPage`]),
//! `GET /v1/edges` ([`EdgeList`]), and the answer of `DELETE /v1/edges/{name}`
//! ([`Decommissioned`]).

use serde::{Deserialize, Serialize};

use crate::{Document, TaskKind};

/// `GET /v1/queues`: every queue, in index order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueList {
    /// One entry per queue.
    pub queues: Vec<QueueState>,
}

/// One queue: health, depth and speed. The figures read from the store are `null` when reading
/// them failed (the queue is then unhealthy and `problem` says why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    /// The queue index.
    pub queue: u32,
    /// Whether new tasks may go here (S0.2).
    pub healthy: bool,
    /// The speed estimate in bytes per second that the built-in policy would use (S0.3).
    pub speed_bytes_per_sec: u64,
    /// The expected wait of a new task in milliseconds: pending bytes at the speed estimate plus
    /// the pacing interval per pending task; `null` when the figures are unknown.
    pub expected_wait_ms: Option<u64>,
    /// The peak send rate of the recent history, bytes per second.
    pub peak_bytes_per_sec: u64,
    /// The current cycle slot (S0.3), whose history the speed samples come from.
    pub slot: u32,
    /// How many speed samples that slot has.
    pub slot_samples: u64,
    /// Why the queue is unhealthy; `null` when healthy.
    pub problem: Option<String>,
    /// Tasks pending (above the lowest edge watermark).
    pub depth: Option<u64>,
    /// Bytes of the pending tasks.
    pub pending_bytes: Option<u64>,
    /// The lowest watermark over the edges: every task at or below it is applied everywhere.
    pub delivered: Option<u64>,
    /// The lowest offset still stored (everything below was trimmed).
    pub first_offset: Option<u64>,
    /// The offset the next appended task will get.
    pub next_offset: Option<u64>,
}

impl Document for QueueList {
    const SCHEMA: &'static str = "Queues";

    fn example() -> Self {
        QueueList {
            queues: vec![QueueState {
                queue: 0,
                healthy: false,
                speed_bytes_per_sec: 65_536,
                expected_wait_ms: Some(120),
                peak_bytes_per_sec: 131_072,
                slot: 3,
                slot_samples: 2,
                problem: Some("stalled: no edge progress for 60000 ms with 4 tasks pending".into()),
                depth: Some(4),
                pending_bytes: Some(256),
                delivered: Some(10),
                first_offset: Some(1),
                next_offset: Some(15),
            }],
        }
    }
}

/// `GET /v1/records`: one page of the requests that covered the queried resource, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPage {
    /// The page's entries.
    pub entries: Vec<RecordEntry>,
    /// The `after=` of the next page; `null` on the last page.
    pub next: Option<u64>,
}

/// One request that covered the queried resource, with its state on each edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEntry {
    /// The batch that carried it.
    pub batch: u64,
    /// The name of the token that submitted it.
    pub token: String,
    /// When its batch was accepted (RFC 3339).
    pub accepted_at: String,
    /// What it asked for.
    pub kind: TaskKind,
    /// Its normalised target (URL, prefix, tag or host; empty for `everything`).
    pub target: String,
    /// Soft purge: mark stale instead of removing.
    pub soft: bool,
    /// The host it applies to; empty for `everything` and cross-host tags.
    pub host: String,
    /// The queue of the task that carries it to the edges.
    pub queue: u32,
    /// That task's offset in the queue: an edge has applied the request once its watermark there
    /// reaches it.
    pub offset: u64,
    /// True when it was folded into an earlier task (S2.3) instead of queued on its own.
    pub folded: bool,
    /// One entry per edge that counts for its batch.
    pub edges: Vec<EdgeApplied>,
}

/// Whether one edge has applied a recorded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeApplied {
    /// The edge's name.
    pub edge: String,
    /// Whether its watermark on the carrying task's queue reached the task.
    pub applied: bool,
    /// The latest event of the edge's positions since the request was accepted (control refused
    /// its positions and it purged everything, a watermark was refused, its buffer was replaced);
    /// `null` when there was none.
    pub note: Option<String>,
}

impl Document for RecordPage {
    const SCHEMA: &'static str = "Records";

    fn example() -> Self {
        RecordPage {
            entries: vec![RecordEntry {
                batch: 3,
                token: "ci".into(),
                accepted_at: "2026-11-22T01:02:03.456Z".into(),
                kind: TaskKind::Url,
                target: "http://a.com/x".into(),
                soft: false,
                host: "a.com".into(),
                queue: 1,
                offset: 9,
                folded: true,
                edges: vec![EdgeApplied {
                    edge: "edge-1".into(),
                    applied: true,
                    note: Some(
                        "receive buffer damaged (database disk image is malformed): moved aside, purged everything"
                            .into(),
                    ),
                }],
            }],
            next: Some(12),
        }
    }
}

/// `GET /v1/edges`: every registered edge, decommissioned ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeList {
    /// One entry per edge.
    pub edges: Vec<EdgeState>,
}

/// One edge: its connection, the policy it runs, its watermark and lag per queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeState {
    /// Its name (from its certificate).
    pub name: String,
    /// When it registered (RFC 3339): it counts for batches accepted from then on.
    pub registered_at: String,
    /// When it was decommissioned (RFC 3339); `null` while active.
    pub decommissioned_at: Option<String>,
    /// When it last reported anything (RFC 3339); `null` before its first report.
    pub last_seen: Option<String>,
    /// Whether its queue stream to this control node is open now.
    pub connected: bool,
    /// When that stream opened (RFC 3339); `null` when this node has seen no stream of it.
    pub connected_at: Option<String>,
    /// The stream's remote address (`ip:port`); `null` as for `connected_at`.
    pub peer: Option<String>,
    /// When the stream last carried an ack (RFC 3339); `null` before the first.
    pub last_ack: Option<String>,
    /// The last policy load it reported; `null` before the first.
    pub policy: Option<EdgePolicyReport>,
    /// One entry per queue, in index order.
    pub queues: Vec<EdgeQueue>,
    /// What happened to its positions, newest first (at most 5): control refused them (the edge
    /// purged everything and started over), refused a watermark beyond what was sent, or the
    /// edge reported a notice (its receive buffer was damaged and replaced).
    pub events: Vec<EdgeEventReport>,
}

/// One event of an edge's positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeEventReport {
    /// When (RFC 3339).
    pub at: String,
    /// `positions-reset`, `watermark-refused` or `edge-notice`.
    pub kind: String,
    /// What happened and what it did to the edge's cache.
    pub message: String,
}

/// The outcome of an edge loading the policy this control node sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgePolicyReport {
    /// The policy's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Lowercase hex SHA-256 of the component the edge received.
    pub sha256: String,
    /// Why the edge refused it (its previous policy keeps serving); `null` when it serves.
    pub error: Option<String>,
    /// When the edge reported it (RFC 3339).
    pub reported_at: String,
}

/// One edge on one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeQueue {
    /// The queue index.
    pub queue: u32,
    /// The edge's stored watermark: every task at or below this offset is applied there.
    pub applied: u64,
    /// Tasks on the queue above that watermark.
    pub lag: u64,
    /// The latest offset the open stream says the edge received; `null` without a stream.
    pub stream_received: Option<u64>,
    /// The latest offset the open stream says the edge applied; `null` without a stream.
    pub stream_applied: Option<u64>,
}

impl Document for EdgeList {
    const SCHEMA: &'static str = "Edges";

    fn example() -> Self {
        let at = || Some("2026-11-22T01:02:03.456Z".to_owned());
        EdgeList {
            edges: vec![EdgeState {
                name: "edge-1".into(),
                registered_at: "2026-11-22T01:00:00.000Z".into(),
                decommissioned_at: at(),
                last_seen: at(),
                connected: true,
                connected_at: at(),
                peer: Some("127.0.0.1:50123".into()),
                last_ack: at(),
                policy: Some(EdgePolicyReport {
                    name: "default".into(),
                    version: "0.1.0".into(),
                    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                    error: Some("the component does not export `on-request`".into()),
                    reported_at: "2026-11-22T01:01:00.000Z".into(),
                }),
                queues: vec![EdgeQueue {
                    queue: 0,
                    applied: 9,
                    lag: 2,
                    stream_received: Some(11),
                    stream_applied: Some(10),
                }],
                events: vec![EdgeEventReport {
                    at: "2026-11-22T01:00:30.000Z".into(),
                    kind: "positions-reset".into(),
                    message: "edge edge-1 resumed with offsets of log 0123…, but this control node's log is 4567… \
                              (its database was replaced or re-created): the edge purged everything and starts at \
                              the log's start"
                        .into(),
                }],
            }],
        }
    }
}

/// `DELETE /v1/edges/{name}`: the edge no longer counts for progress nor holds back trims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decommissioned {
    /// The edge's name.
    pub edge: String,
    /// When it was decommissioned (RFC 3339).
    pub decommissioned_at: String,
}

impl Document for Decommissioned {
    const SCHEMA: &'static str = "Decommissioned";

    fn example() -> Self {
        Decommissioned { edge: "edge-1".into(), decommissioned_at: "2026-11-22T01:02:03.456Z".into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::round_trip;

    #[test]
    fn missing_figures_stay_null() {
        let mut list = QueueList::example();
        let q = &mut list.queues[0];
        (q.expected_wait_ms, q.problem, q.depth, q.pending_bytes) = (None, None, None, None);
        (q.delivered, q.first_offset, q.next_offset) = (None, None, None);
        let doc = round_trip(&list);
        for key in ["expected_wait_ms", "problem", "depth", "pending_bytes", "delivered", "first_offset", "next_offset"]
        {
            assert!(doc["queues"][0].get(key).is_some_and(|v| v.is_null()), "{key} must be null: {doc}");
        }
        let page = RecordPage { next: None, ..RecordPage::example() };
        assert!(round_trip(&page).get("next").is_some_and(|v| v.is_null()));
        let mut edges = EdgeList::example();
        edges.edges[0].policy = None;
        assert!(round_trip(&edges)["edges"][0].get("policy").is_some_and(|v| v.is_null()));
        round_trip(&Decommissioned::example());
    }
}
