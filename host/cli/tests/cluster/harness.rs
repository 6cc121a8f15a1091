//! The cluster builder: a control node and N edges as separate processes of the real binary,
//! with certificates from `edgepurge_tls::certs`, a tiny origin, and optionally a TCP proxy that
//! cuts the edges' connections to control. Every process is killed when the test ends; their logs
//! are printed when a wait times out.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgepurge_tls::certs::{self, Layout};
use serde_json::Value;
use tempfile::TempDir;

use crate::chaos::ChaosProxy;
use crate::origin::Origin;
use crate::support::http;

use crate::support::BIN;
/// Generous: the machines are shared and slow; a wait ends as soon as its condition holds.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// A running process of the binary, killed on drop.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `edgepurge ARGS --config CONFIG` and returns it with the first `lines` lines it
    /// printed (where the roles say which addresses they bound: every listener is on port 0, so
    /// no port is picked ahead and lost to another process in between).
    fn spawn(args: &[&str], config: &Path, log: PathBuf, lines: usize) -> (Proc, Vec<String>) {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut printed = Vec::new();
        for _ in 0..lines {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            printed.push(line.trim().to_owned());
        }
        // Keep reading so the process never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        (Proc { child, log }, printed)
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGHUP (the roles reload their policy).
    pub fn hangup(&self) {
        let status = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{} exited with {status}", self.log.display());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What to build.
pub struct Builder {
    edges: usize,
    queues: u32,
    chaos: bool,
    stall_after_ms: u64,
    control_policy: Option<PathBuf>,
}

/// One edge's ports and process.
pub struct EdgeNode {
    pub name: String,
    pub proxy: String,
    pub admin: String,
    pub config: PathBuf,
    pub proc: Option<Proc>,
    /// The rest of its `edge.toml` (written once control's queue server has an address).
    template: String,
}

/// A running cluster.
pub struct Cluster {
    pub dir: TempDir,
    pub certs: Layout,
    pub api: String,
    pub queue_addr: String,
    pub token: String,
    pub control_config: PathBuf,
    /// `control.toml` with `{API}` and `{QUEUE}` for the listen addresses: port 0 at the first
    /// start, the bound ports on restarts (edges keep their queue server address).
    control_template: String,
    pub control: Option<Proc>,
    pub edges: Vec<EdgeNode>,
    /// The origin every edge proxies to (its thread serves until the test process ends).
    pub _origin: Origin,
    pub chaos: Option<ChaosProxy>,
}

impl Cluster {
    /// `Cluster::builder().edges(3).build()`.
    pub fn builder() -> Builder {
        Builder { edges: 3, queues: 4, chaos: false, stall_after_ms: 60_000, control_policy: None }
    }
}

impl Builder {
    /// Number of edges (default 3).
    pub fn edges(mut self, n: usize) -> Self {
        self.edges = n;
        self
    }

    /// Number of queues (default 4).
    pub fn queues(mut self, n: u32) -> Self {
        self.queues = n;
        self
    }

    /// S0.2: how long a queue may show no progress while others progress before it is unhealthy.
    pub fn stall_after_ms(mut self, ms: u64) -> Self {
        self.stall_after_ms = ms;
        self
    }

    /// Control's `[policy] path` (control sends it to every edge).
    pub fn control_policy(mut self, path: &Path) -> Self {
        self.control_policy = Some(path.to_owned());
        self
    }

    /// Route every edge's queue connection through a proxy that cuts connections at random.
    pub fn chaos(mut self) -> Self {
        self.chaos = true;
        self
    }

    /// Writes certificates and configs, starts the origin, control and the edges, and waits until
    /// every edge is connected.
    pub fn build(self) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let made = certs::init(&dir.path().join("certs"), self.edges, &[], false).unwrap();
        let origin = Origin::start();
        let names: Vec<String> = made.edges.iter().map(|e| e.name.clone()).collect();
        let allowed = names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
        let l = &made.layout;
        let control_config = dir.path().join("control.toml");
        let control_template = format!(
            "listen = \"{{API}}\"\ndatabase = \"{db}\"\nqueues = {queues}\nstall-after-ms = {stall}\n\n[queue-server]\nlisten = \
             \"{{QUEUE}}\"\ncert = \"{cert}\"\nkey = \"{key}\"\nclient-ca = \"{ca}\"\ncrl = \"{crl}\"\nedges = \
             [{allowed}]\nheartbeat-ms = 1000\n{policy}",
            db = dir.path().join("control.sqlite").display(),
            queues = self.queues,
            stall = self.stall_after_ms,
            policy = self.control_policy.map(|p| format!("\n[policy]\npath = \"{}\"\n", p.display())).unwrap_or_default(),
            cert = l.control_cert.display(),
            key = l.control_key.display(),
            ca = l.ca_cert.display(),
            crl = l.crl.display(),
        );
        let any = "127.0.0.1:0".to_owned();
        std::fs::write(&control_config, control_template.replace("{API}", &any).replace("{QUEUE}", &any)).unwrap();
        let token = crate::support::create_token(&control_config, "test-admin", &["--admin"]);
        let mut edges = Vec::new();
        for name in names {
            let files = l.edge(&name);
            let config = dir.path().join(format!("{name}.toml"));
            let template = format!(
                "listen = \"127.0.0.1:0\"\nadmin-listen = \"127.0.0.1:0\"\n\n[[origin]]\nhost = \"*\"\nurl = \"http://{o}\"\n\
                 read-timeout-ms = 120000\n\n[control]\nnodes = [\"https://{{NODE}}\"]\nca = \"{ca}\"\ncert = \"{cert}\"\n\
                 key = \"{key}\"\ncrl = \"{crl}\"\nserver-name = \"localhost\"\nstate-dir = \"{state}\"\nheartbeat-ms = 1000\n",
                o = origin.addr,
                ca = l.ca_cert.display(),
                cert = files.cert.display(),
                key = files.key.display(),
                crl = l.crl.display(),
                state = dir.path().join(&name).display(),
            );
            edges.push(EdgeNode { name, proxy: String::new(), admin: String::new(), config, proc: None, template });
        }
        let mut cluster = Cluster {
            certs: made.layout.clone(),
            dir,
            api: any.clone(),
            queue_addr: any,
            token,
            control_config,
            control_template,
            control: None,
            edges,
            _origin: origin,
            chaos: None,
        };
        cluster.start_control();
        cluster.chaos = self.chaos.then(|| ChaosProxy::start(&cluster.queue_addr));
        let node = cluster.chaos.as_ref().map_or(cluster.queue_addr.clone(), |c| c.addr.clone());
        for edge in &cluster.edges {
            std::fs::write(&edge.config, edge.template.replace("{NODE}", &node)).unwrap();
        }
        for i in 0..cluster.edges.len() {
            cluster.start_edge(i);
        }
        cluster.wait_connected();
        cluster
    }
}

impl Cluster {
    /// Starts (or restarts) the control node and waits for its API.
    pub fn start_control(&mut self) {
        let config = self.control_template.replace("{API}", &self.api).replace("{QUEUE}", &self.queue_addr);
        std::fs::write(&self.control_config, config).unwrap();
        let log = self.dir.path().join("control.log");
        let (proc, lines) = Proc::spawn(&["control"], &self.control_config, log, 2);
        self.control = Some(proc);
        let after = |line: &String, prefix: &str| line.strip_prefix(prefix).map(str::to_owned);
        match (after(&lines[0], "control API on http://"), after(&lines[1], "queue server on https://")) {
            (Some(api), Some(queue)) => (self.api, self.queue_addr) = (api, queue),
            _ => {
                self.dump_logs();
                let config = std::fs::read_to_string(&self.control_config).unwrap_or_default();
                panic!("control did not say where it listens: {lines:?}\n{config}");
            }
        }
        self.wait_for("the control API", || http_status(&self.api, "GET /healthz") == Some(200));
    }

    /// Starts (or restarts) edge `i` and waits for its admin listener.
    pub fn start_edge(&mut self, i: usize) {
        let edge = &mut self.edges[i];
        let log = self.dir.path().join(format!("{}.log", edge.name));
        let (proc, lines) = Proc::spawn(&["edge"], &edge.config, log, 1);
        edge.proc = Some(proc);
        // `edge proxy on http://PROXY  admin on http://ADMIN`
        let words: Vec<&str> = lines[0].split_whitespace().collect();
        match (
            words.get(3).and_then(|w| w.strip_prefix("http://")),
            words.last().and_then(|w| w.strip_prefix("http://")),
        ) {
            (Some(proxy), Some(admin)) if words.len() == 7 => {
                (edge.proxy, edge.admin) = (proxy.to_owned(), admin.to_owned())
            }
            _ => {
                self.dump_logs();
                panic!("the edge did not say where it listens: {lines:?}");
            }
        }
        let admin = self.edges[i].admin.clone();
        self.wait_for("the edge's admin listener", || http_status(&admin, "GET /metrics") == Some(200));
    }

    /// `kill -9` of edge `i`.
    pub fn kill_edge(&mut self, i: usize) {
        self.edges[i].proc.take().expect("edge running").kill();
    }

    /// Stops control: `kill -9` when `hard`, else SIGTERM and a clean exit.
    pub fn stop_control(&mut self, hard: bool) {
        let control = self.control.take().expect("control running");
        if hard {
            control.kill()
        } else {
            control.terminate()
        }
    }

    /// Waits until `GET /v1/edges` lists every edge as connected.
    pub fn wait_connected(&self) {
        let names: Vec<String> = self.edges.iter().map(|e| e.name.clone()).collect();
        self.wait_for("every edge connected", || {
            let edges = self.edges_json();
            names.iter().all(|name| edge_entry(&edges, name).is_some_and(|e| e["connected"] == Value::Bool(true)))
        });
    }

    /// `GET /v1/edges` as JSON.
    pub fn edges_json(&self) -> Value {
        self.api_call("GET", "/v1/edges", None).1
    }

    /// An API call with the admin token: (status, JSON body or `Null`).
    pub fn api_call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let body = body.unwrap_or("");
        let response = http(
            &self.api,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {}\r\nContent-Type: \
                 application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.token,
                body.len()
            ),
        );
        let (status, body) = split(&response);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Submits a purge (JSON body), returns the batch id.
    pub fn purge(&self, body: &str) -> u64 {
        let (status, json) = self.api_call("POST", "/v1/purges", Some(body));
        assert_eq!(status, 202, "{json}");
        json["id"].as_u64().unwrap()
    }

    /// Waits until batch `id` is `done`; returns its status.
    pub fn wait_done(&self, id: u64) -> Value {
        let mut last = Value::Null;
        self.wait_for(&format!("batch {id} done"), || {
            last = self.api_call("GET", &format!("/v1/purges/{id}"), None).1;
            last["state"] == "done"
        });
        last
    }

    /// A GET through edge `i`'s proxy: (status, `Cache-Status` value).
    pub fn get(&self, i: usize, host: &str, path: &str) -> (u16, String) {
        let response =
            http(&self.edges[i].proxy, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
        let (status, _) = split(&response);
        let cache_status = response
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("cache-status: ").map(str::to_owned))
            .unwrap_or_default();
        (status, cache_status)
    }

    /// Caches `path` on every edge (a miss, then a hit).
    pub fn warm_all(&self, host: &str, path: &str) {
        for i in 0..self.edges.len() {
            self.get(i, host, path);
            let (status, cache) = self.get(i, host, path);
            assert!(status == 200 && cache.contains("hit"), "edge {i} {path}: {status} {cache}");
        }
    }

    /// A counter from edge `i`'s `/metrics` (sum over label sets of metric lines starting with
    /// `prefix`).
    pub fn edge_metric(&self, i: usize, prefix: &str) -> f64 {
        let response = http(&self.edges[i].admin, "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        response
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Polls `condition` until it holds; panics with every log after [`PATIENCE`].
    pub fn wait_for(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let start = Instant::now();
        while !condition() {
            if start.elapsed() > PATIENCE {
                self.dump_logs();
                panic!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Prints the tail of every process log (on failure).
    pub fn dump_logs(&self) {
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("==== {} ====", entry.path().display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// The entry named `name` in a `GET /v1/edges` answer (a list, or an object with `edges`).
pub fn edge_entry<'a>(edges: &'a Value, name: &str) -> Option<&'a Value> {
    let list = edges.as_array().or_else(|| edges["edges"].as_array())?;
    list.iter().find(|e| e["name"] == name)
}

/// Status code and body of a raw HTTP/1.1 response.
fn split(response: &str) -> (u16, &str) {
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body)
}

/// The status of a bodiless request, `None` when nothing answers.
fn http_status(addr: &str, request_line: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    use std::io::{Read, Write};
    stream.write_all(format!("{request_line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(split(&response).0)
}
