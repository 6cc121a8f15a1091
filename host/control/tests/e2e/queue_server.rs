//! The queue server (issue [4]) against a minimal edge (`queue_support`): tasks, acks, policy,
//! handshake refusals, flow control, resume and trims, heartbeats.

use edgepurge_control_store::{QueueStore, RecordStore};
use edgepurge_tls::mtls::ClientFiles;
use edgepurge_wire::{ControlFrame, EdgeFrame, Offset, QueueId, WireTask, PROTOCOL_VERSION};
use http_body_util::BodyExt;

use super::queue_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_stream_to_an_edge_and_its_acks_complete_the_purge() {
    let c = Control::start(2, 5000).await.unwrap();
    let token = c.token("shop", false).await;
    let mut edge = Edge::connect(c.queue, &c.edge_files("edge-1"), Vec::new(), 1 << 20).await;
    match edge.next_busy().await {
        ControlFrame::Hello { protocol_version, control_id } => {
            assert_eq!((protocol_version, control_id.as_str()), (PROTOCOL_VERSION, "control-test"))
        }
        other => panic!("expected Hello, got {other:?}"),
    }
    // The built-in policy has no component: no Policy frame; tasks come as they are appended.
    let id = c.purge(&token, &urls("a", 3)).await;
    let tasks = edge.tasks(3).await;
    let mut targets: Vec<_> = tasks.iter().map(|t| t.2.target.clone()).collect();
    targets.sort();
    assert_eq!(targets, vec!["http://example.com/a/0", "http://example.com/a/1", "http://example.com/a/2"]);
    assert!(tasks.iter().all(|t| t.2.tenant == "shop"), "{tasks:?}");
    let (_, status) = c.send("GET", &format!("/v1/purges/{id}"), &token, "").await;
    assert_eq!(status["state"], "queued", "{status}");

    edge.ack_all(&tasks, 1 << 20).await;
    eventually("the batch is done", || async {
        c.send("GET", &format!("/v1/purges/{id}"), &token, "").await.1["state"] == "done"
    })
    .await;
    let (_, edges) = c.send("GET", "/v1/edges", &token, "").await;
    let e = &edges["edges"][0];
    assert_eq!((e["name"].as_str(), e["connected"].as_bool()), (Some("edge-1"), Some(true)), "{edges}");
    assert!(e["last_ack"].is_string(), "{edges}");

    // A new policy goes to the connected edge; its PolicyLoaded report is recorded.
    let admin = c.token("admin", true).await;
    let wasm = std::fs::read(format!("{}/../../target/policies/default.wasm", env!("CARGO_MANIFEST_DIR")))
        .expect("run `make policies` first");
    assert_eq!(c.send("PUT", "/v1/policy", &admin, wasm).await.0, 200);
    let (name, version, sha256) = match edge.next_busy().await {
        ControlFrame::Policy { name, version, sha256, bytes } => {
            assert!(!bytes.is_empty());
            (name, version, sha256)
        }
        other => panic!("expected Policy, got {other:?}"),
    };
    assert_eq!(name, "default");
    edge.send(EdgeFrame::PolicyLoaded { name, version, sha256: sha256.clone(), error: None }).await;
    eventually("the policy report is recorded", || async {
        let edges = c.state.store.edges().await.unwrap();
        edges[0].policy.as_ref().is_some_and(|(p, _)| p.sha256 == sha256 && p.error.is_none())
    })
    .await;
    assert_eq!(c.state.queue.connected_count(), 1);

    // Shutting down ends the stream (the edge reconnects elsewhere or later).
    c.stop().await;
    while let Some(frame) = edge.next().await {
        assert!(matches!(frame, ControlFrame::Heartbeat { .. }), "{frame:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_at_the_handshake_without_a_good_certificate() {
    let c = Control::start(1, 5000).await.unwrap();
    let refused = |reason: &'static str| {
        let state = c.state.clone();
        move || {
            let state = state.clone();
            async move { state.queue.metrics.refused_count(reason) >= 1 }
        }
    };
    // No client certificate.
    let ca = c.certs.path().join("ca.pem");
    let no_cert = edgepurge_tls::client_config(&[&ca]).unwrap();
    assert!(Edge::connect_with(c.queue, no_cert, Vec::new(), 1 << 20).await.is_err());
    eventually("no_certificate counted", refused("no_certificate")).await;

    // A certificate from another CA.
    let other = tempfile::tempdir().unwrap();
    edgepurge_tls::certs::init(other.path(), 1, &[], false).unwrap();
    let files = ClientFiles {
        cert: other.path().join("edges/edge-1.pem"),
        key: other.path().join("edges/edge-1.key"),
        ca: ca.clone(),
        crl: None,
    };
    let tls = edgepurge_tls::mtls::client_config(&files).unwrap();
    assert!(Edge::connect_with(c.queue, tls, Vec::new(), 1 << 20).await.is_err());
    eventually("bad_signature counted (another CA of the same name)", refused("bad_signature")).await;

    // Signed by the CA but not on the allow-list.
    let tls = edgepurge_tls::mtls::client_config(&c.edge_files("edge-3")).unwrap();
    assert!(Edge::connect_with(c.queue, tls, Vec::new(), 1 << 20).await.is_err());
    eventually("not_allowed counted", refused("not_allowed")).await;

    // Revoked: the CRL is re-read when it changes, so a later handshake is refused.
    let tls = || edgepurge_tls::mtls::client_config(&c.edge_files("edge-2")).unwrap();
    let mut edge = Edge::connect_with(c.queue, tls(), Vec::new(), 1 << 20).await.unwrap();
    assert!(matches!(edge.next_busy().await, ControlFrame::Hello { .. }));
    edgepurge_tls::certs::revoke_edge(c.certs.path(), "edge-2").unwrap();
    eventually("edge-2 refused as revoked", || async {
        let _ = Edge::connect_with(c.queue, tls(), Vec::new(), 1 << 20).await;
        c.state.queue.metrics.refused_count("revoked") >= 1
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_requests_get_404_405_415() {
    let c = Control::start(1, 5000).await.unwrap();
    let tls = || edgepurge_tls::mtls::client_config(&c.edge_files("edge-1")).unwrap();
    let ct = "application/x-edgepurge-frames";
    assert_eq!(open(c.queue, tls(), "/v1/other", "POST", ct).await.unwrap().0, 404);
    assert_eq!(open(c.queue, tls(), "/v1/stream", "GET", ct).await.unwrap().0, 405);
    let (status, body, _tx) = open(c.queue, tls(), "/v1/stream", "POST", "application/json").await.unwrap();
    assert_eq!(status, 415);
    let text = body.collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&text).contains(ct), "{text:?}");

    // Another major version: control answers with its own Hello (naming its version), then ends.
    let (status, body, tx) = open(c.queue, tls(), "/v1/stream", "POST", ct).await.unwrap();
    assert_eq!(status, 200);
    let mut edge = Edge::from_parts(tx, body);
    let theirs = edgepurge_wire::ProtocolVersion { major: PROTOCOL_VERSION.major + 1, minor: 0 };
    edge.send(EdgeFrame::Hello { protocol_version: theirs, resume: Vec::new(), buffer_free: 1 << 20 }).await;
    match edge.next().await {
        Some(ControlFrame::Hello { protocol_version, .. }) => assert_eq!(protocol_version, PROTOCOL_VERSION),
        other => panic!("expected Hello, got {other:?}"),
    }
    assert_eq!(edge.next().await, None, "the stream ends");
    assert!(c.state.store.edges().await.unwrap().is_empty(), "not registered");
    c.stop().await;
}

/// Sums the bytes of tasks received until the control goes idle (a heartbeat arrives: it is sent
/// only when nothing else is waiting to go, so everything the window allowed has been sent).
async fn receive_until_idle(edge: &mut Edge) -> Vec<(QueueId, Offset, WireTask)> {
    let mut out = Vec::new();
    loop {
        match edge.next().await.expect("stream open") {
            ControlFrame::Heartbeat { at_ms } => {
                edge.send(EdgeFrame::Heartbeat { at_ms }).await;
                return out;
            }
            ControlFrame::Tasks { queue, first_offset, tasks } => {
                out.extend(tasks.into_iter().enumerate().map(|(i, t)| (queue, first_offset + i as u64, t)))
            }
            log @ ControlFrame::Log { .. } => edge.log = Some(log),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_edge_buffer_stops_the_stream_until_acked() {
    let c = Control::start(1, 200).await.unwrap();
    let token = c.token("shop", false).await;
    c.purge(&token, &urls("flow", 10)).await;
    let window = 100;
    let mut edge = Edge::connect(c.queue, &c.edge_files("edge-1"), Vec::new(), window).await;
    assert!(matches!(edge.next_busy().await, ControlFrame::Hello { .. }));
    let mut all = Vec::new();
    while all.len() < 10 {
        let got = receive_until_idle(&mut edge).await;
        let bytes: u64 = got.iter().map(|t| t.2.size_bytes).sum();
        assert!(bytes <= window, "{bytes} bytes in flight beyond the edge's {window} free");
        if got.is_empty() {
            continue;
        }
        let next = all.len() as u64 + 1;
        assert_eq!(got[0].1, next, "in order, no gap");
        all.extend(got);
        assert!(all.len() <= 10);
        // Received and applied: the buffer is empty again.
        edge.ack_all(&all, window).await;
    }
    assert_eq!(all.iter().map(|t| t.1).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_offsets_trimmed_queues_and_the_newer_stream_wins() {
    let c = Control::start(1, 5000).await.unwrap();
    let token = c.token("shop", false).await;
    c.purge(&token, &urls("r", 6)).await;
    let files = c.edge_files("edge-1");
    let mut first = Edge::connect(c.queue, &files, vec![(0, 3)], 1 << 20).await;
    assert!(matches!(first.next_busy().await, ControlFrame::Hello { .. }));
    let got = first.tasks(4).await;
    assert_eq!(got.iter().map(|t| t.1).collect::<Vec<_>>(), vec![3, 4, 5, 6], "from the resume offset");

    // Offsets below 5 are trimmed (as retention does once every edge applied them).
    assert_eq!(c.state.store.trim(0, 5).await.unwrap(), 4);
    let mut second = Edge::connect(c.queue, &files, vec![(0, 2)], 1 << 20).await;
    assert!(matches!(second.next_busy().await, ControlFrame::Hello { .. }));
    assert_eq!(second.next_busy().await, ControlFrame::Trimmed { queue: 0, first_retained: 5 });
    let got = second.tasks(2).await;
    assert_eq!(got.iter().map(|t| t.1).collect::<Vec<_>>(), vec![5, 6]);
    // One edge, one stream: the older one was ended.
    while let Some(frame) = first.next().await {
        assert!(matches!(frame, ControlFrame::Heartbeat { .. }), "{frame:?}");
    }
    assert_eq!(c.state.queue.connected_count(), 1);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_edge_is_dropped_after_three_heartbeat_intervals() {
    let c = Control::start(1, 200).await.unwrap();
    let token = c.token("shop", false).await;
    let mut edge = Edge::connect(c.queue, &c.edge_files("edge-1"), Vec::new(), 1 << 20).await;
    assert!(matches!(edge.next().await, Some(ControlFrame::Hello { .. })));
    // The edge says nothing more: control sends heartbeats while idle, then gives up on it.
    let mut heartbeats = 0;
    loop {
        match edge.next().await {
            Some(ControlFrame::Heartbeat { .. }) => heartbeats += 1,
            // The answer to the edge's Positions (sent by `connect`).
            Some(ControlFrame::Log { .. }) => {}
            Some(other) => panic!("expected heartbeats only, got {other:?}"),
            None => break,
        }
    }
    assert!(heartbeats >= 1, "control sent no heartbeat before dropping the stream");
    eventually("the edge shown disconnected", || async {
        let (_, edges) = c.send("GET", "/v1/edges", &token, "").await;
        edges["edges"][0]["connected"] == false
    })
    .await;

    // An edge that answers heartbeats stays connected through many intervals.
    let mut edge = Edge::connect(c.queue, &c.edge_files("edge-1"), Vec::new(), 1 << 20).await;
    assert!(matches!(edge.next().await, Some(ControlFrame::Hello { .. })));
    assert!(matches!(edge.next().await, Some(ControlFrame::Log { reset: None, .. })), "the answer to Positions");
    for _ in 0..6 {
        match edge.next().await {
            Some(ControlFrame::Heartbeat { at_ms }) => edge.send(EdgeFrame::Heartbeat { at_ms }).await,
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
    let (_, edges) = c.send("GET", "/v1/edges", &token, "").await;
    assert_eq!(edges["edges"][0]["connected"], true, "{edges}");
    c.stop().await;
}
