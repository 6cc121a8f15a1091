//! The queue server's test harness: a real control node with `[queue-server]` on 127.0.0.1:0,
//! development certificates, and a minimal edge speaking the frames over HTTP/2 with mutual TLS
//! (tokio-rustls + hyper's HTTP/2 client + `edgepurge_wire`). Used by `queue_server` and
//! `positions`.

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
use edgepurge_control_store::SqliteStore;
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
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// A control node with its queue server, its certificates and an API client.
pub(crate) struct Control {
    pub(crate) api: String,
    pub(crate) queue: SocketAddr,
    pub(crate) state: Arc<AppState<SqliteStore>>,
    pub(crate) certs: tempfile::TempDir,
    pub(crate) _db: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Control {
    /// Starts with `queues` queues; edges `edge-1` and `edge-2` allowed (`edge-3` exists but is not).
    pub(crate) async fn start(queues: u32, heartbeat_ms: u64) -> Result<Self> {
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

    pub(crate) fn edge_files(&self, name: &str) -> ClientFiles {
        let c = self.certs.path();
        ClientFiles {
            cert: c.join(format!("edges/{name}.pem")),
            key: c.join(format!("edges/{name}.key")),
            ca: c.join("ca.pem"),
            crl: None,
        }
    }

    pub(crate) async fn token(&self, name: &str, admin: bool) -> String {
        let hosts = vec!["example.com".to_owned()];
        edgepurge_control::auth::create_token(&self.state.store, name, &hosts, admin, 0).await.unwrap()
    }

    /// An API request; the JSON answer (Null when none) and the status.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: impl Into<Bytes>,
    ) -> (u16, serde_json::Value) {
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
    pub(crate) async fn purge(&self, token: &str, urls: &[String]) -> u64 {
        let (status, json) = self.send("POST", "/v1/purges", token, json!({ "urls": urls }).to_string()).await;
        assert_eq!(status, 202, "{json}");
        json["id"].as_u64().unwrap()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap();
    }
}

/// Waits for `check` to hold (polling every 20 ms, failing after [`DEADLINE`]).
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
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
pub(crate) struct FrameBody(mpsc::Receiver<Bytes>);

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
pub(crate) struct Edge {
    tx: mpsc::Sender<Bytes>,
    body: Incoming,
    decoder: Decoder<ControlFrame>,
    /// The `Log` control answered the edge's `Positions` with (kept aside by `next_busy`).
    pub(crate) log: Option<ControlFrame>,
}

/// `Positions` of an edge that holds no offsets of any log.
pub(crate) fn no_positions() -> EdgeFrame {
    EdgeFrame::Positions { log_id: None, last: Vec::new(), notices: Vec::new() }
}

/// Opens a TLS connection with `tls` and an HTTP/2 request; the response (status, body).
pub(crate) async fn open(
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

pub(crate) type Rustls = rustls::ClientConfig;

impl Edge {
    /// Connects with `files` and sends `Hello`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        files: &ClientFiles,
        resume: Vec<(QueueId, Offset)>,
        buffer_free: u64,
    ) -> Self {
        Self::connect_positions(addr, files, resume, buffer_free, no_positions()).await
    }

    /// Connects and sends `Hello` and then `positions` (an `EdgeFrame::Positions`).
    pub(crate) async fn connect_positions(
        addr: SocketAddr,
        files: &ClientFiles,
        resume: Vec<(QueueId, Offset)>,
        buffer_free: u64,
        positions: EdgeFrame,
    ) -> Self {
        let tls = edgepurge_tls::mtls::client_config(files).expect("client config");
        let edge = Self::connect_with(addr, tls, resume, buffer_free).await.expect("stream opened");
        // A 1.1 edge sends it after control's Hello; control reads it after sending that, so
        // sending it at once is the same to control.
        edge.send(positions).await;
        edge
    }

    /// An edge on an already opened stream (nothing sent yet).
    pub(crate) fn from_parts(tx: mpsc::Sender<Bytes>, body: Incoming) -> Self {
        Edge { tx, body, decoder: Decoder::new(), log: None }
    }

    /// Opens a stream and sends `Hello` only.
    pub(crate) async fn connect_with(
        addr: SocketAddr,
        tls: Rustls,
        resume: Vec<(QueueId, Offset)>,
        free: u64,
    ) -> Result<Self> {
        let (status, body, tx) = open(addr, tls, "/v1/stream", "POST", "application/x-edgepurge-frames").await?;
        if status != 200 {
            return Err(anyhow!("status {status}"));
        }
        let edge = Edge::from_parts(tx, body);
        edge.send(EdgeFrame::Hello { protocol_version: PROTOCOL_VERSION, resume, buffer_free: free }).await;
        Ok(edge)
    }

    pub(crate) async fn send(&self, frame: EdgeFrame) {
        self.tx.send(edgepurge_wire::encode(&frame).unwrap()).await.expect("stream open");
    }

    /// The next frame; `None` when the stream ended.
    pub(crate) async fn next(&mut self) -> Option<ControlFrame> {
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
    pub(crate) async fn next_busy(&mut self) -> ControlFrame {
        loop {
            match self.next().await.expect("stream open") {
                ControlFrame::Heartbeat { at_ms } => self.send(EdgeFrame::Heartbeat { at_ms }).await,
                log @ ControlFrame::Log { .. } => self.log = Some(log),
                other => return other,
            }
        }
    }

    /// Tasks until `n` have arrived (with their queue and offset).
    pub(crate) async fn tasks(&mut self, n: usize) -> Vec<(QueueId, Offset, WireTask)> {
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
    pub(crate) async fn ack_all(&self, tasks: &[(QueueId, Offset, WireTask)], buffer_free: u64) {
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

pub(crate) fn urls(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("https://example.com/{tag}/{i}")).collect()
}
