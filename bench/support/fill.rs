//! Filling a cache with many small objects through real HTTP: the URL layout every cache-size
//! benchmark shares ([`Layout`]), an in-process origin that serves it ([`Origin`]), a concurrent
//! keep-alive filler ([`fill`]) and a small blocking HTTP/1.1 client for single requests
//! ([`HttpConn`]: purges, metrics, hit checks).

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Hosts in the layout: each holds 10 % of the objects.
pub const HOSTS: u64 = 10;
/// Directories per host: each (host, directory) pair holds 0.1 % of the objects.
pub const DIRS: u64 = 100;

/// Where object `i` lives: host `h{i % 10}.bench`, path `/d{(i / 10) % 100:02}/o{i}`, tag
/// `t{host}-{dir:02}`. So `http://hH.bench/` (or host `hH.bench`) matches 10 % of the objects,
/// and `http://hH.bench/dDD/` (or tag `tH-DD`) 0.1 %; the two tag/prefix families are the same
/// sets, so a benchmark picks disjoint directories for them.
#[derive(Debug, Clone, Copy)]
pub struct Layout;

impl Layout {
    /// The host number of object `i`.
    pub fn host(i: u64) -> u64 {
        i % HOSTS
    }

    /// The directory number of object `i`.
    pub fn dir(i: u64) -> u64 {
        (i / HOSTS) % DIRS
    }

    /// The `m`-th object (0-based) of `(host, dir)`.
    pub fn index(host: u64, dir: u64, m: u64) -> u64 {
        host + HOSTS * (dir + DIRS * m)
    }

    /// The host name of host number `h`.
    pub fn host_name(h: u64) -> String {
        format!("h{h}.bench")
    }

    /// The path of object `i`.
    pub fn path(i: u64) -> String {
        format!("/d{:02}/o{i}", Self::dir(i))
    }

    /// The absolute URL of object `i`, as the edge stores it.
    pub fn url(i: u64) -> String {
        format!("http://{}{}", Self::host_name(Self::host(i)), Self::path(i))
    }

    /// The tag the origin gives object `i`.
    pub fn tag(i: u64) -> String {
        Self::tag_of(Self::host(i), Self::dir(i))
    }

    /// The tag of every object of `(host, dir)`.
    pub fn tag_of(host: u64, dir: u64) -> String {
        format!("t{host}-{dir:02}")
    }

    /// The URL prefix of `(host, dir)` (0.1 % of the objects).
    pub fn dir_prefix(host: u64, dir: u64) -> String {
        format!("http://{}/d{dir:02}/", Self::host_name(host))
    }

    /// The URL prefix of a whole host (10 % of the objects).
    pub fn host_prefix(host: u64) -> String {
        format!("http://{}/", Self::host_name(host))
    }

    /// Object `i` parsed back from a request path (`None` for anything else).
    pub fn parse_path(path: &str) -> Option<u64> {
        path.rsplit_once("/o").and_then(|(_, n)| n.parse().ok())
    }
}

/// The headers the origin sends with every object besides `Content-Length`: what the cache
/// stores with it.
pub const ORIGIN_HEADERS: [(&str, &str); 2] = [("cache-control", "max-age=86400"), ("content-type", "text/plain")];

/// An in-process origin serving [`Layout`] objects with a fixed body size, cacheable for a
/// day, tagged with `Surrogate-Key`; it stops when dropped.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests answered so far.
    pub requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// Starts the origin on a free loopback port of `rt`, answering bodies of `body_bytes`.
    pub fn start(rt: &tokio::runtime::Runtime, body_bytes: usize) -> Result<Origin> {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let body = Bytes::from(vec![b'x'; body_bytes]);
        let counter = requests.clone();
        let task = rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let (body, counter) = (body.clone(), counter.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let resp = answer(req.uri().path(), &body);
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Origin { addr, requests, task })
    }
}

fn answer(path: &str, body: &Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.clone()));
    match Layout::parse_path(path) {
        Some(i) => {
            for (name, value) in ORIGIN_HEADERS {
                resp.headers_mut().insert(name, header::HeaderValue::from_static(value));
            }
            if let Ok(tag) = header::HeaderValue::from_str(&Layout::tag(i)) {
                resp.headers_mut().insert("surrogate-key", tag);
            }
        }
        None => *resp.status_mut() = StatusCode::NOT_FOUND,
    }
    resp
}

/// What one [`fill`] did.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FillReport {
    /// Requests answered `200`.
    pub ok: u64,
    /// Requests that failed or were answered otherwise.
    pub errors: u64,
    /// Seconds the fill took.
    pub seconds: f64,
}

impl FillReport {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        (self.ok + self.errors) as f64 / self.seconds
    }
}

/// GETs every object of `range` from the cache at `cache` over `connections` keep-alive
/// HTTP/1.1 connections (each request once, as fast as the cache answers). Fails after more
/// than 1,000 errors.
pub fn fill(
    rt: &tokio::runtime::Runtime,
    cache: SocketAddr,
    range: Range<u64>,
    connections: usize,
) -> Result<FillReport> {
    let next = Arc::new(AtomicU64::new(range.start));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let ok: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(fill_connection(cache, next.clone(), range.end, errors.clone())))
            .collect();
        let mut ok = 0;
        for task in tasks {
            ok += task.await.context("filler task panicked")??;
        }
        anyhow::Ok(ok)
    })?;
    Ok(FillReport { ok, errors: errors.load(Ordering::Relaxed), seconds: start.elapsed().as_secs_f64() })
}

async fn fill_connection(cache: SocketAddr, next: Arc<AtomicU64>, end: u64, errors: Arc<AtomicU64>) -> Result<u64> {
    let mut ok = 0;
    let mut sender = None;
    loop {
        if errors.load(Ordering::Relaxed) > 1000 {
            bail!("more than 1,000 failed requests while filling {cache}");
        }
        let s = match sender.as_mut() {
            Some(s) => s,
            None => {
                let stream = tokio::net::TcpStream::connect(cache).await.with_context(|| format!("connect {cache}"))?;
                stream.set_nodelay(true)?;
                let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender.insert(s)
            }
        };
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= end {
            return Ok(ok);
        }
        let req = Request::get(Layout::path(i))
            .header(header::HOST, Layout::host_name(Layout::host(i)))
            .body(Empty::<Bytes>::new())?;
        let result = async {
            s.ready().await?;
            let resp = s.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            anyhow::Ok(status)
        }
        .await;
        match result {
            Ok(StatusCode::OK) => ok += 1,
            Ok(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                sender = None;
            }
        }
    }
}

/// One answer read by [`HttpConn`].
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One blocking keep-alive HTTP/1.1 connection (Content-Length and chunked bodies).
pub struct HttpConn {
    reader: BufReader<TcpStream>,
}

impl HttpConn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Result<HttpConn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(HttpConn { reader: BufReader::new(stream) })
    }

    /// Sends one request (with `host` as `Host`, a JSON body) and reads the whole answer.
    pub fn request(&mut self, method: &str, path: &str, host: &str, body: &str) -> Result<Reply> {
        self.send(method, path, &[("Host", host), ("Content-Type", "application/json")], body.as_bytes())
    }

    /// Sends one request with `headers` (Content-Length is added) and reads the whole answer.
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Reply> {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).context("no HTTP status line")?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let mut reply = Reply { status, headers, body: Vec::new() };
        if reply.header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size =
                    usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).context("bad chunk size")?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                reply.body.extend_from_slice(&chunk[..size]);
            }
        } else {
            let length: usize = reply.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            reply.body.resize(length, 0);
            self.reader.read_exact(&mut reply.body)?;
        }
        Ok(reply)
    }

    /// GETs object `i` of the [`Layout`].
    pub fn get_object(&mut self, i: u64) -> Result<Reply> {
        self.request("GET", &Layout::path(i), &Layout::host_name(Layout::host(i)), "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_shares() {
        let n = 100_000;
        let dir = (0..n).filter(|&i| Layout::url(i).starts_with(&Layout::dir_prefix(3, 7))).count();
        let host = (0..n).filter(|&i| Layout::url(i).starts_with(&Layout::host_prefix(3))).count();
        let tag = (0..n).filter(|&i| Layout::tag(i) == Layout::tag_of(3, 7)).count();
        assert_eq!((dir, host, tag), (100, 10_000, 100));
        let i = Layout::index(3, 7, 5);
        assert_eq!((Layout::host(i), Layout::dir(i)), (3, 7));
        assert_eq!(Layout::parse_path(&Layout::path(i)), Some(i));
    }
}
