//! Edges that fail safe on a damaged receive buffer (issue 14, item 2), against the fake control
//! node: a buffer that is not a database at start-up is moved aside and a fresh one used; one
//! deleted or replaced under a running edge is replaced and everything purged (a cached object
//! is a miss afterwards), and the edge reconnects from the fresh positions; an unreadable row
//! purges its host, is reported as a failed task and skipped while the queue goes on; with
//! `on-buffer-failure = "stop-serving"` the proxy answers 503 until the buffer is readable.
//! `/metrics` and `GET /control` show each reset.

use std::path::{Path, PathBuf};

use edgepurge_edge::receive_buffer::{ReceiveBuffer, FILE_NAME};
use edgepurge_wire::{ControlFrame, EdgeFrame, TaskFailure, WireTask, WireTaskKind};
use http::{Method, StatusCode};
use tempfile::TempDir;

use crate::support::{EdgeTest, FakeControl, FakeStream, Origin, Reply, Resp, Running, PATIENCE};

/// Certificates, the fake control node, and an origin for `a.test` and `b.test` whose every
/// path is cacheable for ten minutes.
struct Setup {
    dir: TempDir,
    control: FakeControl,
    origin: Origin,
}

impl Setup {
    async fn new() -> Setup {
        let dir = TempDir::new().unwrap();
        edgepurge_tls::certs::init(&dir.path().join("certs"), 1, &[], false).unwrap();
        let control = FakeControl::start(&dir.path().join("certs")).await;
        let origin = Origin::start().await;
        origin.set_fn("*", |req| Reply::ok(format!("body of {}", req.path_and_query)).cc("max-age=600"));
        Setup { dir, control, origin }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The receive buffer file.
    fn buffer_file(&self) -> PathBuf {
        self.state().join(FILE_NAME)
    }

    /// The URL the edge knows the fake node by.
    fn node_url(&self) -> String {
        format!("https://localhost:{}", self.control.addr.port())
    }

    async fn edge(&self, extra: &str) -> Running {
        let section = self.control.edge_section(&self.state(), extra);
        EdgeTest::new().origin("a.test", &self.origin).origin("b.test", &self.origin).section(&section).start().await
    }
}

fn wire_task(id: u64, kind: WireTaskKind, url: &str) -> WireTask {
    let host = url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
    WireTask { id, kind, target: url.into(), soft: false, size_bytes: 100, host, tenant: "t".into() }
}

fn url_task(id: u64, path: &str) -> WireTask {
    wire_task(id, WireTaskKind::Url, &format!("http://a.test{path}"))
}

async fn cache(edge: &Running, path: &str) {
    edge.get(path).await.assert_fwd("miss");
    edge.get(path).await.assert_hit();
}

async fn control_report(edge: &Running) -> serde_json::Value {
    let (status, report) = edge.admin(Method::GET, "/control", Vec::new()).await;
    assert_eq!(status, 200, "{report}");
    serde_json::from_str(&report).unwrap()
}

/// Polls `GET /control` until `done` holds for it; returns it.
async fn wait_report(edge: &Running, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let report = control_report(edge).await;
        if done(&report) {
            return report;
        }
        assert!(tokio::time::Instant::now() < deadline, "GET /control never matched: {report}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Reads Acks until `queue` is applied through `offset`, collecting the failures reported.
async fn applied_with_failures(stream: &mut FakeStream, queue: u32, offset: u64) -> Vec<TaskFailure> {
    let mut failures = Vec::new();
    loop {
        if let EdgeFrame::Ack { applied, failures: more, .. } = stream.recv().await {
            failures.extend(more);
            if applied.iter().any(|&(q, o)| q == queue && o >= offset) {
                return failures;
            }
        }
    }
}

/// Checks that the last reset `GET /control` shows has a cause containing `cause`, and returns
/// where the damaged file went.
fn last_reset(report: &serde_json::Value, cause: &str) -> Option<PathBuf> {
    let reset = &report["buffer"]["last_reset"];
    assert!(reset["cause"].as_str().is_some_and(|c| c.contains(cause)), "{report}");
    assert!(reset["at_ms"].as_u64().is_some(), "{report}");
    assert_eq!(report["buffer"]["healthy"], true, "{report}");
    reset["moved_to"].as_str().map(PathBuf::from)
}

fn garbage(path: &Path) -> Vec<u8> {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = b"this is not a database\n".repeat(300);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[tokio::test]
async fn a_damaged_buffer_at_start_is_moved_aside_and_the_edge_continues_fresh() {
    let mut setup = Setup::new().await;
    let bytes = garbage(&setup.buffer_file());
    let edge = setup.edge("").await;
    assert_eq!(edge.metric("edgepurge_control_buffer_resets_total").await, 1);
    assert_eq!(edge.metric("edgepurge_control_buffer_unreadable").await, 0);
    let report = control_report(&edge).await;
    let moved = last_reset(&report, "not an SQLite database").expect("the damaged file was moved aside");
    assert_eq!(std::fs::read(&moved).unwrap(), bytes, "kept as it was found");
    assert!(moved.display().to_string().contains(".damaged-"), "{}", moved.display());
    let events = report["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["node"] == "*" && e["message"].as_str().unwrap().starts_with("receive buffer reset:")),
        "{report}"
    );

    // The fresh buffer resumes from nothing, and tasks apply.
    cache(&edge, "/a").await;
    let mut stream = setup.control.next_stream().await;
    let (resume, _) = stream.hello("control-1").await;
    assert_eq!(resume, vec![]);
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/a")] });
    stream.applied(0, 1).await;
    edge.get("/a").await.assert_fwd("miss");
    edge.shutdown().await;
}

#[tokio::test]
async fn a_buffer_deleted_or_replaced_under_a_running_edge_is_replaced_and_everything_purged() {
    let mut setup = Setup::new().await;
    let edge = setup.edge("").await;
    cache(&edge, "/a").await;
    let mut stream = setup.control.next_stream().await;
    stream.hello("control-1").await;
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/x")] });
    stream.applied(0, 1).await;

    // Deleted: found when the next frame is stored.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(setup.state().join(format!("{FILE_NAME}{suffix}")));
    }
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 2, tasks: vec![url_task(2, "/y")] });
    edge.wait_metric("edgepurge_control_buffer_resets_total", 1).await;
    edge.get("/a").await.assert_fwd("miss");
    let report = wait_report(&edge, |r| r["buffer"]["healthy"] == true).await;
    assert_eq!(last_reset(&report, "deleted"), None, "nothing was left to move: {report}");
    // The edge reconnects and resumes from the fresh buffer's (empty) positions.
    let mut stream = setup.control.next_stream().await;
    assert_eq!(stream.hello("control-1").await.0, vec![]);
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/b")] });
    stream.applied(0, 1).await;

    // Replaced by a file that is not a database: moved aside, everything purged again.
    edge.get("/a").await.assert_hit();
    let replacement = setup.state().join("replacement");
    let bytes = garbage(&replacement);
    std::fs::rename(&replacement, setup.buffer_file()).unwrap();
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 2, tasks: vec![url_task(2, "/c")] });
    edge.wait_metric("edgepurge_control_buffer_resets_total", 2).await;
    edge.get("/a").await.assert_fwd("miss");
    let report = wait_report(&edge, |r| r["buffer"]["resets"] == 2 && r["buffer"]["healthy"] == true).await;
    let moved = last_reset(&report, "another file").expect("the replacement was moved aside");
    assert_eq!(std::fs::read(moved).unwrap(), bytes);
    let mut stream = setup.control.next_stream().await;
    assert_eq!(stream.hello("control-1").await.0, vec![]);
    drop(stream);
    edge.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_row_purges_its_host_is_reported_failed_and_skipped() {
    let mut setup = Setup::new().await;
    // A buffer left by an earlier run, one row per frame received: warm a.test/keep and
    // b.test/w; a purge on b.test whose row no longer decodes; a purge of a.test/other.
    {
        let mut buffer = ReceiveBuffer::open(&setup.state(), 64 << 20).unwrap();
        let warms = [
            wire_task(1, WireTaskKind::Warm, "http://a.test/keep"),
            wire_task(2, WireTaskKind::Warm, "http://b.test/w"),
        ];
        buffer.store("control-1", 0, 1, &warms).unwrap();
        buffer.store("control-1", 0, 3, &[wire_task(3, WireTaskKind::Url, "http://b.test/x")]).unwrap();
        buffer.store("control-1", 0, 4, &[url_task(4, "/other")]).unwrap();
        buffer.set_node_key(&setup.node_url(), "control-1").unwrap();
    }
    let conn = rusqlite::Connection::open(setup.buffer_file()).unwrap();
    conn.execute("UPDATE chunks SET body = X'ff00fe' WHERE from_offset = 3", []).unwrap();
    drop(conn);

    let edge = setup.edge("").await;
    let mut stream = setup.control.next_stream().await;
    assert_eq!(stream.hello("control-1").await.0, vec![(0, 5)]);
    let failures = applied_with_failures(&mut stream, 0, 4).await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!((failures[0].queue, failures[0].offset), (0, 3));
    let reason = &failures[0].reason;
    assert!(reason.contains("unreadable") && reason.contains("purged host b.test"), "{reason}");
    // b.test was purged, a.test was not.
    let b = |edge: &Running| edge.req(Method::GET, "/w").host("b.test").send();
    b(&edge).await.assert_fwd("miss");
    assert_eq!(setup.origin.count("/w"), 2, "warmed, then fetched again after the host purge");
    edge.get("/keep").await.assert_hit();
    assert_eq!(edge.metric("edgepurge_control_unreadable_tasks_total").await, 1);
    assert_eq!(edge.metric("edgepurge_control_tasks_failed_total").await, 1);

    // The queue goes on.
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 5, tasks: vec![url_task(5, "/keep")] });
    stream.applied(0, 5).await;
    edge.get("/keep").await.assert_fwd("miss");
    edge.shutdown().await;
}

/// Polls `GET /a` until it is not a `503`; returns it.
async fn wait_served(edge: &Running) -> Resp {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let resp = edge.get("/a").await;
        if resp.status != StatusCode::SERVICE_UNAVAILABLE {
            return resp;
        }
        assert!(tokio::time::Instant::now() < deadline, "still 503: {}", resp.text());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stop_serving_answers_503_until_the_buffer_is_readable_again() {
    let mut setup = Setup::new().await;
    let bytes = garbage(&setup.buffer_file());
    let edge = setup.edge("on-buffer-failure = \"stop-serving\"").await;
    let resp = edge.get("/a").await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE, "{}", resp.text());
    assert_eq!(resp.header("retry-after").as_deref(), Some("10"));
    assert!(resp.text().contains("purge consumer is unhealthy"), "{}", resp.text());
    assert_eq!(setup.origin.count("/a"), 0);
    assert_eq!(edge.metric("edgepurge_control_buffer_unreadable").await, 1);
    let report = control_report(&edge).await;
    let buffer = &report["buffer"];
    assert_eq!(buffer["healthy"], false, "{report}");
    assert_eq!(buffer["serving"], false, "{report}");
    assert_eq!(buffer["on_failure"], "stop-serving", "{report}");
    assert!(buffer["unreadable"]["cause"].as_str().is_some_and(|c| c.contains("not an SQLite database")), "{report}");
    assert_eq!(std::fs::read(setup.buffer_file()).unwrap(), bytes, "left where it is");

    // The operator moves it aside: the edge starts a fresh buffer and serves again.
    std::fs::rename(setup.buffer_file(), setup.state().join("inspect-me.sqlite")).unwrap();
    wait_served(&edge).await.assert_fwd("miss");
    edge.get("/a").await.assert_hit();
    assert_eq!(edge.metric("edgepurge_control_buffer_resets_total").await, 1);
    assert_eq!(edge.metric("edgepurge_control_buffer_unreadable").await, 0);
    let report = control_report(&edge).await;
    assert_eq!(last_reset(&report, "not an SQLite database"), None, "{report}");
    assert_eq!(report["buffer"]["last_reset"]["on_failure"], "stop-serving", "{report}");
    assert!(report["buffer"]["last_reset"]["unavailable_since_ms"].as_u64().is_some(), "{report}");
    let mut stream = setup.control.next_stream().await;
    assert_eq!(stream.hello("control-1").await.0, vec![]);
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/a")] });
    stream.applied(0, 1).await;
    edge.get("/a").await.assert_fwd("miss");
    edge.shutdown().await;
}
