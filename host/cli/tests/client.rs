//! The operator commands of the real binary (`edgepurge purge`, `status`, `records`, `edges`,
//! `queues`) against a real `edgepurge control` on 127.0.0.1 with tokens from
//! `edgepurge token create`. Edges are simulated through the control's SQLite file (WAL lets a
//! second process write): `register_edge`, `set_watermark` and `report_failure` are what the
//! queue server calls when an edge connects and acknowledges.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgepurge_control_store::{QueueStore, RecordStore, SqliteStore};

mod support;

use support::BIN;
/// Bounds a broken run only; every wait below ends on a condition.
const DEADLINE: Duration = Duration::from_secs(120);

/// A running control role in a temporary directory, with an admin and a tenant token.
struct Control {
    dir: tempfile::TempDir,
    child: Child,
    api: String,
    admin: String,
    tenant: String,
}

impl Control {
    fn start() -> Self {
        Self::start_with(tempfile::tempdir().unwrap(), "")
    }

    /// A control role in `dir` with `extra` appended to its control.toml.
    fn start_with(dir: tempfile::TempDir, extra: &str) -> Self {
        let config = dir.path().join("control.toml");
        std::fs::write(
            &config,
            // A roomy rate limit unless `extra` sets its own.
            match extra.contains("[rate-limit]") {
                false => format!(
                    "listen = \"127.0.0.1:0\"\ndatabase = \"control.db\"\n[rate-limit]\nburst = 1000\nper-second = 1000.0\n{extra}"
                ),
                true => format!("listen = \"127.0.0.1:0\"\ndatabase = \"control.db\"\n{extra}"),
            },
        )
        .unwrap();
        let token = |name: &str, extra: &[&str]| support::create_token(&config, name, extra);
        let admin = token("ops", &["--admin"]);
        let tenant = token("shop", &["--hosts", "example.com,*.example.com"]);
        let (child, api) = support::start_control(&config);
        Self { dir, child, api, admin, tenant }
    }

    /// The binary with `args`, the admin token and this API, in the temp dir, no `EDGEPURGE_*`.
    fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = bare(self.dir.path(), args);
        cmd.args(["--server", &self.api, "--token", &self.admin]);
        cmd
    }

    /// The control database, opened beside the running control role.
    fn store(&self) -> SqliteStore {
        SqliteStore::open(self.dir.path().join("control.db"), 4).unwrap()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with `args` in `dir`, with no `EDGEPURGE_*` variables from the caller's shell.
fn bare(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args);
    for var in ["EDGEPURGE_SERVER", "EDGEPURGE_TOKEN", "EDGEPURGE_CLUSTER"] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.stdin(Stdio::null()).output().unwrap();
    (status.code().unwrap_or(-1), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The batch id of a `batch N accepted: …` line.
fn batch_id(line: &str) -> u64 {
    let rest = line.strip_prefix("batch ").unwrap_or_else(|| panic!("not an accepted line: {line}"));
    rest.split(' ').next().unwrap().parse().unwrap()
}

/// Lines of a child's stderr, as they come.
fn lines_of(stderr: ChildStderr) -> mpsc::Receiver<String> {
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

/// Waits for a line containing `needle`; every line read on the way.
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < DEADLINE {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!("no line with `{needle}`; saw {seen:?}");
}

/// Starts `purge --wait` for one URL with `extra` flags; its batch id and the child.
fn purge_waiting(control: &Control, url: &str, extra: &[&str]) -> (u64, Child, mpsc::Receiver<String>) {
    let mut args = vec!["purge", "--url", url, "--wait"];
    args.extend_from_slice(extra);
    let mut child =
        control.cli(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    // The waiting line says the edge has not applied it yet; only then does the "edge" move.
    let seen = wait_for_line(&lines, "0/1 edges applied");
    let id = seen.last().unwrap().strip_prefix("batch ").unwrap().split(':').next().unwrap().parse().unwrap();
    (id, child, lines)
}

/// The edge applies batch `id` (optionally failing its first task on the way).
fn apply(store: &SqliteStore, edge: &str, id: u64, fail: Option<&str>) {
    block_on(async {
        let batch = store.batch(id).await.unwrap().expect("the batch");
        for span in batch.spans.iter().filter(|s| s.own > 0) {
            if let Some(reason) = fail {
                store.report_failure(edge, span.queue, span.first, reason, edgepurge_control::now_ms()).await.unwrap();
            }
            store.set_watermark(edge, span.queue, span.last, edgepurge_control::now_ms()).await.unwrap();
        }
    });
}

fn wait_exit(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn purge_prints_the_batch_and_the_views_print_tables() {
    let control = Control::start();
    let (code, out, err) = run(&mut control.cli(&["purge", "--url", "https://www.example.com/a", "--soft"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("batch 1 accepted: 1 task, queued at "), "{out}");

    let (code, out, err) = run(&mut control.cli(&["purge", "--prefix", "https://www.example.com/img/", "--json"]));
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((json["id"].as_u64(), json["tasks"].as_u64()), (Some(2), Some(1)), "{out}");

    // --file: a streamed text/plain body, from a file and from stdin.
    let file = control.dir.path().join("urls.txt");
    std::fs::write(&file, "https://www.example.com/1\nhttps://www.example.com/2\nhttps://www.example.com/3\n").unwrap();
    let (code, out, err) = run(&mut control.cli(&["purge", "--file", file.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("batch 3 accepted: 3 tasks"), "{out}");
    let mut child = control
        .cli(&["purge", "--file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"https://www.example.com/4\nhttps://www.example.com/5\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("batch 4 accepted: 2 tasks"));

    let (code, out, err) = run(&mut control.cli(&["status", "1"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("batch 1: done, 1 task, 100.0% applied"), "{out}");
    let (code, out, _) = run(&mut control.cli(&["status", "1", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["state"], "done");

    let (code, out, err) = run(&mut control.cli(&["records", "https://www.example.com/a"]));
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("BATCH  ACCEPTED"), "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with("1      "), "aligned under BATCH: {out}");
    assert!(out.contains("http://www.example.com/a") && out.contains("soft"), "{out}");
    let (code, out, _) = run(&mut control.cli(&["records", "--host", "www.example.com", "--json"]));
    assert_eq!(code, 0);
    let entries = serde_json::from_str::<serde_json::Value>(&out).unwrap()["entries"].as_array().unwrap().len();
    assert_eq!(entries, 7, "{out}");

    let (code, out, _) = run(&mut control.cli(&["edges"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("no edge has registered yet"), "{out}");
    block_on(control.store().register_edge("edge-1", edgepurge_control::now_ms())).unwrap();
    let (code, out, _) = run(&mut control.cli(&["edges"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("EDGE    STATE   CONNECTED  LAST SEEN"), "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with("edge-1  active  "), "{out}");
    let (code, out, _) = run(&mut control.cli(&["edges", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["edges"][0]["name"], "edge-1");

    let (code, out, err) = run(&mut control.cli(&["queues"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("QUEUE  HEALTHY  DEPTH"), "{out}");
    assert_eq!(out.lines().count(), 5, "a header and 4 queues: {out}");
    let (code, out, _) = run(&mut control.cli(&["queues", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["queues"].as_array().unwrap().len(), 4);
}

#[test]
fn without_a_server_the_error_names_the_three_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(&mut bare(dir.path(), &["purge", "--url", "https://www.example.com/a"]));
    assert_eq!(code, 1, "{out}{err}");
    for way in ["--server URL --token TOKEN", "EDGEPURGE_SERVER", "EDGEPURGE_CLUSTER", ".edgepurge-dev/cluster.json"] {
        assert!(err.contains(way), "names {way}: {err}");
    }
}

#[test]
fn api_errors_carry_the_message_and_a_hint() {
    let control = Control::start();
    let (code, _, err) =
        run(&mut bare(control.dir.path(), &["edges", "--server", &control.api, "--token", "ep_wrong"]));
    assert_eq!(code, 1);
    assert!(err.contains("401 Unauthorized: unknown or revoked token"), "{err}");
    assert!(err.contains("hint: check the token"), "{err}");

    let (code, _, err) = run(&mut bare(
        control.dir.path(),
        &["purge", "--url", "https://other.org/x", "--server", &control.api, "--token", &control.tenant],
    ));
    assert_eq!(code, 1);
    assert!(err.contains("403 Forbidden") && err.contains("other.org"), "{err}");
    assert!(err.contains("hint: this token may not do that"), "{err}");

    let (code, _, err) = run(&mut control.cli(&["status", "999"]));
    assert_eq!(code, 1);
    assert!(err.contains("404 Not Found: no purge batch `999`"), "{err}");

    // A port nothing listens on: the address of a control role that is not running.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = format!("http://{unused}");
    let (code, _, err) = run(&mut bare(control.dir.path(), &["queues", "--server", &server, "--token", "t"]));
    assert_eq!(code, 1);
    assert!(err.contains(&format!("is the control role running at {server}?")), "{err}");
    assert!(err.contains("`make dev`"), "{err}");
}

#[test]
fn wait_with_no_edge_registered_is_done_at_once() {
    let control = Control::start();
    let (code, out, err) = run(&mut control.cli(&["purge", "--url", "https://www.example.com/a", "--wait"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("batch 1 done: no edge was registered when it was accepted"), "{out}");
    let (code, out, err) = run(&mut control.cli(&["purge", "--url", "https://www.example.com/a", "--wait", "--json"]));
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((status["id"].as_u64(), status["state"].as_str()), (Some(2), Some("done")), "{out}");
}

#[test]
fn wait_follows_the_edge_until_its_watermark_passes() {
    let control = Control::start();
    let store = control.store();
    block_on(store.register_edge("edge-1", edgepurge_control::now_ms())).unwrap();

    let (id, child, _) = purge_waiting(&control, "https://www.example.com/a", &[]);
    apply(&store, "edge-1", id, None);
    let (code, out) = wait_exit(child);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("batch {id} accepted: 1 task")), "{out}");
    assert!(out.contains(&format!("batch {id} done: applied on 1/1 edges")), "{out}");
    assert_eq!(batch_id(&out), id);

    // An edge that reports a task it could not apply: exit 2, naming the edge.
    let (id, child, lines) = purge_waiting(&control, "https://www.example.com/b", &["--json"]);
    apply(&store, "edge-1", id, Some("origin answered 500"));
    let (code, out) = wait_exit(child);
    assert_eq!(code, 2, "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["state"], "partially-failed", "{out}");
    wait_for_line(&lines, "edge-1: 1 of 1 tasks failed");

    // `status --watch` on a batch that is already done answers at once.
    let (code, out, err) = run(&mut control.cli(&["status", &id.to_string(), "--watch"]));
    assert_eq!(code, 2, "{err}");
    assert!(out.contains(&format!("batch {id} partially failed: 1 of 1 edges")), "{out}");

    // The queues moved: the applied offsets show in `edges`.
    let next = block_on(store.queue_info()).unwrap();
    assert!(next.iter().any(|q| q.next > 1));
    let (code, out, _) = run(&mut control.cli(&["edges"]));
    assert_eq!(code, 0);
    assert!(out.lines().nth(1).unwrap().contains("  0  "), "no lag left: {out}");
}

#[test]
fn cluster_json_is_found_by_env_and_in_the_working_directory() {
    let control = Control::start();
    let cluster = serde_json::json!({
        "api": control.api, "token": control.admin, "origin": "http://127.0.0.1:1",
        "edges": [{"url": "http://127.0.0.1:2", "admin": "http://127.0.0.1:3"}],
    });
    let elsewhere: PathBuf = control.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let file = elsewhere.join("cluster.json");
    std::fs::write(&file, cluster.to_string()).unwrap();
    let (code, out, err) = run(bare(control.dir.path(), &["queues"]).env("EDGEPURGE_CLUSTER", &file));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("QUEUE"), "{out}");

    // The default place: ./.edgepurge-dev/cluster.json; a --token flag still wins over it.
    let dev = control.dir.path().join(".edgepurge-dev");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("cluster.json"), cluster.to_string()).unwrap();
    let (code, out, err) = run(&mut bare(control.dir.path(), &["purge", "--url", "https://www.example.com/a"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("batch 1 accepted"), "{out}");
    let (code, _, err) = run(&mut bare(control.dir.path(), &["edges", "--token", "ep_wrong"]));
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");

    // A named cluster file that is missing is an error, not a silent fallback.
    let (code, _, err) =
        run(bare(control.dir.path(), &["edges"]).env("EDGEPURGE_CLUSTER", elsewhere.join("missing.json")));
    assert_eq!(code, 1);
    assert!(err.contains("cannot read the cluster file"), "{err}");
}

#[test]
fn an_https_api_with_a_private_ca_needs_ca() {
    let dir = tempfile::tempdir().unwrap();
    let layout = edgepurge_tls::certs::init(&dir.path().join("certs"), 0, &[], false).unwrap().layout;
    let tls = format!("[tls]\ncert = {:?}\nkey = {:?}\n", layout.control_cert, layout.control_key);
    let control = Control::start_with(dir, &tls);
    assert!(control.api.starts_with("https://127.0.0.1:"), "{}", control.api);

    let (code, _, err) = run(&mut control.cli(&["edges"]));
    assert_eq!(code, 1, "the dev CA is not trusted by default");
    assert!(err.contains(&control.api), "{err}");
    assert!(err.contains("hint: its TLS certificate is not trusted: pass --ca FILE"), "{err}");
    let ca = layout.ca_cert.to_str().unwrap();
    let (code, out, err) = run(&mut control.cli(&["purge", "--url", "https://www.example.com/a", "--ca", ca]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("batch 1 accepted"), "{out}");

    // cluster.json's `ca` (relative to the file) goes with its `api`.
    let cluster = serde_json::json!({"api": control.api, "token": control.admin, "ca": "certs/ca.pem"});
    let file = control.dir.path().join("cluster.json");
    std::fs::write(&file, cluster.to_string()).unwrap();
    let (code, out, err) = run(bare(control.dir.path(), &["queues"]).env("EDGEPURGE_CLUSTER", &file));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("QUEUE"), "{out}");
}

#[test]
fn a_rate_limited_purge_says_when_to_retry() {
    let control = Control::start_with(tempfile::tempdir().unwrap(), "[rate-limit]\nburst = 1\nper-second = 0.01\n");
    let (code, _, err) = run(&mut control.cli(&["purge", "--url", "https://www.example.com/a"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&mut control.cli(&["purge", "--url", "https://www.example.com/b"]));
    assert_eq!(code, 1);
    assert!(err.contains("429 Too Many Requests"), "{err}");
    assert!(err.contains("hint: this token's rate limit is used up: retry after "), "{err}");
}
