//! TLS end to end: the edge's TLS listener (HTTP/2 and HTTP/1.1 by ALPN, the same cache as the
//! cleartext listener), https origins trusted through a per-origin `ca-file`, an untrusted origin
//! answered 502 naming the certificate problem, hostile TLS clients that cannot stall others,
//! and graceful shutdown of TLS requests in flight.
//!
//! Certificates come from rcgen: private CAs, and leaves for `127.0.0.1` (IP SAN, since every
//! listener here is on loopback). Self-contained: it needs nothing from `support`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edgepurge_edge::config::EdgeConfig;
use edgepurge_edge::server::Edge;
use edgepurge_policy_runtime::LoadedPolicy;
use edgepurge_tls::rustls::pki_types::ServerName;
use edgepurge_tls::{ALPN_H2, ALPN_HTTP1};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Only there so a broken build fails instead of hanging; no assertion depends on it.
const PATIENCE: Duration = Duration::from_secs(30);

async fn patiently<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f).await.unwrap_or_else(|_| panic!("{what}: no answer within {PATIENCE:?}"))
}

/// A private CA writing its certificate and leaves into a temporary directory.
struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (a `ca-file`).
    ca_file: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = TempDir::new().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Pki { dir, ca, ca_file }
    }

    /// A certificate for `127.0.0.1` and `localhost`: (certificate file, key file).
    fn leaf(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let cert = CertificateParams::new(sans).unwrap().signed_by(&key, &self.ca).unwrap();
        let (cert_file, key_file) =
            (self.dir.path().join(format!("{name}.pem")), self.dir.path().join(format!("{name}.key")));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

/// An origin on 127.0.0.1:0, over TLS when given a certificate. Every path is cacheable for 60 s;
/// `/gated*` waits for [`TestOrigin::open_gate`].
struct TestOrigin {
    addr: SocketAddr,
    /// Each request's path and HTTP version, in arrival order.
    seen: Arc<Mutex<Vec<(String, Version)>>>,
    gate: Arc<Semaphore>,
}

impl TestOrigin {
    async fn start(tls: Option<(&Path, &Path)>) -> TestOrigin {
        let acceptor =
            tls.map(|(cert, key)| TlsAcceptor::from(Arc::new(edgepurge_tls::server_config(cert, key).unwrap())));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = TestOrigin {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        };
        let (seen, gate) = (Arc::clone(&origin.seen), Arc::clone(&origin.gate));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (seen, gate, acceptor) = (Arc::clone(&seen), Arc::clone(&gate), acceptor.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (seen, gate) = (Arc::clone(&seen), Arc::clone(&gate));
                        async move {
                            let path = req.uri().path().to_owned();
                            seen.lock().unwrap().push((path.clone(), req.version()));
                            if path.starts_with("/gated") {
                                drop(gate.acquire().await.unwrap());
                            }
                            let resp = Response::builder()
                                .header("cache-control", "max-age=60")
                                .body(Full::new(Bytes::from(format!("body of {path}"))))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match acceptor {
                        None => builder.serve_connection(TokioIo::new(stream), service).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                            // The edge refusing our certificate ends here.
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        origin
    }

    fn count(&self, path: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|(p, _)| p == path).count()
    }

    fn version(&self, path: &str) -> Option<Version> {
        self.seen.lock().unwrap().iter().find(|(p, _)| p == path).map(|(_, v)| *v)
    }

    fn open_gate(&self) {
        self.gate.add_permits(1_000);
    }
}

/// A running edge with a TLS listener.
struct RunningEdge {
    proxy: SocketAddr,
    tls: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<anyhow::Result<()>>,
}

impl RunningEdge {
    /// Starts an edge with `[tls]` from `cert`/`key` and the given `[[origin]]` tables.
    async fn start(cert: &Path, key: &Path, origins: &str) -> RunningEdge {
        let toml = format!(
            "listen = \"127.0.0.1:0\"\nadmin-listen = \"127.0.0.1:0\"\n{origins}\n\
             [tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        );
        let config = EdgeConfig::parse(&toml, "tls-test.toml").unwrap();
        let edge = Edge::new(config, LoadedPolicy::builtin(Default::default())).unwrap().bind().await.unwrap();
        let (proxy, tls) = (edge.proxy_addr(), edge.tls_addr().expect("[tls] is configured"));
        let (stop, stop_rx) = oneshot::channel::<()>();
        let served = tokio::spawn(edge.serve(stop_rx));
        RunningEdge { proxy, tls, stop: Some(stop), served }
    }

    /// Tells the edge to stop accepting and drain.
    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Signals shutdown and waits for `serve` to return.
    async fn shutdown(mut self) {
        self.signal_stop();
        patiently("edge shutdown", &mut self.served).await.unwrap().unwrap();
    }
}

fn origin_table(host: &str, url: &str, ca_file: Option<&Path>) -> String {
    let ca = ca_file.map(|f| format!("ca-file = \"{}\"\n", f.display())).unwrap_or_default();
    format!("[[origin]]\nhost = \"{host}\"\nurl = \"{url}\"\n{ca}")
}

/// One HTTP connection to the edge, over TLS or cleartext.
enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

/// An answer: status, headers, body, version.
type Answer = (StatusCode, HeaderMap, String, Version);

impl Conn {
    /// A TLS connection to `addr` trusting `ca_file` and offering only `alpn`; the negotiated
    /// protocol must be that one.
    async fn tls(addr: SocketAddr, ca_file: &Path, alpn: &[u8]) -> Conn {
        let tls = patiently("TLS handshake", tls_connect(addr, ca_file, alpn)).await.expect("handshake with the edge");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn), "ALPN");
        if alpn == ALPN_H2 {
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
            tokio::spawn(conn);
            Conn::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
            tokio::spawn(conn);
            Conn::H1(send)
        }
    }

    async fn cleartext(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        Conn::H1(send)
    }

    async fn get(&mut self, host: &str, path: &str) -> Answer {
        let resp = match self {
            Conn::H1(send) => {
                let req = Request::get(path).header("host", host).body(Empty::new()).unwrap();
                // HTTP/1.1: the previous exchange must be finished on the connection first.
                patiently("HTTP/1.1 connection ready", send.ready()).await.unwrap();
                patiently("GET over HTTP/1.1", send.send_request(req)).await
            }
            Conn::H2(send) => {
                // HTTP/2 carries the host as `:authority`, from the absolute URI.
                let req = Request::get(format!("https://{host}{path}")).body(Empty::new()).unwrap();
                patiently("GET over HTTP/2", send.send_request(req)).await
            }
        };
        let (parts, body) = resp.expect("a response").into_parts();
        let body = patiently("response body", body.collect()).await.unwrap().to_bytes();
        (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned(), parts.version)
    }
}

async fn tls_connect(
    addr: SocketAddr,
    ca_file: &Path,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut config = edgepurge_tls::client_config(&[ca_file]).unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    let stream = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("127.0.0.1").unwrap(), stream).await
}

fn cache_status(headers: &HeaderMap) -> &str {
    headers.get("cache-status").and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn assert_miss(answer: &Answer) {
    assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
    assert!(cache_status(&answer.1).contains("fwd=miss"), "{answer:?}");
}

fn assert_hit(answer: &Answer) {
    assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
    let status = cache_status(&answer.1);
    assert!(status.contains("hit") && !status.contains("fwd="), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_get_a_miss_then_a_hit_over_h2_and_http1() {
    let pki = Pki::new("edge CA");
    let (cert, key) = pki.leaf("edge");
    let origin = TestOrigin::start(None).await;
    let edge = RunningEdge::start(&cert, &key, &origin_table("a.test", &format!("http://{}", origin.addr), None)).await;

    for (alpn, version, path) in [(ALPN_H2, Version::HTTP_2, "/over-h2"), (ALPN_HTTP1, Version::HTTP_11, "/over-h1")] {
        let mut conn = Conn::tls(edge.tls, &pki.ca_file, alpn).await;
        let miss = conn.get("a.test", path).await;
        assert_miss(&miss);
        assert_eq!(miss.2, format!("body of {path}"));
        assert_eq!(miss.3, version, "{path}");
        let hit = conn.get("a.test", path).await;
        assert_hit(&hit);
        assert_eq!(hit.2, format!("body of {path}"));
        assert_eq!(origin.count(path), 1, "{path}");
    }

    // One cache behind both listeners: what TLS clients filled is a hit in cleartext too.
    let hit = Conn::cleartext(edge.proxy).await.get("a.test", "/over-h2").await;
    assert_hit(&hit);
    assert_eq!(origin.count("/over-h2"), 1);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_origins_are_trusted_through_their_own_ca_file() {
    let edge_pki = Pki::new("edge CA");
    let (edge_cert, edge_key) = edge_pki.leaf("edge");
    // Two origins with different private CAs: each origin's client must trust only its own.
    let (pki_a, pki_b) = (Pki::new("origin A CA"), Pki::new("origin B CA"));
    let (cert_a, key_a) = pki_a.leaf("origin-a");
    let (cert_b, key_b) = pki_b.leaf("origin-b");
    let origin_a = TestOrigin::start(Some((&cert_a, &key_a))).await;
    let origin_b = TestOrigin::start(Some((&cert_b, &key_b))).await;
    let origins = [
        origin_table("a.test", &format!("https://{}", origin_a.addr), Some(&pki_a.ca_file)),
        origin_table("b.test", &format!("https://{}", origin_b.addr), Some(&pki_b.ca_file)),
    ]
    .concat();
    let edge = RunningEdge::start(&edge_cert, &edge_key, &origins).await;

    let mut conn = Conn::cleartext(edge.proxy).await;
    for (host, origin) in [("a.test", &origin_a), ("b.test", &origin_b)] {
        let miss = conn.get(host, "/private").await;
        assert_miss(&miss);
        assert_eq!(miss.2, "body of /private");
        assert_hit(&conn.get(host, "/private").await);
        assert_eq!(origin.count("/private"), 1, "{host}");
        // The origins offer h2 by ALPN, so the edge's client speaks it.
        assert_eq!(origin.version("/private"), Some(Version::HTTP_2), "{host}");
    }
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_https_origin_answers_502_naming_the_certificate_problem() {
    let edge_pki = Pki::new("edge CA");
    let (edge_cert, edge_key) = edge_pki.leaf("edge");
    let (origin_pki, other_pki) = (Pki::new("origin CA"), Pki::new("unrelated CA"));
    let (cert, key) = origin_pki.leaf("origin");
    let origin = TestOrigin::start(Some((&cert, &key))).await;
    let url = format!("https://{}", origin.addr);
    // The same origin: trusted through its CA, not trusted with the public roots alone, nor
    // with another CA.
    let origins = [
        origin_table("trusted.test", &url, Some(&origin_pki.ca_file)),
        origin_table("public-roots.test", &url, None),
        origin_table("other-ca.test", &url, Some(&other_pki.ca_file)),
    ]
    .concat();
    let edge = RunningEdge::start(&edge_cert, &edge_key, &origins).await;

    let mut conn = Conn::tls(edge.tls, &edge_pki.ca_file, ALPN_H2).await;
    for host in ["public-roots.test", "other-ca.test"] {
        let (status, _, body, _) = conn.get(host, "/secret").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{host}: {body}");
        assert!(body.contains("invalid peer certificate") && body.contains("UnknownIssuer"), "{host}: {body}");
    }
    assert_eq!(origin.count("/secret"), 0, "no request reached the untrusted origin");
    assert_miss(&conn.get("trusted.test", "/secret").await);
    assert_eq!(origin.count("/secret"), 1);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_garbage_and_untrusting_tls_clients_do_not_stop_others() {
    let pki = Pki::new("edge CA");
    let (cert, key) = pki.leaf("edge");
    let origin = TestOrigin::start(None).await;
    let edge = RunningEdge::start(&cert, &key, &origin_table("a.test", &format!("http://{}", origin.addr), None)).await;

    // Connections that never start their handshake.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(edge.tls).await.unwrap());
    }
    // Cleartext HTTP on the TLS port: the handshake fails and the edge closes the connection.
    let mut garbage = TcpStream::connect(edge.tls).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nhost: a.test\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = patiently("the edge closing a garbage connection", garbage.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/"), "answered cleartext on the TLS port: {:?}", String::from_utf8_lossy(&buf));
    // A client that does not trust the edge's certificate gives up.
    let stranger = Pki::new("stranger CA");
    assert!(tls_connect(edge.tls, &stranger.ca_file, ALPN_H2).await.is_err());

    // A proper client is served, over both protocols.
    for alpn in [ALPN_H2, ALPN_HTTP1] {
        let mut conn = Conn::tls(edge.tls, &pki.ca_file, alpn).await;
        assert_eq!(conn.get("a.test", "/fine").await.0, StatusCode::OK);
    }
    // ...while the silent connections are still waiting for their handshakes (not yet closed by
    // the handshake timeout): it did not have to wait for them.
    for stream in &silent {
        let mut byte = [0u8; 1];
        match stream.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("a silent connection was closed before the good client was served: {other:?}"),
        }
    }
    drop(silent);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_tls_requests_in_flight() {
    let pki = Pki::new("edge CA");
    let (cert, key) = pki.leaf("edge");
    let origin = TestOrigin::start(None).await;
    let edge = RunningEdge::start(&cert, &key, &origin_table("a.test", &format!("http://{}", origin.addr), None)).await;
    let tls_addr = edge.tls;

    let mut in_flight = Vec::new();
    for (alpn, path) in [(ALPN_H2, "/gated-h2"), (ALPN_HTTP1, "/gated-h1")] {
        let mut conn = Conn::tls(tls_addr, &pki.ca_file, alpn).await;
        in_flight.push((path, tokio::spawn(async move { conn.get("a.test", path).await })));
    }
    patiently("both requests reaching the origin", async {
        while origin.count("/gated-h2") + origin.count("/gated-h1") < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // Shutdown: once the TLS listener refuses connections, the edge is draining.
    let mut edge = edge;
    edge.signal_stop();
    patiently("the TLS listener closing", async {
        while TcpStream::connect(tls_addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    origin.open_gate();
    for (path, request) in in_flight {
        let (status, _, body, _) = patiently("a drained request", request).await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, format!("body of {path}").as_str()));
    }
    edge.shutdown().await;
}

/// A renewed certificate (here: from another CA, so the difference is visible) is served to the
/// next TLS client without a restart; connections made before keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let (old_ca, new_ca) = (Pki::new("old CA"), Pki::new("new CA"));
    let (cert, key) = old_ca.leaf("edge");
    let origin = TestOrigin::start(None).await;
    let edge = RunningEdge::start(&cert, &key, &origin_table("a.test", &format!("http://{}", origin.addr), None)).await;
    let mut before = Conn::tls(edge.tls, &old_ca.ca_file, ALPN_H2).await;
    assert_miss(&before.get("a.test", "/r").await);

    let (new_cert, new_key) = new_ca.leaf("renewed");
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    // Files are looked at once a second at most; retry until the new certificate is served.
    let renewed = patiently("the renewed certificate", async {
        loop {
            if let Ok(stream) = tls_connect(edge.tls, &new_ca.ca_file, ALPN_H2).await {
                return stream;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    drop(renewed);
    assert!(tls_connect(edge.tls, &old_ca.ca_file, ALPN_H2).await.is_err(), "the old certificate is gone");
    assert_hit(&Conn::tls(edge.tls, &new_ca.ca_file, ALPN_H2).await.get("a.test", "/r").await);
    assert_hit(&before.get("a.test", "/r").await);
    edge.shutdown().await;
}
