//! One control node: connect (TCP, mutual TLS with the current certificates, HTTP/2), open
//! `POST /v1/stream`, send `Hello` with the resume offsets from the receive buffer, then handle
//! the node's frames until the stream ends; reconnect with exponential back-off and full jitter.
//!
//! With a 1.1 node, the edge answers its `Hello` with `Positions` (the log its offsets came from,
//! the fingerprint of the last task received per queue, recent buffer notices) and sends no Ack
//! before the node's `Log`, which accepts them or makes the edge reset (`apply::log`). A `Tasks`
//! frame is written to the buffer (one transaction) before the Ack that reports it received. Heartbeats go out after `heartbeat-ms` without sending; a stream silent for three
//! heartbeats is dropped.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgepurge_tls::rustls::pki_types::ServerName;
use edgepurge_wire::{encode, tasks_payload, ControlFrame, Decoder, EdgeFrame, PROTOCOL_VERSION};
use futures_util::Stream;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::{apply, now_ms, Inner, Link};
use crate::config::ControlNode;
use crate::metrics::ControlMetrics;
use crate::receive_buffer::{Pending, PendingChunk};

/// The content type of the frame streams.
pub const CONTENT_TYPE: &str = "application/x-edgepurge-frames";
/// Connect, TLS and response-head deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The same error is logged at warn at most this often per node.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How a stream ended.
enum End {
    /// The consumer is stopping.
    Stopped,
    /// The node answered a different `control_id` than the one resumed under: reconnect at once.
    Rekeyed,
    /// The connection failed or the node misbehaved.
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for End {
    fn from(e: E) -> Self {
        End::Failed(e.to_string())
    }
}

/// The error and its sources, `a: b: c` (a TLS failure is inside an I/O error).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg = format!("{msg}: {s_msg}");
        }
        source = s.source();
    }
    msg
}

/// A random duration in `[0, max]` (full jitter), without a random-number crate.
fn jitter(max: Duration) -> Duration {
    let mut hasher = RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    Duration::from_millis(hasher.finish() % (max.as_millis() as u64 + 1))
}

/// Connects to `node` until the consumer stops.
pub(super) async fn run_node(inner: Arc<Inner>, node: ControlNode, index: usize) {
    let mut stop = inner.stop.clone();
    let mut delay = BACKOFF_MIN;
    let mut warned: HashMap<String, Instant> = HashMap::new();
    let mut attempts = 0u64;
    let mut resets = inner.resets.subscribe();
    while !inner.stopped() {
        if attempts > 0 {
            ControlMetrics::add(&inner.metrics().reconnects, 1);
        }
        attempts += 1;
        inner.status.node(index).connects = attempts;
        let mut hello = false;
        let end = session(&inner, &node, index, &mut hello).await;
        {
            let mut state = inner.status.node(index);
            if state.connected {
                state.connected = false;
                inner.metrics().connected.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            if let End::Failed(e) = &end {
                state.last_error = Some(e.clone());
            }
        }
        if hello {
            delay = BACKOFF_MIN;
        }
        match end {
            End::Stopped => break,
            // Back-off was reset by the Hello: a short jittered pause, so a load balancer
            // alternating between nodes cannot make this spin.
            End::Rekeyed => {}
            End::Failed(e) => {
                let now = Instant::now();
                let recent = warned.get(&e).is_some_and(|at| now.duration_since(*at) < WARN_EVERY);
                if recent {
                    tracing::debug!(node = %node.url, error = %e, "control stream failed");
                } else {
                    tracing::warn!(node = %node.url, error = %e, "control stream failed; reconnecting with back-off");
                    warned.retain(|_, at| now.duration_since(*at) < WARN_EVERY);
                    warned.insert(e, now);
                }
            }
        }
        let wait = jitter(delay);
        delay = (delay * 2).min(BACKOFF_MAX);
        // A replaced receive buffer ends the wait: the node must learn this edge's new positions.
        tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = resets.changed() => {}, _ = stop.changed() => break }
    }
}

type BodyStream = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;

/// Sends frames on the request body.
struct Sender {
    tx: mpsc::Sender<Bytes>,
    last_sent: Instant,
    /// The last failure report (buffer row id) sent on this connection.
    failures_sent: i64,
}

impl Sender {
    async fn send(&mut self, frame: &EdgeFrame) -> Result<(), End> {
        let bytes = encode(frame)?;
        self.tx.send(bytes).await.map_err(|_| End::Failed("the connection to control closed".into()))?;
        self.last_sent = Instant::now();
        Ok(())
    }
}

/// Builds the Ack of `key`: watermarks from the buffer and the failure reports not yet sent on
/// this connection (`sent` is the last one sent).
async fn ack(inner: &Arc<Inner>, key: &str, sent: &mut i64) -> Result<EdgeFrame, End> {
    let (k, after) = (key.to_owned(), *sent);
    let (marks, free, failures) =
        inner.buffer.call(move |b| Ok((b.watermarks(&k)?, b.free(), b.failures_after(&k, after)?))).await?;
    if let Some((last, _)) = failures.last() {
        *sent = *last;
    }
    Ok(EdgeFrame::Ack {
        received: marks.iter().map(|m| (m.queue, m.received)).collect(),
        applied: marks.iter().map(|m| (m.queue, m.applied)).collect(),
        failures: failures.into_iter().map(|(_, f)| f).collect(),
        buffer_free: free,
    })
}

/// One connection: returns when the stream ends; sets `hello` once the node's Hello arrived.
async fn session(inner: &Arc<Inner>, node: &ControlNode, index: usize, hello: &mut bool) -> End {
    let mut stop = inner.stop.clone();
    let mut resets = inner.resets.subscribe();
    let url = node.url.clone();
    let stored = inner.buffer.call(move |b| {
        let key = b.node_key(&url)?.unwrap_or(url);
        let resume = b.resume(&key)?;
        let positions = b.positions(&key, now_ms())?;
        Ok((key, resume, b.free(), b.id(), positions))
    });
    let (mut key, resume, free, buffer_id, positions) = match stored.await {
        Ok(stored) => stored,
        Err(e) => return End::Failed(e.to_string()),
    };
    let resumed_empty = resume.is_empty();
    let hello_frame = EdgeFrame::Hello { protocol_version: PROTOCOL_VERSION, resume, buffer_free: free };
    let (mut sender, mut body, _conn) = tokio::select! {
        connected = connect(inner, node, &hello_frame) => match connected { Ok(c) => c, Err(e) => return e },
        _ = stop.changed() => return End::Stopped,
    };
    let heartbeat = inner.section.heartbeat();
    let mut decoder = Decoder::<ControlFrame>::new();
    let mut last_recv = Instant::now();
    let mut link: Option<Arc<Link>> = None;
    let mut control_id = String::new();
    // From a 1.1 node: Positions sent, its Log not yet handled (no Ack goes out before it).
    let mut awaiting_log = false;
    let mut positions = Some(positions);
    loop {
        let ack_due = async {
            match &link {
                Some(link) => link.ack.notified().await,
                None => std::future::pending().await,
            }
        };
        let frames = tokio::select! {
            frame = body.frame() => match frame {
                None => {
                    let truncated = decoder.finish().err().map(|e| format!(" ({e})")).unwrap_or_default();
                    return End::Failed(format!("control ended the stream{truncated}"));
                }
                Some(Err(e)) => return End::Failed(format!("reading from control: {}", chain(&e))),
                Some(Ok(frame)) => {
                    last_recv = Instant::now();
                    if let Ok(data) = frame.into_data() {
                        decoder.push(&data);
                    }
                    true
                }
            },
            _ = ack_due => {
                match ack(inner, &key, &mut sender.failures_sent).await {
                    Ok(frame) => if let Err(e) = sender.send(&frame).await { return e },
                    Err(e) => return e,
                }
                false
            }
            _ = tokio::time::sleep_until(sender.last_sent + heartbeat) => {
                if let Err(e) = sender.send(&EdgeFrame::Heartbeat { at_ms: now_ms() }).await { return e }
                false
            }
            _ = tokio::time::sleep_until(last_recv + heartbeat * 3) => {
                return End::Failed(format!("nothing from control for {:?}; dropping the stream", heartbeat * 3));
            }
            // (The guard `wait_for` returns is not `Send`: dropped at once.)
            _ = async { resets.wait_for(|&id| id != buffer_id).await.map(drop) } => {
                return End::Failed("the receive buffer was replaced; reconnecting to resume from its positions".into());
            }
            _ = stop.changed() => return End::Stopped,
        };
        if !frames {
            continue;
        }
        loop {
            let (frame, body) = match decoder.next_frame_and_body() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return End::Failed(format!("bad frame from control: {e}")),
            };
            if !*hello {
                let id = match frame.expect_hello() {
                    Ok(id) => id.to_owned(),
                    Err(e) => {
                        if matches!(e, edgepurge_wire::WireError::VersionMismatch { .. }) {
                            tracing::error!(node = %node.url, error = %e, "control speaks another protocol");
                        }
                        return End::Failed(e.to_string());
                    }
                };
                *hello = true;
                let positions_key = key.clone();
                key = match adopt(inner, node, &key, &id, resumed_empty).await {
                    Ok(Some(effective)) => effective,
                    Ok(None) => return End::Rekeyed,
                    Err(e) => return e,
                };
                control_id = id;
                {
                    let mut state = inner.status.node(index);
                    state.connected = true;
                    state.control_id = Some(control_id.clone());
                    state.key = Some(key.clone());
                }
                ControlMetrics::add(&inner.metrics().connected, 1);
                tracing::info!(node = %node.url, %control_id, "connected to control");
                if frame.hello_version().is_some_and(|v| v.has_log_identity()) {
                    let mut p = positions.take().unwrap_or_default();
                    if key != positions_key {
                        // Offsets are kept per key: the new key has none yet.
                        (p.log_id, p.last) = (None, Vec::new());
                    }
                    let frame = EdgeFrame::Positions { log_id: p.log_id, last: p.last, notices: p.notices };
                    if let Err(e) = sender.send(&frame).await {
                        return e;
                    }
                    awaiting_log = true;
                    continue;
                }
                link = Some(start_acks(inner, &key));
                continue;
            }
            if let ControlFrame::Log { log_id, reset, start } = frame {
                if !awaiting_log {
                    return End::Failed("control sent Log without being asked".into());
                }
                if let Err(e) = apply::log(inner, &key, &log_id, reset, &start).await {
                    return End::Failed(e.to_string());
                }
                awaiting_log = false;
                link = Some(start_acks(inner, &key));
                continue;
            }
            if let Err(e) = handle(inner, &key, &control_id, frame, body, &mut sender, link.as_deref()).await {
                return e;
            }
        }
    }
}

/// The link of `key`, with an Ack asked for at once: control may have missed the last one.
fn start_acks(inner: &Arc<Inner>, key: &str) -> Arc<Link> {
    let link = inner.link(key);
    link.ack.notify_one();
    link
}

/// Accepts the `control_id` a node announced and returns the key its offsets are kept under:
/// the id, or `id@url` when another configured node already uses that id (two nodes left with
/// the default id must not share offsets). `Ok(None)`: the offsets resumed under `key` were
/// another key's, so the connection must start over under the new one.
async fn adopt(
    inner: &Arc<Inner>,
    node: &ControlNode,
    key: &str,
    id: &str,
    resumed_empty: bool,
) -> Result<Option<String>, End> {
    let others: Vec<String> = inner.section.node_urls().into_iter().filter(|u| *u != node.url).collect();
    let (url, old, announced) = (node.url.clone(), key.to_owned(), id.to_owned());
    let id = announced.clone();
    let outcome = inner
        .buffer
        .call(move |b| {
            let mut taken = false;
            for other in &others {
                taken |= b.node_key(other)?.as_deref() == Some(id.as_str());
            }
            let new = if taken { format!("{id}@{url}") } else { id.clone() };
            if new == old {
                return Ok((Some(new), taken));
            }
            let known = !b.watermarks(&new)?.is_empty();
            b.set_node_key(&url, &new)?;
            b.record_event(now_ms(), &new, &format!("node {url} is keyed {new} (was {old})"))?;
            Ok(((!known && resumed_empty).then_some(new), taken))
        })
        .await?;
    if outcome.1 {
        tracing::error!(
            node = %node.url, control_id = %announced,
            "two configured control nodes announce the same control-id; give each its own `control-id` in \
             control.toml (this edge keeps their offsets apart by URL meanwhile)"
        );
    }
    Ok(outcome.0)
}

/// Handles one frame after the Hello (`body` as received, whose chunk a `Tasks` frame stores).
async fn handle(
    inner: &Arc<Inner>,
    key: &str,
    control_id: &str,
    frame: ControlFrame,
    body: Bytes,
    sender: &mut Sender,
    link: Option<&Link>,
) -> Result<(), End> {
    match frame {
        ControlFrame::Hello { .. } => return Err(End::Failed("control sent a second Hello".into())),
        ControlFrame::Log { .. } => return Err(End::Failed("control sent a second Log".into())),
        ControlFrame::Heartbeat { .. } => return Ok(()),
        ControlFrame::Tasks { queue, first_offset, tasks } => {
            let k = key.to_owned();
            // The chunk as control encoded it: the body's tail (it decoded as this frame).
            let chunk = tasks_payload(&body).map(|(_, _, chunk)| body.slice_ref(chunk));
            let (stored, buffer_id, mut tasks) = inner
                .buffer
                .call(move |b| {
                    let stored = match chunk {
                        Some(chunk) => b.store_chunk(&k, queue, first_offset, &chunk, &tasks)?,
                        None => b.store(&k, queue, first_offset, &tasks)?,
                    };
                    Ok((stored, b.id(), tasks))
                })
                .await?;
            if stored.inserted > 0 {
                tasks.drain(..stored.duplicates as usize);
                let from = stored.received + 1 - stored.inserted;
                let chunk = PendingChunk { from, last: stored.received, tasks: Pending::Tasks(tasks) };
                inner.fresh.offer(key, queue, buffer_id, chunk);
            }
            let metrics = inner.metrics();
            ControlMetrics::add(&metrics.tasks_received, stored.inserted);
            ControlMetrics::add(&metrics.duplicates, stored.duplicates);
            if stored.inserted > 0 {
                inner.update_buffer_gauge().await;
                apply::wake(inner, key, queue);
            }
        }
        ControlFrame::Trimmed { queue, first_retained } => apply::trimmed(inner, key, queue, first_retained).await?,
        ControlFrame::Policy { name, version, sha256, bytes } => {
            let answer = apply::policy(inner, control_id, name, version, sha256, bytes).await;
            return sender.send(&answer).await;
        }
    }
    if link.is_some() {
        let frame = ack(inner, key, &mut sender.failures_sent).await?;
        sender.send(&frame).await?;
    }
    Ok(())
}

/// Aborts the HTTP/2 connection task when the session ends.
struct ConnGuard(tokio::task::JoinHandle<()>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// TCP, TLS (the current certificates and CRL), HTTP/2, `POST /v1/stream` with `hello` as the
/// first frame: the frame sender, the response body and the connection's guard.
async fn connect(
    inner: &Arc<Inner>,
    node: &ControlNode,
    hello: &EdgeFrame,
) -> Result<(Sender, hyper::body::Incoming, ConnGuard), End> {
    let failed = |what: &str, e: &(dyn std::error::Error + 'static)| End::Failed(format!("{what}: {}", chain(e)));
    let timed = |what: &str| End::Failed(format!("{what}: no answer within {CONNECT_TIMEOUT:?}"));
    let config = inner.tls.current();
    let name = inner.section.server_name.clone().unwrap_or_else(|| node.host.clone());
    let server_name = ServerName::try_from(name.clone()).map_err(|e| failed(&format!("server name `{name}`"), &e))?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((node.host.as_str(), node.port)))
        .await
        .map_err(|_| timed("connecting"))?
        .map_err(|e| failed("connecting", &e))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, TlsConnector::from(config).connect(server_name, tcp))
        .await
        .map_err(|_| timed("TLS handshake"))?
        .map_err(|e| failed("TLS handshake", &e))?;
    let (mut request_sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, StreamBody<BodyStream>>(TokioIo::new(tls))
        .await
        .map_err(|e| failed("HTTP/2 handshake", &e))?;
    let guard = ConnGuard(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream: BodyStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok(Frame::data(bytes)), rx))
    }));
    let uri = format!("{}/v1/stream", node.url.trim_end_matches('/'));
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .body(StreamBody::new(stream))
        .map_err(|e| failed("building the request", &e))?;
    let mut sender = Sender { tx, last_sent: Instant::now(), failures_sent: 0 };
    let resp = request_sender.send_request(req);
    // Queued before the head is awaited: the server reads the Hello before it answers.
    sender.send(hello).await?;
    let resp = tokio::time::timeout(CONNECT_TIMEOUT, resp)
        .await
        .map_err(|_| timed("POST /v1/stream"))?
        .map_err(|e| failed("POST /v1/stream", &e))?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let text = Limited::new(resp.into_body(), 4096).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Err(End::Failed(format!(
            "POST /v1/stream answered {status}: {}",
            String::from_utf8_lossy(&text).trim()
        )));
    }
    Ok((sender, resp.into_body(), guard))
}
