//! A programmable origin: a real hyper HTTP/1.1 server on 127.0.0.1:0 whose answer per path is
//! scripted with [`Reply`], which records every request it receives (method, path and query,
//! headers) so tests can count origin requests and check what the edge sent.
//!
//! Waiting is never done with sleeps: a [`Gate`] holds a reply until the test opens it, and
//! [`Origin::wait_count`] polls until a request has arrived (with a generous timeout that only
//! turns a hang into a failure).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// How long a test waits for something that should happen promptly before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A latch the test opens: replies held on it wait until then (forever if never opened).
#[derive(Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate(Arc::new(watch::channel(false).0))
    }

    /// Opens the gate: every held reply proceeds, and later ones do not wait.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// One scripted origin answer.
#[derive(Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    hold: Option<Gate>,
    stall_body: Option<Gate>,
    conditional: bool,
    drop_connection: bool,
}

impl Reply {
    /// `200` with `body` and no headers.
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::status(200).body(body)
    }

    /// An empty response with `status`.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            hold: None,
            stall_body: None,
            conditional: false,
            drop_connection: false,
        }
    }

    /// Closes the connection without answering (the edge sees an origin failure).
    pub fn drop_connection() -> Reply {
        Reply { drop_connection: true, ..Reply::status(200) }
    }

    /// Adds a response header (repeatable).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Shorthand for a `Cache-Control` header.
    pub fn cc(self, value: &str) -> Reply {
        self.header("cache-control", value)
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = body.into();
        self
    }

    /// Holds the whole answer (after recording the request) until `gate` opens.
    pub fn hold(mut self, gate: &Gate) -> Reply {
        self.hold = Some(gate.clone());
        self
    }

    /// Sends the head and the first half of the body at once, the rest once `gate` opens.
    pub fn stall_body(mut self, gate: &Gate) -> Reply {
        self.stall_body = Some(gate.clone());
        self
    }

    /// Answers a conditional request that matches this reply's `ETag` (`If-None-Match`) or,
    /// without `If-None-Match`, its `Last-Modified` (`If-Modified-Since`) with `304` and this
    /// reply's headers.
    pub fn conditional(mut self) -> Reply {
        self.conditional = true;
        self
    }

    fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether `req` is a conditional request this reply answers with `304`.
    fn not_modified(&self, req: &Recorded) -> bool {
        if !self.conditional {
            return false;
        }
        if let Some(inm) = req.header("if-none-match") {
            let Some(etag) = self.header_value("etag") else { return false };
            let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
            return inm.split(',').any(|t| t.trim() == "*" || bare(t) == bare(etag));
        }
        let date = |v: Option<&str>| v.and_then(|v| httpdate::parse_http_date(v).ok());
        match (date(req.header("if-modified-since").as_deref()), date(self.header_value("last-modified"))) {
            (Some(since), Some(modified)) => modified <= since,
            _ => false,
        }
    }
}

/// A request the origin received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method.
    pub method: http::Method,
    /// Path and query, as received.
    pub path_and_query: String,
    /// The request headers.
    pub headers: HeaderMap,
}

impl Recorded {
    /// A header's value (the first), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

type Script = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct State {
    scripts: Mutex<HashMap<String, Script>>,
    log: Mutex<Vec<Recorded>>,
    connections: Mutex<Vec<AbortHandle>>,
}

/// The programmable origin. Paths without a script answer `200`, `Cache-Control: max-age=600`,
/// body `body of <path and query>`.
pub struct Origin {
    addr: SocketAddr,
    state: Arc<State>,
    accept: AbortHandle,
}

impl Origin {
    /// Starts an origin on 127.0.0.1:0.
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = Arc::clone(&shared);
                let service = service_fn(move |req: Request<Incoming>| answer(Arc::clone(&state), req));
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let task = tokio::spawn(conn);
                shared.connections.lock().unwrap().push(task.abort_handle());
            }
        });
        Origin { addr, state, accept: accept.abort_handle() }
    }

    /// `http://<addr>`, for the edge's `[[origin]] url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers requests for `path` (query ignored) with `reply` from now on.
    pub fn set(&self, path: &str, reply: Reply) {
        self.set_fn(path, move |_| reply.clone());
    }

    /// Answers requests for `path` (query ignored) with whatever `script` returns for each;
    /// the path `*` scripts every path without a script of its own.
    pub fn set_fn(&self, path: &str, script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        self.state.scripts.lock().unwrap().insert(path.to_owned(), Arc::new(script));
    }

    /// Every request received for exactly `path_and_query`, oldest first.
    pub fn requests(&self, path_and_query: &str) -> Vec<Recorded> {
        let log = self.state.log.lock().unwrap();
        log.iter().filter(|r| r.path_and_query == path_and_query).cloned().collect()
    }

    /// How many requests arrived for exactly `path_and_query`.
    pub fn count(&self, path_and_query: &str) -> usize {
        self.requests(path_and_query).len()
    }

    /// Requests received in all.
    pub fn total(&self) -> usize {
        self.state.log.lock().unwrap().len()
    }

    /// The latest request for `path_and_query`; panics when there is none.
    pub fn last(&self, path_and_query: &str) -> Recorded {
        self.requests(path_and_query).pop().unwrap_or_else(|| panic!("the origin never received {path_and_query}"))
    }

    /// Waits until at least `n` requests for `path_and_query` arrived (fails after [`PATIENCE`]).
    pub async fn wait_count(&self, path_and_query: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.count(path_and_query) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the origin received {} requests for {path_and_query}, expected {n}",
                self.count(path_and_query)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Closes every open connection at once (mid-response too); new connections are accepted.
    pub fn cut_connections(&self) {
        for conn in self.state.connections.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    /// Stops listening and closes every connection: from now on connections are refused.
    pub fn stop(&self) {
        self.accept.abort();
        self.cut_connections();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

type OriginBody = BoxBody<Bytes, Infallible>;

/// The error that makes hyper close the connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<OriginBody>, Dropped> {
    let (parts, body) = req.into_parts();
    let _ = body.collect().await;
    let recorded = Recorded {
        method: parts.method,
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        headers: parts.headers,
    };
    let script = {
        let scripts = state.scripts.lock().unwrap();
        scripts.get(parts.uri.path()).or_else(|| scripts.get("*")).cloned()
    };
    let reply = match script {
        Some(script) => script(&recorded),
        None => {
            Reply::ok(format!("body of {}", recorded.path_and_query)).cc("max-age=600").header("surrogate-key", "k1")
        }
    };
    let not_modified = reply.not_modified(&recorded);
    state.log.lock().unwrap().push(recorded);
    if let Some(gate) = &reply.hold {
        gate.wait().await;
    }
    if reply.drop_connection {
        return Err(Dropped);
    }
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Full::new(Bytes::new()).boxed())
    } else if let Some(gate) = reply.stall_body.clone() {
        let half = reply.body.len() / 2;
        let (first, rest) = (reply.body.slice(..half), reply.body.slice(half..));
        let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(Frame::data(first)) }).chain(
            futures_util::stream::once(async move {
                gate.wait().await;
                Ok(Frame::data(rest))
            }),
        );
        (StatusCode::from_u16(reply.status).unwrap(), BodyExt::boxed(StreamBody::new(stream)))
    } else {
        (StatusCode::from_u16(reply.status).unwrap(), Full::new(reply.body.clone()).boxed())
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    for (name, value) in &reply.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        resp.headers_mut().append(name, HeaderValue::from_str(value).unwrap());
    }
    Ok(resp)
}

/// A local port that refuses connections: bound (so no other test takes it) but not listening.
pub struct Refusing {
    socket: tokio::net::TcpSocket,
}

impl Refusing {
    /// Binds a port without listening.
    pub fn new() -> Refusing {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        Refusing { socket }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.socket.local_addr().unwrap())
    }
}

/// An HTTP date `secs_ago` seconds in the past (negative: in the future).
pub fn http_date_ago(secs_ago: i64) -> String {
    let now = std::time::SystemTime::now();
    let t = if secs_ago >= 0 {
        now - Duration::from_secs(secs_ago as u64)
    } else {
        now + Duration::from_secs(secs_ago.unsigned_abs())
    };
    httpdate::fmt_http_date(t)
}
