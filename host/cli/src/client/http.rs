//! [`ApiClient`]: bearer-token requests to the control API over hyper and `edgepurge-tls`' rustls,
//! answers read as the typed documents of `edgepurge-api`, streamed request bodies and a
//! Server-Sent Events reader. Every failure becomes a message that says what happened and what
//! to do (check the token, wait, start the cluster); an answer that is not the document the
//! endpoint should send names the endpoint. A purge submission ([`ApiClient::submit`]) tells a
//! lost answer ([`SubmitError::Lost`]: safe to send again with the same idempotency key) from a
//! refusal.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use edgepurge_api::{Accepted, Document, ErrorBody};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Target;

/// The request body type: empty, whole, or streamed from a file.
type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// How long a request may take to answer; a submission's clock starts once its body is sent
/// (a bulk upload takes as long as it takes), an event stream's applies to its response head.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an open event stream may send nothing, not even a keep-alive comment (control sends
/// one every 15 s), before it counts as broken.
pub const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// A client of one control API with one token.
#[derive(Clone)]
pub struct ApiClient {
    target: Target,
    client: Client<HttpsConnector<HttpConnector>, ReqBody>,
}

/// A request body fed from a channel (a file or stdin read on a blocking thread).
pub struct ChannelBody {
    chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    /// Fired when the last chunk was handed to hyper: the answer's clock starts then.
    ended: Option<oneshot::Sender<()>>,
    ended_rx: Option<oneshot::Receiver<()>>,
}

impl ChannelBody {
    /// The body and the sender that feeds it; dropping the sender ends the body.
    pub fn new() -> (mpsc::Sender<std::io::Result<Bytes>>, Self) {
        let (tx, chunks) = mpsc::channel(8);
        let (ended, ended_rx) = oneshot::channel();
        (tx, Self { chunks, ended: Some(ended), ended_rx: Some(ended_rx) })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = self.chunks.poll_recv(cx);
        if let Poll::Ready(None) = polled {
            if let Some(ended) = self.ended.take() {
                let _ = ended.send(());
            }
        }
        polled.map(|item| item.map(|chunk| chunk.map(Frame::data)))
    }
}

/// A purge submission's body: JSON bytes, or a stream read from a file or stdin.
pub enum Upload {
    /// A whole JSON request.
    Json(Bytes),
    /// A streamed bulk body of this content type.
    Stream(&'static str, ChannelBody),
}

/// Why a submission got no usable answer.
#[derive(Debug)]
pub enum SubmitError {
    /// No answer arrived (the connection broke, it timed out) or a gateway said so (502, 503,
    /// 504): the batch may or may not have been accepted, and sending it again with the same
    /// idempotency key is safe (control answers the earlier batch if it was).
    Lost(anyhow::Error),
    /// An answer that sending again would not change: a refusal, a body that could not be read,
    /// a connection that could not be made.
    Failed(anyhow::Error),
}

/// A document the API answered with, and the JSON it came as (what `--json` prints, fields this
/// CLI does not know included).
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The document.
    pub doc: T,
    /// The answer's JSON as sent.
    pub json: Value,
}

/// `json` read as document `T`, the answer of `endpoint` (e.g. `GET /v1/queues`): an error
/// naming the endpoint and the field when it is not that document.
pub fn read_doc<T: Document>(endpoint: &str, json: Value) -> Result<Answer<T>> {
    // The path names the field that did not fit (`queues[0].depth: invalid type …`).
    match serde_path_to_error::deserialize::<_, T>(&json) {
        Ok(doc) => Ok(Answer { doc, json }),
        Err(e) => Err(anyhow!(
            "the answer of {endpoint} is not the `{}` document this CLI reads: {e}\n\
             hint: the control role may be of another version than this CLI ({}); the raw answer: {}",
            T::SCHEMA,
            env!("CARGO_PKG_VERSION"),
            excerpt(json.to_string().as_bytes())
        )),
    }
}

/// The first 200 bytes of `body`, for an error message.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when none was given).
    pub name: String,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// An open Server-Sent Events response, read event by event.
pub struct EventStream {
    body: Incoming,
    buffer: Vec<u8>,
    /// When bytes last arrived (events and keep-alive comments alike).
    heard_at: Instant,
}

impl EventStream {
    /// The next event, or `None` when the server ended the stream; an error when it broke off
    /// or sent nothing for [`STREAM_SILENCE`]. Cancel-safe: what arrived stays buffered.
    pub async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            if let Some(event) = take_event(&mut self.buffer) {
                if event.data.is_empty() && event.name == "message" {
                    continue; // a keep-alive comment
                }
                return Ok(Some(event));
            }
            let frame = tokio::time::timeout_at(self.heard_at + STREAM_SILENCE, self.body.frame()).await;
            let Ok(frame) = frame else {
                anyhow::bail!(
                    "the event stream sent nothing, not even a keep-alive, for {}s",
                    STREAM_SILENCE.as_secs()
                );
            };
            match frame {
                None => return Ok(None),
                Some(frame) => {
                    let frame = frame.context("the event stream broke off")?;
                    self.heard_at = Instant::now();
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Takes the first complete event (ended by a blank line) off `buffer`.
fn take_event(buffer: &mut Vec<u8>) -> Option<SseEvent> {
    // Work on bytes: the buffer may end inside a multi-byte character of the next event.
    let (end, skip) = (0..buffer.len()).find_map(|i| {
        if buffer[i] != b'\n' {
            return None;
        }
        match (buffer.get(i + 1), buffer.get(i + 2)) {
            (Some(b'\n'), _) => Some((i, 2)),
            (Some(b'\r'), Some(b'\n')) => Some((i, 3)),
            _ => None,
        }
    })?;
    let block = String::from_utf8_lossy(&buffer[..end]).replace('\r', "");
    buffer.drain(..end + skip);
    let mut name = "message".to_owned();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_owned(),
            "data" => data.push(value),
            _ => {} // comments (`: keep-alive`), `id`, `retry`
        }
    }
    Some(SseEvent { name, data: data.join("\n") })
}

impl ApiClient {
    /// A client for `target`, trusting the Mozilla roots plus `target.ca`.
    pub fn new(target: Target) -> Result<Self> {
        let cas: Vec<_> = target.ca.iter().collect();
        let tls = edgepurge_tls::client_config(&cas).context("the TLS settings of the API client")?;
        let client = edgepurge_edge::origin_client::http_client(tls, Duration::from_secs(10));
        Ok(Self { target, client })
    }

    /// `GET path` (path and query, already encoded); the answer, document `T`.
    pub async fn get<T: Document>(&self, path: &str) -> Result<Answer<T>> {
        let response = self.send(Method::GET, path, None, empty(), Some(ANSWER_TIMEOUT)).await?;
        read_doc(&endpoint(&Method::GET, path), json_of(response).await?)
    }

    /// `POST path` once with `upload` and `Idempotency-Key: key`: the `202` document, or why
    /// there is none, telling a lost answer (retry with the same key) from a refusal.
    pub async fn submit(&self, path: &str, upload: Upload, key: &str) -> Result<Answer<Accepted>, SubmitError> {
        let (content_type, body, ended) = match upload {
            Upload::Json(bytes) => {
                ("application/json", Full::new(bytes).map_err(|never| match never {}).boxed_unsync(), None)
            }
            Upload::Stream(content_type, mut body) => {
                let ended = body.ended_rx.take();
                (content_type, body.boxed_unsync(), ended)
            }
        };
        let request = self
            .request(Method::POST, path, Some(content_type))
            .header("idempotency-key", key)
            .body(body)
            .map_err(|e| SubmitError::Failed(anyhow!("the purge request cannot be built: {e}")))?;
        let server = &self.target.server;
        let lost_in_time = || {
            SubmitError::Lost(anyhow!(
                "the control API at {server} did not answer within {}s of receiving the purge",
                ANSWER_TIMEOUT.as_secs()
            ))
        };
        let sent = self.client.request(request);
        // The answer's clock starts when the body is sent: at once for JSON, at the end of a stream.
        let answer_due = async {
            if let Some(ended) = ended {
                let _ = ended.await;
            }
            tokio::time::sleep(ANSWER_TIMEOUT).await;
        };
        let response = tokio::select! {
            response = sent => response.map_err(|e| self.submit_error(&e))?,
            _ = answer_due => return Err(lost_in_time()),
        };
        let status = response.status();
        let gateway =
            matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT);
        let response = match check(response).await {
            Ok(response) => response,
            Err(e) if gateway => return Err(SubmitError::Lost(e)),
            Err(e) => return Err(SubmitError::Failed(e)),
        };
        let body = match tokio::time::timeout(ANSWER_TIMEOUT, response.into_body().collect()).await {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(e)) => return Err(SubmitError::Lost(anyhow!("the API's answer broke off: {e}"))),
            Err(_) => return Err(lost_in_time()),
        };
        let json = serde_json::from_slice(&body)
            .map_err(|e| SubmitError::Failed(anyhow!("the API's answer is not JSON ({e}): {}", excerpt(&body))))?;
        read_doc(&endpoint(&Method::POST, path), json).map_err(SubmitError::Failed)
    }

    /// `GET path` as a Server-Sent Events stream.
    pub async fn events(&self, path: &str) -> Result<EventStream> {
        let response = self.send(Method::GET, path, Some("text/event-stream"), empty(), Some(ANSWER_TIMEOUT)).await?;
        let response = check(response).await?;
        Ok(EventStream { body: response.into_body(), buffer: Vec::new(), heard_at: Instant::now() })
    }

    /// A request to `path` with the token; `content_type` is the `Accept` of a GET, else the
    /// body's `Content-Type`.
    fn request(&self, method: Method, path: &str, content_type: Option<&str>) -> hyper::http::request::Builder {
        let url = format!("{}{path}", self.target.server);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.target.token))
            .header(header::USER_AGENT, concat!("edgepurge/", env!("CARGO_PKG_VERSION")));
        if let Some(content_type) = content_type {
            let name = if method == Method::GET { header::ACCEPT } else { header::CONTENT_TYPE };
            request = request.header(name, content_type);
        }
        request
    }

    /// Sends one request with the token; `timeout` bounds the wait for the response head.
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: ReqBody,
        timeout: Option<Duration>,
    ) -> Result<Response<Incoming>> {
        let request = self
            .request(method, path, content_type)
            .body(body)
            .with_context(|| format!("`{}{path}` is not a valid request address", self.target.server))?;
        let sent = self.client.request(request);
        let result = match timeout {
            Some(limit) => tokio::time::timeout(limit, sent).await.map_err(|_| {
                anyhow!("the control API at {} did not answer within {}s", self.target.server, limit.as_secs())
            })?,
            None => sent.await,
        };
        result.map_err(|e| self.transport_error(&e))
    }

    /// A submission's transport failure: lost unless the request never left (no connection, an
    /// untrusted certificate) or our own body failed (the file could not be read).
    fn submit_error(&self, e: &hyper_util::client::legacy::Error) -> SubmitError {
        let message = self.transport_error(e);
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut ours = false;
        while let Some(s) = source {
            ours |= s.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_user);
            source = s.source();
        }
        if e.is_connect() || ours {
            SubmitError::Failed(message)
        } else {
            SubmitError::Lost(message)
        }
    }

    /// A transport failure as a message with the likely cause.
    fn transport_error(&self, e: &hyper_util::client::legacy::Error) -> anyhow::Error {
        let server = &self.target.server;
        let mut causes = Vec::new();
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        let detail = causes.last().cloned().unwrap_or_default();
        if causes.iter().any(|c| c.to_ascii_lowercase().contains("certificate")) {
            anyhow!(
                "cannot connect to the control API at {server}: {detail}\n\
                 hint: its TLS certificate is not trusted: pass --ca FILE with the CA that signed it \
                 (a local cluster's cluster.json names it as `ca`)"
            )
        } else if e.is_connect() {
            anyhow!(
                "cannot connect to the control API at {server}: {detail}\n\
                 hint: is the control role running at {server}? start a local cluster with `make dev`"
            )
        } else {
            anyhow!("the request to the control API at {server} failed: {}", causes.join(": "))
        }
    }
}

/// `METHOD /path` without the query, as error messages name an endpoint.
pub fn endpoint(method: &Method, path: &str) -> String {
    format!("{method} {}", path.split('?').next().unwrap_or(path))
}

fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The response if it is a success, else an error with the API's message and a hint.
async fn check(response: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let message = serde_json::from_str::<ErrorBody>(&text).map_or_else(|_| text.trim().to_owned(), |body| body.error);
    let mut error = format!("the control API answered {status}");
    if !message.is_empty() {
        error.push_str(": ");
        error.push_str(&message);
    }
    if let Some(hint) = hint(status, retry_after.as_deref()) {
        error.push_str("\nhint: ");
        error.push_str(&hint);
    }
    Err(anyhow!(error))
}

/// What to do about an error status.
fn hint(status: StatusCode, retry_after: Option<&str>) -> Option<String> {
    Some(match status {
        StatusCode::UNAUTHORIZED => "check the token (--token, EDGEPURGE_TOKEN or the cluster.json); \
                                     `edgepurge token create` makes a new one"
            .to_owned(),
        StatusCode::FORBIDDEN => "this token may not do that: its hosts do not cover the target, or it needs an \
                                  admin token (`edgepurge token create --admin`)"
            .to_owned(),
        StatusCode::TOO_MANY_REQUESTS => match retry_after {
            Some(secs) => format!("this token's rate limit is used up: retry after {secs} s"),
            None => "this token's rate limit is used up: retry later".to_owned(),
        },
        StatusCode::NOT_FOUND => "no such batch or resource for this token".to_owned(),
        StatusCode::SERVICE_UNAVAILABLE => "the control role's store is not answering: retry shortly".to_owned(),
        _ => return None,
    })
}

/// The JSON body of a successful response.
async fn json_of(response: Response<Incoming>) -> Result<Value> {
    let response = check(response).await?;
    let body = response.into_body().collect().await.context("the API's answer broke off")?.to_bytes();
    serde_json::from_slice(&body).with_context(|| format!("the API's answer is not JSON: {}", excerpt(&body)))
}

/// Percent-encodes a query parameter value (everything but RFC 3986's unreserved characters).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines() {
        let mut buffer = b"event: progress\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: pro".to_vec();
        let first = take_event(&mut buffer).unwrap();
        assert_eq!(first, SseEvent { name: "progress".into(), data: "{\"a\":1}".into() });
        let comment = take_event(&mut buffer).unwrap();
        assert_eq!(comment, SseEvent { name: "message".into(), data: String::new() });
        assert!(take_event(&mut buffer).is_none(), "an incomplete event waits for more");
        buffer.extend_from_slice(b"gress\r\ndata: x\r\n\r\n");
        assert_eq!(take_event(&mut buffer).unwrap(), SseEvent { name: "progress".into(), data: "x".into() });
    }

    #[test]
    fn an_answer_that_is_not_the_document_names_the_endpoint() {
        let json = serde_json::json!({"queues": [{"queue": "zero"}]});
        let e = read_doc::<edgepurge_api::QueueList>("GET /v1/queues", json).unwrap_err().to_string();
        assert!(e.starts_with("the answer of GET /v1/queues is not the `Queues` document"), "{e}");
        assert!(e.contains("queues[0].queue: invalid type: string \"zero\""), "names the field: {e}");
        assert_eq!(endpoint(&Method::GET, "/v1/records?url=x"), "GET /v1/records");
        let known = serde_json::to_value(edgepurge_api::Decommissioned::example()).unwrap();
        let answer = read_doc::<edgepurge_api::Decommissioned>("DELETE /v1/edges/edge-1", known.clone()).unwrap();
        assert_eq!((answer.doc, answer.json), (edgepurge_api::Decommissioned::example(), known));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("https://a.com/x?y=1&z"), "https%3A%2F%2Fa.com%2Fx%3Fy%3D1%26z");
    }
}
