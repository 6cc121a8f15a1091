//! S0.2 through the API, on an injected clock: a queue that stalls while others progress is
//! shown unhealthy by `GET /v1/queues`, gets no new tasks, keeps its queued ones, and recovers
//! when its edge progresses again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edgepurge_control_store::{QueueStore, RecordStore};
use serde_json::json;

use crate::support::{ControlTest, Running};

/// `(healthy, next_offset)` per queue from `GET /v1/queues`.
async fn queues(c: &Running, token: &str) -> Vec<(bool, u64)> {
    let r = c.send("GET", "/v1/queues", Some(token), &[], "").await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["healthy"].as_bool().unwrap(), q["next_offset"].as_u64().unwrap()))
        .collect()
}

fn urls(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("http://a.com/{i}\n")).collect()
}

#[tokio::test]
async fn a_stalled_queue_gets_no_new_tasks_until_it_progresses() {
    let now = Arc::new(AtomicU64::new(1_000));
    let clock = now.clone();
    let c = ControlTest::new()
        .stall_after(5_000)
        .clock(Arc::new(move || clock.load(Ordering::SeqCst)))
        .start()
        .await
        .unwrap();
    c.store.register_edge("edge-1", 0).await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    assert_eq!(c.bulk(&t, "text/plain", urls(0, 4000)).await.status, 202);
    let before = queues(&c, &t).await;
    assert!(before.iter().all(|&(healthy, next)| healthy && next > 1), "spread over all four: {before:?}");

    // The edge applies queues 0–2 but nothing of queue 3.
    now.store(5_500, Ordering::SeqCst);
    for (q, &(_, next)) in before.iter().enumerate().take(3) {
        c.store.set_watermark("edge-1", q as u32, next - 1, 5_500).await.unwrap();
    }
    assert!(queues(&c, &t).await.iter().all(|q| q.0), "queue 3 has waited 4.5 s only");
    now.store(6_000, Ordering::SeqCst);
    let r = c.send("GET", "/v1/queues", Some(&t), &[], "").await;
    assert_eq!(r.json["queues"][3]["healthy"], false, "{r:?}");
    assert!(r.json["queues"][3]["problem"].as_str().unwrap().contains("stalled"), "{r:?}");

    // New tasks avoid it; its own tasks are still there to deliver.
    assert_eq!(c.bulk(&t, "text/plain", urls(4000, 2000)).await.status, 202);
    let during = queues(&c, &t).await;
    assert_eq!(during[3].1, before[3].1, "nothing new on the stalled queue: {during:?}");
    assert!(during[..3].iter().zip(&before).all(|(d, b)| d.1 > b.1), "{during:?}");
    assert!(!c.store.read(3, 1, 10).await.unwrap().is_empty());

    // Its edge moves again: healthy, and it takes tasks again.
    now.store(6_500, Ordering::SeqCst);
    c.store.set_watermark("edge-1", 3, 1, 6_500).await.unwrap();
    assert!(queues(&c, &t).await.iter().all(|q| q.0));
    assert_eq!(c.purge(&t, json!({"urls": ["http://a.com/new"]})).await.status, 202);
    c.stop().await;
}

/// `(peak, slot, samples)` of `queue` from `GET /v1/queues`.
async fn speed(c: &Running, token: &str, queue: usize) -> (u64, u64, u64) {
    let r = c.send("GET", "/v1/queues", Some(token), &[], "").await;
    let q = &r.json["queues"][queue];
    (q["peak_bytes_per_sec"].as_u64().unwrap(), q["slot"].as_u64().unwrap(), q["slot_samples"].as_u64().unwrap())
}

#[tokio::test]
async fn the_policy_sees_send_history_by_cycle_slot() {
    // Slots of 10 s in cycles of 40 s, on a clock the test moves.
    let now = Arc::new(AtomicU64::new(0));
    let clock = now.clone();
    let c = ControlTest::new()
        .cycle(10_000, 40_000)
        .clock(Arc::new(move || clock.load(Ordering::SeqCst)))
        .start()
        .await
        .unwrap();
    c.store.register_edge("edge-1", 0).await.unwrap();
    let t = c.token("t", &["a.com"], false).await;
    assert_eq!(c.bulk(&t, "text/plain", urls(0, 4000)).await.status, 202);
    now.store(1_000, Ordering::SeqCst);
    let first = c.send("GET", "/v1/queues", Some(&t), &[], "").await;
    let q0 = &first.json["queues"][0];
    let (depth, bytes) = (q0["depth"].as_u64().unwrap(), q0["pending_bytes"].as_u64().unwrap());
    assert!(depth > 0 && bytes > 0, "{first:?}");
    assert_eq!(speed(&c, &t, 0).await, (0, 0, 0), "nothing sent yet");

    // Queue 0's edge applies everything within 2 s: 2 s busy, `bytes` sent.
    now.store(3_000, Ordering::SeqCst);
    c.store.set_watermark("edge-1", 0, depth, 3_000).await.unwrap();
    assert_eq!(speed(&c, &t, 0).await, (bytes / 2, 0, 0), "the open window gives the peak");

    // The next cycle's slot 0 sees that window as a sample; `select-queue` gets it as such.
    now.store(40_500, Ordering::SeqCst);
    assert_eq!(speed(&c, &t, 0).await, (bytes / 2, 0, 1));
    let views = edgepurge_control::health::QueueMonitor::default().observe(&c.store).await.unwrap();
    assert!(views.iter().all(|v| v.speed.samples.is_empty()), "a fresh monitor has no history");
    now.store(50_500, Ordering::SeqCst);
    assert_eq!(speed(&c, &t, 0).await, (bytes / 2, 1, 0), "slot 1 has no samples");
    c.stop().await;
}

#[tokio::test]
async fn queue_states_carry_the_monitors_history_and_pacing() {
    use edgepurge_control::health::{HealthSettings, QueueMonitor};
    use edgepurge_control::history::CycleSettings;
    use edgepurge_control::select::queue_states;
    use edgepurge_control_store::{NewBatch, NewTask, TaskKind};
    use edgepurge_sdk::SpeedSample;

    let dir = tempfile::tempdir().unwrap();
    let store = edgepurge_control_store::SqliteStore::open(dir.path().join("c.db"), 2).unwrap();
    store.register_edge("e", 0).await.unwrap();
    let tasks = (0..10).map(|i| NewTask::new(1, TaskKind::Url, format!("http://a.com/{i:04}"), "a.com")).collect();
    store.append(NewBatch { token_name: "t".into(), accepted_at: 0, idempotency_key: None }, tasks).await.unwrap();
    let now = Arc::new(AtomicU64::new(0));
    let clock = now.clone();
    let monitor = QueueMonitor::new(
        HealthSettings::default(),
        CycleSettings { slot_ms: 1_000, cycle_ms: 2_000 },
        Arc::new(move || clock.load(Ordering::SeqCst)),
    );
    monitor.observe(&store).await.unwrap();
    // Half the tasks (each 17 + 16 = 33 bytes) in 500 ms, then the rest in the next 400 ms: one
    // window of slot 0, 330 bytes in 900 ms busy.
    now.store(500, Ordering::SeqCst);
    store.set_watermark("e", 1, 5, 500).await.unwrap();
    monitor.observe(&store).await.unwrap();
    now.store(900, Ordering::SeqCst);
    store.set_watermark("e", 1, 10, 900).await.unwrap();
    monitor.observe(&store).await.unwrap();
    now.store(2_100, Ordering::SeqCst);
    let states = queue_states(&monitor.observe(&store).await.unwrap(), 7);
    let q1 = &states[1];
    assert_eq!(q1.samples, vec![SpeedSample { bytes: 330, millis: 900 }]);
    assert_eq!(q1.peak_bytes_per_sec, 366, "330 B / 0.9 s, the last closed window");
    assert_eq!((q1.slot, q1.pacing_ms, q1.depth, q1.healthy), (0, 7, 0, true));
    assert_eq!((states[0].samples.len(), states[0].peak_bytes_per_sec), (0, 0), "queue 0 sent nothing");
}
