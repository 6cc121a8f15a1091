//! `edgepurge dev` run as a user runs it: the real binary on free ports, driven through the
//! `cluster.json` it writes — the demo site through every edge (miss, then hit), purges through
//! the API, `--origin`, a second run keeping the token, and SIGTERM stopping everything.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Fails a test instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);
const HOST: &str = "demo.local";

/// A running `edgepurge dev`, killed if the test ends without stopping it.
struct Dev {
    child: Child,
    dir: PathBuf,
    cluster: Value,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    /// Starts `edgepurge dev` on free ports in `dir` and waits for its `cluster.json`.
    fn start(dir: &Path, extra: &[&str]) -> Dev {
        let mut args = vec!["dev", "--state-dir", dir.to_str().unwrap()];
        args.extend(["--api-port", "0", "--queue-port", "0", "--edge-base-port", "0", "--origin-port", "0"]);
        args.extend(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgepurge"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("edgepurge dev starts");
        let file = dir.join("cluster.json");
        let start = Instant::now();
        let cluster = loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let value: Value =
                    serde_json::from_str(&text).expect("cluster.json is whole JSON (written atomically)");
                if value["pid"] == child.id() {
                    break value;
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                panic!("edgepurge dev exited with {status} before writing cluster.json:\n{err}");
            }
            assert!(start.elapsed() < PATIENCE, "no cluster.json after {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        // Drain stderr so the child never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[dev] {line}");
            }
        });
        Dev { child, dir: dir.to_owned(), cluster }
    }

    fn edges(&self) -> Vec<String> {
        self.cluster["edges"].as_array().unwrap().iter().map(|e| e["url"].as_str().unwrap().to_owned()).collect()
    }

    fn api(&self) -> &str {
        self.cluster["api"].as_str().unwrap()
    }

    fn token(&self) -> &str {
        self.cluster["token"].as_str().unwrap()
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> ExitStatus {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill -TERM failed");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "edgepurge dev did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An HTTP/1.1 answer.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// One request over a fresh connection to `base` (`http://host:port`).
fn request(method: &str, base: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let addr = base.strip_prefix("http://").expect("an http:// URL");
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(stream, "{head}\r\n{body}").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

fn get_demo(edge: &str, path: &str) -> Answer {
    request("GET", edge, path, &[("Host", HOST)], "")
}

/// `POST /v1/purges` with the cluster's token; the batch id.
fn purge(dev: &Dev, url: &str) -> String {
    let auth = format!("Bearer {}", dev.token());
    let body = serde_json::json!({ "urls": [url] }).to_string();
    let answer = request(
        "POST",
        dev.api(),
        "/v1/purges",
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(answer.status, 202, "the API refused the purge: {}", answer.body);
    let accepted: Value = serde_json::from_str(&answer.body).unwrap();
    accepted["id"].to_string().trim_matches('"').to_owned()
}

#[test]
fn every_edge_serves_the_demo_site_the_api_takes_purges_and_sigterm_stops_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path(), &["--edges", "2"]);
    let edges = dev.edges();
    assert_eq!(edges.len(), 2);
    assert!(dev.token().starts_with("ep_"));
    for (i, edge) in edges.iter().enumerate() {
        let first = get_demo(edge, "/about.html");
        assert_eq!(first.status, 200, "{}", first.body);
        assert!(first.header("cache-status").contains("fwd=miss"), "{}", first.header("cache-status"));
        assert!(first.body.contains("generated at"));
        assert!(first.header("surrogate-key").contains("page"));
        assert_eq!(first.header("x-demo-origin-hits"), (i + 1).to_string(), "every edge filled from the origin");
        let second = get_demo(edge, "/about.html");
        assert!(second.header("cache-status").contains("; hit"), "{}", second.header("cache-status"));
        assert_eq!(second.header("etag"), first.header("etag"));
        assert_eq!(second.body, first.body);
    }
    let api = get_demo(&edges[0], "/api/products/3");
    assert!(api.header("surrogate-key").contains("product-3"), "{:?}", api.headers);
    let stats: Value =
        serde_json::from_str(&request("GET", dev.cluster["origin"].as_str().unwrap(), "/_stats", &[], "").body)
            .unwrap();
    assert_eq!(stats["hits"]["/about.html"], 2, "{stats}");

    purge(&dev, &format!("http://{HOST}/about.html"));
    let refused = request(
        "POST",
        dev.api(),
        "/v1/purges",
        &[("Authorization", "Bearer ep_wrong"), ("Content-Type", "application/json")],
        "{}",
    );
    assert_eq!(refused.status, 401);

    let status = dev.stop();
    assert!(status.success(), "{status}");
    assert!(!dev.dir.join("cluster.json").exists(), "cluster.json is removed on stop");
}

/// NEEDS the queue server (control) and the edge consumer of issue [4]: until both have landed
/// the purge is accepted but never reaches the edges, and this test fails at the wait.
#[test]
fn a_purge_reaches_every_edge_and_the_next_request_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path(), &["--edges", "2"]);
    let edges = dev.edges();
    for edge in &edges {
        get_demo(edge, "/");
        assert!(get_demo(edge, "/").header("cache-status").contains("; hit"));
    }
    let auth = format!("Bearer {}", dev.token());
    // A batch counts the edges registered when it is accepted: wait until both have connected
    // (an edge serves before its first stream is up, later on a loaded machine).
    let start = Instant::now();
    loop {
        let answer = request("GET", dev.api(), "/v1/edges", &[("Authorization", &auth)], "");
        let list: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let connected = list["edges"].as_array().map_or(0, |e| e.iter().filter(|e| e["connected"] == true).count());
        if connected == edges.len() {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "the edges never all connected: {}", answer.body);
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = purge(&dev, &format!("http://{HOST}/"));
    let start = Instant::now();
    loop {
        let answer = request("GET", dev.api(), &format!("/v1/purges/{id}"), &[("Authorization", &auth)], "");
        let progress: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let on_edges = progress["edges"].as_array().map_or(0, Vec::len);
        if progress["state"] == "done" && on_edges == edges.len() {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "purge {id} never reached both edges: {}", answer.body);
        std::thread::sleep(Duration::from_millis(50));
    }
    for edge in &edges {
        let after = get_demo(edge, "/");
        assert!(after.header("cache-status").contains("fwd=miss"), "{edge}: {}", after.header("cache-status"));
    }
    assert!(dev.stop().success());
}

/// A one-line origin on a thread: answers every request with `body` and the Host it got.
fn tiny_origin(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut host = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(h) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = h.trim().to_owned();
                }
                line.clear();
            }
            let text = format!("{body} for {host}");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=60\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn origin_flag_proxies_every_host_there_and_a_second_run_keeps_the_token() {
    let origin = tiny_origin("custom origin");
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path(), &["--edges", "1", "--origin", &origin]);
    assert_eq!(dev.cluster["origin"], origin.as_str());
    let edge = dev.edges()[0].clone();
    for host in ["demo.local", "www.example.com"] {
        let answer = request("GET", &edge, "/x", &[("Host", host)], "");
        assert_eq!(answer.body, format!("custom origin for {host}"));
    }
    let token = dev.token().to_owned();
    assert!(dev.stop().success());
    drop(dev);

    let mut again = Dev::start(dir.path(), &["--edges", "1", "--origin", &origin]);
    assert_eq!(again.token(), token, "the admin token is kept between runs");
    purge(&again, "http://www.example.com/x");
    assert!(again.stop().success());
}
