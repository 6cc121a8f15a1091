//! A full disk under control's database (a 2 MiB tmpfs, filled up): a purge is refused with
//! `503` and nothing of it is half-accepted (no records, no batch); batches accepted before are
//! untouched and still applied; once space is freed, purges are accepted and applied again.
//! Mounting needs root and a kernel that lets this process mount: elsewhere the case says
//! `SKIPPED` on stderr with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::check::assert_no_purged_but_served;
use crate::cluster::Cluster;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a `size` tmpfs; `Err` with why it cannot.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let parent = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = parent.path().join("db");
        std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { dir, _parent: parent })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still holds a file there does not keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system of `dir` with `filler` until a write fails for want of space.
fn fill(filler: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(filler).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn a_full_disk_under_the_database_refuses_with_503_and_accepts_nothing_partial() {
    let tmpfs = match Tmpfs::mount("2m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED: full disk under control's database: {why} (needs root and permission to mount)");
            return;
        }
    };
    // Declared after the mount, so it stops first (locals drop in reverse order).
    let Some(c) = Cluster::builder().database_dir(&tmpfs.dir).build() else { return };
    c.warm(&["/disk/before".to_owned()]);
    let before = c.purge_urls(&["/disk/before".to_owned()]);
    c.wait_done(before.batch);

    let filler = tmpfs.dir.join("filler");
    fill(&filler);
    let host = "full.test";
    let urls: Vec<String> = (0..2_000).map(|i| format!("http://{host}/f/{i}")).collect();
    let reply = c.submit_text(&urls).expect("control answers on a full disk");
    assert_eq!(reply.status, 503, "a purge on a full disk: {} {}", reply.status, reply.text());
    assert!(reply.json()["error"].is_string(), "a JSON error body: {}", reply.text());
    // A small one too: the refusal does not depend on the size.
    let (code, body) = c.api("POST", "/v1/purges", Some(&json!({"urls": [format!("http://{host}/one")]})));
    assert_eq!(code, 503, "{body}");
    let failed = c.control_metric("edgepurge_control_submissions_total{outcome=\"store_error\"}");
    assert!(failed >= 2.0, "counted as store errors: {failed}");

    std::fs::remove_file(&filler).unwrap();
    let (code, page) = c.api("GET", &format!("/v1/records?host={host}&limit=1"), None);
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(0), "nothing of the refused purges: {page}");
    assert_eq!(c.batch(before.batch)["state"], "done", "the earlier batch is untouched");

    // Space again: accepted and applied.
    c.warm(&["/disk/after".to_owned()]);
    let after = c.purge_urls(&["/disk/after".to_owned()]);
    c.wait_done(after.batch);
    let bulk = c.submit_text(&urls).expect("control answers");
    assert_eq!(bulk.status, 202, "{}", bulk.text());
    assert_eq!(assert_no_purged_but_served(&c, &[before, after]), 4);
    // Stop control before the unmount.
    drop(c);
}
