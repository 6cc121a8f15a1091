//! The queue server (issue [4]) against a minimal edge: a real control node with `[queue-server]`
//! on 127.0.0.1:0, development certificates, and a test client speaking the frames over HTTP/2
//! with mutual TLS (tokio-rustls + hyper's HTTP/2 client + `edgepurge_wire`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use bytes::Bytes;
use edgepurge_control::config::ControlConfig;
use edgepurge_control::server::BoundControl;
use edgepurge_control::state::AppState;
use edgepurge_control_store::{QueueStore, RecordStore, SqliteStore};
use edgepurge_tls::mtls::ClientFiles;
use edgepurge_tls::rustls;
use edgepurge_wire::{ControlFrame, Decoder, EdgeFrame, Offset, QueueId, WireTask, PROTOCOL_VERSION};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::sync::mpsc;

/// Long enough for a loaded CI machine; conditions are awaited, never timed.
const DEADLINE: Duration = Duration::from_secs(20);

/// A control node with its queue server, its certificates and an API client.
struct Control {
    api: String,
    queue: SocketAddr,
    state: Arc<AppState<SqliteStore>>,
    certs: tempfile::TempDir,
    _db: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Control {
    /// Starts with `queues` queues; edges `edge-1` and `edge-2` allowed (`edge-3` exists but is not).
    async fn start(queues: u32, heartbeat_ms: u64) -> Result<Self> {
        let certs = tempfile::tempdir()?;
        edgepurge_tls::certs::init(certs.path(), 3, &[], false)?;
        let db = tempfile::tempdir()?;
        let c = certs.path();
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndatabase = {:?}\nqueues = {queues}\n[queue-server]\nlisten = \
             \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\nclient-ca = {:?}\ncrl = {:?}\nedges = [\"edge-1\", \
             \"edge-2\"]\nheartbeat-ms = {heartbeat_ms}\ncontrol-id = \"control-test\"\n",
            db.path().join("control.db"),
            c.join("control.pem"),
            c.join("control.key"),
            c.join("ca.pem"),
            c.join("crl.pem"),
        );
        let config = ControlConfig::parse(&text)?;
        let bound = BoundControl::start(&config).await?;
        let api = format!("http://{}", bound.local_addr());
        let queue = bound.queue_server_addr().context("queue server bound")?;
        let state = bound.state().context("started from a config")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(bound.serve(async move {
            let _ = stopped.await;
        }));
        let http = Client::builder(TokioExecutor::new()).build_http();
        Ok(Control { api, queue, state, certs, _db: db, stop: Some(stop), server: Some(server), http })
    }

    fn edge_files(&self, name: &str) -> ClientFiles {
        let c = self.certs.path();
        ClientFiles {
            cert: c.join(format!("edges/{name}.pem")),
            key: c.join(format!("edges/{name}.key")),
            ca: c.join("ca.pem"),
            crl: None,
        }
    }

    async fn token(&self, name: &str, admin: bool) -> String {
        let hosts = vec!["example.com".to_owned()];
        edgepurge_control::auth::create_token(&self.state.store, name, &hosts, admin, 0).await.unwrap()
    }

    /// An API request; the JSON answer (Null when none) and the status.
    async fn send(&self, method: &str, path: &str, token: &str, body: impl Into<Bytes>) -> (u16, serde_json::Value) {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.api))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .unwrap();
        let resp = self.http.request(req).await.expect("API request sent");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// Submits `urls`; the batch id.
    async fn purge(&self, token: &str, urls: &[String]) -> u64 {
        let (status, json) = self.send("POST", "/v1/purges", token, json!({ "urls": urls }).to_string()).await;
        assert_eq!(status, 202, "{json}");
        json["id"].as_u64().unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap();
    }
}

/// Waits for `check` to hold (polling every 20 ms, failing after [`DEADLINE`]).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The request body: edge frames as the test sends them.
struct FrameBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for FrameBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// A minimal edge: one stream to the queue server.
struct Edge {
    tx: mpsc::Sender<Bytes>,
    body: Incoming,
    decoder: Decoder<ControlFrame>,
}

/// Opens a TLS connection with `tls` and an HTTP/2 request; the response (status, body).
async fn open(
    addr: SocketAddr,
    tls: rustls::ClientConfig,
    path: &str,
    method: &str,
    content_type: &str,
) -> Result<(u16, Incoming, mpsc::Sender<Bytes>)> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let stream = connector.connect(name, tcp).await?;
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (tx, rx) = mpsc::channel(64);
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .header("content-type", content_type)
        .body(FrameBody(rx))?;
    let resp = send.send_request(req).await?;
    Ok((resp.status().as_u16(), resp.into_body(), tx))
}

type Rustls = rustls::ClientConfig;

impl Edge {
    /// Connects with `files` and sends `Hello`.
    async fn connect(addr: SocketAddr, files: &ClientFiles, resume: Vec<(QueueId, Offset)>, buffer_free: u64) -> Self {
        let tls = edgepurge_tls::mtls::client_config(files).expect("client config");
        Self::connect_with(addr, tls, resume, buffer_free).await.expect("stream opened")
    }

    async fn connect_with(addr: SocketAddr, tls: Rustls, resume: Vec<(QueueId, Offset)>, free: u64) -> Result<Self> {
        let (status, body, tx) = open(addr, tls, "/v1/stream", "POST", "application/x-edgepurge-frames").await?;
        if status != 200 {
            return Err(anyhow!("status {status}"));
        }
        let edge = Edge { tx, body, decoder: Decoder::new() };
        edge.send(EdgeFrame::Hello { protocol_version: PROTOCOL_VERSION, resume, buffer_free: free }).await;
        Ok(edge)
    }

    async fn send(&self, frame: EdgeFrame) {
        self.tx.send(edgepurge_wire::encode(&frame).unwrap()).await.expect("stream open");
    }

    /// The next frame; `None` when the stream ended.
    async fn next(&mut self) -> Option<ControlFrame> {
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("valid frames") {
                return Some(frame);
            }
            let frame = tokio::time::timeout(DEADLINE, self.body.frame()).await.expect("a frame in time");
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                    }
                }
                _ => return None,
            }
        }
    }

    /// The next frame other than a heartbeat (answered, so the stream stays alive).
    async fn next_busy(&mut self) -> ControlFrame {
        loop {
            match self.next().await.expect("stream open") {
                ControlFrame::Heartbeat { at_ms } => self.send(EdgeFrame::Heartbeat { at_ms }).await,
                other => return other,
            }
        }
    }

    /// Tasks until `n` have arrived (with their queue and offset).
    async fn tasks(&mut self, n: usize) -> Vec<(QueueId, Offset, WireTask)> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next_busy().await {
                ControlFrame::Tasks { queue, first_offset, tasks } => {
                    for (i, t) in tasks.into_iter().enumerate() {
                        out.push((queue, first_offset + i as u64, t));
                    }
                }
                other => panic!("expected Tasks, got {other:?}"),
            }
        }
        out
    }

    /// Acks everything in `tasks` as received and applied.
    async fn ack_all(&self, tasks: &[(QueueId, Offset, WireTask)], buffer_free: u64) {
        let mut marks: Vec<(QueueId, Offset)> = Vec::new();
        for &(q, o, _) in tasks {
            match marks.iter_mut().find(|m| m.0 == q) {
                Some(m) => m.1 = m.1.max(o),
                None => marks.push((q, o)),
            }
        }
        let ack = EdgeFrame::Ack { received: marks.clone(), applied: marks, failures: Vec::new(), buffer_free };
        self.send(ack).await;
    }
}

fn urls(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("https://example.com/{tag}/{i}")).collect()
}

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
    let mut edge = Edge { tx, body, decoder: Decoder::new() };
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
