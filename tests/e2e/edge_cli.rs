//! `edgepurge edge` run as an operator runs it: it prints where it listens, SIGHUP swaps in the
//! policy the config file names (a rejected one leaves the current policy serving), and
//! SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgepurge_tests::repo_root;

use crate::cli::edgepurge;

/// Fails a test instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

fn config(policy: &str) -> String {
    let path = repo_root().join("target").join(policy);
    format!(
        "listen = \"127.0.0.1:0\"\nadmin-listen = \"127.0.0.1:0\"\n[policy]\npath = {:?}\n",
        path.display().to_string()
    )
}

/// `GET path` on `addr` over plain HTTP/1.1; the body.
fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("the admin listener accepts");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or(text)
}

/// Polls `GET /policy` until it contains `needle`.
fn wait_policy(admin: &str, needle: &str) {
    let start = Instant::now();
    loop {
        let status = get(admin, "/policy");
        if status.contains(needle) {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "GET /policy never showed {needle}: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -{name} failed");
}

#[test]
fn sighup_swaps_the_policy_and_sigterm_stops_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edge.toml");
    std::fs::write(&file, config("policies/default.wasm")).unwrap();
    let mut child = Command::new(edgepurge())
        .args(["edge", "--config", file.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("edgepurge edge starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("edge proxy on http://"), "{line}");
    let admin = line.rsplit("http://").next().unwrap().trim().to_owned();
    let (log_tx, log) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = log_tx.send(line);
        }
    });
    wait_policy(&admin, "\"name\":\"default\"");

    std::fs::write(&file, config("policies/static-assets.wasm")).unwrap();
    signal(&child, "HUP");
    wait_policy(&admin, "\"name\":\"static-assets\"");

    // A policy the sandbox refuses: logged, and the current one keeps serving.
    std::fs::write(&file, config("fixtures/forbidden-sockets.wasm")).unwrap();
    signal(&child, "HUP");
    let start = Instant::now();
    loop {
        let line = log.recv_timeout(PATIENCE).expect("the refused policy was never logged");
        if line.contains("SIGHUP") && line.contains("keeps serving") {
            assert!(line.contains("forbids"), "{line}");
            break;
        }
        assert!(start.elapsed() < PATIENCE);
    }
    assert!(get(&admin, "/policy").contains("\"name\":\"static-assets\""));

    signal(&child, "TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < PATIENCE, "the edge did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
