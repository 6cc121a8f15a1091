//! `kill -9` of the real control process during concurrent bulk submissions (issue [3], item 7).
//!
//! Two clients loop on 200,000-URL `text/plain` batches and two on small ones, each batch on a
//! host of its own, so a host's records are exactly one batch's tasks. The parent kills the
//! process with SIGKILL once a large batch was acknowledged, a few small ones were, and another
//! large one is half uploaded or wholly sent (then the kill lands while the server works on it);
//! then restarts `edgepurge control` on the same database and checks:
//!
//! - every batch answered with `202` is complete: its status says all its tasks, and all its URLs
//!   are in the records, carried by that batch;
//! - every batch that got no `202` (cut off by the kill) is either absent or complete — a batch
//!   may commit just before the kill takes the answer away, but it is never partial.
//!
//! The checks hold wherever the kill lands, so the test does not depend on timing; the order of
//! events above only makes it likely that the kill interrupts an upload and an append.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgepurge_control_store::{RecordQuery, RecordStore, SqliteStore};

mod support;
use support::http;

use support::BIN;
const LARGE: usize = 200_000;
const SMALL: [usize; 3] = [1, 50, 3_000];

/// What one submission ended as.
#[derive(Debug, Clone)]
struct Submitted {
    host: String,
    urls: usize,
    /// The batch id of the `202`, or `None` when the kill cut the request or its answer off.
    accepted: Option<u64>,
}

/// Starts `edgepurge control`; returns the child and its API address (`host:port`).
fn start(config: &Path) -> (Child, String) {
    let (child, api) = support::start_control(config);
    (child, api.strip_prefix("http://").expect("plain HTTP on loopback").to_owned())
}

/// Submits `urls` URLs on `host` as one `text/plain` batch; `sent` is set once `percent` % of the
/// body is written. The batch id of a `202`, or `None` on any failure (the process may be gone).
fn submit(addr: &str, token: &str, host: &str, urls: usize, sent: Option<(&AtomicBool, usize)>) -> Option<u64> {
    let body: String = (0..urls).map(|i| format!("https://{host}/object/{i}\n")).collect();
    let mut stream = TcpStream::connect(addr).ok()?;
    let head = format!(
        "POST /v1/purges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    let percent = sent.map_or(0, |(_, p)| p);
    let (a, b) = body.as_bytes().split_at(body.len() * percent / 100);
    stream.write_all(a).ok()?;
    if let Some((flag, _)) = sent {
        flag.store(true, Ordering::SeqCst);
    }
    stream.write_all(b).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    if !response.starts_with("HTTP/1.1 202") {
        return None;
    }
    let id = response.split("\"id\":").nth(1)?;
    id.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// One HTTP/1.1 GET; the whole response as text.
fn get(addr: &str, token: &str, path: &str) -> String {
    http(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"))
}

#[test]
#[cfg(unix)]
fn kill_9_during_bulk_submissions_leaves_only_complete_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("control.toml");
    // A large bucket: the small clients submit back to back and a 429 would only waste the run.
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\ndatabase = \"control.db\"\n[rate-limit]\nburst = 100000\nper-second = 100000.0\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["token", "create", "--config"])
        .arg(&config)
        .args(["--name", "crash", "--hosts", "*.example.com"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let (mut control, addr) = start(&config);
    let results = Arc::new(Mutex::new(Vec::<Submitted>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let large_acks = Arc::new(AtomicUsize::new(0));
    let small_acks = Arc::new(AtomicUsize::new(0));
    let large_sent: Arc<[AtomicBool; 2]> = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let mut clients = Vec::new();
    for client in 0..4usize {
        let (addr, token, results, stop) = (addr.clone(), token.clone(), results.clone(), stop.clone());
        let (large_acks, small_acks, large_sent) = (large_acks.clone(), small_acks.clone(), large_sent.clone());
        clients.push(std::thread::spawn(move || {
            for round in 0usize.. {
                let large = client < 2;
                let urls = if large { LARGE } else { SMALL[round % SMALL.len()] };
                let host = format!("c{client}r{round}.example.com");
                // Client 0 signals half-way through its upload (the kill cuts the body off),
                // client 1 once its body is all sent (the kill lands while the server validates,
                // selects queues or appends).
                let sent = large.then(|| (&large_sent[client], [50, 100][client]));
                if let Some((flag, _)) = sent {
                    flag.store(false, Ordering::SeqCst);
                }
                let accepted = submit(&addr, &token, &host, urls, sent);
                if accepted.is_some() {
                    let acks = if large { &large_acks } else { &small_acks };
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                results.lock().unwrap().push(Submitted { host, urls, accepted });
                if accepted.is_none() || stop.load(Ordering::SeqCst) {
                    return;
                }
            }
        }));
    }

    // Kill once a large batch was acknowledged while another large one is being uploaded or
    // processed and small batches got through. The deadline only bounds a broken run; it decides
    // nothing.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let uploading = large_sent.iter().any(|h| h.load(Ordering::SeqCst));
        if large_acks.load(Ordering::SeqCst) >= 1 && small_acks.load(Ordering::SeqCst) >= 3 && uploading {
            break;
        }
        assert!(Instant::now() < deadline, "the submissions never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    let status = Command::new("kill").args(["-KILL", &control.id().to_string()]).status().unwrap();
    assert!(status.success());
    control.wait().unwrap();
    for client in clients {
        client.join().unwrap();
    }
    let results = results.lock().unwrap().clone();
    assert!(results.iter().any(|r| r.accepted.is_none()), "the kill cut something off: {results:?}");
    let acked = results.iter().filter(|r| r.accepted.is_some()).count();
    eprintln!("{acked} batches acknowledged, {} cut off by the kill", results.len() - acked);

    // Restart on the same database: the API answers for every acknowledged batch.
    let (mut control, addr) = start(&config);
    for r in results.iter().filter(|r| r.accepted.is_some()) {
        let id = r.accepted.unwrap();
        let status = get(&addr, &token, &format!("/v1/purges/{id}"));
        assert!(status.starts_with("HTTP/1.1 200"), "batch {id} after restart: {status}");
        assert!(status.contains(&format!("\"tasks\":{}", r.urls)), "batch {id} has all {} tasks: {status}", r.urls);
        let records = get(&addr, &token, &format!("/v1/records?url=https://{}/object/{}", r.host, r.urls - 1));
        assert!(records.contains(&format!("\"batch\":{id}")), "the last URL of batch {id} is recorded: {records}");
    }
    let status = Command::new("kill").args(["-TERM", &control.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(control.wait().unwrap().success());

    // Every URL of every batch, through the store: all of an acknowledged batch, all or nothing of
    // the others.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = SqliteStore::open(dir.path().join("control.db"), 4).unwrap();
    runtime.block_on(async {
        for r in &results {
            let mut batches: HashMap<u64, usize> = HashMap::new();
            let mut after = None;
            loop {
                let page = store.records(RecordQuery::Host(r.host.clone()), after, 1000).await.unwrap();
                for e in &page.entries {
                    *batches.entry(e.batch).or_default() += 1;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            match r.accepted {
                Some(id) => assert_eq!(batches, HashMap::from([(id, r.urls)]), "acknowledged batch on {}", r.host),
                None if batches.is_empty() => eprintln!("{}: {} URLs, absent", r.host, r.urls),
                None => {
                    // Committed just before the kill took its 202 away: then it is whole.
                    assert_eq!(batches.len(), 1, "one batch on {}: {batches:?}", r.host);
                    let (&id, &count) = batches.iter().next().unwrap();
                    assert_eq!(count, r.urls, "unacknowledged batch {id} on {} is complete", r.host);
                    let batch = store.batch(id).await.unwrap().expect("its batch row");
                    assert_eq!(batch.task_count, r.urls as u64);
                    eprintln!("{}: {} URLs, committed without its 202, complete", r.host, r.urls);
                }
            }
        }
    });
}
