//! The queue server (issue \[4\]): where edges fetch purge tasks and the active policy.
//!
//! Its own listener (`[queue-server]`), TLS with a client certificate required (the CA, CRL and
//! allow-list checks are `edgepurge_tls::mtls`'s, re-read when their files change, so a revoked
//! edge is refused at its next handshake), ALPN `h2`, HTTP/2 only. One route:
//!
//! `POST /v1/stream` with `content-type: application/x-edgepurge-frames`: the request body is the
//! edge's stream of [`edgepurge_wire::EdgeFrame`]s, the `200` response body control's stream of
//! [`edgepurge_wire::ControlFrame`]s, both length-prefixed postcard ([`edgepurge_wire::encode`]).
//! A wrong path is 404, a wrong method 405, a wrong content type 415.
//!
//! - [`session`] — one stream: `Hello`, version check, registration, policy, tasks from the
//!   resume offsets, pushed on the API's "appended" signal; acks to the store ([`report`]);
//!   heartbeats; the newer of two streams of one edge wins.
//! - [`positions`] — whether an edge's resume positions are this log's (log identity, end of
//!   log, the task at the last offset); refused ones make the edge purge everything and restart.
//! - [`flow`] — the flow-control window (`buffer_free`, at most 8 MiB in flight).
//! - what the API and the streams share is [`crate::hub::QueueHub`], in the
//!   [`QueueState`] both hold.
//!
//! Shutdown ends every stream (the edges reconnect to another node or later), then waits briefly
//! for the connections to close.

pub mod flow;
pub mod positions;
mod report;
pub mod session;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use edgepurge_control_store::ControlStore;
use edgepurge_serve::{Accepted, ConnectionService, Refused, Server, Timeouts};
use edgepurge_tls::mtls::{Refusal, ReloadingServerConfig, ServerFiles};
use edgepurge_tls::rustls::pki_types::CertificateDer;
use edgepurge_tls::HandshakeError;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::QueueServerSection;
use crate::state::QueueState;
use session::SessionConfig;

/// The stream's path.
pub const STREAM_PATH: &str = "/v1/stream";
/// The content type of both bodies.
pub const CONTENT_TYPE: &str = "application/x-edgepurge-frames";
/// How often a connected edge's certificate is checked again against the current CA, CRL and
/// allow-list.
const RECHECK_CLIENT: Duration = Duration::from_secs(2);
/// Frames queued towards hyper per stream; the session's own outbox holds the rest.
const CHANNEL_FRAMES: usize = 16;

/// Why the queue server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum QueueServerError {
    /// A certificate, key, CA or CRL file cannot be used.
    #[error("[queue-server]: {0}")]
    Tls(#[from] edgepurge_tls::TlsError),
    /// The address cannot be bound.
    #[error("[queue-server] cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The queue server, bound.
pub struct QueueServer {
    listener: TcpListener,
    tls: ReloadingServerConfig,
    session: SessionConfig,
}

/// The response body: control frames as the session hands them over.
struct FrameBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for FrameBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|bytes| bytes.map(|b| Ok(Frame::data(b))))
    }
}

type ResponseBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

impl QueueServer {
    /// Loads the TLS files and binds `section.listen`.
    pub async fn bind(section: &QueueServerSection) -> Result<Self, QueueServerError> {
        let tls = ReloadingServerConfig::new(ServerFiles {
            cert: section.cert.clone(),
            key: section.key.clone(),
            client_ca: section.client_ca.clone(),
            crl: section.crl.clone(),
            allowed_edges: section.edges.clone(),
        })?;
        let listener = TcpListener::bind(section.listen)
            .await
            .map_err(|source| QueueServerError::Bind { addr: section.listen, source })?;
        let session = SessionConfig { heartbeat: section.heartbeat(), control_id: section.control_id.clone() };
        Ok(QueueServer { listener, tls, session })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` turns true, then ends every stream and waits (briefly:
    /// [`Timeouts::QUEUE_SERVER`]'s drain) for the connections to close.
    pub async fn serve<S: ControlStore + 'static>(self, state: Arc<QueueState<S>>, shutdown: watch::Receiver<bool>) {
        let QueueServer { listener, tls, session } = self;
        let refused_state = state.clone();
        let server = Server::new("queue server", Timeouts::QUEUE_SERVER)
            .http2_only()
            .listen((), listener, Some(tls.clone()))
            .on_refused(move |refused: Refused<'_, ()>| {
                let (reason, message) = refusal(refused.error);
                refused_state.queue.metrics.refused(reason);
                tracing::warn!(peer = %refused.peer, reason, "queue server refused a handshake: {message}");
            });
        let streams_end = shutdown.clone();
        let connect = move |accepted: Accepted<'_, ()>| {
            let peer = accepted.peer;
            let chain = accepted.tls.map(|tls| tls.certificates).unwrap_or_default();
            let Some(edge) = chain.first().and_then(edgepurge_tls::certs::edge_name) else {
                state.queue.metrics.refused("no_edge_name");
                tracing::warn!(%peer, "queue server refused a client certificate without an edge name");
                return None;
            };
            let (edge_name, metrics_state, tls, chain) = (edge.clone(), state.clone(), tls.clone(), chain.to_vec());
            let (state, session, shutdown) = (state.clone(), session.clone(), streams_end.clone());
            let service = hyper::service::service_fn(move |req| {
                let (state, session, edge, shutdown) = (state.clone(), session.clone(), edge.clone(), shutdown.clone());
                async move { Ok::<_, Infallible>(handle(state, session, edge, peer, shutdown, req)) }
            });
            // Closing the connection ends the stream; the edge's reconnect then meets the new
            // files at its handshake.
            let untrusted = async move {
                let refusal = no_longer_trusted(&tls, &chain).await;
                metrics_state.queue.metrics.refused(refusal.label());
                tracing::warn!(%peer, edge = %edge_name, reason = refusal.label(),
                    "closing the stream of a connected edge whose certificate no longer passes: {refusal}");
            };
            Some(ConnectionService::new(service).close_when(untrusted))
        };
        let mut shutdown = shutdown;
        let draining = server.serve(connect, async move { stopped(&mut shutdown).await }).await;
        tracing::info!("queue server shutting down: ending edge streams");
        draining.drain().await;
    }
}

/// Completes when a connected client's certificate fails the checks of the current files (a new
/// CRL revoked it, it expired, the allow-list dropped it), looked at every [`RECHECK_CLIENT`].
async fn no_longer_trusted(tls: &ReloadingServerConfig, chain: &[CertificateDer<'static>]) -> Refusal {
    loop {
        tokio::time::sleep(RECHECK_CLIENT).await;
        if let Err(refusal) = tls.check_client(chain) {
            return refusal;
        }
    }
}

/// Completes once `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The `Ref` the wait returns is dropped here: it must not live across an await (not `Send`).
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Answers one request: the stream, or 404/405/415 naming what to do instead.
fn handle<S: ControlStore + 'static>(
    state: Arc<QueueState<S>>,
    session: SessionConfig,
    edge: String,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let plain = |status: StatusCode, text: String| {
        let mut response = Response::new(Full::new(Bytes::from(text + "\n")).boxed());
        *response.status_mut() = status;
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().unwrap());
        response
    };
    if req.uri().path() != STREAM_PATH {
        return plain(StatusCode::NOT_FOUND, format!("the queue server serves only POST {STREAM_PATH}"));
    }
    if req.method() != Method::POST {
        let mut response =
            plain(StatusCode::METHOD_NOT_ALLOWED, format!("{STREAM_PATH} takes POST, not {}", req.method()));
        response.headers_mut().insert(hyper::header::ALLOW, "POST".parse().unwrap());
        return response;
    }
    let content_type = req.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().unwrap_or("").trim() != CONTENT_TYPE {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("use content-type: {CONTENT_TYPE} (got `{content_type}`)"),
        );
    }
    let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
    tokio::spawn(session::run(state, session, edge, peer, req.into_body(), tx, shutdown));
    let mut response = Response::new(FrameBody(rx).boxed());
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, CONTENT_TYPE.parse().unwrap());
    response
}

/// Why a handshake failed: the label counted in the metrics and the operator's message.
pub fn refusal(error: &HandshakeError) -> (&'static str, String) {
    match error {
        HandshakeError::TimedOut(after) => ("timeout", format!("no TLS handshake within {after:?}")),
        HandshakeError::Failed(io) => {
            let refusal = Refusal::of_io(io);
            (refusal.label(), refusal.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_tls::rustls::{CertificateError, Error as RustlsError};

    fn failed(e: RustlsError) -> HandshakeError {
        HandshakeError::Failed(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn refusals_are_labelled_and_explained() {
        assert_eq!(
            refusal(&failed(RustlsError::NoCertificatesPresented)),
            ("no_certificate", "no client certificate presented".to_owned())
        );
        let cert = |e| failed(RustlsError::InvalidCertificate(e));
        assert_eq!(refusal(&cert(CertificateError::UnknownIssuer)).0, "unknown_ca");
        assert_eq!(refusal(&cert(CertificateError::Revoked)).0, "revoked");
        assert_eq!(refusal(&cert(CertificateError::Expired)).0, "expired");
        assert_eq!(refusal(&HandshakeError::TimedOut(Duration::from_secs(1))).0, "timeout");
        let io = HandshakeError::Failed(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof"));
        assert_eq!(refusal(&io), ("other", "eof".to_owned()));
        for label in Refusal::LABELS.iter().chain(&["timeout", "no_edge_name"]) {
            assert!(crate::counters::refusal_labels().any(|l| l == *label), "{label} has no counter");
        }
    }
}
