//! `edgepurge dev` as a benchmark fixture: start a whole cluster (control, N edges over mutual
//! TLS on loopback, the demo origin) in a temporary state directory, talk to its API over one
//! keep-alive HTTP/1.1 connection, wait for the edges, stop it on drop.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::edge_proc::spawn_quiet;
use crate::fill::HttpConn;

/// One keep-alive HTTP/1.1 connection to the API, with the bearer token.
pub struct Api {
    conn: HttpConn,
    addr: String,
    token: String,
}

impl Api {
    /// Connects to the API at `addr` (host:port) with a bearer token.
    pub fn connect(addr: &str, token: &str) -> Result<Api> {
        let socket = addr.parse().with_context(|| format!("the API address `{addr}` is not host:port"))?;
        Ok(Api { conn: HttpConn::connect(socket)?, addr: addr.to_owned(), token: token.to_owned() })
    }

    /// Sends one request with a JSON body and reads the answer as JSON (`Null` when it is not
    /// JSON).
    pub fn call(&mut self, method: &str, path: &str, body: &str) -> Result<(u16, Value)> {
        self.send(method, path, "application/json", body.as_bytes())
    }

    /// Sends one request with a body of any content type and reads the answer as JSON (`Null`
    /// when it is not JSON).
    pub fn send(&mut self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<(u16, Value)> {
        let authorization = format!("Bearer {}", self.token);
        let headers =
            [("Host", self.addr.as_str()), ("Authorization", authorization.as_str()), ("Content-Type", content_type)];
        let reply = self.conn.send(method, path, &headers, body)?;
        Ok((reply.status, serde_json::from_slice(&reply.body).unwrap_or(Value::Null)))
    }
}

/// `edgepurge dev` for one run, stopped on drop.
pub struct Dev {
    child: Child,
    _dir: tempfile::TempDir,
    /// The API address (host:port).
    pub api: String,
    /// The admin token.
    pub token: String,
    /// `cluster.json` as `edgepurge dev` wrote it (edges, origin, …).
    pub info: Value,
}

impl Dev {
    /// The process id of `edgepurge dev` (control and every edge run in it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Starts `edgepurge dev --edges N` with every port 0 in a temporary state dir and waits for its
/// `cluster.json`.
pub fn start_dev(binary: &PathBuf, edges: usize) -> Result<Dev> {
    let dir = tempfile::tempdir()?;
    let log = std::fs::File::create(dir.path().join("dev.log"))?;
    let child = spawn_quiet(
        Command::new(binary).args(["dev", "--edges", &edges.to_string(), "--state-dir"]).arg(dir.path()).args([
            "--api-port",
            "0",
            "--queue-port",
            "0",
            "--edge-base-port",
            "0",
            "--origin-port",
            "0",
        ]),
        binary,
        log,
    )?;
    let cluster = dir.path().join("cluster.json");
    let start = Instant::now();
    let info: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&cluster) {
            if let Ok(value) = serde_json::from_str(&text) {
                break value;
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("edgepurge dev wrote no cluster.json in 120 s; see {}", dir.path().join("dev.log").display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let api = info["api"].as_str().context("cluster.json has no api")?.trim_start_matches("http://").to_owned();
    let token = info["token"].as_str().context("cluster.json has no token")?.to_owned();
    Ok(Dev { child, _dir: dir, api, token, info })
}

/// Waits until `edges` edges are connected to the queue server (120 s at most).
pub fn wait_connected(api: &mut Api, edges: usize) -> Result<()> {
    let start = Instant::now();
    loop {
        let (_, body) = api.call("GET", "/v1/edges", "")?;
        let connected = body["edges"].as_array().map_or(0, |l| l.iter().filter(|e| e["connected"] == true).count());
        if connected == edges {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("only {connected} of {edges} edges connected after 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
