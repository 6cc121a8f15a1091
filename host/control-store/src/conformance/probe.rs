//! Conformance of [`QueueStore::probe_write`](crate::QueueStore::probe_write): it succeeds on a
//! healthy store, again and again and after a reopen, and leaves nothing any query shows.

use super::{batch, urls, Harness};
use crate::model::*;
use crate::{ControlStore, QueueStore, RecordStore};

/// What the traits show of a store: queue offsets, a batch, the edges, the watermarks, records.
type Seen = (Vec<QueueInfo>, Option<Batch>, Vec<Edge>, Vec<Watermark>, usize);

async fn seen<S: ControlStore>(store: &S, id: BatchId) -> Seen {
    let records = store.records(RecordQuery::Host("h.example".into()), None, 100).await.unwrap();
    let info = store.queue_info().await.unwrap();
    let batch = store.batch(id).await.unwrap();
    (info, batch, store.edges().await.unwrap(), store.watermarks().await.unwrap(), records.entries.len())
}

/// Probes on a healthy store succeed and change nothing the traits show.
pub async fn write_probe_succeeds_and_changes_nothing_visible<H: Harness>(h: &H) {
    let store = h.create(2).await;
    store.probe_write().await.expect("a new store takes a probe write");
    let first = store.append(batch("t", 1), urls(1, "p", 3)).await.unwrap().batch;
    store.register_edge("e", 0).await.unwrap();
    let before = seen(&store, first.id).await;
    for _ in 0..3 {
        store.probe_write().await.expect("probes repeat");
    }
    assert_eq!(seen(&store, first.id).await, before, "a probe is visible to no query");
    let store = h.reopen(store).await;
    store.probe_write().await.expect("a reopened store takes a probe write");
    assert_eq!(seen(&store, first.id).await, before);
    let next = store.append(batch("t", 2), urls(1, "q", 1)).await.unwrap().batch;
    assert_eq!(next.spans[0].first, 4, "offsets continue: a probe takes none");
}
