//! Conformance checks on the queue log: round trip, offsets, atomicity, durability, idempotency,
//! trimming.

use super::{batch, urls, Harness};
use crate::model::*;
use crate::{ControlStore, Error, QueueStore, RecordStore};

/// Tasks come back from `read` as they were appended, on the queue they were assigned to.
pub async fn append_read_round_trip<H: Harness>(h: &H) {
    let store = h.create(3).await;
    assert_eq!(store.queue_count(), 3);
    let mut warm = NewTask::new(2, TaskKind::Warm, "https://a.example/w", "a.example");
    warm.size_bytes = 99;
    let mut soft = NewTask::new(0, TaskKind::Tag, "news", "a.example");
    soft.soft = true;
    let tasks = vec![
        NewTask::new(0, TaskKind::Url, "https://a.example/1", "a.example"),
        warm,
        soft,
        NewTask::new(2, TaskKind::Prefix, "https://a.example/dir/", "a.example"),
        NewTask::new(0, TaskKind::Host, "a.example", "a.example"),
        NewTask::new(2, TaskKind::Everything, "", ""),
    ];
    let appended = store.append(batch("t", 1000), tasks.clone()).await.expect("append");
    assert!(appended.created);
    assert_eq!(appended.batch.task_count, 6);
    assert_eq!(appended.batch.token_name, "t");
    assert_eq!(appended.batch.accepted_at, 1000);
    let spans: Vec<(u32, u64, u64, u64)> =
        appended.batch.spans.iter().map(|s| (s.queue, s.first, s.last, s.own)).collect();
    assert_eq!(spans, vec![(0, 1, 3, 3), (2, 1, 3, 3)], "queue 1 got nothing so it has no span");
    assert_eq!(store.batch(appended.batch.id).await.unwrap(), Some(appended.batch.clone()));

    for queue in 0..3 {
        let read = store.read(queue, 1, 100).await.expect("read");
        let expected: Vec<&NewTask> = tasks.iter().filter(|t| t.placement == Placement::Queue(queue)).collect();
        assert_eq!(read.len(), expected.len(), "queue {queue}");
        for (i, (got, want)) in read.iter().zip(expected).enumerate() {
            assert_eq!(got.at, TaskRef { queue, offset: i as u64 + 1 });
            assert_eq!(got.batch, appended.batch.id);
            assert_eq!((got.kind, got.target.as_str(), got.soft), (want.kind, want.target.as_str(), want.soft));
            assert_eq!((got.size_bytes, got.host.as_str()), (want.size_bytes, want.host.as_str()));
        }
    }
    // Reading from the middle and with a limit.
    let tail = store.read(2, 2, 1).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].target, "https://a.example/dir/");
    assert!(store.read(2, 4, 10).await.unwrap().is_empty(), "nothing past the head");
    assert!(matches!(store.read(3, 1, 10).await, Err(Error::NoSuchQueue { queue: 3, queues: 3 })));
}

/// Each queue numbers its tasks 1, 2, 3, … across batches, independently of the others.
pub async fn offsets_are_per_queue_and_contiguous<H: Harness>(h: &H) {
    let store = h.create(2).await;
    let mut expected_next = [1u64, 1];
    for round in 0..5u64 {
        let mut tasks = urls(0, &format!("r{round}"), round as usize + 1);
        tasks.extend(urls(1, &format!("s{round}"), 2));
        let b = store.append(batch("t", round), tasks).await.unwrap().batch;
        assert_eq!(b.spans[0].first, expected_next[0]);
        assert_eq!(b.spans[1].first, expected_next[1]);
        expected_next[0] += round + 1;
        expected_next[1] += 2;
    }
    let info = store.queue_info().await.unwrap();
    assert_eq!(info.iter().map(|i| (i.first, i.next)).collect::<Vec<_>>(), vec![(1, 16), (1, 11)]);
    for queue in 0..2u32 {
        let offsets: Vec<u64> = store.read(queue, 0, 1000).await.unwrap().iter().map(|t| t.at.offset).collect();
        assert_eq!(offsets, (1..expected_next[queue as usize]).collect::<Vec<_>>());
    }
    let pending = store.pending(0, 10).await.unwrap();
    assert_eq!(pending.tasks, 5);
    assert_eq!(pending.bytes, store.read(0, 11, 100).await.unwrap().iter().map(|t| t.size_bytes).sum::<u64>());
    assert_eq!(store.pending(0, 15).await.unwrap(), Pending::default());
}

/// A failed append (bad queue index at the end, a fold into a missing task, no tasks) leaves no
/// trace: no batch, no tasks, no offsets used, no idempotency key taken.
pub async fn failed_append_leaves_nothing<H: Harness>(h: &H) {
    let store = h.create(2).await;
    let first = store.append(batch("t", 1), urls(0, "ok", 3)).await.unwrap().batch;
    let before = store.queue_info().await.unwrap();

    let mut bad = urls(0, "bad", 500);
    bad.extend(urls(1, "bad1", 10));
    bad.push(NewTask::new(7, TaskKind::Url, "https://h.example/bad/last", "h.example"));
    let keyed = NewBatch { idempotency_key: Some("k".into()), ..batch("t", 2) };
    assert!(matches!(store.append(keyed.clone(), bad).await, Err(Error::NoSuchQueue { queue: 7, .. })));

    let mut fold = urls(1, "fold", 3);
    let missing = TaskRef { queue: 0, offset: 999 };
    fold.push(NewTask { placement: Placement::FoldInto(missing), ..NewTask::new(0, TaskKind::Url, "x", "h.example") });
    assert!(matches!(store.append(batch("t", 3), fold).await, Err(Error::NoSuchTask(r)) if r == missing));
    assert!(matches!(store.append(batch("t", 4), Vec::new()).await, Err(Error::EmptyBatch)));

    assert_eq!(store.queue_info().await.unwrap(), before, "no offsets consumed");
    assert_eq!(store.read(0, 1, 1000).await.unwrap().len(), 3);
    assert!(store.read(1, 1, 1000).await.unwrap().is_empty());
    let records = store.records(RecordQuery::Host("h.example".into()), None, 1000).await.unwrap();
    assert_eq!(records.entries.len(), 3, "only the good batch is on record");
    assert!(store.batch(first.id + 1).await.unwrap().is_none());
    // The key was not taken by the failed attempt: using it now creates a batch.
    let retry = store.append(keyed, urls(1, "retry", 2)).await.unwrap();
    assert!(retry.created);
    assert_eq!(retry.batch.spans[0].first, 1, "queue 1 starts at 1: the failed tasks used no offset");
}

/// Every acknowledged batch is complete after the store is closed and opened again.
pub async fn acknowledged_batches_survive_reopen<H: Harness>(h: &H) {
    let store = h.create(4).await;
    let mut acked = Vec::new();
    for (i, n) in [1usize, 10_000, 7].into_iter().enumerate() {
        let tasks: Vec<NewTask> = (0..n)
            .map(|j| NewTask::new((j % 4) as u32, TaskKind::Url, format!("https://d.example/{i}/{j}"), "d.example"))
            .collect();
        let key = NewBatch { idempotency_key: Some(format!("k{i}")), ..batch("t", i as u64) };
        acked.push(store.append(key, tasks).await.unwrap().batch);
    }
    let info = store.queue_info().await.unwrap();
    let store = h.reopen(store).await;
    assert_eq!(store.queue_info().await.unwrap(), info);
    for b in &acked {
        assert_eq!(store.batch(b.id).await.unwrap().as_ref(), Some(b));
    }
    let total: usize = {
        let mut total = 0;
        for q in 0..4 {
            total += store.read(q, 1, 100_000).await.unwrap().len();
        }
        total
    };
    assert_eq!(total, 10_008);
    // Idempotency keys survive too, and new appends continue the offsets.
    let again = store.append(NewBatch { idempotency_key: Some("k1".into()), ..batch("t", 9) }, urls(0, "x", 1)).await;
    assert_eq!(again.unwrap().batch.id, acked[1].id);
    let next = store.append(batch("t", 10), urls(0, "y", 1)).await.unwrap().batch;
    assert_eq!(next.spans[0].first, info[0].next);
}

/// A repeated idempotency key (same token) returns the first batch and queues nothing.
pub async fn idempotency_key_returns_first_batch<H: Harness>(h: &H) {
    let store = h.create(1).await;
    let keyed = |token: &str, key: &str| NewBatch { idempotency_key: Some(key.into()), ..batch(token, 5) };
    let first = store.append(keyed("t", "abc"), urls(0, "a", 3)).await.unwrap();
    assert!(first.created);
    let repeat = store.append(keyed("t", "abc"), urls(0, "b", 50)).await.unwrap();
    assert!(!repeat.created);
    assert_eq!(repeat.batch, first.batch);
    assert_eq!(store.queue_info().await.unwrap()[0].next, 4, "the repeat queued nothing");
    // Keys belong to a token; batches without a key are never deduplicated.
    assert!(store.append(keyed("other", "abc"), urls(0, "c", 1)).await.unwrap().created);
    let a = store.append(batch("t", 6), urls(0, "d", 1)).await.unwrap();
    let b = store.append(batch("t", 6), urls(0, "d", 1)).await.unwrap();
    assert!(a.created && b.created && a.batch.id != b.batch.id);
}

/// `trim_delivered` trims below the slowest registered edge; reads below the trim point fail
/// with `Trimmed`; pending figures and `expire` respect it.
pub async fn trimming_below_lowest_watermark<H: Harness>(h: &H) {
    let store = h.create(2).await;
    let b1 = store.append(batch("t", 100), urls(0, "a", 10)).await.unwrap().batch;
    assert_eq!(store.trim_delivered().await.unwrap(), 0, "no edge registered: nothing is known delivered");
    store.register_edge("e1", 50).await.unwrap();
    store.register_edge("e2", 50).await.unwrap();
    store.set_watermark("e1", 0, 8, 200).await.unwrap();
    store.set_watermark("e2", 0, 4, 200).await.unwrap();
    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats[0].delivered, stats[0].pending.tasks), (4, 6));
    let read = store.read(0, 5, 100).await.unwrap();
    assert_eq!(stats[0].pending.bytes, read.iter().map(|t| t.size_bytes).sum::<u64>());

    assert_eq!(store.trim_delivered().await.unwrap(), 4);
    assert_eq!(store.trim_delivered().await.unwrap(), 0, "idempotent");
    assert_eq!(store.queue_info().await.unwrap()[0].first, 5);
    assert!(matches!(store.read(0, 2, 10).await, Err(Error::Trimmed { queue: 0, from: 2, first: 5 })));
    assert_eq!(store.read(0, 5, 100).await.unwrap().len(), 6);
    assert_eq!(store.queue_stats().await.unwrap()[0].pending.tasks, 6, "trimming does not change what is pending");
    assert_eq!(store.pending(0, 0).await.unwrap().tasks, 6, "trimmed tasks are never pending");
    // Records stay until their batch is fully trimmed and old enough.
    assert_eq!(store.expire(1_000).await.unwrap(), 0, "the batch still has tasks in the log");
    store.set_watermark("e2", 0, 10, 300).await.unwrap();
    store.set_watermark("e1", 0, 10, 300).await.unwrap();
    assert_eq!(store.trim_delivered().await.unwrap(), 6);
    assert_eq!(store.queue_stats().await.unwrap()[0].pending, Pending::default());
    assert_eq!(store.expire(100).await.unwrap(), 0, "accepted at 100, not before it");
    assert_eq!(store.expire(101).await.unwrap(), 1);
    assert!(store.batch(b1.id).await.unwrap().is_none());
    // Offsets continue after a full trim.
    let b2 = store.append(batch("t", 400), urls(0, "b", 1)).await.unwrap().batch;
    assert_eq!(b2.spans[0].first, 11);
    assert_eq!(store.trim(0, 1_000).await.unwrap(), 1, "trimming past the head stops at the head");
}

/// `read_chunks` returns whole chunks holding exactly what `read` returns, each the wire
/// encoding of its tasks (tenant: the batch's token), never spanning two batches and at most
/// 1,000 tasks; from an offset inside a chunk it starts with that chunk; below the trim point
/// it says `Trimmed`.
pub async fn chunks_hold_what_read_returns<H: Harness>(h: &H) {
    let store = h.create(2).await;
    store.append(batch("alice", 1), urls(0, "a", 2500)).await.expect("append");
    let mut mixed = urls(1, "m", 3);
    mixed.extend(urls(0, "b", 3));
    store.append(batch("bob", 2), mixed).await.expect("append");
    let chunks = store.read_chunks(0, 1, usize::MAX).await.expect("read_chunks");
    let mut next = 1;
    for chunk in &chunks {
        assert_eq!(chunk.first, next, "chunks are contiguous");
        assert!(chunk.last - chunk.first < 1000, "at most 1,000 tasks: {}..={}", chunk.first, chunk.last);
        let tasks = store.read(0, chunk.first, (chunk.last + 1 - chunk.first) as usize).await.expect("read");
        let tenant = if chunk.batch == 1 { "alice" } else { "bob" };
        assert!(tasks.iter().all(|t| t.batch == chunk.batch), "one batch per chunk");
        let wire: Vec<_> = tasks.into_iter().map(|t| t.to_wire(tenant.to_owned())).collect();
        assert_eq!(chunk.bytes, wire.iter().map(|t| t.size_bytes).sum::<u64>());
        assert_eq!(edgepurge_wire::decode_tasks(&chunk.encoded).expect("decodes"), wire);
        next = chunk.last + 1;
    }
    assert_eq!(next, 2504, "every task of queue 0 is in a chunk");
    assert!(chunks.iter().any(|c| c.batch == 2 && c.first == 2501), "bob's tasks start a chunk of their own");
    // From inside a chunk: that chunk first; reading stops after max_tasks are covered.
    let inside = store.read_chunks(0, 1500, 10).await.expect("read_chunks");
    assert_eq!(inside.len(), 1);
    assert!(inside[0].first <= 1500 && inside[0].last >= 1500);
    assert_eq!(store.read_chunks(1, 1, 1).await.expect("read_chunks")[0].last, 3);
    assert!(store.read_chunks(1, 4, 10).await.expect("read_chunks").is_empty(), "nothing beyond the end");
    store.trim(0, 1200).await.expect("trim");
    match store.read_chunks(0, 5, 10).await {
        Err(Error::Trimmed { queue: 0, from: 5, first: 1200 }) => {}
        other => panic!("expected Trimmed, got {other:?}"),
    }
    let kept = store.read_chunks(0, 1200, 10).await.expect("read_chunks");
    assert!(kept[0].first <= 1200 && kept[0].last >= 1200, "the chunk holding the first retained offset stays");
}
