//! What a case does with a running [`Cluster`]: API calls with the admin token, purges, batch
//! status and waits, GETs through an edge, `/metrics` values.

use std::io;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::http::{self, Reply};
use crate::process::patience;

/// The host every case purges and fetches.
pub const HOST: &str = "shop.test";

/// `http://shop.test{path}`.
pub fn url(path: &str) -> String {
    format!("http://{HOST}{path}")
}

/// `applied` of edge `edge` in a batch status (`GET /v1/purges/{id}`), 0 when it is not listed.
pub fn applied(status: &Value, edge: &str) -> u64 {
    edge_progress(status, edge).and_then(|e| e["applied"].as_u64()).unwrap_or(0)
}

/// The `edges[]` entry of `edge` in a batch status.
pub fn edge_progress<'a>(status: &'a Value, edge: &str) -> Option<&'a Value> {
    status["edges"].as_array()?.iter().find(|e| e["edge"] == edge)
}

impl Cluster {
    /// One API request with the admin token.
    pub fn call(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> io::Result<Reply> {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("Authorization", auth.as_str())];
        if !content_type.is_empty() {
            headers.push(("Content-Type", content_type));
        }
        http::request(&self.api, method, path, &headers, body)
    }

    /// An API request that must get an answer: (status, JSON body or `Null`).
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        match self.call(method, path, "application/json", body.as_bytes()) {
            Ok(reply) => (reply.status, reply.json()),
            Err(e) => {
                self.dump_logs();
                panic!("{method} {path}: no answer from control at {}: {e}", self.api)
            }
        }
    }

    /// Submits a JSON purge and returns the batch id (the answer must be `202`).
    pub fn purge(&self, body: &Value) -> u64 {
        let (status, json) = self.api("POST", "/v1/purges", Some(body));
        assert_eq!(status, 202, "POST /v1/purges: {json}");
        json["id"].as_u64().expect("an id")
    }

    /// Submits `urls` as one `text/plain` bulk batch (one URL a line): the answer.
    pub fn submit_text(&self, urls: &[String]) -> io::Result<Reply> {
        let body: String = urls.iter().map(|u| format!("{u}\n")).collect();
        self.call("POST", "/v1/purges", "text/plain", body.as_bytes())
    }

    /// `GET /v1/purges/{id}`.
    pub fn batch(&self, id: u64) -> Value {
        self.api("GET", &format!("/v1/purges/{id}"), None).1
    }

    /// Waits until batch `id` is `done`; its status.
    pub fn wait_done(&self, id: u64) -> Value {
        let mut last = Value::Null;
        self.wait_for(&format!("batch {id} done"), || {
            last = self.batch(id);
            last["state"] == "done"
        });
        last
    }

    /// Waits until edge `edge` applied at least `n` tasks of batch `id` (or the batch is done);
    /// its status.
    pub fn wait_applied(&self, id: u64, edge: &str, n: u64) -> Value {
        let mut last = Value::Null;
        self.wait_for(&format!("{edge} applied {n} of batch {id}"), || {
            last = self.batch(id);
            applied(&last, edge) >= n || last["state"] == "done"
        });
        last
    }

    /// `GET /v1/edges`.
    pub fn edges_json(&self) -> Value {
        self.api("GET", "/v1/edges", None).1
    }

    /// Whether `GET /v1/edges` says `name` is connected.
    pub fn connected(&self, name: &str) -> bool {
        let edges = self.edges_json();
        let list = edges["edges"].as_array().cloned().unwrap_or_default();
        list.iter().any(|e| e["name"] == name && e["connected"] == true)
    }

    /// Waits until every running edge is connected.
    pub fn wait_connected(&self) {
        let names: Vec<String> = self.edges.iter().filter(|e| e.proc.is_some()).map(|e| e.name.clone()).collect();
        self.wait_for("every running edge connected", || names.iter().all(|n| self.connected(n)));
    }

    /// `GET path` through edge `i` (`Host: shop.test`).
    pub fn get(&self, i: usize, path: &str) -> Reply {
        match http::get(&self.edges[i].proxy, HOST, path) {
            Ok(reply) => reply,
            Err(e) => {
                self.dump_logs();
                panic!("GET {path} through {}: {e}", self.edges[i].name)
            }
        }
    }

    /// Caches every path on every running edge: GETs until one is a hit. A fill can be refused
    /// by a purge applied while it ran (fill tokens), which an edge catching up on a backlog
    /// does often, hence a few tries; it fails after 20.
    pub fn warm(&self, paths: &[String]) {
        for (i, edge) in self.edges.iter().enumerate().filter(|(_, e)| e.proc.is_some()) {
            for path in paths {
                let mut last = self.get(i, path);
                for _ in 0..20 {
                    last = self.get(i, path);
                    if last.status == 200 && last.is_hit() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert!(
                    last.status == 200 && last.is_hit(),
                    "{} {path}: {} {}",
                    edge.name,
                    last.status,
                    last.cache_status()
                );
            }
        }
    }

    /// Control's `/metrics`: the sum of the values of lines starting with `prefix` (a name, or a
    /// name with the start of its labels).
    pub fn control_metric(&self, prefix: &str) -> f64 {
        let text = self.call("GET", "/metrics", "", b"").map(|r| r.text()).unwrap_or_default();
        sum_metric(&text, prefix)
    }

    /// Edge `i`'s `/metrics`, as [`Cluster::control_metric`].
    pub fn edge_metric(&self, i: usize, prefix: &str) -> f64 {
        let text = http::get(&self.edges[i].admin, "admin", "/metrics").map(|r| r.text()).unwrap_or_default();
        sum_metric(&text, prefix)
    }

    /// Polls `condition` until it holds; fails with every log after [`patience`].
    pub fn wait_for(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let start = Instant::now();
        while !condition() {
            if start.elapsed() > patience() {
                self.dump_logs();
                panic!("timed out after {:?} waiting for {what}", patience());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn sum_metric(text: &str, prefix: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}
