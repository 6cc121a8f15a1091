//! What `edgepurge dev` writes into its state directory: the certificates, `control.toml`,
//! `edge-N.toml`, the admin token, and `cluster.json` (how scripts, tests and the CLI find the
//! running cluster). Re-running `dev` on the same directory keeps the CA, the certificates, the
//! database and the token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use edgepurge_control::config::ControlConfig;
use edgepurge_control_store::{SqliteStore, TokenHash, TokenStore};
use edgepurge_tls::certs::{self, EdgeFiles, Layout};
use serde::{Deserialize, Serialize};

/// The file holding the admin token between runs (`cluster.json` is removed when `dev` stops).
const TOKEN_FILE: &str = "admin-token";

/// One edge of the cluster, as planned.
#[derive(Debug, Clone)]
pub struct EdgePlan {
    /// `edge-1` …: its certificate's name, hence its identity at the queue server.
    pub name: String,
    /// The proxy listener.
    pub proxy: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// Its client certificate and key.
    pub files: EdgeFiles,
    /// Its receive buffer directory.
    pub state_dir: PathBuf,
}

/// Addresses and files of the whole cluster, before anything runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The state directory (absolute).
    pub dir: PathBuf,
    /// The certificate directory's paths.
    pub certs: Layout,
    /// The purge API.
    pub api: SocketAddr,
    /// The queue server (its bound address once the control node started).
    pub queue: SocketAddr,
    /// Where every edge sends all hosts.
    pub origin_url: String,
    /// The edges.
    pub edges: Vec<EdgePlan>,
}

/// Requested ports; 0 lets each listener pick a free one when it binds (the configs then say
/// port 0, `cluster.json` the bound ports), so nothing races for a port picked in advance.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The purge API.
    pub api: u16,
    /// The queue server.
    pub queue: u16,
    /// Edge `i` (from 1) gets proxy `base + 2(i-1)` and admin `base + 2(i-1) + 1`.
    pub edge_base: u16,
}

/// Makes the state directory and certificates and decides every address.
pub fn plan(dir: &Path, edges: usize, ports: Ports, origin_url: String) -> Result<Plan> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("state directory {}", dir.display()))?;
    let certs = ensure_certs(&dir.join("certs"), edges)?;
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (api, queue) = (loopback(ports.api), loopback(ports.queue));
    let mut planned = Vec::new();
    for i in 1..=edges {
        let name = format!("edge-{i}");
        let port = |offset: usize| -> Result<u16> {
            if ports.edge_base == 0 {
                return Ok(0);
            }
            u16::try_from(ports.edge_base as usize + 2 * (i - 1) + offset)
                .map_err(|_| anyhow::anyhow!("--edge-base-port {} leaves no room for {edges} edges", ports.edge_base))
        };
        let (proxy, admin) = (loopback(port(0)?), loopback(port(1)?));
        planned.push(EdgePlan { files: certs.edge(&name), state_dir: dir.join(&name), name, proxy, admin });
    }
    Ok(Plan { certs, api, queue, origin_url, edges: planned, dir })
}

/// A CA in `dir` (made with `edges` edge certificates when missing), and a certificate for each
/// of `edge-1` … `edge-N` (issued for the ones a previous, smaller run did not make).
fn ensure_certs(dir: &Path, edges: usize) -> Result<Layout> {
    let layout = Layout::new(dir);
    if !layout.ca_cert.exists() {
        certs::init(dir, edges, &[], true)
            .with_context(|| format!("cannot make the development certificates in {}", dir.display()))?;
        return Ok(layout);
    }
    for i in 1..=edges {
        let files = layout.edge(&format!("edge-{i}"));
        if !files.cert.exists() || !files.key.exists() {
            for stale in [&files.cert, &files.key] {
                // Half a pair cannot be used; issue_edge refuses to overwrite either file.
                let _ = std::fs::remove_file(stale);
            }
            certs::issue_edge(dir, &files.name)
                .with_context(|| format!("cannot issue a certificate for {}", files.name))?;
        }
    }
    Ok(layout)
}

/// TOML's basic string for `s` (paths may hold quotes or backslashes).
fn quoted(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).expect("a string serialises")
}

fn path(p: &Path) -> String {
    quoted(p.display().to_string())
}

impl Plan {
    /// `control.toml`: the API on loopback over plain HTTP, four queues, a rate limit a
    /// developer's scripts and benchmarks do not hit (the default is 10 submissions a second per
    /// token), and the queue server with the development certificates and the cluster's edges as
    /// allow-list.
    pub fn control_toml(&self) -> String {
        let edges: Vec<String> = self.edges.iter().map(|e| quoted(&e.name)).collect();
        format!(
            "# Written by `edgepurge dev`; rewritten on every start.\n\
             listen = \"{api}\"\ndatabase = {db}\nqueues = 4\n\n\
             [rate-limit]\nburst = 100000\nper-second = 10000.0\n\n\
             [queue-server]\nlisten = \"{queue}\"\ncert = {cert}\nkey = {key}\nclient-ca = {ca}\ncrl = {crl}\n\
             edges = [{edges}]\ncontrol-id = \"control-1\"\n",
            api = self.api,
            db = path(&self.dir.join("control.sqlite")),
            queue = self.queue,
            cert = path(&self.certs.control_cert),
            key = path(&self.certs.control_key),
            ca = path(&self.certs.ca_cert),
            crl = path(&self.certs.crl),
            edges = edges.join(", "),
        )
    }

    /// `edge-N.toml` for the edge at `index` (from 0): every host to the origin, and the queue
    /// server as its control node.
    pub fn edge_toml(&self, index: usize) -> String {
        let edge = &self.edges[index];
        format!(
            "# Written by `edgepurge dev`; rewritten on every start.\n\
             listen = \"{proxy}\"\nadmin-listen = \"{admin}\"\n\n\
             [[origin]]\nhost = \"*\"\nurl = {origin}\n\n\
             [control]\nnodes = [\"https://{queue}\"]\nca = {ca}\ncert = {cert}\nkey = {key}\ncrl = {crl}\n\
             state-dir = {state}\n",
            proxy = edge.proxy,
            admin = edge.admin,
            origin = quoted(&self.origin_url),
            queue = self.queue,
            ca = path(&self.certs.ca_cert),
            cert = path(&edge.files.cert),
            key = path(&edge.files.key),
            crl = path(&self.certs.crl),
            state = path(&edge.state_dir),
        )
    }

    /// Where `control.toml` is written.
    pub fn control_path(&self) -> PathBuf {
        self.dir.join("control.toml")
    }

    /// Where the edge at `index` (from 0) has its config.
    pub fn edge_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{}.toml", self.edges[index].name))
    }

    /// Writes `control.toml`.
    pub fn write_control(&self) -> Result<()> {
        write_atomic(&self.control_path(), self.control_toml().as_bytes())
    }

    /// Writes every `edge-N.toml` (after the control node bound the queue server, whose address
    /// they name).
    pub fn write_edges(&self) -> Result<()> {
        for i in 0..self.edges.len() {
            write_atomic(&self.edge_path(i), self.edge_toml(i).as_bytes())?;
        }
        Ok(())
    }

    /// Where `cluster.json` lives.
    pub fn cluster_path(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }
}

/// The admin token of the cluster: the one kept from an earlier run when the database still
/// knows it, else a new one (admin, so valid for every host, tags and `everything`).
pub async fn admin_token(config: &ControlConfig, dir: &Path) -> Result<String> {
    let store = SqliteStore::open(&config.database, config.queues)
        .with_context(|| format!("database {}", config.database.display()))?;
    let file = dir.join(TOKEN_FILE);
    if let Ok(kept) = std::fs::read_to_string(&file) {
        let kept = kept.trim().to_owned();
        if let Some(found) = store.find_token(TokenHash::of(&kept)).await? {
            if found.admin {
                return Ok(kept);
            }
        }
    }
    let now = edgepurge_control::now_ms();
    // Names are unique in the store; a timestamp keeps every run's name new.
    let token = edgepurge_control::auth::create_token(&store, &format!("dev-{now}"), &[], true, now).await?;
    write_private(&file, token.as_bytes())?;
    Ok(token)
}

/// `cluster.json`: how scripts, tests and `edgepurge purge` find the running cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterFile {
    /// The purge API's base URL.
    pub api: String,
    /// An admin token.
    pub token: String,
    /// The edges.
    pub edges: Vec<ClusterEdge>,
    /// The origin every edge proxies to.
    pub origin: String,
    /// The queue server the edges connect to.
    pub queue_server: String,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The `edgepurge dev` process.
    pub pid: u32,
}

/// One edge in `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterEdge {
    /// Its name.
    pub name: String,
    /// Its proxy's base URL.
    pub url: String,
    /// Its admin listener's base URL.
    pub admin: String,
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so a reader
/// never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// As [`write_atomic`], readable by the owner only (the token is a credential).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
    }
    Ok(())
}

/// The `pid` of a `cluster.json` in `dir` whose process still runs (another `edgepurge dev`).
pub fn running_elsewhere(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).ok()?;
    let pid = serde_json::from_str::<ClusterFile>(&text).ok()?.pid;
    // Linux only; elsewhere the port clash reports a second cluster instead.
    (pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists()).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_plan(dir: &Path) -> Plan {
        let ports = Ports { api: 0, queue: 0, edge_base: 0 };
        plan(dir, 2, ports, "http://127.0.0.1:8000".into()).unwrap()
    }

    #[test]
    fn keeps_certificates_between_runs_and_issues_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let first = test_plan(dir.path());
        assert!(first.edges.iter().all(|e| e.proxy.port() == 0 && e.admin.port() == 0), "0 stays 0");
        let ca = std::fs::read(&first.certs.ca_cert).unwrap();
        let again = plan(dir.path(), 3, Ports { api: 0, queue: 0, edge_base: 0 }, "http://o".into()).unwrap();
        assert_eq!(std::fs::read(&again.certs.ca_cert).unwrap(), ca, "the CA is kept");
        assert!(again.edges[2].files.cert.exists(), "a missing edge certificate is issued");
    }

    #[test]
    fn fixed_ports_follow_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path(), 2, Ports { api: 7080, queue: 7443, edge_base: 8081 }, "http://o".into()).unwrap();
        let got: Vec<_> = p.edges.iter().map(|e| (e.proxy.port(), e.admin.port())).collect();
        assert_eq!(got, [(8081, 8082), (8083, 8084)]);
        assert!(plan(dir.path(), 2, Ports { api: 1, queue: 2, edge_base: 65534 }, "http://o".into()).is_err());
    }

    #[test]
    fn the_written_configs_load_through_the_real_parsers() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = test_plan(dir.path());
        p.queue.set_port(7443);
        p.write_control().unwrap();
        p.write_edges().unwrap();
        for i in 0..2 {
            let edge = edgepurge_edge::config::EdgeConfig::load(&p.edge_path(i)).unwrap();
            assert_eq!((edge.origins[0].host.as_str(), edge.origins[0].url.as_str()), ("*", "http://127.0.0.1:8000"));
            let control = edge.control.expect("[control]");
            assert_eq!(control.node_urls(), [format!("https://{}", p.queue)]);
            assert_eq!(control.cert, p.edges[i].files.cert);
        }
        let control = ControlConfig::load(&p.control_path()).unwrap();
        assert_eq!(control.queues, 4);
        let qs = control.queue_server.expect("[queue-server]");
        assert_eq!(qs.listen, p.queue);
        assert_eq!(qs.edges.unwrap(), ["edge-1", "edge-2"]);
    }
}
