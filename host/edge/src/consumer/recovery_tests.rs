//! Recovery tests: at start-up a damaged buffer (garbage, truncated, not a database) is moved
//! aside with its `-wal`/`-shm`, everything is purged and a fresh buffer records the reset;
//! with `stop-serving` it stays where it is; a directory problem is an error and moves nothing;
//! a log left without its database is moved aside before a fresh one is made.

use std::sync::Arc;

use edgepurge_edge_cache::ScopeKind;
use edgepurge_policy_runtime::{LoadedPolicy, PolicySlot};
use edgepurge_wire::{WireTask, WireTaskKind};

use super::*;
use crate::config::EdgeConfig;

fn shared() -> Arc<Shared> {
    let config = EdgeConfig::parse("listen = \"127.0.0.1:0\"\n", "e.toml").unwrap();
    Shared::new(config, PolicySlot::new(LoadedPolicy::builtin(Default::default()))).unwrap()
}

fn hard_everything(shared: &Shared) -> u64 {
    shared.store.stats().purges.get(ScopeKind::Everything, PurgeMode::Hard)
}

/// The damaged files this test writes into `dir`: what each is, its bytes.
fn damaged_variants(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let mut buffer = ReceiveBuffer::open(dir, 1 << 30).unwrap();
    let task = |id| WireTask {
        id,
        kind: WireTaskKind::Url,
        target: format!("http://a.test/{id}/{}", "x".repeat(300)),
        soft: false,
        size_bytes: 100,
        host: "a.test".into(),
        tenant: "t".into(),
    };
    buffer.store("c1", 0, 1, &(1..=300).map(task).collect::<Vec<_>>()).unwrap();
    drop(buffer);
    let good = std::fs::read(dir.join(FILE_NAME)).unwrap();
    std::fs::remove_file(dir.join(FILE_NAME)).unwrap();
    let mut garbage_page = good.clone();
    for (i, byte) in garbage_page[4096..8192].iter_mut().enumerate() {
        *byte = (i * 7 + 13) as u8;
    }
    vec![
        ("not a database", b"not a database\n".repeat(500)),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage page", garbage_page),
    ]
}

#[test]
fn a_damaged_buffer_is_moved_aside_everything_purged_and_a_fresh_one_records_it() {
    let scratch = tempfile::TempDir::new().unwrap();
    for (what, bytes) in damaged_variants(scratch.path()) {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
        std::fs::write(dir.path().join(format!("{FILE_NAME}-wal")), b"an old log").unwrap();
        let shared = shared();
        let opened = open_at_start(dir.path(), 1 << 20, OnBufferFailure::PurgeAndContinue, &shared).unwrap();
        let Opened::Ready(buffer, Some(reset)) = opened else { panic!("{what}: not reset") };
        assert_eq!(hard_everything(&shared), 1, "{what}: everything purged");
        let moved = reset.moved_to.clone().unwrap_or_else(|| panic!("{what}: not moved"));
        assert_eq!(std::fs::read(&moved).unwrap(), bytes, "{what}: the damaged file is kept as it was");
        let name = moved.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with(&format!("{FILE_NAME}.damaged-")), "{name}");
        let log = moved.with_file_name(format!("{name}-wal"));
        assert_eq!(std::fs::read(log).unwrap(), b"an old log", "{what}: its log moved with it");
        assert!(reset.cause.contains(FILE_NAME), "{what}: {}", reset.cause);
        assert!(!reset.cause.contains("writable"), "{what}: {}", reset.cause);
        // The fresh buffer is empty and says what happened, for every node.
        assert_eq!((buffer.used(), buffer.pending_queues().unwrap()), (0, vec![]), "{what}");
        let events = buffer.events(10).unwrap();
        assert_eq!(events.len(), 1, "{what}");
        assert_eq!(events[0].node, "*");
        assert!(events[0].message.starts_with("receive buffer reset:"), "{}", events[0].message);
        assert!(events[0].message.contains(&moved.display().to_string()), "{}", events[0].message);
        assert!(events[0].message.contains("purged everything"), "{}", events[0].message);
    }
}

#[test]
fn with_stop_serving_a_damaged_buffer_stays_where_it_is() {
    let scratch = tempfile::TempDir::new().unwrap();
    let (_, bytes) = damaged_variants(scratch.path()).remove(0);
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
    let shared = shared();
    let opened = open_at_start(dir.path(), 1 << 20, OnBufferFailure::StopServing, &shared).unwrap();
    let Opened::Damaged(cause) = opened else { panic!("opened a damaged buffer") };
    assert!(cause.contains("not an SQLite database"), "{cause}");
    assert_eq!(std::fs::read(dir.path().join(FILE_NAME)).unwrap(), bytes);
    assert_eq!(hard_everything(&shared), 0);
}

#[test]
fn a_directory_problem_fails_the_start_and_moves_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "a file, not a directory").unwrap();
    let err = open_at_start(&state, 1 << 20, OnBufferFailure::PurgeAndContinue, &shared()).err().expect("refused");
    assert!(err.to_string().contains("control.state-dir"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing moved aside");
}

#[test]
fn a_log_left_without_its_database_is_moved_aside_before_a_fresh_one() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(dir.path().join(format!("{FILE_NAME}-wal")), b"another file's log").unwrap();
    let buffer = open_in_place(dir.path(), 1 << 20).unwrap();
    assert_eq!(buffer.used(), 0);
    let moved: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".damaged-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(moved[0].ends_with("-wal"), "{moved:?}");
}
