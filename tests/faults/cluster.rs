//! The cluster builder: certificates from `edgepurge_tls::certs`, a `control.toml` and one
//! `edge-N.toml` per edge, the test [`Origin`], optionally a partition [`Proxy`] per edge, then
//! `edgepurge control` and `edgepurge edge` as child processes of the real binary. Every
//! listener starts on port 0 (the roles print what they bound) and keeps its port across
//! restarts, so a client's address stays valid while a process is down.
//!
//! ```text
//! let Some(mut c) = Cluster::builder().edges(2).build() else { return }; // binary missing
//! c.warm(&["/a".into()]);
//! let purge = c.purge_urls(&["/a".into()]);
//! c.kill_control();            // kill -9
//! c.start_control();
//! c.wait_done(purge.batch);
//! assert_no_purged_but_served(&c, &[purge]);
//! ```
//!
//! The API and GET helpers are in `api.rs`, the purge checks in `check.rs`. Processes are
//! killed when the cluster drops; on a timeout every log's tail is printed.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use edgepurge_tls::certs::{self, Layout};
use tempfile::TempDir;

use crate::origin::Origin;
use crate::process::{binary, Proc};
use crate::proxy::Proxy;

/// What to build.
pub struct Builder {
    edges: usize,
    queues: u32,
    proxies: bool,
    origin_read_timeout_ms: u64,
    heartbeat_ms: u64,
    database_dir: Option<PathBuf>,
}

/// One edge: its addresses, files and process.
pub struct Edge {
    /// `edge-1` …: its certificate's name.
    pub name: String,
    /// Its proxy listener (`host:port`).
    pub proxy: String,
    /// Its admin listener (`host:port`).
    pub admin: String,
    /// Its `edge.toml`.
    pub config: PathBuf,
    /// Its state directory (the receive buffer).
    pub state_dir: PathBuf,
    /// The process, while it runs.
    pub proc: Option<Proc>,
    /// The proxy between it and control, when the cluster was built with [`Builder::proxies`].
    pub partition: Option<Proxy>,
    /// Its `edge.toml` with `{LISTEN}` and `{ADMIN}` left open.
    template: String,
}

impl Edge {
    /// Its receive buffer file.
    pub fn buffer(&self) -> PathBuf {
        self.state_dir.join("receive-buffer.sqlite")
    }
}

/// A running cluster.
pub struct Cluster {
    /// The binary under test.
    pub bin: PathBuf,
    /// Configs, certificates, logs and state (removed on drop).
    pub dir: TempDir,
    /// The certificate directory.
    pub certs: Layout,
    /// The API (`host:port`, plain HTTP).
    pub api: String,
    /// The queue server (`host:port`).
    pub queue: String,
    /// An admin token.
    pub token: String,
    /// `control.toml`.
    pub control_config: PathBuf,
    /// Control's database file.
    pub database: PathBuf,
    /// The control process, while it runs.
    pub control: Option<Proc>,
    /// The edges.
    pub edges: Vec<Edge>,
    /// The origin every edge proxies every host to.
    pub origin: Origin,
    control_template: String,
}

impl Cluster {
    /// `Cluster::builder().edges(2).build()`: 2 edges, 4 queues, no partition proxies.
    pub fn builder() -> Builder {
        // EDGEPURGE_FAULTS_HEARTBEAT_MS: try the suite with another heartbeat.
        let heartbeat_ms = std::env::var("EDGEPURGE_FAULTS_HEARTBEAT_MS").ok().and_then(|v| v.parse().ok());
        Builder {
            edges: 2,
            queues: 4,
            proxies: false,
            origin_read_timeout_ms: 10_000,
            heartbeat_ms: heartbeat_ms.unwrap_or(1_000),
            database_dir: None,
        }
    }
}

fn quoted(p: &Path) -> String {
    serde_json::to_string(&p.display().to_string()).unwrap()
}

impl Builder {
    /// Number of edges (default 2).
    pub fn edges(mut self, n: usize) -> Self {
        self.edges = n;
        self
    }

    /// Number of queues (default 4).
    pub fn queues(mut self, n: u32) -> Self {
        self.queues = n;
        self
    }

    /// Each edge reaches control through its own [`Proxy`] (`edges[i].partition`).
    pub fn proxies(mut self) -> Self {
        self.proxies = true;
        self
    }

    /// The edges' origin `read-timeout-ms` (default 10 s).
    pub fn origin_read_timeout_ms(mut self, ms: u64) -> Self {
        self.origin_read_timeout_ms = ms;
        self
    }

    /// `heartbeat-ms` of control's queue server and of every edge (default 1 s, so a silent
    /// peer is noticed after 3 s; `EDGEPURGE_FAULTS_HEARTBEAT_MS` overrides the default).
    pub fn heartbeat_ms(mut self, ms: u64) -> Self {
        self.heartbeat_ms = ms;
        self
    }

    /// Control's database lives in `dir` (a small tmpfs, say) instead of the cluster's directory.
    pub fn database_dir(mut self, dir: &Path) -> Self {
        self.database_dir = Some(dir.to_owned());
        self
    }

    /// Writes everything, starts the origin, control and the edges, and waits until every edge
    /// is connected. `None` when the binary is missing (said on stderr).
    pub fn build(self) -> Option<Cluster> {
        let bin = binary()?;
        let dir = tempfile::tempdir().unwrap();
        let made = certs::init(&dir.path().join("certs"), self.edges, &[], false).expect("certificates");
        let origin = Origin::start();
        let names: Vec<String> = made.edges.iter().map(|e| e.name.clone()).collect();
        let allowed = names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
        let l = &made.layout;
        let database = self.database_dir.as_deref().unwrap_or(dir.path()).join("control.sqlite");
        let control_config = dir.path().join("control.toml");
        // A rate limit the cases never hit: they submit back to back.
        let control_template = format!(
            "listen = \"{{API}}\"\ndatabase = {db}\nqueues = {queues}\n\n[rate-limit]\nburst = 100000\n\
             per-second = 100000.0\n\n[queue-server]\nlisten = \"{{QUEUE}}\"\ncert = {cert}\nkey = {key}\n\
             client-ca = {ca}\ncrl = {crl}\nedges = [{allowed}]\nheartbeat-ms = {heartbeat}\ncontrol-id = \"control-1\"\n",
            db = quoted(&database),
            queues = self.queues,
            heartbeat = self.heartbeat_ms,
            cert = quoted(&l.control_cert),
            key = quoted(&l.control_key),
            ca = quoted(&l.ca_cert),
            crl = quoted(&l.crl),
        );
        let any = "127.0.0.1:0".to_owned();
        std::fs::write(&control_config, control_template.replace("{API}", &any).replace("{QUEUE}", &any)).unwrap();
        let token = create_token(&bin, &control_config);
        let edges = names
            .into_iter()
            .map(|name| {
                let files = l.edge(&name);
                let state_dir = dir.path().join(&name);
                let template = format!(
                    "listen = \"{{LISTEN}}\"\nadmin-listen = \"{{ADMIN}}\"\n\n[[origin]]\nhost = \"*\"\n\
                     url = \"http://{origin}\"\nconnect-timeout-ms = 1000\nread-timeout-ms = {read}\n\n[control]\n\
                     nodes = [\"https://{{NODE}}\"]\nca = {ca}\ncert = {cert}\nkey = {key}\ncrl = {crl}\n\
                     server-name = \"localhost\"\nstate-dir = {state}\nheartbeat-ms = {heartbeat}\n",
                    origin = origin.addr,
                    read = self.origin_read_timeout_ms,
                    heartbeat = self.heartbeat_ms,
                    ca = quoted(&l.ca_cert),
                    cert = quoted(&files.cert),
                    key = quoted(&files.key),
                    crl = quoted(&l.crl),
                    state = quoted(&state_dir),
                );
                let config = dir.path().join(format!("{name}.toml"));
                Edge {
                    name,
                    proxy: any.clone(),
                    admin: any.clone(),
                    config,
                    state_dir,
                    proc: None,
                    partition: None,
                    template,
                }
            })
            .collect();
        let mut cluster = Cluster {
            bin,
            certs: made.layout.clone(),
            dir,
            api: any.clone(),
            queue: any,
            token,
            control_config,
            database,
            control: None,
            edges,
            origin,
            control_template,
        };
        cluster.start_control();
        for i in 0..cluster.edges.len() {
            let edge = &mut cluster.edges[i];
            if self.proxies {
                edge.partition = Some(Proxy::start(&cluster.queue));
            }
            let node = edge.partition.as_ref().map_or(cluster.queue.clone(), |p| p.addr.clone());
            edge.template = edge.template.replace("{NODE}", &node);
            cluster.start_edge(i);
        }
        cluster.wait_connected();
        Some(cluster)
    }
}

/// `edgepurge token create --admin`: the printed token.
fn create_token(bin: &Path, config: &Path) -> String {
    // Names are unique in a database; a case may create one after replacing it.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let out = std::process::Command::new(bin)
        .args(["token", "create", "--config"])
        .arg(config)
        .args(["--name", &format!("faults-admin-{nanos}"), "--admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Cluster {
    /// Starts (or restarts) control on its ports and waits for its API.
    pub fn start_control(&mut self) {
        if let Err(e) = self.try_start_control() {
            self.dump_logs();
            panic!("control did not start: {e}");
        }
    }

    /// As [`Cluster::start_control`], `Err` with what it printed when it exits instead.
    pub fn try_start_control(&mut self) -> Result<(), String> {
        let config = self.control_template.replace("{API}", &self.api).replace("{QUEUE}", &self.queue);
        std::fs::write(&self.control_config, config).unwrap();
        let log = self.dir.path().join("control.log");
        let (proc, lines) = Proc::spawn(&self.bin, &["control"], &self.control_config, log, 2)?;
        let after = |line: &String, prefix: &str| line.strip_prefix(prefix).map(str::to_owned);
        match (after(&lines[0], "control API on http://"), after(&lines[1], "queue server on https://")) {
            (Some(api), Some(queue)) => (self.api, self.queue) = (api, queue),
            _ => return Err(format!("control did not say where it listens: {lines:?}")),
        }
        self.control = Some(proc);
        self.wait_for("control's /healthz", || self.call("GET", "/healthz", "", b"").is_ok_and(|r| r.status == 200));
        Ok(())
    }

    /// A new admin token in control's database (a replaced database forgot the old one).
    pub fn renew_token(&mut self) {
        self.token = create_token(&self.bin, &self.control_config);
    }

    /// `kill -9` of control.
    pub fn kill_control(&mut self) {
        self.control.take().expect("control runs").kill();
    }

    /// SIGTERM to control; its exit status.
    pub fn terminate_control(&mut self) -> ExitStatus {
        self.control.take().expect("control runs").terminate()
    }

    /// Starts (or restarts) edge `i` on its ports (new ones if they were taken meanwhile) and
    /// waits for its admin listener. Use [`Cluster::wait_connected`] for its queue stream.
    pub fn start_edge(&mut self, i: usize) {
        let log = self.dir.path().join(format!("{}.log", self.edges[i].name));
        let mut tries = vec![(self.edges[i].proxy.clone(), self.edges[i].admin.clone())];
        if !tries[0].0.ends_with(":0") {
            tries.push(("127.0.0.1:0".into(), "127.0.0.1:0".into()));
        }
        let mut errors = Vec::new();
        for (listen, admin) in tries {
            let edge = &mut self.edges[i];
            std::fs::write(&edge.config, edge.template.replace("{LISTEN}", &listen).replace("{ADMIN}", &admin))
                .unwrap();
            let (proc, lines) = match Proc::spawn(&self.bin, &["edge"], &edge.config, log.clone(), 1) {
                Ok(started) => started,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            // `edge proxy on http://PROXY  admin on http://ADMIN`
            let words: Vec<&str> = lines[0].split_whitespace().collect();
            let (Some(proxy), Some(admin)) = (
                words.get(3).and_then(|w| w.strip_prefix("http://")),
                words.last().and_then(|w| w.strip_prefix("http://")),
            ) else {
                errors.push(format!("the edge did not say where it listens: {lines:?}"));
                continue;
            };
            (edge.proxy, edge.admin) = (proxy.to_owned(), admin.to_owned());
            edge.proc = Some(proc);
            let admin = edge.admin.clone();
            self.wait_for("the edge's admin listener", || {
                crate::http::get(&admin, "admin", "/metrics").is_ok_and(|r| r.status == 200)
            });
            return;
        }
        self.dump_logs();
        panic!("{} did not start: {errors:?}", self.edges[i].name);
    }

    /// `kill -9` of edge `i`.
    pub fn kill_edge(&mut self, i: usize) {
        self.edges[i].proc.take().expect("the edge runs").kill();
    }

    /// SIGTERM to edge `i`; its exit status.
    pub fn terminate_edge(&mut self, i: usize) -> ExitStatus {
        self.edges[i].proc.take().expect("the edge runs").terminate()
    }

    /// `(name, pid)` of every running process (`control`, `edge-1`, …).
    pub fn pids(&self) -> Vec<(String, u32)> {
        let control = self.control.as_ref().map(|p| ("control".to_owned(), p.pid()));
        let edges = self.edges.iter().filter_map(|e| e.proc.as_ref().map(|p| (e.name.clone(), p.pid())));
        control.into_iter().chain(edges).collect()
    }

    /// Prints the tail of every process log (on failure).
    pub fn dump_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else { return };
        for entry in entries.flatten() {
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
