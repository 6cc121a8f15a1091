//! Propagation latency: how long from the API accepting a purge until every edge has applied it.
//!
//! Starts `edgepurge dev --edges N` (control, N edges over mutual TLS on loopback, a demo
//! origin) for each N given, submits single-URL purges one after another, and for each one
//! measures from the moment the `202` arrives to the first status read that says `done` (the
//! status is read in a tight loop over one keep-alive connection, so the figure includes at most
//! one status round trip, ~0.2 ms here). Prints p50 / p99 / max per edge count and writes JSON.
//!
//! `make bench-propagation` (EDGES="2 8", PURGES=1000) or
//! `propagation --binary target/release/edgepurge --edges 2 --edges 8 --purges 1000 --out FILE`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

struct Args {
    binary: PathBuf,
    edges: Vec<usize>,
    purges: usize,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args =
        Args { binary: PathBuf::from("target/release/edgepurge"), edges: Vec::new(), purges: 1000, out: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--binary" => args.binary = value()?.into(),
            "--edges" => args.edges.push(value()?.parse().context("--edges takes a number")?),
            "--purges" => args.purges = value()?.parse().context("--purges takes a number")?,
            "--out" => args.out = Some(value()?.into()),
            other => bail!("unknown argument `{other}` (use --binary, --edges N (repeatable), --purges, --out)"),
        }
    }
    if args.edges.is_empty() {
        args.edges = vec![2, 8];
    }
    Ok(args)
}

/// One keep-alive HTTP/1.1 connection to the API.
struct Api {
    reader: BufReader<TcpStream>,
    addr: String,
    token: String,
}

impl Api {
    fn connect(addr: &str, token: &str) -> Result<Api> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect to the API at {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Api { reader: BufReader::new(stream), addr: addr.to_owned(), token: token.to_owned() })
    }

    fn call(&mut self, method: &str, path: &str, body: &str) -> Result<(u16, Value)> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            self.token,
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).context("no HTTP status line")?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// `edgepurge dev` for one run, stopped on drop.
struct Dev {
    child: Child,
    _dir: tempfile::TempDir,
    api: String,
    token: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn start_dev(binary: &PathBuf, edges: usize) -> Result<Dev> {
    let dir = tempfile::tempdir()?;
    let log = std::fs::File::create(dir.path().join("dev.log"))?;
    let child = Command::new(binary)
        .args(["dev", "--edges", &edges.to_string(), "--state-dir"])
        .arg(dir.path())
        .args(["--api-port", "0", "--queue-port", "0", "--edge-base-port", "0", "--origin-port", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!("cannot run {} (build it with `cargo build --release -p edgepurge`)", binary.display())
        })?;
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
    Ok(Dev { child, _dir: dir, api, token })
}

fn wait_connected(api: &mut Api, edges: usize) -> Result<()> {
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

/// Submits one purge and returns the time from its `202` to the first `done` status.
fn one_purge(api: &mut Api, n: usize) -> Result<Duration> {
    let body = json!({"urls": [format!("http://demo.local/propagation/{n}")]}).to_string();
    let (status, answer) = api.call("POST", "/v1/purges", &body)?;
    let accepted = Instant::now();
    if status != 202 {
        bail!("purge refused: {status} {answer}");
    }
    let id = answer["id"].as_u64().context("no id in the 202")?;
    loop {
        let (_, progress) = api.call("GET", &format!("/v1/purges/{id}"), "")?;
        if progress["state"] == "done" {
            return Ok(accepted.elapsed());
        }
        if accepted.elapsed() > Duration::from_secs(60) {
            bail!("batch {id} not done after 60 s: {progress}");
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let mut results = Vec::new();
    println!("| edges | purges | p50 ms | p99 ms | max ms | mean ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &edges in &args.edges {
        let dev = start_dev(&args.binary, edges)?;
        let mut api = Api::connect(&dev.api, &dev.token)?;
        wait_connected(&mut api, edges)?;
        for n in 0..20 {
            one_purge(&mut api, usize::MAX - n)?;
        }
        let mut times = Vec::with_capacity(args.purges);
        for n in 0..args.purges {
            times.push(one_purge(&mut api, n)?);
        }
        times.sort();
        let mean = times.iter().map(Duration::as_secs_f64).sum::<f64>() / times.len() as f64 * 1000.0;
        let (p50, p99, max) = (percentile(&times, 0.5), percentile(&times, 0.99), percentile(&times, 1.0));
        println!("| {edges} | {} | {p50:.2} | {p99:.2} | {max:.2} | {mean:.2} |", args.purges);
        results.push(json!({"edges": edges, "purges": args.purges, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "mean_ms": mean}));
        drop(dev);
    }
    let report = json!({"benchmark": "propagation", "results": results});
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
