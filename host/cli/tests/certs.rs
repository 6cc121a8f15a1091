//! `edgepurge certs` through the real binary: `init` writes every file with private keys,
//! refuses to replace a CA without `--force`, and `issue`/`revoke` work on its directory.

use std::path::Path;
use std::process::{Command, Output};

fn edgepurge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgepurge")).args(args).output().expect("run edgepurge")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_writes_the_files_and_refuses_to_overwrite_the_ca() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().join("certs");
    let dir_arg = dir.to_str().unwrap();
    let out = edgepurge(&["certs", "init", dir_arg, "--edges", "3", "--san", "control.internal"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let files = ["ca.pem", "ca.key", "control.pem", "control.key", "crl.pem"];
    let edges = ["edges/edge-1", "edges/edge-2", "edges/edge-3"];
    let all =
        files.map(str::to_owned).into_iter().chain(edges.iter().flat_map(|e| [format!("{e}.pem"), format!("{e}.key")]));
    for name in all {
        let path = dir.join(&name);
        assert!(path.exists(), "{name} missing");
        assert!(stdout.contains(&path.display().to_string()), "{name} not reported in:\n{stdout}");
        #[cfg(unix)]
        if name.ends_with(".key") {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{name}");
        }
    }
    assert!(!dir.join("edges/edge-4.pem").exists());

    let ca_before = std::fs::read(dir.join("ca.pem")).unwrap();
    let again = edgepurge(&["certs", "init", dir_arg]);
    assert!(!again.status.success());
    let stderr = text(&again.stderr);
    assert!(stderr.contains("already holds a CA") && stderr.contains("--force"), "stderr: {stderr}");
    assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca_before, "the CA was touched");

    let forced = edgepurge(&["certs", "init", dir_arg, "--edges", "1", "--force"]);
    assert!(forced.status.success(), "stderr: {}", text(&forced.stderr));
    assert_ne!(std::fs::read(dir.join("ca.pem")).unwrap(), ca_before);
    assert!(!dir.join("edges/edge-3.pem").exists(), "an edge of the replaced CA was left behind");
}

#[test]
fn issue_and_revoke_an_edge() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().to_str().unwrap();
    assert!(edgepurge(&["certs", "init", dir, "--edges", "0"]).status.success());
    let issued = edgepurge(&["certs", "issue", "--dir", dir, "--edge", "paris-1"]);
    assert!(issued.status.success(), "stderr: {}", text(&issued.stderr));
    assert!(Path::new(dir).join("edges/paris-1.key").exists());

    let twice = edgepurge(&["certs", "issue", "--dir", dir, "--edge", "paris-1"]);
    assert!(!twice.status.success());
    assert!(text(&twice.stderr).contains("already has a certificate"), "{}", text(&twice.stderr));
    let bad = edgepurge(&["certs", "issue", "--dir", dir, "--edge", "Paris/1"]);
    assert!(text(&bad.stderr).contains("invalid edge name"), "{}", text(&bad.stderr));

    let crl_before = std::fs::read(Path::new(dir).join("crl.pem")).unwrap();
    let revoked = edgepurge(&["certs", "revoke", "--dir", dir, "--edge", "paris-1"]);
    assert!(revoked.status.success(), "stderr: {}", text(&revoked.stderr));
    assert!(text(&revoked.stdout).contains("revoked edge `paris-1`"));
    assert_ne!(std::fs::read(Path::new(dir).join("crl.pem")).unwrap(), crl_before);
}
