//! Conformance checks on an edge's positions: the log identity, lowering watermarks when a
//! stream starts, forgetting them on decommissioning, and the events that explain them.

use super::{batch, urls, Harness};
use crate::model::*;
use crate::{Error, QueueStore, RecordStore};

fn mark(marks: &[Watermark], edge: &str, queue: u32) -> Option<u64> {
    marks.iter().find(|w| w.edge == edge && w.queue == queue).map(|w| w.applied)
}

/// The log identity is kept across a reopen (it is in the storage, so in its backups) and two
/// stores never share one: an edge can tell a re-created store from the one it knew.
pub async fn log_identity_is_durable_and_unique<H: Harness>(h: &H) {
    let store = h.create(1).await;
    let id = store.log_id().to_owned();
    assert!(id.len() >= 16, "a log id of at least 64 random bits, got {id:?}");
    store.append(batch("t", 1), urls(0, "a", 1)).await.unwrap();
    let store = h.reopen(store).await;
    assert_eq!(store.log_id(), id, "the identity survives a restart");
    let other = h.create(1).await;
    assert_ne!(other.log_id(), id, "a new store is another log");
}

/// `lower_watermarks` only lowers, only the queues named; decommissioning forgets the edge's
/// watermarks, so a bad position cannot outlive it.
pub async fn watermarks_are_lowered_at_stream_start_and_forgotten_on_decommission<H: Harness>(h: &H) {
    let store = h.create(2).await;
    store.append(batch("t", 1), urls(0, "a", 10)).await.unwrap();
    store.register_edge("e", 0).await.unwrap();
    store.set_watermark("e", 0, 10, 5).await.unwrap();
    store.set_watermark("e", 1, 3, 5).await.unwrap();
    store.lower_watermarks("e", vec![(0, 4), (1, 7)], 6).await.unwrap();
    let marks = store.watermarks().await.unwrap();
    assert_eq!((mark(&marks, "e", 0), mark(&marks, "e", 1)), (Some(4), Some(3)), "lowered to 4, 3 is kept");
    assert!(matches!(store.lower_watermarks("e", vec![(9, 0)], 7).await, Err(Error::NoSuchQueue { queue: 9, .. })));

    store.decommission_edge("e", 8).await.unwrap();
    assert_eq!(mark(&store.watermarks().await.unwrap(), "e", 0), None, "decommissioning forgets positions");
    store.register_edge("e", 9).await.unwrap();
    assert_eq!(store.lowest_watermarks().await.unwrap(), Some(vec![0, 0]), "it comes back from nothing");
}

/// Events are kept once each, newest first, per edge or for all.
pub async fn edge_events_are_kept_once_newest_first<H: Harness>(h: &H) {
    let store = h.create(1).await;
    let event =
        |edge: &str, at, kind, message: &str| EdgeEvent { edge: edge.into(), at, kind, message: message.into() };
    let reset = event("a", 10, EdgeEventKind::PositionsReset, "another log");
    assert!(store.record_edge_event(reset.clone()).await.unwrap());
    assert!(!store.record_edge_event(reset.clone()).await.unwrap(), "the same event again is not new");
    let notice = event("a", 20, EdgeEventKind::Notice, "receive buffer replaced");
    store.record_edge_event(notice.clone()).await.unwrap();
    let refused = event("b", 15, EdgeEventKind::WatermarkRefused, "applied 99 > sent 4");
    store.record_edge_event(refused.clone()).await.unwrap();
    assert_eq!(store.edge_events(Some("a"), 10).await.unwrap(), vec![notice.clone(), reset]);
    assert_eq!(store.edge_events(None, 2).await.unwrap(), vec![refused, notice]);
    let store = h.reopen(store).await;
    assert_eq!(store.edge_events(Some("b"), 10).await.unwrap().len(), 1, "events are durable");
}
