//! A fake control node for the consumer tests: the queue server's transport (mutual TLS with the
//! dev CA of `edgepurge_tls::certs::init`, HTTP/2, `POST /v1/stream` speaking
//! `edgepurge-wire`), with every stream handed to the test as a [`FakeStream`] to script:
//! read what the edge sends, send it frames, close it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use edgepurge_tls::mtls::{self, ServerFiles};
use edgepurge_wire::{encode, ControlFrame, Decoder, EdgeFrame, Offset, QueueId, PROTOCOL_VERSION};
use futures_util::Stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

use super::PATIENCE;

type BodyStream = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;
type FakeBody = http_body_util::Either<StreamBody<BodyStream>, Full<Bytes>>;

/// The log identity the fake control accepts positions under.
pub const FAKE_LOG_ID: &str = "fa4e0000000000000000000000000001";

/// The `Log` that accepts an edge's positions under `log_id`, resuming where it asked.
pub fn accept(log_id: &str, resume: &[(QueueId, Offset)]) -> ControlFrame {
    ControlFrame::Log { log_id: log_id.into(), reset: None, start: resume.to_vec() }
}

/// A fake control node's queue server on 127.0.0.1:0.
pub struct FakeControl {
    /// Its address.
    pub addr: SocketAddr,
    certs: PathBuf,
    streams: mpsc::UnboundedReceiver<FakeStream>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

/// One `POST /v1/stream` from an edge.
pub struct FakeStream {
    /// The edge name of the client certificate.
    pub edge: Option<String>,
    from_edge: mpsc::UnboundedReceiver<EdgeFrame>,
    to_edge: mpsc::UnboundedSender<Bytes>,
}

impl Drop for FakeControl {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

impl FakeControl {
    /// Serves with the certificates `certs::init` wrote in `certs` (client certificates required).
    pub async fn start(certs: &Path) -> FakeControl {
        let files = ServerFiles {
            cert: certs.join("control.pem"),
            key: certs.join("control.key"),
            client_ca: certs.join("ca.pem"),
            crl: Some(certs.join("crl.pem")),
            allowed_edges: None,
        };
        let acceptor = TlsAcceptor::from(Arc::new(mtls::server_config(&files).expect("control TLS config")));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (streams_tx, streams) = mpsc::unbounded_channel();
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let conns_accept = Arc::clone(&conns);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, streams_tx) = (acceptor.clone(), streams_tx.clone());
                let conn = tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let edge = mtls::peer_edge_name(tls.get_ref().1);
                    let service = service_fn(move |req| {
                        let (streams_tx, edge) = (streams_tx.clone(), edge.clone());
                        async move { Ok::<_, Infallible>(stream(req, edge, streams_tx)) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
                conns_accept.lock().unwrap().push(conn.abort_handle());
            }
        })
        .abort_handle();
        FakeControl { addr, certs: certs.to_owned(), streams, conns, accept }
    }

    /// The edge's `[control]` section for this node, as `edge-1`, with its buffer in `state`.
    /// This fake sends no heartbeats of its own, so unless `extra` sets `heartbeat-ms` the edge
    /// waits 15 s of silence (not the default 3 s) before it gives up on a scripted stream that
    /// is merely slow.
    pub fn edge_section(&self, state: &Path, extra: &str) -> String {
        let c = |name: &str| self.certs.join(name).display().to_string();
        let heartbeat = if extra.contains("heartbeat-ms") { "" } else { "heartbeat-ms = 5000\n" };
        format!(
            "[control]\nnodes = [\"https://localhost:{}\"]\nca = {:?}\ncert = {:?}\nkey = {:?}\ncrl = {:?}\n\
             state-dir = {:?}\n{heartbeat}{extra}\n",
            self.addr.port(),
            c("ca.pem"),
            c("edges/edge-1.pem"),
            c("edges/edge-1.key"),
            c("crl.pem"),
            state.display().to_string(),
        )
    }

    /// The next stream an edge opens (fails after [`PATIENCE`]).
    pub async fn next_stream(&mut self) -> FakeStream {
        let next = tokio::time::timeout(PATIENCE, self.streams.recv()).await;
        next.expect("no edge opened a stream").expect("the fake control stopped")
    }

    /// Cuts every connection at once (as a crashed control node would).
    pub fn drop_connections(&self) {
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<FakeBody> {
    let mut resp = Response::new(http_body_util::Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp
}

/// Answers one request: a stream handed to the test, or the protocol's refusals.
fn stream(
    req: Request<Incoming>,
    edge: Option<String>,
    streams: mpsc::UnboundedSender<FakeStream>,
) -> Response<FakeBody> {
    if req.uri().path() != "/v1/stream" {
        return text(StatusCode::NOT_FOUND, "use POST /v1/stream");
    }
    if req.method() != http::Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST /v1/stream");
    }
    let content_type = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if content_type != Some("application/x-edgepurge-frames") {
        return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "use content-type: application/x-edgepurge-frames");
    }
    let (from_tx, from_edge) = mpsc::unbounded_channel();
    let mut body = req.into_body();
    tokio::spawn(async move {
        let mut decoder = Decoder::<EdgeFrame>::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            decoder.push(&data);
            while let Ok(Some(frame)) = decoder.next_frame() {
                if from_tx.send(frame).is_err() {
                    return;
                }
            }
        }
    });
    let (to_edge, rx) = mpsc::unbounded_channel::<Bytes>();
    let out: BodyStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok(Frame::data(bytes)), rx))
    }));
    let _ = streams.send(FakeStream { edge, from_edge, to_edge });
    Response::new(http_body_util::Either::Left(StreamBody::new(out)))
}

impl FakeStream {
    /// Sends `frame` to the edge.
    pub fn send(&self, frame: ControlFrame) {
        let _ = self.to_edge.send(encode(&frame).unwrap());
    }

    /// The next frame from the edge other than a heartbeat (fails after [`PATIENCE`]).
    pub async fn recv(&mut self) -> EdgeFrame {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.from_edge.recv()).await;
            match frame.expect("the edge sent nothing").expect("the edge closed the stream") {
                EdgeFrame::Heartbeat { .. } => continue,
                frame => return frame,
            }
        }
    }

    /// Waits for a heartbeat from the edge (skipping other frames).
    pub async fn heartbeat(&mut self) {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.from_edge.recv()).await;
            if let EdgeFrame::Heartbeat { .. } = frame.expect("no heartbeat").expect("the edge closed the stream") {
                return;
            }
        }
    }

    /// Reads the edge's `Hello` and answers with ours as `control_id`, then reads its
    /// `Positions` and accepts them under [`FAKE_LOG_ID`]: the edge's resume offsets and free
    /// buffer space.
    pub async fn hello(&mut self, control_id: &str) -> (Vec<(QueueId, Offset)>, u64) {
        let (resume, free, _) = self.hello_then(control_id, |resume, _| accept(FAKE_LOG_ID, resume)).await;
        (resume, free)
    }

    /// [`FakeStream::hello`] answering the edge's `Positions` with the `Log` that `log` makes of
    /// its resume offsets and `Positions`; returns the `Positions` too.
    pub async fn hello_then(
        &mut self,
        control_id: &str,
        log: impl FnOnce(&[(QueueId, Offset)], &EdgeFrame) -> ControlFrame,
    ) -> (Vec<(QueueId, Offset)>, u64, EdgeFrame) {
        let frame = self.recv().await;
        let (resume, free) = frame.expect_hello().unwrap_or_else(|e| panic!("first frame: {e}: {frame:?}"));
        let resume = resume.to_vec();
        self.send(ControlFrame::Hello { protocol_version: PROTOCOL_VERSION, control_id: control_id.into() });
        let positions = self.recv().await;
        assert!(matches!(positions, EdgeFrame::Positions { .. }), "expected Positions after Hello: {positions:?}");
        self.send(log(&resume, &positions));
        (resume, free, positions)
    }

    /// Reads frames until an `Ack` for which `done` holds; returns it.
    pub async fn ack_until(&mut self, done: impl Fn(&EdgeFrame) -> bool) -> EdgeFrame {
        loop {
            let frame = self.recv().await;
            if matches!(frame, EdgeFrame::Ack { .. }) && done(&frame) {
                return frame;
            }
        }
    }

    /// Reads frames until an `Ack` whose applied watermark of `queue` is at least `offset`.
    pub async fn applied(&mut self, queue: QueueId, offset: Offset) -> EdgeFrame {
        self.ack_until(
            |f| matches!(f, EdgeFrame::Ack { applied, .. } if applied.iter().any(|&(q, o)| q == queue && o >= offset)),
        )
        .await
    }

    /// Reads frames until a `PolicyLoaded`; returns it.
    pub async fn policy_loaded(&mut self) -> EdgeFrame {
        loop {
            let frame = self.recv().await;
            if matches!(frame, EdgeFrame::PolicyLoaded { .. }) {
                return frame;
            }
        }
    }
}
