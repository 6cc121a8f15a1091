//! The problems issue 14 found: control's database replaced or restored from an older backup
//! (log identity and offset checks), and `purge --wait` that must time out naming the edge it
//! waits for. Receive-buffer damage is in `buffer.rs`.

use std::process::Command;

use crate::check::assert_no_purged_but_served;
use crate::cluster::Cluster;

/// Enough purges that the edges' watermarks stand well beyond a new log's end.
fn purge_a_while(c: &Cluster) {
    let paths: Vec<String> = (0..2_000).map(|i| format!("/history/{i}")).collect();
    let purge = c.purge_urls(&paths);
    c.wait_done(purge.batch);
}

/// Control's database files (the database, its WAL and shared memory).
fn database_files(c: &Cluster) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm"].iter().map(|s| std::path::PathBuf::from(format!("{}{s}", c.database.display()))).collect()
}

#[test]
fn a_replaced_control_database_reports_nothing_it_did_not_deliver() {
    let Some(mut c) = Cluster::builder().build() else { return };
    purge_a_while(&c);
    c.kill_control();
    for f in database_files(&c) {
        let _ = std::fs::remove_file(f);
    }
    c.renew_token();
    c.start_control();
    c.wait_connected();
    c.warm(&["/replaced".to_owned()]);
    let purge = c.purge_urls(&["/replaced".to_owned()]);
    c.wait_done(purge.batch);
    assert_eq!(assert_no_purged_but_served(&c, &[purge]), 2);
}

#[test]
fn a_control_database_restored_from_an_older_backup_reports_nothing_it_did_not_deliver() {
    let Some(mut c) = Cluster::builder().build() else { return };
    assert!(c.terminate_control().success());
    let backup = c.dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    for f in database_files(&c).iter().filter(|f| f.exists()) {
        std::fs::copy(f, backup.join(f.file_name().unwrap())).unwrap();
    }
    c.start_control();
    c.wait_connected();
    purge_a_while(&c);
    c.kill_control();
    for f in database_files(&c) {
        let _ = std::fs::remove_file(&f);
        let saved = backup.join(f.file_name().unwrap());
        if saved.exists() {
            std::fs::copy(saved, f).unwrap();
        }
    }
    c.start_control();
    c.wait_connected();
    c.warm(&["/restored".to_owned()]);
    let purge = c.purge_urls(&["/restored".to_owned()]);
    c.wait_done(purge.batch);
    assert_eq!(assert_no_purged_but_served(&c, &[purge]), 2);
}

#[test]
fn purge_wait_times_out_and_names_the_partitioned_edge() {
    let Some(c) = Cluster::builder().proxies().build() else { return };
    c.edges[1].partition.as_ref().unwrap().cut();
    let out = Command::new(&c.bin)
        .args(["purge", "--url", &crate::api::url("/waited"), "--wait", "--timeout", "5s"])
        .args(["--server", &format!("http://{}", c.api), "--token", &c.token])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "exit code 3 on timeout: {text}");
    assert!(text.contains("edge-2"), "names the edge it waits for: {text}");
}
