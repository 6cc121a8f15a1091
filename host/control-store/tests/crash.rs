//! `kill -9` during appends: after a restart, every batch that was acknowledged is complete and
//! no partial batch is visible.
//!
//! The test binary runs itself as the child (`CONTROL_STORE_CRASH_DB` set): the child appends
//! batches of varying size back to back and prints each acknowledged batch id; the parent kills it
//! with SIGKILL while it is in the middle of further appends, reopens the database and checks it.
//! Three rounds on the same database, each killed after a different delay, so the kill lands in
//! different phases of an append (building rows, writing the WAL, the fsync), and each child also
//! recovers the database the previous one left.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use edgepurge_control_store::{NewBatch, NewTask, QueueStore, RecordStore, SqliteStore, TaskKind};

const CHILD_ENV: &str = "CONTROL_STORE_CRASH_DB";
const RUN_ENV: &str = "CONTROL_STORE_CRASH_RUN";
const QUEUES: u32 = 3;

/// The child's work; a no-op when run as an ordinary test.
#[tokio::test]
async fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else { return };
    let run = std::env::var(RUN_ENV).unwrap_or_default();
    let store = SqliteStore::open(path, QUEUES).expect("child opens the store");
    for round in 0u64.. {
        // Sizes cycle from tiny to 40,000 so the kill lands inside transactions of every size.
        let n = [1usize, 40_000, 17, 5_000, 20_000][round as usize % 5];
        let tasks = (0..n)
            .map(|i| {
                NewTask::new((i % 3) as u32, TaskKind::Url, format!("https://c.example/{run}/{round}/{i}"), "c.example")
            })
            .collect();
        let batch = NewBatch { token_name: "crash".into(), accepted_at: round, idempotency_key: None };
        let appended = store.append(batch, tasks).await.expect("append");
        // The API would answer 202 now: announce the acknowledged batch.
        println!("ACK {} {n}", appended.batch.id);
    }
}

#[tokio::test]
async fn killed_during_appends_loses_no_acknowledged_batch() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut acked: HashMap<u64, u64> = HashMap::new();
    for (run, delay_ms) in [0u64, 30, 70].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .env(RUN_ENV, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        let mut record = |line: String, acked: &mut HashMap<u64, u64>| {
            // The first ack shares its line with the harness's "test crash_child ... ".
            if let Some(rest) = line.split_once("ACK ").map(|(_, rest)| rest) {
                let (id, n) = rest.split_once(' ').unwrap();
                acked.insert(id.parse().unwrap(), n.parse().unwrap());
                seen += 1;
            }
            seen
        };
        // After 6 acks the child is inside its 7th append, a 40,000-task one: kill it there.
        while record(lines.next().expect("the child keeps appending").unwrap(), &mut acked) < 6 {}
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();
        // Acks printed before the kill but not yet read are acknowledged batches too.
        for line in lines.map_while(Result::ok) {
            record(line, &mut acked);
        }
    }

    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let left: i64 = conn.query_row("SELECT COUNT(*) FROM batches WHERE indexed = 0", [], |r| r.get(0)).unwrap();
        println!("batches left without their task rows by the last kill: {left}");
    }
    let store = SqliteStore::open(&path, QUEUES).expect("reopen after the crash");
    let mut per_batch: HashMap<u64, u64> = HashMap::new();
    for queue in 0..QUEUES {
        for task in store.read(queue, 1, usize::MAX).await.unwrap() {
            *per_batch.entry(task.batch).or_default() += 1;
        }
    }
    for (id, n) in &acked {
        let batch = store.batch(*id).await.unwrap().unwrap_or_else(|| panic!("acknowledged batch {id} is gone"));
        assert_eq!(batch.task_count, *n);
        assert_eq!(per_batch.get(id), Some(n), "acknowledged batch {id} is incomplete");
    }
    // Every visible batch is complete, acknowledged or not (the last one may have committed just
    // before the kill without its ack being printed).
    for (id, count) in &per_batch {
        let batch = store.batch(*id).await.unwrap().expect("tasks belong to a visible batch");
        assert_eq!(batch.task_count, *count, "batch {id} is partial");
    }
    assert!(per_batch.len() <= acked.len() + 3, "at most one batch per kill committed without its ack being seen");
    // The log's chunks (what the queue server sends) hold exactly those tasks: every offset of
    // every queue once, in order, no chunk of a batch that did not commit.
    let mut per_batch_chunked: HashMap<u64, u64> = HashMap::new();
    for queue in 0..QUEUES {
        let mut next = 1;
        for chunk in store.read_chunks(queue, 1, usize::MAX).await.unwrap() {
            assert_eq!(chunk.first, next, "queue {queue}: chunks are contiguous");
            let tasks = edgepurge_wire::decode_tasks(&chunk.encoded).expect("a chunk decodes");
            assert_eq!(tasks.len() as u64, chunk.last + 1 - chunk.first);
            *per_batch_chunked.entry(chunk.batch).or_default() += tasks.len() as u64;
            next = chunk.last + 1;
        }
    }
    assert_eq!(per_batch_chunked, per_batch, "the chunks hold every task of every visible batch");
    // The records' index too: a kill between a large batch's commit and its task rows (written
    // right after the 202) is made good when the file is opened.
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let indexed: HashMap<u64, u64> = conn
        .prepare("SELECT batch, COUNT(*) FROM tasks GROUP BY batch")
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(indexed, per_batch, "every visible batch has all its task rows");
    let unindexed: i64 = conn.query_row("SELECT COUNT(*) FROM batches WHERE indexed = 0", [], |r| r.get(0)).unwrap();
    assert_eq!(unindexed, 0);
}
