//! Log identity and offset checks (issue 14): the queue server refuses resume positions that are
//! not positions in its log — another log's identity, beyond the log's end, another task at the
//! offset — makes the edge reset, records and counts why, and never accepts a watermark beyond
//! what the stream sent.

use edgepurge_control_store::{EdgeEventKind, QueueStore, RecordStore};
use edgepurge_wire::{fingerprint, ControlFrame, EdgeFrame};

use super::queue_support::*;

/// The `Log` frame control sent after its Hello: (reset, start).
async fn log_answer(edge: &mut Edge) -> (Option<String>, Vec<(u32, u64)>) {
    assert!(matches!(edge.next().await, Some(ControlFrame::Hello { .. })));
    // The Log comes before anything but heartbeats.
    loop {
        match edge.next().await {
            Some(ControlFrame::Heartbeat { .. }) => continue,
            Some(ControlFrame::Log { reset, start, .. }) => return (reset, start),
            other => panic!("expected Log after Hello, got {other:?}"),
        }
    }
}

fn positions(log_id: Option<&str>, last: Vec<(u32, u64, u64)>) -> EdgeFrame {
    EdgeFrame::Positions { log_id: log_id.map(str::to_owned), last, notices: Vec::new() }
}

async fn state_of(c: &Control, token: &str, id: u64) -> String {
    c.send("GET", &format!("/v1/purges/{id}"), token, "").await.1["state"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_another_log_are_refused_and_acks_beyond_what_was_sent_are_ignored() {
    let c = Control::start(1, 5000).await.unwrap();
    let token = c.token("shop", false).await;
    // The database was replaced: the edge resumes far beyond this log, under another identity.
    let files = c.edge_files("edge-1");
    let stale = positions(Some("0123456789abcdef"), vec![(0, 250_009, 42)]);
    let mut edge = Edge::connect_positions(c.queue, &files, vec![(0, 250_010)], 1 << 20, stale).await;
    let (reset, start) = log_answer(&mut edge).await;
    let reason = reset.expect("the positions are refused");
    assert!(reason.contains("0123456789abcdef") && reason.contains(c.state.store.log_id()), "{reason}");
    assert_eq!(start, vec![(0, 1)], "from the log's start");
    assert_eq!(c.state.queue.metrics.positions_reset_count("other_log"), 1, "counted by reason");
    let events = c.state.store.edge_events(Some("edge-1"), 10).await.unwrap();
    assert_eq!(events.first().map(|e| e.kind), Some(EdgeEventKind::PositionsReset), "{events:?}");
    // The edge is registered now, so it counts for what comes next.
    let id = c.purge(&token, &urls("a", 3)).await;
    let tasks = edge.tasks(3).await;
    assert_eq!(tasks.iter().map(|t| t.1).collect::<Vec<_>>(), vec![1, 2, 3]);

    // An ack of the old log's offsets is not believed: the batch stays queued.
    let bogus = EdgeFrame::Ack {
        received: vec![(0, 250_009)],
        applied: vec![(0, 250_009)],
        failures: Vec::new(),
        buffer_free: 1 << 20,
    };
    edge.send(bogus).await;
    eventually("the refusal is recorded", || async {
        let events = c.state.store.edge_events(Some("edge-1"), 10).await.unwrap();
        events.iter().any(|e| e.kind == EdgeEventKind::WatermarkRefused && e.message.contains("applied 250009"))
    })
    .await;
    assert_eq!(state_of(&c, &token, id).await, "queued", "nothing beyond what was sent counts");
    let marks = c.state.store.watermarks().await.unwrap();
    assert!(marks.iter().all(|w| w.applied <= 3), "{marks:?}");

    edge.ack_all(&tasks, 1 << 20).await;
    eventually("the batch is done", || async { state_of(&c, &token, id).await == "done" }).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_beyond_the_log_end_are_refused_without_a_log_id_too() {
    let c = Control::start(1, 5000).await.unwrap();
    let token = c.token("shop", false).await;
    c.purge(&token, &urls("b", 2)).await;
    let files = c.edge_files("edge-1");
    // A database restored from an older backup: same identity, shorter log.
    let ours = c.state.store.log_id().to_owned();
    let mut edge =
        Edge::connect_positions(c.queue, &files, vec![(0, 10)], 1 << 20, positions(Some(&ours), vec![])).await;
    let (reset, start) = log_answer(&mut edge).await;
    let reason = reset.expect("refused");
    assert!(reason.contains("offset 10") && reason.contains("issued only up to 2"), "{reason}");
    assert_eq!(start, vec![(0, 1)]);
    assert_eq!(c.state.queue.metrics.positions_reset_count("beyond_log_end"), 1);
    drop(edge);

    // An edge that says nothing of its log (a fresh buffer, or protocol 1.0) gets the same check.
    let mut edge = Edge::connect_positions(c.queue, &files, vec![(0, 10)], 1 << 20, positions(None, vec![])).await;
    assert!(log_answer(&mut edge).await.0.is_some());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reissued_offset_is_told_apart_by_the_task_held_there() {
    let c = Control::start(1, 5000).await.unwrap();
    let token = c.token("shop", false).await;
    c.purge(&token, &urls("c", 3)).await;
    let files = c.edge_files("edge-1");
    let ours = c.state.store.log_id().to_owned();
    let mut edge = Edge::connect(c.queue, &files, Vec::new(), 1 << 20).await;
    assert_eq!(log_answer(&mut edge).await, (None, vec![(0, 1)]));
    let tasks = edge.tasks(3).await;
    drop(edge);

    // The edge received offset 2 and says what it was: accepted, the stream resumes at 3.
    let right = positions(Some(&ours), vec![(0, 2, fingerprint(&tasks[1].2))]);
    let mut edge = Edge::connect_positions(c.queue, &files, vec![(0, 3)], 1 << 20, right).await;
    assert_eq!(log_answer(&mut edge).await, (None, vec![(0, 3)]));
    assert_eq!(edge.tasks(1).await[0].1, 3);
    drop(edge);

    // Another task at offset 2 (a restored backup reissued it): refused.
    let wrong = positions(Some(&ours), vec![(0, 2, fingerprint(&tasks[0].2))]);
    let mut edge = Edge::connect_positions(c.queue, &files, vec![(0, 3)], 1 << 20, wrong).await;
    let reason = log_answer(&mut edge).await.0.expect("refused");
    assert!(reason.contains("queue 0 offset 2") && reason.contains("another task"), "{reason}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_lost_its_buffer_no_longer_counts_as_having_applied() {
    let c = Control::start(1, 5000).await.unwrap();
    let token = c.token("shop", false).await;
    let files = c.edge_files("edge-1");
    let mut edge = Edge::connect(c.queue, &files, Vec::new(), 1 << 20).await;
    assert_eq!(log_answer(&mut edge).await.0, None);
    // Accepted after the edge registered, so it counts for the batch.
    let id = c.purge(&token, &urls("d", 2)).await;
    let tasks = edge.tasks(2).await;
    edge.ack_all(&tasks, 1 << 20).await;
    eventually("done", || async { state_of(&c, &token, id).await == "done" }).await;
    drop(edge);

    // The edge comes back with nothing (its buffer was wiped): what it holds now is the truth.
    let mut edge = Edge::connect(c.queue, &files, Vec::new(), 1 << 20).await;
    assert_eq!(log_answer(&mut edge).await, (None, vec![(0, 1)]));
    eventually("the old position is forgotten", || async {
        c.state.store.watermarks().await.unwrap().iter().all(|w| w.applied == 0)
    })
    .await;
    assert_eq!(state_of(&c, &token, id).await, "queued");
    // It gets the tasks again and applies them.
    let again = edge.tasks(2).await;
    edge.ack_all(&again, 1 << 20).await;
    eventually("done again", || async { state_of(&c, &token, id).await == "done" }).await;
    c.stop().await;
}
