//! Receive buffer tests: durability across reopen, duplicates, gaps, watermarks, `buffer_free`
//! and trims.

use super::*;
use edgepurge_wire::WireTaskKind;

fn task(id: u64, size: u64) -> WireTask {
    WireTask {
        id,
        kind: WireTaskKind::Url,
        target: format!("http://a.test/{id}"),
        soft: false,
        size_bytes: size,
        host: "a.test".into(),
        tenant: "t".into(),
    }
}

fn tasks(ids: std::ops::RangeInclusive<u64>) -> Vec<WireTask> {
    ids.map(|id| task(id, 100)).collect()
}

#[test]
fn received_tasks_survive_reopening_and_resume_after_them() {
    let dir = tempfile::TempDir::new().unwrap();
    {
        let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
        assert_eq!(buf.resume("c1").unwrap(), vec![]);
        let stored = buf.store("c1", 0, 1, &tasks(1..=3)).unwrap();
        assert_eq!(stored, Stored { inserted: 3, duplicates: 0, received: 3 });
        buf.store("c1", 2, 1, &tasks(1..=1)).unwrap();
        buf.set_node_key("https://x:1", "c1").unwrap();
    }
    let buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    assert_eq!(buf.resume("c1").unwrap(), vec![(0, 4), (2, 2)]);
    assert_eq!(buf.resume("other").unwrap(), vec![]);
    assert_eq!(buf.used(), 400);
    assert_eq!(buf.node_key("https://x:1").unwrap().as_deref(), Some("c1"));
    let pending = buf.pending("c1", 0, 10).unwrap();
    assert_eq!(pending.iter().map(|(o, t)| (*o, t.id)).collect::<Vec<_>>(), vec![(1, 1), (2, 2), (3, 3)]);
    assert_eq!(buf.pending_queues().unwrap(), vec![("c1".to_owned(), 0), ("c1".to_owned(), 2)]);
}

#[test]
fn duplicates_are_ignored_and_gaps_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    buf.store("c1", 0, 1, &tasks(1..=3)).unwrap();
    // Overlapping run: 2 and 3 are duplicates, 4 and 5 are new.
    let stored = buf.store("c1", 0, 2, &tasks(2..=5)).unwrap();
    assert_eq!(stored, Stored { inserted: 2, duplicates: 2, received: 5 });
    let stored = buf.store("c1", 0, 1, &tasks(1..=2)).unwrap();
    assert_eq!(stored, Stored { inserted: 0, duplicates: 2, received: 5 });
    assert_eq!(buf.used(), 500);
    // Applied rows are gone, and re-sending them is still a duplicate.
    buf.mark_applied("c1", 0, 3, &[], 1).unwrap();
    let stored = buf.store("c1", 0, 1, &tasks(1..=3)).unwrap();
    assert_eq!(stored.duplicates, 3);
    assert_eq!(buf.pending("c1", 0, 10).unwrap().len(), 2);
    let err = buf.store("c1", 0, 7, &tasks(7..=7)).unwrap_err();
    assert!(matches!(err, BufferError::Gap { received: 5, first: 7, .. }), "{err}");
    assert!(err.to_string().contains("resume from 6"), "{err}");
}

#[test]
fn watermarks_and_free_space_follow_applying() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut buf = ReceiveBuffer::open(dir.path(), 1_000).unwrap();
    buf.store("c1", 1, 1, &[task(1, 300), task(2, 200), task(3, 100)]).unwrap();
    assert_eq!((buf.used(), buf.free()), (600, 400));
    buf.mark_applied("c1", 1, 2, &[], 1).unwrap();
    assert_eq!((buf.used(), buf.free()), (100, 900));
    assert_eq!(buf.watermarks("c1").unwrap(), vec![QueueMarks { queue: 1, received: 3, applied: 2 }]);
    // Over capacity (a misbehaving control): stored anyway, free is 0, not negative.
    buf.store("c1", 1, 4, &[task(4, 5_000)]).unwrap();
    assert_eq!(buf.free(), 0);
    drop(buf);
    let buf = ReceiveBuffer::open(dir.path(), 1_000).unwrap();
    assert_eq!(buf.used(), 5_100);
}

#[test]
fn trimmed_drops_the_queue_moves_both_watermarks_and_logs() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    buf.store("c1", 0, 1, &tasks(1..=2)).unwrap();
    buf.store("c1", 1, 1, &tasks(1..=2)).unwrap();
    buf.trimmed("c1", 0, 50, 1234).unwrap();
    assert_eq!(
        buf.watermarks("c1").unwrap(),
        vec![QueueMarks { queue: 0, received: 49, applied: 49 }, QueueMarks { queue: 1, received: 2, applied: 0 }]
    );
    assert_eq!(buf.resume("c1").unwrap(), vec![(0, 50), (1, 3)]);
    assert_eq!(buf.used(), 200);
    assert!(buf.pending("c1", 0, 10).unwrap().is_empty());
    let events = buf.events(10).unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].message.starts_with("trimmed:") && events[0].message.contains("purged everything"));
    // The next run continues from first_retained.
    assert_eq!(buf.store("c1", 0, 50, &tasks(50..=50)).unwrap().received, 50);
}

#[tokio::test]
async fn shared_calls_run_off_the_runtime() {
    let dir = tempfile::TempDir::new().unwrap();
    let shared = SharedBuffer::new(ReceiveBuffer::open(dir.path(), 10_000).unwrap());
    let stored = shared.call(|b| b.store("c1", 0, 1, &tasks(1..=1))).await.unwrap();
    assert_eq!(stored.received, 1);
    assert_eq!(shared.call(|b| Ok(b.used())).await.unwrap(), 100);
}

#[test]
fn failure_reports_are_stored_with_the_watermark_and_survive_reopening() {
    let dir = tempfile::TempDir::new().unwrap();
    let failure = |offset: u64, reason: &str| TaskFailure { queue: 0, offset, reason: reason.into() };
    {
        let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
        buf.store("c1", 0, 1, &tasks(1..=3)).unwrap();
        buf.mark_applied("c1", 0, 3, &[failure(2, "origin said 503")], 1_000).unwrap();
    }
    let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    let all = buf.failures_after("c1", 0).unwrap();
    assert_eq!(all.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(), vec![failure(2, "origin said 503")]);
    assert!(buf.failures_after("c1", all[0].0).unwrap().is_empty(), "nothing after the last one sent");
    assert!(buf.failures_after("c2", 0).unwrap().is_empty(), "per node");
    // Reports older than the retention go when newer ones are stored.
    buf.store("c1", 0, 4, &tasks(4..=4)).unwrap();
    buf.mark_applied("c1", 0, 4, &[failure(4, "later")], 1_000 + FAILURE_RETENTION_MS + 1).unwrap();
    let kept: Vec<_> = buf.failures_after("c1", 0).unwrap().into_iter().map(|(_, f)| f.offset).collect();
    assert_eq!(kept, vec![4]);
}
