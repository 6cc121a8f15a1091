//! The control consumer end to end, against a fake control node (`support::FakeControl`: mutual
//! TLS with the dev CA, HTTP/2, the wire protocol): tasks pushed are buffered, applied to the
//! cache and acknowledged; a restarted edge resumes after what it received; duplicates are
//! harmless; `Trimmed` purges everything; policies are verified, installed, reported and kept
//! across a restart; a dropped connection is re-established.

use edgepurge_policy_runtime::sha256_hex;
use edgepurge_wire::{ControlFrame, EdgeFrame, TaskFailure, WireTask, WireTaskKind};
use http::Method;
use tempfile::TempDir;

use crate::support::{wasm_bytes, EdgeTest, FakeControl, FakeStream, Origin, Reply, Running};

/// Certificates (dev CA, control, `edge-1`), the fake control node and an origin whose every
/// path is cacheable for ten minutes.
pub(crate) struct Setup {
    pub(crate) dir: TempDir,
    pub(crate) control: FakeControl,
    pub(crate) origin: Origin,
}

impl Setup {
    pub(crate) async fn new() -> Setup {
        let dir = TempDir::new().unwrap();
        edgepurge_tls::certs::init(&dir.path().join("certs"), 1, &[], false).unwrap();
        let control = FakeControl::start(&dir.path().join("certs")).await;
        let origin = Origin::start().await;
        origin.set_fn("*", |req| Reply::ok(format!("body of {}", req.path_and_query)).cc("max-age=600"));
        Setup { dir, control, origin }
    }

    /// Starts an edge consuming from the fake control node, its buffer in `state`.
    pub(crate) async fn edge(&self, extra: &str) -> Running {
        let section = self.control.edge_section(&self.dir.path().join("state"), extra);
        EdgeTest::new().origin("a.test", &self.origin).section(&section).start().await
    }
}

pub(crate) fn url_task(id: u64, path: &str) -> WireTask {
    WireTask {
        id,
        kind: WireTaskKind::Url,
        target: format!("http://a.test{path}"),
        soft: false,
        size_bytes: 100,
        host: "a.test".into(),
        tenant: "t".into(),
    }
}

/// Fetches `path` twice so it is cached, and checks the second is a hit.
pub(crate) async fn cache(edge: &Running, path: &str) {
    edge.get(path).await.assert_fwd("miss");
    edge.get(path).await.assert_hit();
}

/// Reads Acks until queue `queue` is applied through `offset`, collecting the failures reported.
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

#[tokio::test]
async fn tasks_are_buffered_applied_acked_and_resumed_after_a_restart() {
    let mut setup = Setup::new().await;
    let edge = setup.edge("").await;
    for path in ["/a", "/b", "/c"] {
        cache(&edge, path).await;
    }
    let mut stream = setup.control.next_stream().await;
    assert_eq!(stream.edge.as_deref(), Some("edge-1"));
    let (resume, free) = stream.hello("control-1").await;
    assert_eq!((resume, free), (vec![], 64 << 20));

    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/a")] });
    stream.applied(0, 1).await;
    edge.get("/a").await.assert_fwd("miss");
    edge.get("/b").await.assert_hit();

    // Offset 1 again (a duplicate, ignored) with offset 2: only /b is purged now (/a was
    // stored again by the miss above).
    edge.get("/a").await.assert_hit();
    stream.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/a"), url_task(2, "/b")] });
    stream.applied(0, 2).await;
    edge.get("/a").await.assert_hit();
    edge.get("/b").await.assert_fwd("miss");
    assert_eq!(edge.metric("edgepurge_control_duplicates_total").await, 1);

    // A task that cannot be applied still advances the watermark and is reported.
    let bad = WireTask { target: "/relative".into(), ..url_task(3, "") };
    stream.send(ControlFrame::Tasks { queue: 3, first_offset: 1, tasks: vec![bad, url_task(4, "/c")] });
    let failures = applied_with_failures(&mut stream, 3, 2).await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!((failures[0].queue, failures[0].offset), (3, 1));
    assert!(failures[0].reason.contains("/relative"), "{failures:?}");
    edge.get("/c").await.assert_fwd("miss");
    assert_eq!(edge.metric("edgepurge_control_tasks_applied_total").await, 4);
    assert_eq!(edge.metric("edgepurge_control_tasks_failed_total").await, 1);
    assert_eq!(edge.metric("edgepurge_control_connected_nodes").await, 1);

    let (status, report) = edge.admin(Method::GET, "/control", Vec::new()).await;
    assert_eq!(status, 200, "{report}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["nodes"][0]["connected"], true, "{report}");
    assert_eq!(report["nodes"][0]["control_id"], "control-1", "{report}");
    assert_eq!(report["nodes"][0]["queues"][0]["applied"], 2, "{report}");

    // A restarted edge asks for what comes after what it received, per queue.
    edge.shutdown().await;
    drop(stream);
    let edge = setup.edge("").await;
    let mut stream = setup.control.next_stream().await;
    let (resume, _) = stream.hello("control-1").await;
    assert_eq!(resume, vec![(0, 3), (3, 3)]);
    stream.ack_until(|f| matches!(f, EdgeFrame::Ack { applied, .. } if applied == &vec![(0, 2), (3, 2)])).await;
    edge.shutdown().await;
}

#[tokio::test]
async fn trimmed_purges_everything_and_the_edge_resumes_after_a_dropped_connection() {
    let mut setup = Setup::new().await;
    let edge = setup.edge("").await;
    cache(&edge, "/a").await;
    let mut stream = setup.control.next_stream().await;
    stream.hello("control-1").await;
    stream.send(ControlFrame::Trimmed { queue: 2, first_retained: 10 });
    stream.applied(2, 9).await;
    edge.get("/a").await.assert_fwd("miss");
    assert_eq!(edge.metric("edgepurge_control_trimmed_total").await, 1);
    let (_, report) = edge.admin(Method::GET, "/control", Vec::new()).await;
    assert!(report.contains("trimmed:"), "{report}");

    // The connection is cut: the edge reconnects and resumes from first_retained.
    setup.control.drop_connections();
    drop(stream);
    let mut stream = setup.control.next_stream().await;
    let (resume, _) = stream.hello("control-1").await;
    assert_eq!(resume, vec![(2, 10)]);
    stream.send(ControlFrame::Tasks { queue: 2, first_offset: 10, tasks: vec![url_task(1, "/a")] });
    stream.applied(2, 10).await;
    stream.send(ControlFrame::Heartbeat { at_ms: 0 });
    stream.send(ControlFrame::Tasks { queue: 2, first_offset: 11, tasks: vec![url_task(2, "/b")] });
    stream.applied(2, 11).await;
    assert!(edge.metric("edgepurge_control_reconnects_total").await >= 1);
    edge.shutdown().await;
}

#[tokio::test]
async fn an_idle_edge_sends_heartbeats_and_drops_a_silent_control() {
    let mut setup = Setup::new().await;
    let edge = setup.edge("heartbeat-ms = 100").await;
    let mut stream = setup.control.next_stream().await;
    stream.hello("control-1").await;
    stream.heartbeat().await;
    // The fake sends nothing more: after three heartbeat intervals the edge gives up on it.
    let mut again = setup.control.next_stream().await;
    again.hello("control-1").await;
    let error = wait_last_error(&edge, |e| e.contains("nothing from control")).await;
    assert!(error.contains("dropping the stream"), "{error}");
    drop((stream, again));
    edge.shutdown().await;
}

#[tokio::test]
async fn policies_from_control_are_verified_installed_reported_and_kept() {
    let mut setup = Setup::new().await;
    let edge = setup.edge("").await;
    let mut stream = setup.control.next_stream().await;
    stream.hello("control-1").await;
    let bytes = wasm_bytes("policies", "static-assets");
    let sha256 = sha256_hex(&bytes);
    let policy = |sha256: &str, bytes: &[u8]| ControlFrame::Policy {
        name: "static-assets".into(),
        version: "1".into(),
        sha256: sha256.into(),
        bytes: bytes.to_vec(),
    };
    let loaded = |frame: &EdgeFrame| match frame {
        EdgeFrame::PolicyLoaded { error, sha256, .. } => (error.clone(), sha256.clone()),
        other => panic!("expected PolicyLoaded, got {other:?}"),
    };
    stream.send(policy(&sha256, &bytes));
    assert_eq!(loaded(&stream.policy_loaded().await), (None, sha256.clone()));
    let status = policy_status(&edge).await;
    assert_eq!((status["name"].as_str(), status["sha256"].as_str()), (Some("static-assets"), Some(&*sha256)));
    assert_eq!(status["source"], "control:control-1");

    // Corrupt in transit: refused with the reason, the policy keeps serving.
    let default = wasm_bytes("policies", "default");
    stream.send(policy(&sha256, &default));
    let (error, got) = loaded(&stream.policy_loaded().await);
    assert_eq!(got, sha256_hex(&default));
    assert!(error.as_deref().is_some_and(|e| e.contains("corrupt")), "{error:?}");
    assert_eq!(policy_status(&edge).await["name"], "static-assets");

    // What runs already: answered, not reloaded.
    stream.send(policy(&sha256, &bytes));
    assert_eq!(loaded(&stream.policy_loaded().await), (None, sha256.clone()));
    assert_eq!(edge.metric("edgepurge_control_policies_installed_total").await, 1);
    assert_eq!(edge.metric("edgepurge_control_policies_refused_total").await, 1);

    // A restarted edge serves the distributed policy before control sends it again.
    edge.shutdown().await;
    drop(stream);
    let edge = setup.edge("").await;
    let status = policy_status(&edge).await;
    assert_eq!(status["name"], "static-assets", "{status}");
    assert_eq!(status["sha256"].as_str(), Some(&*sha256));
    edge.shutdown().await;
}

async fn policy_status(edge: &Running) -> serde_json::Value {
    let (status, body) = edge.admin(Method::GET, "/policy", Vec::new()).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls `GET /control` until node 0's `last_error` satisfies `matches`; returns it.
async fn wait_last_error(edge: &Running, matches: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    loop {
        let (_, report) = edge.admin(Method::GET, "/control", Vec::new()).await;
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        if let Some(error) = report["nodes"][0]["last_error"].as_str().filter(|e| matches(e)) {
            return error.to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "no matching last_error in {report}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn refused_connections_are_reported_with_their_reason() {
    // A control certificate from another CA: the TLS handshake fails, naming the problem.
    let setup = Setup::new().await;
    let other = TempDir::new().unwrap();
    edgepurge_tls::certs::init(other.path(), 1, &[], false).unwrap();
    let stranger = FakeControl::start(other.path()).await;
    let section = setup.control.edge_section(&setup.dir.path().join("state"), "");
    let section = section
        .replace(&format!("localhost:{}", setup.control.addr.port()), &format!("localhost:{}", stranger.addr.port()));
    let edge = EdgeTest::new().section(&section).start().await;
    let error = wait_last_error(&edge, |e| e.contains("TLS handshake")).await;
    assert!(error.contains("certificate"), "{error}");
    edge.shutdown().await;

    // A control node speaking another major version: the edge names both and reconnects.
    let mut setup = Setup::new().await;
    let edge = setup.edge("").await;
    let mut stream = setup.control.next_stream().await;
    stream.recv().await;
    let theirs = edgepurge_wire::ProtocolVersion { major: 9, minor: 0 };
    stream.send(ControlFrame::Hello { protocol_version: theirs, control_id: "control-9".into() });
    let error = wait_last_error(&edge, |e| e.contains("protocol")).await;
    assert!(error.contains("9.0") && error.contains(&edgepurge_wire::PROTOCOL_VERSION.to_string()), "{error}");
    let mut again = setup.control.next_stream().await;
    again.hello("control-1").await;
    edge.shutdown().await;
}

#[tokio::test]
async fn every_node_is_consumed_at_once_even_when_two_share_an_id() {
    let mut setup = Setup::new().await;
    let mut second = FakeControl::start(&setup.dir.path().join("certs")).await;
    let section = setup.control.edge_section(&setup.dir.path().join("state"), "");
    let first_url = format!("\"https://localhost:{}\"", setup.control.addr.port());
    let both = format!("{first_url}, \"https://localhost:{}\"", second.addr.port());
    let section = section.replace(&first_url, &both);
    let edge = EdgeTest::new().origin("a.test", &setup.origin).section(&section).start().await;
    cache(&edge, "/a").await;
    cache(&edge, "/b").await;
    // Both left with the default id: their queues are different logs, so the same offsets from
    // each are different tasks and both are applied.
    let mut one = setup.control.next_stream().await;
    let mut two = second.next_stream().await;
    one.hello("control").await;
    two.hello("control").await;
    one.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/a")] });
    one.applied(0, 1).await;
    two.send(ControlFrame::Tasks { queue: 0, first_offset: 1, tasks: vec![url_task(1, "/b")] });
    two.applied(0, 1).await;
    edge.get("/a").await.assert_fwd("miss");
    edge.get("/b").await.assert_fwd("miss");
    assert_eq!(edge.metric("edgepurge_control_connected_nodes").await, 2);
    let (_, report) = edge.admin(Method::GET, "/control", Vec::new()).await;
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let mut keys: Vec<String> =
        (0..2).map(|i| report["nodes"][i]["key"].as_str().unwrap_or_default().to_owned()).collect();
    keys.sort();
    assert_eq!(keys[0], "control", "{report}");
    assert!(keys[1].starts_with("control@https://localhost:"), "{report}");
    drop((one, two));
    edge.shutdown().await;
}
