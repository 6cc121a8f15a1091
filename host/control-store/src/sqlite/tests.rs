//! The conformance suite on SQLite, plus what only a file-backed SQLite store can show.

use std::future::Future;

use proptest::prelude::*;
use tempfile::TempDir;

use super::SqliteStore;
use crate::conformance::{batch, Harness};
use crate::model::*;
use crate::{ControlStore, Error, QueueStore, RecordStore, TokenHash, TokenStore};

/// Each store in its own file under one temporary directory that lives as long as the harness.
struct SqliteHarness {
    dir: TempDir,
    made: std::sync::atomic::AtomicU32,
}

impl SqliteHarness {
    fn new() -> Self {
        SqliteHarness { dir: tempfile::tempdir().expect("a temporary directory"), made: Default::default() }
    }
}

impl Harness for SqliteHarness {
    type Store = SqliteStore;

    fn create(&self, queues: u32) -> impl Future<Output = SqliteStore> + Send {
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.path().join(format!("control-{n}.db"));
        async move { SqliteStore::open(path, queues).expect("open a new store") }
    }

    async fn reopen(&self, store: SqliteStore) -> SqliteStore {
        let (path, queues) = (store.path().to_owned(), store.queue_count());
        // A clean restart: the writer is done with the file (a kill is `tests/crash.rs`'s).
        store.indexed().await;
        drop(store);
        SqliteStore::open(path, queues).expect("reopen the store")
    }
}

crate::conformance_tests!(SqliteHarness::new());

#[tokio::test]
async fn the_plain_token_never_reaches_the_file() {
    let h = SqliteHarness::new();
    let store = h.create(1).await;
    let plain = "ep_plain_token_that_must_not_be_stored_0123456789";
    let token = ApiToken { name: "ci".into(), hosts: vec!["a.example".into()], admin: false, created_at: 1 };
    store.insert_token(TokenHash::of(plain), token).await.unwrap();
    let path = store.path().to_owned();
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    // The WAL may still hold the pages if no checkpoint ran; look there too.
    bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(plain.as_bytes()));
    assert!(contains(&TokenHash::of(plain).0), "the hash is what is stored");
}

#[tokio::test]
async fn durable_settings_and_schema_version() {
    let h = SqliteHarness::new();
    let store = h.create(2).await;
    let conn = store.conn.lock().unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!((mode.as_str(), sync, version), ("wal", 2, super::SCHEMA_VERSION), "WAL, FULL, current schema");
}

/// Reads go to the read-only connections: while the writer holds an open write transaction (as
/// during a large append), token checks, status and record queries still answer, from the last
/// commit, and see the write once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_not_blocked_by_a_write_in_progress() {
    let h = SqliteHarness::new();
    let store = h.create(2).await;
    let token = |name: &str| ApiToken { name: name.into(), hosts: vec!["a.com".into()], admin: false, created_at: 1 };
    store.insert_token(TokenHash::of("old"), token("old")).await.unwrap();
    let id = store.append(batch("old", 5), crate::conformance::urls(1, "x", 3)).await.unwrap().batch.id;

    let (ready, writing) = tokio::sync::oneshot::channel();
    let (go, finish) = std::sync::mpsc::channel::<()>();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let conn = store.conn.lock().unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            super::records::insert_token(&conn, TokenHash::of("new"), &token("new")).unwrap();
            ready.send(()).unwrap();
            finish.recv().unwrap();
            conn.execute_batch("COMMIT").unwrap();
        })
    };
    writing.await.unwrap();
    // The writer's lock is held and its transaction open: each of these would wait for it if
    // reads shared the writer's connection.
    assert!(store.find_token(TokenHash::of("old")).await.unwrap().is_some());
    assert!(store.find_token(TokenHash::of("new")).await.unwrap().is_none(), "uncommitted is invisible");
    assert_eq!(store.batch(id).await.unwrap().unwrap().task_count, 3);
    assert!(store.progress(id).await.unwrap().unwrap().done);
    assert_eq!(store.queue_info().await.unwrap()[1].next, 4);
    let page = store.records(RecordQuery::Host("h.example".into()), None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 3);
    go.send(()).unwrap();
    writer.join().unwrap();
    assert!(store.find_token(TokenHash::of("new")).await.unwrap().is_some(), "seen once committed");
}

#[test]
fn refuses_newer_schemas_and_fewer_queues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    drop(SqliteStore::open(&path, 4).unwrap());
    assert!(matches!(SqliteStore::open(&path, 3), Err(Error::QueueCountShrunk { existing: 4, configured: 3 })));
    let grown = SqliteStore::open(&path, 6).expect("more queues are fine");
    assert_eq!(grown.queue_count(), 6);
    grown.conn.lock().unwrap().pragma_update(None, "user_version", 99).unwrap();
    drop(grown);
    let err = SqliteStore::open(&path, 6).unwrap_err();
    assert!(matches!(err, Error::SchemaTooNew { found: 99, supported: super::SCHEMA_VERSION }));
    assert!(err.to_string().contains("run a newer edgepurge"), "{err}");
    std::fs::write(dir.path().join("junk.db"), b"this is not a database, not at all, no").unwrap();
    let err = SqliteStore::open(dir.path().join("junk.db"), 1).unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err}");
}

/// A status read costs what the batch's failures cost, not what every recorded task costs: the
/// failure queries search `task_failures` by the batch's task-id range and never scan `tasks`
/// (they did through the unindexed `tasks.batch`, seconds per read after millions of purges).
#[test]
fn status_queries_search_the_batchs_failures_and_never_scan_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("c.db"), 2).unwrap();
    let conn = store.conn.lock().unwrap();
    for sql in [super::records::FAILED_COUNT_SQL, super::records::FAILURE_SAMPLE_SQL] {
        let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let steps: Vec<String> =
            plan.query_map(rusqlite::params!["e", 1], |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect();
        assert!(steps.iter().all(|s| !s.starts_with("SCAN")), "{sql}\nplans a scan: {steps:?}");
        assert!(
            steps.iter().any(|s| s.contains("task_failures") || s.contains("PRIMARY KEY (edge=? AND task>?")),
            "{steps:?}"
        );
    }
}

/// A version 1 file (before the queue server) opens: the edges gain `last_seen` and the policy
/// columns, everything stored stays.
#[tokio::test]
async fn version_1_files_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(super::schema::V1).unwrap();
        conn.execute_batch(
            "INSERT INTO queues VALUES (0, 1, 1, 0, 0);
             INSERT INTO edges (name, registered_at) VALUES ('old', 42);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, 1).unwrap();
    let edges = store.edges().await.unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!((edges[0].name.as_str(), edges[0].registered_at, edges[0].last_seen), ("old", 42, None));
    let policy = EdgePolicy { name: "p".into(), version: "1".into(), sha256: "00".into(), error: None };
    store.set_edge_policy("old", policy, 50).await.unwrap();
    assert_eq!(store.edges().await.unwrap()[0].last_seen, Some(50));
    let version: i64 = store.conn.lock().unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, super::SCHEMA_VERSION);
}

/// A version 3 file (tasks only, before chunks) opens with its retained log written as chunk
/// rows, which read as the tasks did.
#[tokio::test]
async fn version_3_files_gain_chunks_of_their_retained_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    let expected = {
        let store = SqliteStore::open(&path, 1).unwrap();
        store.append(crate::conformance::batch("t", 1), crate::conformance::urls(0, "a", 1500)).await.unwrap();
        store.trim(0, 200).await.unwrap();
        let chunks = store.read_chunks(0, 200, usize::MAX).await.unwrap();
        let conn = store.conn.lock().unwrap();
        conn.execute_batch(
            "DROP TABLE chunks; DROP INDEX batches_unindexed; ALTER TABLE batches DROP COLUMN indexed;
             DROP INDEX batch_queues_own; CREATE UNIQUE INDEX tasks_log ON tasks (queue, qoffset) WHERE folded = 0;
             PRAGMA user_version = 3;",
        )
        .unwrap();
        chunks
    };
    let store = SqliteStore::open(&path, 1).unwrap();
    let migrated = store.read_chunks(0, 200, usize::MAX).await.unwrap();
    let tasks = |chunks: &[Chunk]| -> Vec<edgepurge_wire::WireTask> {
        chunks.iter().flat_map(|c| edgepurge_wire::decode_tasks(&c.encoded).unwrap()).filter(|t| t.id >= 200).collect()
    };
    assert_eq!(tasks(&migrated), tasks(&expected));
    assert_eq!(migrated[0].first, 200, "only the retained log");
    assert_eq!(migrated.last().unwrap().last, 1500);
}

/// A failure report finds its task's row from the batch's span: for rows numbered in queue order
/// (interleaved queues, folded tasks last), and for rows numbered otherwise, as files from before
/// version 4 may have them.
#[tokio::test]
async fn failure_reports_find_their_task_by_span_however_rows_are_numbered() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("spans.db"), 2).unwrap();
    store.register_edge("e", 1).await.unwrap();
    let failed_target = |store: SqliteStore, queue: u32, offset: u64| async move {
        let reason = format!("failed at {queue}/{offset}");
        store.report_failure("e", queue, offset, &reason, 2).await.unwrap();
        let conn = store.conn.lock().unwrap();
        conn.query_row(
            "SELECT t.target FROM task_failures f JOIN tasks t ON t.id = f.task WHERE f.reason = ?1",
            [&reason],
            |r| r.get::<_, String>(0),
        )
        .unwrap()
    };
    // Two batches, the second with its queues interleaved in request order.
    store.append(crate::conformance::batch("t", 1), crate::conformance::urls(0, "a", 5)).await.unwrap();
    let mut tasks = crate::conformance::urls(0, "b", 4);
    for (i, t) in crate::conformance::urls(1, "c", 4).into_iter().enumerate() {
        tasks.insert(i * 2 + 1, t);
    }
    store.append(crate::conformance::batch("t", 1), tasks).await.unwrap();
    assert_eq!(failed_target(store.clone(), 0, 3).await, "https://h.example/a/2");
    assert_eq!(failed_target(store.clone(), 0, 7).await, "https://h.example/b/1");
    assert_eq!(failed_target(store.clone(), 1, 4).await, "https://h.example/c/3");
    assert_eq!(failed_target(store.clone(), 1, 1).await, "https://h.example/c/0");
    // The second batch's rows numbered backwards: found among the batch's rows.
    store
        .conn
        .lock()
        .unwrap()
        .execute_batch(
            "UPDATE tasks SET id = -id WHERE batch = 2;
             UPDATE tasks SET id = (SELECT first_task + last_task FROM batches WHERE id = 2) + id WHERE id < 0;",
        )
        .unwrap();
    assert_eq!(failed_target(store.clone(), 0, 8).await, "https://h.example/b/2");
    assert_eq!(failed_target(store.clone(), 1, 2).await, "https://h.example/c/1");
    assert!(matches!(store.report_failure("e", 1, 5, "x", 2).await, Err(crate::Error::UnknownTask { .. })));
}

/// A large batch's task rows written in part (a kill between pieces) are completed at open, each
/// with the id the uninterrupted write gives it.
#[tokio::test]
async fn task_rows_written_in_part_are_completed_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part.db");
    let rows = |store: &SqliteStore| -> Vec<(i64, i64, i64, String, i64)> {
        let conn = store.conn.lock().unwrap();
        let mut stmt = conn.prepare("SELECT id, queue, qoffset, target, cum_bytes FROM tasks ORDER BY id").unwrap();
        let all = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).unwrap();
        all.collect::<Result<_, _>>().unwrap()
    };
    let whole = {
        let store = SqliteStore::open(&path, 2).unwrap();
        let mut tasks = crate::conformance::urls(0, "a", 3000);
        for (i, t) in crate::conformance::urls(1, "b", 3000).into_iter().enumerate() {
            tasks.insert(i * 2, t);
        }
        store.append(crate::conformance::batch("t", 1), tasks).await.unwrap();
        // The records wait for the rows: all of them are there once a query answers.
        let url = RecordQuery::Url { url: "https://h.example/a/2999".into(), host: "h.example".into() };
        assert_eq!(store.records(url, None, 10).await.unwrap().entries.len(), 1);
        let whole = rows(&store);
        store
            .conn
            .lock()
            .unwrap()
            .execute_batch("DELETE FROM tasks WHERE id > 2500; UPDATE batches SET indexed = 0;")
            .unwrap();
        whole
    };
    assert_eq!(whole.len(), 6000);
    let store = SqliteStore::open(&path, 2).unwrap();
    assert_eq!(rows(&store), whole);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Against a model (a list of sizes per queue): offsets are dense and per queue, and
    /// `pending(after)` is the count and byte sum of the tasks above `after` that were not trimmed.
    #[test]
    fn pending_and_offsets_match_a_model(
        batches in prop::collection::vec(prop::collection::vec((0u32..3, 1u64..500), 1..20), 1..6),
        trims in prop::collection::vec((0u32..3, 0u64..80), 0..4),
        afters in prop::collection::vec((0u32..3, 0u64..80), 1..8),
    ) {
        runtime().block_on(async {
            let h = SqliteHarness::new();
            let store = h.create(3).await;
            let mut model: Vec<Vec<u64>> = vec![Vec::new(); 3];
            for (i, b) in batches.iter().enumerate() {
                let tasks: Vec<NewTask> = b.iter().map(|&(q, size)| NewTask {
                    size_bytes: size,
                    ..NewTask::new(q, TaskKind::Url, format!("https://p.example/{i}/{size}"), "p.example")
                }).collect();
                store.append(batch("t", i as u64), tasks).await.unwrap();
                for &(q, size) in b {
                    model[q as usize].push(size);
                }
            }
            let mut first = [1u64; 3];
            for &(q, below) in &trims {
                store.trim(q, below).await.unwrap();
                first[q as usize] = first[q as usize].max(below.min(model[q as usize].len() as u64 + 1));
            }
            for &(q, after) in &afters {
                let sizes = &model[q as usize];
                let from = after.max(first[q as usize] - 1) as usize;
                let want = Pending {
                    tasks: sizes.len().saturating_sub(from) as u64,
                    bytes: sizes.iter().skip(from).sum(),
                };
                assert_eq!(store.pending(q, after).await.unwrap(), want, "queue {q} after {after}");
                let read = store.read(q, first[q as usize], 1000).await.unwrap();
                let offsets: Vec<u64> = read.iter().map(|t| t.at.offset).collect();
                assert_eq!(offsets, (first[q as usize]..=sizes.len() as u64).collect::<Vec<_>>());
            }
            let stats = store.queue_stats().await.unwrap();
            for (q, s) in stats.iter().enumerate() {
                assert_eq!(s.pending.tasks, model[q].len() as u64 + 1 - first[q]);
            }
        });
    }
}
