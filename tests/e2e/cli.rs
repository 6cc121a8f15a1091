//! The `edgepurge policy` commands, run as a user runs them.

use edgepurge_tests::repo_root;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The `edgepurge` binary next to this test binary (built by `cargo test --workspace`).
pub fn edgepurge() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>/deps");
    let bin = dir.join("edgepurge");
    assert!(bin.exists(), "{} missing: build it with `cargo build -p edgepurge`", bin.display());
    bin
}

fn run(args: &[&str]) -> (Output, String) {
    let out = Command::new(edgepurge()).args(args).current_dir(repo_root()).output().expect("edgepurge runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

#[test]
fn check_lists_the_hooks_of_the_default_policy() {
    let (out, text) = run(&["policy", "check", "target/policies/default.wasm", "--deadline-ms", "2000"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("policy   default"), "{text}");
    assert!(text.contains("hooks    select-queue, scope-purge, cache-rules"), "{text}");
    assert!(text.contains("compile") && text.contains("size"), "{text}");
    assert_eq!(text.matches("  ok    ").count(), 3, "{text}");
}

#[test]
fn check_fails_with_the_reasons_for_a_forbidden_policy() {
    let (out, text) = run(&["policy", "check", "target/fixtures/forbidden-fs.wasm"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("INVALID") && text.contains("wasi:filesystem"), "{text}");
}

#[test]
fn check_fails_when_a_declared_hook_fails() {
    let (out, text) = run(&["policy", "check", "target/fixtures/infinite-loop.wasm"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  select-queue") && text.contains("deadline"), "{text}");
}

#[test]
fn test_passes_shipped_cases_and_fails_wrong_ones() {
    let (out, text) = run(&["policy", "test", "target/policies/default.wasm", "policies/default/cases.toml"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" failed") && text.contains("0 failed"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nname = \"wrong queue\"\nhook = \"select-queue\"\nexpect = [1]\n[case.input]\ntasks = [{ size-bytes = 1 }]\nqueues = [{ index = 0, healthy = true }, { index = 1, healthy = true, depth = 9 }]\n",
    )
    .unwrap();
    let (out, text) = run(&["policy", "test", "target/policies/default.wasm", cases.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  wrong queue") && text.contains("0 passed, 1 failed"), "{text}");
    assert!(text.contains("-  1") && text.contains("+  0"), "the diff shows expected and actual: {text}");
}

#[test]
fn a_missing_file_says_how_to_build_it() {
    let (out, text) = run(&["policy", "check", "target/policies/nope.wasm"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("make policies"), "{text}");
}
