//! An edge's receive buffer damaged while the edge is stopped — deleted, truncated, or one page
//! overwritten with garbage — and the edge started again: it must come back applying purges
//! (a new buffer, everything it held purged), never serving while its consumer is stuck.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::check::assert_no_purged_but_served;
use crate::cluster::Cluster;

/// SQLite's default page size: page 2 starts here.
const PAGE: u64 = 4096;

/// Applies a batch, stops edge-2 cleanly, `damage`s its buffer, starts it, and checks that a
/// purge of an object it cached after the restart is applied and not served.
fn damaged_buffer(damage: fn(&Path)) {
    let Some(mut c) = Cluster::builder().build() else { return };
    let paths: Vec<String> = (0..500).map(|i| format!("/buffer/{i}")).collect();
    let first = c.purge_urls(&paths);
    c.wait_done(first.batch);
    assert!(c.terminate_edge(1).success(), "edge-2 stops on SIGTERM");
    damage(&c.edges[1].buffer());
    c.start_edge(1);
    c.wait_connected();
    c.warm(&["/after-damage".to_owned()]);
    let purge = c.purge_urls(&["/after-damage".to_owned()]);
    c.wait_done(purge.batch);
    assert_eq!(assert_no_purged_but_served(&c, &[purge]), 2);
}

fn sidecars(buffer: &Path) -> Vec<std::path::PathBuf> {
    ["-wal", "-shm"].iter().map(|s| std::path::PathBuf::from(format!("{}{s}", buffer.display()))).collect()
}

#[test]
fn a_deleted_receive_buffer_starts_anew() {
    damaged_buffer(|buffer| {
        std::fs::remove_file(buffer).unwrap();
        for f in sidecars(buffer) {
            let _ = std::fs::remove_file(f);
        }
    });
}

#[test]
fn a_truncated_receive_buffer_is_moved_aside() {
    damaged_buffer(|buffer| {
        let len = std::fs::metadata(buffer).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(buffer).unwrap().set_len(len / 2).unwrap();
    });
}

#[test]
fn a_garbage_page_in_the_receive_buffer_is_moved_aside() {
    damaged_buffer(|buffer| {
        let mut file = std::fs::OpenOptions::new().write(true).open(buffer).unwrap();
        file.seek(SeekFrom::Start(PAGE)).unwrap();
        file.write_all(&[0xa5; PAGE as usize]).unwrap();
        file.sync_all().unwrap();
    });
}
