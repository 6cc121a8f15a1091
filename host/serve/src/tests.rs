//! The accept loop over real sockets: plain HTTP/1.1 and HTTP/2, TLS (with and without a client
//! certificate), the handshake timeout, refusals, closing a connection from a hook, and the drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgepurge_tls::mtls::{ClientFiles, ServerFiles};
use edgepurge_tls::rustls::pki_types::ServerName;
use edgepurge_tls::rustls::ClientConfig;
use edgepurge_tls::{ALPN_H2, ALPN_HTTP1};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::*;

/// A test fails after this instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

async fn patiently<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future).await.unwrap_or_else(|_| panic!("{what} took longer than {PATIENCE:?}"))
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A running server: the switch that stops accepting, and the task that returns its drain.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Draining>,
}

impl Running {
    fn start<K, F, S, B>(server: Server<K>, connect: F) -> Running
    where
        K: Copy + Send + Sync + 'static,
        F: Fn(Accepted<'_, K>) -> Option<ConnectionService<S>> + Send + Sync + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (stop, stopped) = oneshot::channel();
        Running { stop: Some(stop), task: tokio::spawn(server.serve(connect, stopped)) }
    }

    /// Stops accepting; the listeners are closed when this returns.
    async fn stop(mut self) -> Draining {
        self.stop.take().unwrap().send(()).unwrap();
        patiently("serve returning", self.task).await.unwrap()
    }
}

/// A service answering with `text`.
fn answer(
    text: String,
) -> ConnectionService<
    impl hyper::service::Service<Request<Incoming>, Response = Response<String>, Error = Infallible, Future = impl Send>
        + Send,
> {
    ConnectionService::new(service_fn(move |_req: Request<Incoming>| {
        let text = text.clone();
        async move { Ok::<_, Infallible>(Response::new(text)) }
    }))
}

/// Says which listener, protocol and client certificate a connection had.
fn describe<K: std::fmt::Debug>(accepted: &Accepted<'_, K>) -> String {
    match &accepted.tls {
        None => format!("{:?} plain", accepted.listener),
        Some(tls) => {
            let edge = tls.certificates.first().and_then(edgepurge_tls::certs::edge_name);
            format!("{:?} {:?} {edge:?}", accepted.listener, tls.negotiated)
        }
    }
}

/// Sends `GET /` over HTTP/1.1 or HTTP/2 (prior knowledge) on `io`; the status and body.
async fn get<I>(io: I, http2: bool) -> hyper::Result<(StatusCode, String)>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let request = || Request::get("http://localhost/").body(Empty::<Bytes>::new()).unwrap();
    let response = if http2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
        tokio::spawn(conn);
        send.send_request(request()).await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(conn);
        send.send_request(request()).await?
    };
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(body.to_vec()).unwrap()))
}

async fn plain_get(addr: SocketAddr, http2: bool) -> hyper::Result<(StatusCode, String)> {
    get(TcpStream::connect(addr).await.unwrap(), http2).await
}

/// A development CA with the control certificate (for `localhost`) and one edge, `edge-1`.
fn pki() -> (tempfile::TempDir, edgepurge_tls::certs::Initialized) {
    let dir = tempfile::tempdir().unwrap();
    let made = edgepurge_tls::certs::init(dir.path(), 1, &[], false).unwrap();
    (dir, made)
}

/// Connects over TLS offering `alpn`, trusting the dev CA; with `client`, presenting edge-1.
async fn tls_connect(
    addr: SocketAddr,
    made: &edgepurge_tls::certs::Initialized,
    alpn: &[&[u8]],
    client: bool,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let layout = &made.layout;
    let mut config: ClientConfig = if client {
        let edge = &made.edges[0];
        edgepurge_tls::mtls::client_config(&ClientFiles {
            cert: edge.cert.clone(),
            key: edge.key.clone(),
            ca: layout.ca_cert.clone(),
            crl: None,
        })
        .unwrap()
    } else {
        edgepurge_tls::client_config(&[&layout.ca_cert]).unwrap()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let stream = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost").unwrap(), stream).await
}

#[tokio::test]
async fn plain_listeners_serve_http1_and_http2_and_name_the_listener() {
    let ((a, a_addr), (b, b_addr)) = (bind().await, bind().await);
    let server = Server::new("test", Timeouts::DEFAULT).listen("a", a, None).listen("b", b, None);
    let running = Running::start(server, |accepted| Some(answer(describe(&accepted))));
    for (addr, label) in [(a_addr, "a"), (b_addr, "b")] {
        for http2 in [false, true] {
            let (status, body) = patiently("a plain request", plain_get(addr, http2)).await.unwrap();
            assert_eq!((status, body), (StatusCode::OK, format!("{label:?} plain")), "http2: {http2}");
        }
    }
    assert_eq!(running.stop().await.drain().await, Drained::Closed);
    assert!(TcpStream::connect(a_addr).await.is_err() && TcpStream::connect(b_addr).await.is_err(), "still listening");
}

#[tokio::test]
async fn http2_only_refuses_http1() {
    let (listener, addr) = bind().await;
    let server = Server::new("test", Timeouts::DEFAULT).listen((), listener, None).http2_only();
    let running = Running::start(server, |_| Some(answer("h2".into())));
    assert_eq!(patiently("an HTTP/2 request", plain_get(addr, true)).await.unwrap().1, "h2");
    assert!(patiently("an HTTP/1.1 request", plain_get(addr, false)).await.is_err(), "HTTP/1.1 was served");
    running.stop().await.drain().await;
}

#[tokio::test]
async fn tls_listener_serves_the_protocol_alpn_chose() {
    let (_dir, made) = pki();
    let tls = ReloadingServerConfig::without_client_auth(&made.layout.control_cert, &made.layout.control_key).unwrap();
    let ((plain, plain_addr), (secure, secure_addr)) = (bind().await, bind().await);
    let server = Server::new("test", Timeouts::DEFAULT).listen("plain", plain, None).listen("tls", secure, Some(tls));
    let running = Running::start(server, |accepted| Some(answer(describe(&accepted))));
    for (alpn, http2, expected) in [
        (&[ALPN_H2, ALPN_HTTP1][..], true, "\"tls\" Http2 None"),
        (&[ALPN_HTTP1][..], false, "\"tls\" Http1 None"),
        (&[][..], false, "\"tls\" Unknown None"),
        (&[][..], true, "\"tls\" Unknown None"),
    ] {
        let stream = patiently("a TLS handshake", tls_connect(secure_addr, &made, alpn, false)).await.unwrap();
        let (status, body) = patiently("a TLS request", get(stream, http2)).await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, expected), "ALPN {alpn:?}");
    }
    // The plain listener next to it is still plain.
    assert_eq!(plain_get(plain_addr, false).await.unwrap().1, "\"plain\" plain");
    running.stop().await.drain().await;
}

#[tokio::test]
async fn the_hook_sees_the_client_certificate_and_may_refuse_the_connection() {
    let (_dir, made) = pki();
    let layout = &made.layout;
    let tls = ReloadingServerConfig::new(ServerFiles {
        cert: layout.control_cert.clone(),
        key: layout.control_key.clone(),
        client_ca: layout.ca_cert.clone(),
        crl: Some(layout.crl.clone()),
        allowed_edges: None,
    })
    .unwrap();
    let (listener, addr) = bind().await;
    let server = Server::new("test", Timeouts::DEFAULT).listen((), listener, Some(tls)).http2_only();
    let refuse = Arc::new(Mutex::new(false));
    let running = Running::start(server, {
        let refuse = Arc::clone(&refuse);
        move |accepted| (!*refuse.lock().unwrap()).then(|| answer(describe(&accepted)))
    });
    let stream = patiently("an mTLS handshake", tls_connect(addr, &made, &[ALPN_H2], true)).await.unwrap();
    assert_eq!(get(stream, true).await.unwrap().1, "() Http2 Some(\"edge-1\")");
    // Refused by the hook after the handshake: the connection is closed.
    *refuse.lock().unwrap() = true;
    let stream = patiently("an mTLS handshake", tls_connect(addr, &made, &[ALPN_H2], true)).await.unwrap();
    assert!(patiently("a refused connection", get(stream, true)).await.is_err());
    running.stop().await.drain().await;
}

#[tokio::test]
async fn silent_and_garbage_clients_are_refused_without_holding_up_others() {
    let (_dir, made) = pki();
    let tls = ReloadingServerConfig::without_client_auth(&made.layout.control_cert, &made.layout.control_key).unwrap();
    let (listener, addr) = bind().await;
    let timeouts = Timeouts { handshake: Duration::from_millis(300), ..Timeouts::DEFAULT };
    let refused = Arc::new(Mutex::new(Vec::new()));
    let server = Server::new("test", timeouts).listen((), listener, Some(tls)).on_refused({
        let refused = Arc::clone(&refused);
        move |r: Refused<'_, ()>| refused.lock().unwrap().push(matches!(r.error, HandshakeError::TimedOut(_)))
    });
    let running = Running::start(server, |_| Some(answer("ok".into())));

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = patiently("the garbage connection closing", garbage.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/"), "answered cleartext on the TLS port");
    // A good client is served while the silent one is still waiting for its handshake.
    let stream = tls_connect(addr, &made, &[ALPN_H2], false).await.unwrap();
    assert_eq!(get(stream, true).await.unwrap().1, "ok");
    let started = tokio::time::Instant::now();
    let read = patiently("the silent connection closing", silent.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(*refused.lock().unwrap(), [false, true], "garbage failed, then silent timed out");
    running.stop().await.drain().await;
}

/// A service that answers once the gate opens, after saying that a request arrived.
fn gated(
    arrived: Arc<Notify>,
    gate: Arc<Notify>,
) -> ConnectionService<
    impl hyper::service::Service<Request<Incoming>, Response = Response<String>, Error = Infallible, Future = impl Send>
        + Send,
> {
    ConnectionService::new(service_fn(move |_req: Request<Incoming>| {
        let (arrived, gate) = (Arc::clone(&arrived), Arc::clone(&gate));
        async move {
            arrived.notify_one();
            gate.notified().await;
            Ok::<_, Infallible>(Response::new("drained".to_owned()))
        }
    }))
}

#[tokio::test]
async fn shutdown_closes_the_listeners_and_drains_requests_in_flight() {
    let (listener, addr) = bind().await;
    let (arrived, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let server = Server::new("test", Timeouts::DEFAULT).listen((), listener, None);
    let running = Running::start(server, {
        let (arrived, gate) = (Arc::clone(&arrived), Arc::clone(&gate));
        move |_| Some(gated(Arc::clone(&arrived), Arc::clone(&gate)))
    });
    let mut in_flight = Vec::new();
    for http2 in [false, true] {
        in_flight.push(tokio::spawn(plain_get(addr, http2)));
        patiently("a request arriving", arrived.notified()).await;
    }
    let draining = running.stop().await;
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting while draining");
    assert_eq!(draining.open(), 2);
    let drained = tokio::spawn(draining.drain());
    gate.notify_waiters();
    for request in in_flight {
        assert_eq!(patiently("a drained request", request).await.unwrap().unwrap(), (StatusCode::OK, "drained".into()));
    }
    assert_eq!(patiently("the drain", drained).await.unwrap(), Drained::Closed);
}

#[tokio::test]
async fn the_drain_gives_up_after_its_timeout() {
    let (listener, addr) = bind().await;
    let (arrived, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let timeouts = Timeouts { drain: Duration::from_millis(200), ..Timeouts::DEFAULT };
    let server = Server::new("test", timeouts).listen((), listener, None);
    let running = Running::start(server, {
        let arrived = Arc::clone(&arrived);
        move |_| Some(gated(Arc::clone(&arrived), Arc::clone(&gate)))
    });
    let _request = tokio::spawn(plain_get(addr, false));
    patiently("a request arriving", arrived.notified()).await;
    assert_eq!(patiently("the drain", running.stop().await.drain()).await, Drained::TimedOut);
}

#[tokio::test]
async fn close_when_closes_the_connection() {
    let (listener, addr) = bind().await;
    let (close, closed) = oneshot::channel::<()>();
    let closed = Mutex::new(Some(closed));
    let server = Server::new("test", Timeouts::DEFAULT).listen((), listener, None).http2_only();
    let running = Running::start(server, move |_| {
        let closed = closed.lock().unwrap().take().expect("one connection");
        Some(answer("open".into()).close_when(async move {
            let _ = closed.await;
        }))
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    let conn = tokio::spawn(conn);
    let request = || Request::get("http://localhost/").body(Empty::<Bytes>::new()).unwrap();
    assert_eq!(send.send_request(request()).await.unwrap().status(), StatusCode::OK);
    close.send(()).unwrap();
    let _ = patiently("the connection closing", conn).await;
    assert!(send.send_request(request()).await.is_err(), "served after close_when completed");
    assert_eq!(running.stop().await.drain().await, Drained::Closed);
}
