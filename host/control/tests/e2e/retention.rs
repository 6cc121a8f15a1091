//! Retention: a pass trims what every registered edge applied and expires old records whose tasks
//! are all trimmed; the background task runs passes on its interval (tokio's paused time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edgepurge_control::background::spawn_retention;
use edgepurge_control::retention::{retention_pass, RetentionReport, RetentionSettings};
use edgepurge_control_store::{Error, NewBatch, NewTask, QueueStore, RecordStore, SqliteStore, TaskKind};

fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("c.db"), 2).unwrap()
}

async fn batch(store: &SqliteStore, at: u64, n: usize) -> u64 {
    let tasks = (0..n).map(|i| NewTask::new(0, TaskKind::Url, format!("http://a.com/{at}/{i}"), "a.com")).collect();
    let batch = NewBatch { token_name: "t".into(), accepted_at: at, idempotency_key: None };
    store.append(batch, tasks).await.unwrap().batch.id
}

const KEEP: RetentionSettings = RetentionSettings { interval_ms: 1_000, keep_records_ms: 8_000 };

#[tokio::test]
async fn a_pass_trims_delivered_tasks_and_expires_old_trimmed_records() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let (a, b) = (batch(&s, 1_000, 3).await, batch(&s, 5_000, 2).await);
    // No edge registered: nobody said anything was delivered, so nothing goes.
    assert_eq!(retention_pass(&s, KEEP, 100_000).await.unwrap(), RetentionReport::default());

    s.register_edge("e", 0).await.unwrap();
    s.set_watermark("e", 0, 3, 6_000).await.unwrap();
    let report = retention_pass(&s, KEEP, 10_000).await.unwrap();
    assert_eq!(report, RetentionReport { trimmed: 3, expired: 1 }, "a's tasks, then a's records");
    assert!(s.batch(a).await.unwrap().is_none());
    assert!(s.batch(b).await.unwrap().is_some(), "b is undelivered");
    assert!(matches!(s.read(0, 1, 10).await, Err(Error::Trimmed { .. })));
    assert_eq!(retention_pass(&s, KEEP, 10_000).await.unwrap(), RetentionReport::default(), "idempotent");

    s.set_watermark("e", 0, 5, 7_000).await.unwrap();
    let report = retention_pass(&s, KEEP, 10_000).await.unwrap();
    assert_eq!(report, RetentionReport { trimmed: 2, expired: 0 }, "b is delivered but younger than 8 s");
    assert!(s.batch(b).await.unwrap().is_some());
    assert_eq!(retention_pass(&s, KEEP, 13_001).await.unwrap(), RetentionReport { trimmed: 0, expired: 1 });
    assert!(s.batch(b).await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn the_background_task_runs_passes_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let a = batch(&s, 1_000, 3).await;
    s.register_edge("e", 0).await.unwrap();
    let now = Arc::new(AtomicU64::new(2_000));
    let clock = now.clone();
    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let task = spawn_retention(s.clone(), KEEP, Arc::new(move || clock.load(Ordering::SeqCst)), Some(tx));
    assert_eq!(reports.recv().await.unwrap(), RetentionReport::default(), "nothing applied yet");
    s.set_watermark("e", 0, 3, 3_000).await.unwrap();
    // Whichever pass comes next sees the watermark: passes keep coming without anyone asking.
    let mut trimmed = 0;
    while trimmed == 0 {
        trimmed = reports.recv().await.unwrap().trimmed;
    }
    assert_eq!(trimmed, 3);
    assert!(s.batch(a).await.unwrap().is_some(), "kept: accepted less than 8 s before the clock");
    now.store(20_000, Ordering::SeqCst);
    let mut expired = 0;
    while expired == 0 {
        expired = reports.recv().await.unwrap().expired;
    }
    assert!(s.batch(a).await.unwrap().is_none());
    task.abort();
}
