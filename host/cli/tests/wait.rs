//! `purge --wait` / `status --watch` that tell the truth, and purges retried safely, with the real
//! binary against a real `edgepurge control` on 127.0.0.1. Edges are simulated through the
//! control's SQLite file (as in `client.rs`): an edge registered there but with no queue stream to
//! the control process is exactly a disconnected edge. A lost answer is made by [`LossyProxy`],
//! which passes the request to control and cuts the connection when the answer begins.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use edgepurge_control_store::{QueueStore, RecordStore, SqliteStore};

mod support;

use support::BIN;

/// Bounds a broken run only; every wait below ends on a condition.
const DEADLINE: Duration = Duration::from_secs(120);

/// A running control role in a temporary directory, with an admin token.
struct Control {
    dir: tempfile::TempDir,
    child: Child,
    api: String,
    admin: String,
}

impl Control {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("control.toml");
        std::fs::write(
            &config,
            "listen = \"127.0.0.1:0\"\ndatabase = \"control.db\"\n[rate-limit]\nburst = 1000\nper-second = 1000.0\n",
        )
        .unwrap();
        let admin = support::create_token(&config, "ops", &["--admin"]);
        let (child, api) = support::start_control(&config);
        Self { dir, child, api, admin }
    }

    /// The binary with `args` against `server`, the admin token, in the temp dir.
    fn cli_at(&self, server: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path()).args(args).args(["--server", server, "--token", &self.admin]);
        for var in ["EDGEPURGE_SERVER", "EDGEPURGE_TOKEN", "EDGEPURGE_CLUSTER"] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// The binary with `args` against this control role.
    fn cli(&self, args: &[&str]) -> Command {
        self.cli_at(&self.api, args)
    }

    /// The control database, opened beside the running control role.
    fn store(&self) -> SqliteStore {
        SqliteStore::open(self.dir.path().join("control.db"), 4).unwrap()
    }

    /// Registers edges (as the queue server does when they first connect; here they never do).
    fn register(&self, edges: &[&str]) {
        for edge in edges {
            block_on(self.store().register_edge(edge, edgepurge_control::now_ms())).unwrap();
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.stdin(Stdio::null()).output().unwrap();
    (status.code().unwrap_or(-1), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The batch id of a `batch N …` line.
fn batch_id(line: &str) -> u64 {
    let rest = line.strip_prefix("batch ").unwrap_or_else(|| panic!("not a batch line: {line}"));
    rest.split([' ', ':']).next().unwrap().parse().unwrap()
}

/// The key of an accepted line (`…, idempotency key KEY`).
fn key_of(line: &str) -> String {
    line.rsplit_once("idempotency key ").unwrap_or_else(|| panic!("no key in {line}")).1.trim().to_owned()
}

/// The edge applies batch `id`.
fn apply(store: &SqliteStore, edge: &str, id: u64) {
    block_on(async {
        let batch = store.batch(id).await.unwrap().expect("the batch");
        for span in batch.spans.iter().filter(|s| s.own > 0) {
            store.set_watermark(edge, span.queue, span.last, edgepurge_control::now_ms()).await.unwrap();
        }
    });
}

/// Tasks ever appended to every queue.
fn queued(store: &SqliteStore) -> u64 {
    block_on(store.queue_info()).unwrap().iter().map(|q| q.next - 1).sum()
}

/// Lines of a child's stderr, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line containing every one of `needles`; every line read on the way.
fn wait_for_line(lines: &mpsc::Receiver<String>, needles: &[&str]) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < DEADLINE {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let hit = needles.iter().all(|n| line.contains(n));
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!("no line with {needles:?}; saw {seen:?}");
}

#[test]
fn a_wait_that_times_out_exits_3_and_names_the_edges_still_missing() {
    let control = Control::start();
    control.register(&["edge-1", "edge-2"]);
    // Neither edge is connected: nothing will apply the batch.
    let (code, out, err) =
        run(&mut control.cli(&["purge", "--url", "https://www.example.com/a", "--wait", "--timeout", "2s"]));
    assert_eq!(code, 3, "{out}{err}");
    let id = batch_id(&out);
    assert!(out.contains(&format!("batch {id} not done after 2s: 2 of 2 edges have not applied it")), "{out}");
    for edge in ["edge-1", "edge-2"] {
        let line = format!(
            "  {edge}: disconnected, no stream to this control node since it started; 0/1 tasks applied, lag 1"
        );
        assert!(err.contains(&line), "names {edge}: {err}");
    }
    assert!(err.contains(&format!("hint: `edgepurge status {id} --watch` follows it further")), "{err}");

    // edge-1 applies it: following it again times out naming edge-2 only.
    apply(&control.store(), "edge-1", id);
    let (code, out, err) = run(&mut control.cli(&["status", &id.to_string(), "--watch", "--timeout", "2s"]));
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains(&format!("batch {id} not done after 2s: 1 of 2 edges has not applied it")), "{out}");
    assert!(err.contains("  edge-2: disconnected, no stream to this control node since it started"), "{err}");
    assert!(!err.contains("  edge-1:"), "edge-1 applied it: {err}");
    assert!(err.contains("waiting for edge-2 (disconnected, 0/1 tasks)"), "the progress line names it: {err}");

    // With --json: the latest status document on stdout, the report on stderr.
    let (code, out, err) = run(&mut control.cli(&["status", &id.to_string(), "--watch", "--timeout", "1s", "--json"]));
    assert_eq!(code, 3, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((doc["state"].as_str(), doc["edges"][1]["connected"].as_bool()), (Some("in-progress"), Some(false)));
    assert!(err.contains("1 of 2 edges has not applied it"), "{err}");

    // A duration without a unit is refused with the ways to write one.
    let (code, _, err) =
        run(&mut control.cli(&["purge", "--url", "https://www.example.com/a", "--wait", "--timeout", "2"]));
    assert_eq!(code, 1);
    assert!(err.contains("write it like 30s, 5m, 500ms, 1h or 1m30s"), "{err}");
}

#[test]
fn the_progress_line_follows_each_edge_and_names_the_disconnected_one() {
    let control = Control::start();
    control.register(&["edge-1", "edge-2"]);
    let mut child = control
        .cli(&["purge", "--url", "https://www.example.com/a", "--wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let seen = wait_for_line(&lines, &["0/2 edges applied", "no ETA while an edge is disconnected"]);
    let id = batch_id(seen.last().unwrap());
    assert!(seen
        .last()
        .unwrap()
        .contains("waiting for edge-1 (disconnected, 0/1 tasks), edge-2 (disconnected, 0/1 tasks)"));
    // One edge applies it: the line must say so (it once stayed at 0/2), naming the other.
    apply(&control.store(), "edge-1", id);
    wait_for_line(
        &lines,
        &[&format!("batch {id}: in-progress, 1/2 edges applied"), "waiting for edge-2 (disconnected, 0/1 tasks)"],
    );
    apply(&control.store(), "edge-2", id);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(&format!("batch {id} done: applied on 2/2 edges")), "{stdout}");

    // The one-shot status: no ETA for the disconnected edge, and the batch says why it has none.
    let (code, out, _) = run(&mut control.cli(&["purge", "--url", "https://www.example.com/b"]));
    assert_eq!(code, 0);
    let id = batch_id(&out).to_string();
    let (code, out, err) = run(&mut control.cli(&["status", &id]));
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().next().unwrap().contains("no ETA: edge-1, edge-2 are disconnected"), "{out}");
    assert!(out.lines().nth(1).unwrap().ends_with("CONNECTED  ETA"), "{out}");
    assert!(out.lines().nth(2).unwrap().ends_with("no         none: disconnected"), "{out}");
    let (_, out, _) = run(&mut control.cli(&["status", &id, "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["edges"][0]["connected"], false, "{out}");
    assert!(doc["edges"][0]["last_seen"].is_null() && doc.get("eta_ms").is_none(), "{out}");
}

/// A TCP proxy to control that loses the answer of the next `drops` connections: it passes the
/// request on and cuts the connection as soon as control starts answering (control answers a
/// purge only once the batch is committed, so the batch was accepted and the client never knows).
struct LossyProxy {
    url: String,
    drops: Arc<AtomicUsize>,
}

impl LossyProxy {
    fn start(upstream: &str) -> Self {
        let upstream = upstream.strip_prefix("http://").expect("a plain-HTTP control").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let drops = Arc::new(AtomicUsize::new(0));
        let counter = drops.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let lose = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                let upstream = upstream.clone();
                std::thread::spawn(move || pipe(client, &upstream, lose));
            }
        });
        Self { url, drops }
    }

    /// Loses the answer of the next `n` connections.
    fn lose_next(&self, n: usize) {
        self.drops.store(n, Ordering::SeqCst);
    }
}

fn pipe(mut client: TcpStream, upstream: &str, lose: bool) {
    let Ok(mut server) = TcpStream::connect(upstream) else { return };
    let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    if lose {
        let mut first = [0u8; 1];
        let _ = server.read(&mut first);
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        return;
    }
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Write);
}

#[test]
fn a_lost_answer_is_sent_again_with_the_same_key_and_queued_once() {
    let control = Control::start();
    let store = control.store();
    let proxy = LossyProxy::start(&control.api);

    // JSON: the first answer is lost, the retry is answered with the batch the first created.
    proxy.lose_next(1);
    let (code, out, err) = run(&mut control.cli_at(&proxy.url, &["purge", "--url", "https://www.example.com/a"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("batch 1 accepted earlier (replayed): 1 task, queued at "), "{out}");
    let key = key_of(&out);
    assert_eq!(key.len(), 32, "a generated 128-bit hex key: {out}");
    assert!(err.contains("the answer to the purge was lost"), "{err}");
    assert!(err.contains(&format!("with the same idempotency key {key} (attempt 2 of 4)")), "{err}");
    assert_eq!(queued(&store), 1, "queued once");
    assert!(block_on(store.batch(2)).unwrap().is_none(), "no second batch");

    // --file: streamed, so read again from its start for the retry.
    let file = control.dir.path().join("urls.txt");
    std::fs::write(&file, "https://www.example.com/1\nhttps://www.example.com/2\nhttps://www.example.com/3\n").unwrap();
    proxy.lose_next(1);
    let (code, out, err) = run(&mut control.cli_at(&proxy.url, &["purge", "--file", file.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("batch 2 accepted earlier (replayed): 3 tasks"), "{out}");
    assert_eq!(queued(&store), 4);

    // stdin cannot be read again: no retry, and the error says how to re-run safely.
    proxy.lose_next(1);
    let mut child = control
        .cli_at(&proxy.url, &["purge", "--file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"https://www.example.com/4\nhttps://www.example.com/5\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a body read from stdin cannot be sent again"), "{err}");
    assert!(!err.contains("attempt 2"), "not retried: {err}");
    let key =
        err.split("--idempotency-key ").nth(1).and_then(|k| k.split([' ', '`']).next()).expect("the key").to_owned();
    assert_eq!(queued(&store), 6, "control did accept it");
    // Re-run with that key: control answers with the batch it accepted, nothing is queued twice.
    std::fs::write(&file, "https://www.example.com/4\nhttps://www.example.com/5\n").unwrap();
    let (code, out, err) =
        run(&mut control.cli(&["purge", "--file", file.to_str().unwrap(), "--idempotency-key", &key]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("batch 3 accepted earlier (replayed): 2 tasks"), "{out}");
    assert_eq!(key_of(&out), key);
    assert_eq!(queued(&store), 6);

    // Answers that arrive are not retried, and a chosen key is sent as given.
    let (code, out, _) =
        run(&mut control.cli(&["purge", "--url", "https://www.example.com/b", "--idempotency-key", "deploy-42"]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("batch 4 accepted: 1 task") && out.trim_end().ends_with("idempotency key deploy-42"),
        "{out}"
    );
    let (code, out, _) =
        run(&mut control.cli(&["purge", "--url", "https://www.example.com/b", "--idempotency-key", "deploy-42"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("batch 4 accepted earlier (replayed): 1 task"), "{out}");
    let (_, out, _) = run(&mut control.cli(&["status", "4", "--json"]));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["idempotency_key"], "deploy-42");
    let (code, _, err) =
        run(&mut control.cli(&["purge", "--url", "https://www.example.com/b", "--idempotency-key", "a b"]));
    assert_eq!(code, 1);
    assert!(err.contains("1–255 visible ASCII characters"), "{err}");
}
