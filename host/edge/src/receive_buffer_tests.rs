//! Receive buffer tests: durability across reopen, duplicates, gaps, watermarks, `buffer_free`
//! and trims; damaged files (garbage, truncated, a garbage page, deleted, replaced) told apart
//! from directory and passing errors; unreadable rows beside good ones.

use super::*;
use edgepurge_wire::WireTaskKind;

fn task(id: u64, size: u64) -> WireTask {
    WireTask {
        id,
        kind: WireTaskKind::Url,
        target: format!("http://a.test/{id}"),
        soft: false,
        size_bytes: size,
        host: "a.test".into(),
        tenant: "t".into(),
    }
}

fn tasks(ids: std::ops::RangeInclusive<u64>) -> Vec<WireTask> {
    ids.map(|id| task(id, 100)).collect()
}

/// The (offset, task id) of the pending rows' tasks (`None` for those of an unreadable row).
fn ids(rows: &[PendingChunk]) -> Vec<(Offset, Option<u64>)> {
    rows.iter()
        .flat_map(|row| match &row.tasks {
            Pending::Tasks(tasks) => (row.from..).zip(tasks.iter().map(|t| Some(t.id))).collect::<Vec<_>>(),
            Pending::Unreadable { .. } => (row.from..=row.last).map(|offset| (offset, None)).collect(),
        })
        .collect()
}

#[test]
fn received_tasks_survive_reopening_and_resume_after_them() {
    let dir = tempfile::TempDir::new().unwrap();
    {
        let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
        assert_eq!(buf.resume("c1").unwrap(), vec![]);
        let stored = buf.store("c1", 0, 1, &tasks(1..=3)).unwrap();
        assert_eq!(stored, Stored { inserted: 3, duplicates: 0, received: 3 });
        buf.store("c1", 2, 1, &tasks(1..=1)).unwrap();
        buf.set_node_key("https://x:1", "c1").unwrap();
    }
    let buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    assert_eq!(buf.resume("c1").unwrap(), vec![(0, 4), (2, 2)]);
    assert_eq!(buf.resume("other").unwrap(), vec![]);
    assert_eq!(buf.used(), 400);
    assert_eq!(buf.node_key("https://x:1").unwrap().as_deref(), Some("c1"));
    let pending = buf.pending("c1", 0, 10).unwrap();
    assert_eq!(ids(&pending), vec![(1, Some(1)), (2, Some(2)), (3, Some(3))]);
    assert_eq!(buf.pending_queues().unwrap(), vec![("c1".to_owned(), 0), ("c1".to_owned(), 2)]);
}

#[test]
fn duplicates_are_ignored_and_gaps_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    buf.store("c1", 0, 1, &tasks(1..=3)).unwrap();
    // Overlapping run: 2 and 3 are duplicates, 4 and 5 are new.
    let stored = buf.store("c1", 0, 2, &tasks(2..=5)).unwrap();
    assert_eq!(stored, Stored { inserted: 2, duplicates: 2, received: 5 });
    let stored = buf.store("c1", 0, 1, &tasks(1..=2)).unwrap();
    assert_eq!(stored, Stored { inserted: 0, duplicates: 2, received: 5 });
    assert_eq!(buf.used(), 500);
    // Applied rows are gone, and re-sending them is still a duplicate.
    buf.mark_applied("c1", 0, 3, &[], 1).unwrap();
    let stored = buf.store("c1", 0, 1, &tasks(1..=3)).unwrap();
    assert_eq!(stored.duplicates, 3);
    assert_eq!(ids(&buf.pending("c1", 0, 10).unwrap()), vec![(4, Some(4)), (5, Some(5))]);
    let err = buf.store("c1", 0, 7, &tasks(7..=7)).unwrap_err();
    assert!(matches!(err, BufferError::Gap { received: 5, first: 7, .. }), "{err}");
    assert!(err.to_string().contains("resume from 6"), "{err}");
}

#[test]
fn watermarks_and_free_space_follow_applying() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut buf = ReceiveBuffer::open(dir.path(), 1_000).unwrap();
    buf.store("c1", 1, 1, &[task(1, 300), task(2, 200), task(3, 100)]).unwrap();
    assert_eq!((buf.used(), buf.free()), (600, 400));
    buf.mark_applied("c1", 1, 2, &[], 1).unwrap();
    assert_eq!((buf.used(), buf.free()), (100, 900));
    assert_eq!(buf.watermarks("c1").unwrap(), vec![QueueMarks { queue: 1, received: 3, applied: 2 }]);
    // Over capacity (a misbehaving control): stored anyway, free is 0, not negative.
    buf.store("c1", 1, 4, &[task(4, 5_000)]).unwrap();
    assert_eq!(buf.free(), 0);
    drop(buf);
    let buf = ReceiveBuffer::open(dir.path(), 1_000).unwrap();
    assert_eq!(buf.used(), 5_100);
}

#[test]
fn trimmed_drops_the_queue_moves_both_watermarks_and_logs() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    buf.store("c1", 0, 1, &tasks(1..=2)).unwrap();
    buf.store("c1", 1, 1, &tasks(1..=2)).unwrap();
    buf.trimmed("c1", 0, 50, 1234).unwrap();
    assert_eq!(
        buf.watermarks("c1").unwrap(),
        vec![QueueMarks { queue: 0, received: 49, applied: 49 }, QueueMarks { queue: 1, received: 2, applied: 0 }]
    );
    assert_eq!(buf.resume("c1").unwrap(), vec![(0, 50), (1, 3)]);
    assert_eq!(buf.used(), 200);
    assert!(buf.pending("c1", 0, 10).unwrap().is_empty());
    let events = buf.events(10).unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].message.starts_with("trimmed:") && events[0].message.contains("purged everything"));
    // The next run continues from first_retained.
    assert_eq!(buf.store("c1", 0, 50, &tasks(50..=50)).unwrap().received, 50);
}

#[tokio::test]
async fn shared_calls_run_off_the_runtime() {
    let dir = tempfile::TempDir::new().unwrap();
    let shared = SharedBuffer::new(ReceiveBuffer::open(dir.path(), 10_000).unwrap());
    let stored = shared.call(|b| b.store("c1", 0, 1, &tasks(1..=1))).await.unwrap();
    assert_eq!(stored.received, 1);
    assert_eq!(shared.call(|b| Ok(b.used())).await.unwrap(), 100);
}

#[test]
fn failure_reports_are_stored_with_the_watermark_and_survive_reopening() {
    let dir = tempfile::TempDir::new().unwrap();
    let failure = |offset: u64, reason: &str| TaskFailure { queue: 0, offset, reason: reason.into() };
    {
        let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
        buf.store("c1", 0, 1, &tasks(1..=3)).unwrap();
        buf.mark_applied("c1", 0, 3, &[failure(2, "origin said 503")], 1_000).unwrap();
    }
    let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    let all = buf.failures_after("c1", 0).unwrap();
    assert_eq!(all.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(), vec![failure(2, "origin said 503")]);
    assert!(buf.failures_after("c1", all[0].0).unwrap().is_empty(), "nothing after the last one sent");
    assert!(buf.failures_after("c2", 0).unwrap().is_empty(), "per node");
    // Reports older than the retention go when newer ones are stored.
    buf.store("c1", 0, 4, &tasks(4..=4)).unwrap();
    buf.mark_applied("c1", 0, 4, &[failure(4, "later")], 1_000 + FAILURE_RETENTION_MS + 1).unwrap();
    let kept: Vec<_> = buf.failures_after("c1", 0).unwrap().into_iter().map(|(_, f)| f.offset).collect();
    assert_eq!(kept, vec![4]);
}

/// A buffer in `dir` holding enough rows to span many pages, closed; returns its file.
fn written_buffer(dir: &Path) -> PathBuf {
    let mut buf = ReceiveBuffer::open(dir, 1 << 30).unwrap();
    for id in 1..=500 {
        let big = WireTask { target: format!("http://a.test/{id}/{}", "x".repeat(300)), ..task(id, 100) };
        buf.store("c1", 0, id, &[big]).unwrap();
    }
    buf.set_node_key("https://x:1", "c1").unwrap();
    buf.record_event(1, "c1", "an event").unwrap();
    drop(buf);
    dir.join(FILE_NAME)
}

/// Overwrites page `page` (1-based) of the database file with garbage.
fn garble_page(file: &Path, page: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let size: u64 = Connection::open(file).unwrap().query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start((page - 1) * size)).unwrap();
    f.write_all(&(0..size).map(|i| (i * 7 + 13) as u8).collect::<Vec<_>>()).unwrap();
}

/// The root page of `table`.
fn root_page(file: &Path, table: &str) -> u64 {
    let conn = Connection::open(file).unwrap();
    conn.query_row("SELECT rootpage FROM sqlite_master WHERE name = ?1", [table], |r| r.get(0)).unwrap()
}

#[track_caller]
fn assert_damaged(dir: &Path, words: &str) {
    match ReceiveBuffer::open(dir, 1 << 30) {
        Err(e @ BufferError::Damaged { .. }) => {
            assert!(e.to_string().contains(words), "{e}");
            assert!(e.damage().is_some(), "{e}");
            assert!(!e.to_string().contains("writable"), "not a directory problem: {e}");
        }
        Err(e) => panic!("expected Damaged ({words}), got {e}"),
        Ok(_) => panic!("a damaged buffer opened ({words})"),
    }
}

#[test]
fn damaged_files_are_refused_as_damage() {
    // Not a database at all.
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), "hello, I am a text file, not a database\n".repeat(200)).unwrap();
    assert_damaged(dir.path(), "not an SQLite database");

    // Truncated: in the middle, inside the first page, inside the 100-byte header.
    for keep in [0.5, 0.01, 0.0002] {
        let dir = tempfile::TempDir::new().unwrap();
        let file = written_buffer(dir.path());
        let len = std::fs::metadata(&file).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len((len as f64 * keep) as u64).unwrap();
        assert_damaged(dir.path(), "is damaged");
    }

    // One garbage page in a small table (the watermarks, as in the report), in the chunks
    // table, and in the schema page.
    for table in ["watermarks", "nodes", "events", "chunks", "sqlite_master"] {
        let dir = tempfile::TempDir::new().unwrap();
        let file = written_buffer(dir.path());
        let page = if table == "sqlite_master" { 1 } else { root_page(&file, table) };
        garble_page(&file, page);
        match table {
            "sqlite_master" => assert_damaged(dir.path(), "not an SQLite database"),
            _ => assert_damaged(dir.path(), "is damaged"),
        }
    }
}

#[test]
fn a_directory_problem_is_an_open_error_naming_it_not_damage() {
    let dir = tempfile::TempDir::new().unwrap();
    // state-dir is a file: the directory cannot be created.
    let not_a_dir = dir.path().join("state");
    std::fs::write(&not_a_dir, "x").unwrap();
    let err = ReceiveBuffer::open(&not_a_dir, 1 << 20).err().expect("refused");
    assert!(matches!(err, BufferError::Open { .. }) && err.damage().is_none(), "{err}");
    let text = err.to_string();
    assert!(text.contains("cannot create the directory") && text.contains("control.state-dir"), "{text}");
    assert!(text.contains(&not_a_dir.display().to_string()), "{text}");
    // The database path is a directory: SQLite cannot open it.
    std::fs::create_dir_all(dir.path().join("s").join(FILE_NAME)).unwrap();
    let err = ReceiveBuffer::open(&dir.path().join("s"), 1 << 20).err().expect("refused");
    assert!(matches!(err, BufferError::Open { .. }) && err.damage().is_none(), "{err}");
    assert!(err.to_string().contains("control.state-dir is a directory the edge can write"), "{err}");
}

#[test]
fn errors_that_may_pass_are_not_damage_and_name_their_cause() {
    let sqlite = |code| BufferError::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None));
    let full = sqlite(rusqlite::ffi::SQLITE_FULL);
    assert!(full.damage().is_none() && full.to_string().contains("is full"), "{full}");
    let busy = sqlite(rusqlite::ffi::SQLITE_BUSY);
    assert!(busy.damage().is_none() && busy.to_string().contains("second edge"), "{busy}");
    let io = sqlite(rusqlite::ffi::SQLITE_IOERR_READ);
    assert!(io.damage().is_none() && io.to_string().contains("I/O error"), "{io}");
    assert!(sqlite(rusqlite::ffi::SQLITE_CORRUPT).damage().is_some());
    assert!(sqlite(rusqlite::ffi::SQLITE_NOTADB).damage().is_some());
    assert!(sqlite(rusqlite::ffi::SQLITE_IOERR_SHORT_READ).damage().is_some());
}

#[test]
fn a_file_deleted_or_replaced_under_the_open_buffer_is_damage() {
    let dir = tempfile::TempDir::new().unwrap();
    let buf = ReceiveBuffer::open(dir.path(), 1 << 20).unwrap();
    buf.check_file().unwrap();
    let file = dir.path().join(FILE_NAME);
    std::fs::rename(&file, dir.path().join("elsewhere")).unwrap();
    let err = buf.check_file().unwrap_err();
    assert!(err.damage().is_some_and(|c| c.contains("deleted")), "{err}");
    std::fs::write(dir.path().join("other"), "x").unwrap();
    std::fs::rename(dir.path().join("other"), &file).unwrap();
    let err = buf.check_file().unwrap_err();
    assert!(err.damage().is_some_and(|c| c.contains("another file")), "{err}");
}

#[test]
fn a_received_frame_is_one_row_holding_its_chunk_as_sent() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut buf = ReceiveBuffer::open(dir.path(), 1 << 20).unwrap();
    let run = tasks(1..=1000);
    let chunk = edgepurge_wire::encode_tasks(&run).unwrap();
    buf.store_chunk("c1", 0, 1, &chunk, &run).unwrap();
    let rows: Vec<(i64, i64, Vec<u8>)> = buf
        .conn
        .prepare("SELECT first, last, body FROM chunks")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, vec![(1, 1000, chunk)]);
    // Read back whole: a limit below the row's length still returns the row.
    let pending = buf.pending("c1", 0, 10).unwrap();
    assert_eq!((pending.len(), pending[0].from, pending[0].last), (1, 1, 1000));
    assert_eq!(pending[0].tasks, Pending::Tasks(run));
}

#[test]
fn a_resent_frame_overlapping_what_is_held_is_read_from_its_new_part() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut buf = ReceiveBuffer::open(dir.path(), 1 << 20).unwrap();
    buf.store("c1", 0, 1, &tasks(1..=3)).unwrap();
    buf.store("c1", 0, 2, &tasks(2..=6)).unwrap();
    assert_eq!(buf.used(), 600);
    let pending = buf.pending("c1", 0, 100).unwrap();
    assert_eq!(ids(&pending), (1..=6).map(|i| (i, Some(i))).collect::<Vec<_>>());
    // Applied in part (through 4, inside the second row): the rest is read from 5 on.
    buf.mark_applied("c1", 0, 4, &[], 1).unwrap();
    assert_eq!(buf.used(), 200);
    assert_eq!(ids(&buf.pending("c1", 0, 100).unwrap()), vec![(5, Some(5)), (6, Some(6))]);
    drop(buf);
    assert_eq!(ReceiveBuffer::open(dir.path(), 1 << 20).unwrap().used(), 200);
}

#[test]
fn garbled_rows_come_back_as_unreadable_beside_the_good_ones() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    buf.store("c1", 0, 1, &tasks(1..=2)).unwrap();
    let on_b = WireTask { host: "B.test".into(), ..task(3, 100) };
    buf.store("c1", 0, 3, &[on_b]).unwrap();
    buf.store("c1", 0, 4, &[WireTask { host: String::new(), ..task(4, 100) }]).unwrap();
    buf.store("c1", 0, 5, &tasks(5..=6)).unwrap();
    buf.store("c1", 0, 7, &tasks(7..=7)).unwrap();
    let garble = |from: i64, value: rusqlite::types::Value| {
        buf.conn.execute("UPDATE chunks SET body = ?1 WHERE from_offset = ?2", params![value, from]).unwrap();
    };
    // Bytes that are not a chunk; text; a chunk of one task where the row says two.
    garble(3, vec![0xff, 0x00, 0xfe].into());
    garble(4, "not a chunk at all".to_owned().into());
    garble(5, edgepurge_wire::encode_tasks(&tasks(5..=5)).unwrap().into());
    let rows = buf.pending("c1", 0, 100).unwrap();
    let expected = [(1, Some(1)), (2, Some(2)), (3, None), (4, None), (5, None), (6, None), (7, Some(7))];
    assert_eq!(ids(&rows), expected);
    let unreadable = |i: usize| match &rows[i].tasks {
        Pending::Unreadable { reason, hosts } => (reason.clone(), hosts.clone()),
        other => panic!("row {i} came back as {other:?}"),
    };
    let (reason, hosts) = unreadable(1);
    assert!(reason.contains("tasks 0/3..=3 of node c1") && reason.contains("unreadable"), "{reason}");
    assert_eq!(hosts, Some(vec!["B.test".to_owned()]));
    // A row holding a task that names no host: only purging everything is safe.
    assert_eq!(unreadable(2).1, None);
    let (reason, hosts) = unreadable(3);
    assert!(reason.contains("holds 1 tasks for offsets 5..=6"), "{reason}");
    assert_eq!(hosts, Some(vec!["a.test".to_owned()]));
    // Skipped like any applied row: the watermark passes them.
    buf.mark_applied("c1", 0, 7, &[], 1).unwrap();
    assert!(buf.pending("c1", 0, 10).unwrap().is_empty());
    assert_eq!(buf.watermarks("c1").unwrap()[0].applied, 7);
}

#[test]
fn a_buffer_of_per_task_rows_is_converted_to_chunks_at_open() {
    let dir = tempfile::TempDir::new().unwrap();
    {
        // What an edge of before chunks left: one JSON row per task, one of them garbled.
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch(
            "CREATE TABLE tasks (node TEXT NOT NULL, queue INTEGER NOT NULL, offset INTEGER NOT NULL,
             size INTEGER NOT NULL, task TEXT NOT NULL, PRIMARY KEY (node, queue, offset)) WITHOUT ROWID;",
        )
        .unwrap();
        let row = |queue: u16, offset: i64, text: String| {
            conn.execute("INSERT INTO tasks VALUES ('c1', ?1, ?2, 100, ?3)", params![queue, offset, text]).unwrap();
        };
        for id in [4, 5, 7] {
            row(0, id as i64, serde_json::to_string(&task(id, 100)).unwrap());
        }
        row(0, 6, r#"{"id":6,"kind":"Bogus","host":"b.test"}"#.into());
        row(1, 9, serde_json::to_string(&task(9, 100)).unwrap());
    }
    let buf = ReceiveBuffer::open(dir.path(), 10_000).unwrap();
    assert_eq!(buf.used(), 400);
    let rows = buf.pending("c1", 0, 100).unwrap();
    assert_eq!(ids(&rows), vec![(4, Some(4)), (5, Some(5)), (6, None), (7, Some(7))]);
    assert_eq!(rows.len(), 3, "a run, the unreadable row, a run");
    assert!(matches!(&rows[1].tasks, Pending::Unreadable { hosts: Some(h), .. } if h == &["b.test"]));
    assert_eq!(ids(&buf.pending("c1", 1, 100).unwrap()), vec![(9, Some(9))]);
    let old: Option<String> =
        buf.conn.query_row("SELECT name FROM sqlite_master WHERE name = 'tasks'", [], |r| r.get(0)).optional().unwrap();
    assert_eq!(old, None, "the old table is gone");
}

#[tokio::test]
async fn a_shared_buffer_reports_damage_refuses_calls_and_takes_a_replacement() {
    let dir = tempfile::TempDir::new().unwrap();
    let shared = SharedBuffer::new(ReceiveBuffer::open(dir.path(), 10_000).unwrap());
    shared.call(|b| b.store("c1", 0, 1, &tasks(1..=1))).await.unwrap();
    std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
    let err = shared.call(|b| b.resume("c1")).await.unwrap_err();
    assert!(err.damage().is_some(), "{err}");
    let cause = shared.damage_reported().await;
    assert!(cause.contains("deleted") && cause.contains(FILE_NAME), "{cause}");
    // Refused from now on, without touching the file.
    let err = shared.call(|b| Ok(b.used())).await.unwrap_err();
    assert!(matches!(err, BufferError::Unavailable(_)), "{err}");
    let path = dir.path().to_owned();
    let id = shared.replace(move |old| (Some(ReceiveBuffer::open(&path, 10_000).unwrap()), old.map(|b| b.id()))).await;
    assert!(id.unwrap().is_some());
    assert_eq!(shared.call(|b| b.resume("c1")).await.unwrap(), vec![]);

    let none = SharedBuffer::unavailable("broken".into());
    assert_eq!(none.damage_reported().await, "broken");
    assert!(matches!(none.call(|b| Ok(b.used())).await, Err(BufferError::Unavailable(_))));
}
