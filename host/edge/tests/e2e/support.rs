//! Shared pieces of the edge's end-to-end tests: a real origin on 127.0.0.1:0 and a client harness.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// An origin counting requests by path: every path is cacheable for 60 s with tag `k1`;
/// `/slow*` answers after 300 ms.
pub async fn start_origin() -> (SocketAddr, Counts) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts: Counts = Arc::default();
    let shared = Arc::clone(&counts);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let counts = Arc::clone(&shared);
            let service = service_fn(move |req: Request<Incoming>| {
                let counts = Arc::clone(&counts);
                async move {
                    let path = req.uri().path().to_owned();
                    *counts.lock().unwrap().entry(path.clone()).or_default() += 1;
                    if path.starts_with("/slow") {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let resp = Response::builder()
                        .header("cache-control", "max-age=60")
                        .header("surrogate-key", "k1")
                        .body(Full::new(Bytes::from(format!("body of {path}"))))
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, counts)
}

pub fn count(counts: &Counts, path: &str) -> usize {
    counts.lock().unwrap().get(path).copied().unwrap_or(0)
}

pub struct Harness {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

impl Harness {
    pub async fn get(&self, host: &str, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
        let req = Request::get(format!("http://{}{path}", self.proxy))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
    }

    pub async fn purge(&self, json: String) -> (StatusCode, String) {
        let req = Request::post(format!("http://{}/purge", self.admin)).body(Full::new(Bytes::from(json))).unwrap();
        let resp = self.client.request(req).await.unwrap();
        let status = resp.status();
        (status, String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned())
    }
}

pub fn cache_status(headers: &http::HeaderMap) -> String {
    headers.get("cache-status").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}
