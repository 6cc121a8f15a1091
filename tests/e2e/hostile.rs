//! Hostile policies are contained: each is rejected at load with the right reason, or its calls
//! fall back to the built-in default with the right failure kind — and the runtime keeps
//! answering correctly afterwards.

use edgepurge_policy_runtime::{DecisionSource, FailureKind};
use edgepurge_sdk::{defaults, Hook, QueueState, RequestMeta, ResponseMeta, Scope, Task, TaskKind};
use edgepurge_tests::{fixture_names, PolicyTest};
use std::collections::BTreeMap;

fn url_task(target: &str) -> Task {
    Task {
        id: 7,
        kind: TaskKind::Url,
        target: target.into(),
        host: "a.com".into(),
        size_bytes: 10,
        ..Default::default()
    }
}

fn queues() -> Vec<QueueState> {
    (0..3).map(|i| QueueState { index: i, healthy: true, depth: u64::from(i), ..Default::default() }).collect()
}

fn request() -> RequestMeta {
    RequestMeta { method: "GET".into(), url: "https://a.com/x".into(), headers: vec![] }
}

/// The runtime still gives correct answers: the default policy, loaded now, answers from Wasm
/// exactly what the built-in defaults say.
async fn runtime_still_serves() {
    let h = PolicyTest::using_policy("default").load().await.expect("default policy loads");
    let task = url_task("https://a.com/after");
    let out = h.policy().scope_purge(&task).await;
    assert_eq!(out.source, DecisionSource::Policy);
    assert_eq!(out.value, defaults::scope_purge(&task));
}

/// Adding a fixture crate without adding it here fails this test.
#[test]
fn every_fixture_has_a_test() {
    let tested =
        ["bad-returns", "forbidden-fs", "forbidden-sockets", "huge-stdout", "infinite-loop", "memory-bomb", "panic"];
    assert_eq!(fixture_names(), tested, "a fixture in tests/fixtures/ has no test in tests/e2e/hostile.rs");
}

#[tokio::test]
async fn infinite_loop_hits_the_deadline_on_every_hook() {
    let h = PolicyTest::using_fixture("infinite-loop").deadline_ms(20).load().await.unwrap();
    let p = h.policy();
    let (tasks, qs) = (vec![url_task("https://a.com/1")], queues());
    let sq = p.select_queue(&tasks, &qs, 0).await;
    assert_eq!(sq.failure(), Some(FailureKind::Deadline));
    assert_eq!(sq.value, defaults::select_queue(&tasks, &qs, 0, &BTreeMap::new()));
    assert_eq!(p.scope_purge(&tasks[0]).await.failure(), Some(FailureKind::Deadline));
    let resp = ResponseMeta { status: 200, headers: vec![] };
    assert_eq!(p.cache_rules(&request(), &resp).await.failure(), Some(FailureKind::Deadline));
    let key = p.cache_key(&request()).await;
    assert_eq!((key.failure(), key.value), (Some(FailureKind::Deadline), None));
    assert_eq!(p.failures().of_kind(FailureKind::Deadline), 4);
    assert_eq!(p.idle_instances(), 0, "an interrupted instance must not be reused");
    runtime_still_serves().await;
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_cap_and_the_policy_recovers() {
    let h = PolicyTest::using_fixture("memory-bomb").load().await.unwrap();
    let p = h.policy();
    let task = url_task("https://a.com/bomb");
    let out = p.scope_purge(&task).await;
    assert_eq!(out.failure(), Some(FailureKind::Memory), "{:?}", out.source);
    assert_eq!(out.value, defaults::scope_purge(&task));
    // The same policy's well-behaved hook still answers, from a fresh instance.
    let sq = p.select_queue(std::slice::from_ref(&task), &queues(), 0).await;
    assert_eq!(sq.source, DecisionSource::Policy);
    assert_eq!(p.failures().of_kind(FailureKind::Memory), 1);
    runtime_still_serves().await;
}

#[tokio::test]
async fn filesystem_imports_are_rejected_at_load_by_name() {
    let err = PolicyTest::using_fixture("forbidden-fs").load_err().await;
    assert!(err.contains("forbids") && err.contains("wasi:filesystem/types"), "{err}");
    assert!(!err.contains("wasi:io"), "allowed interfaces must not be listed: {err}");
    runtime_still_serves().await;
}

#[tokio::test]
async fn socket_imports_are_rejected_at_load_by_name() {
    let err = PolicyTest::using_fixture("forbidden-sockets").load_err().await;
    assert!(err.contains("wasi:sockets/tcp@") && err.contains("wasi:sockets/network@"), "{err}");
    runtime_still_serves().await;
}

#[tokio::test]
async fn a_panic_traps_and_the_next_call_is_answered() {
    let h = PolicyTest::using_fixture("panic").load().await.unwrap();
    let p = h.policy();
    let boom = p.scope_purge(&url_task("https://a.com/boom")).await;
    assert_eq!(boom.failure(), Some(FailureKind::Trap));
    let log = h.take_log().join("\n");
    assert!(log.contains("panicked on purpose"), "the panic message reaches the log: {log}");
    let fine = p.scope_purge(&url_task("https://a.com/fine")).await;
    assert_eq!(fine.source, DecisionSource::Policy);
    assert_eq!(fine.value.actions[0].scope, Scope::Tag("ok".into()));
    assert_eq!(p.cache_key(&request()).await.failure(), Some(FailureKind::Trap), "index out of bounds traps too");
    assert_eq!(p.failures().of_kind(FailureKind::Trap), 2);
}

#[tokio::test]
async fn a_hundred_megabytes_of_stdout_costs_the_host_only_the_cap() {
    // A generous deadline so the call completes: what is checked here is the output cap.
    let h = PolicyTest::using_fixture("huge-stdout").deadline_ms(30_000).load().await.unwrap();
    let out = h.policy().cache_key(&request()).await;
    assert_eq!(out.source, DecisionSource::Policy, "writing output never fails the call");
    assert_eq!(out.value.as_deref(), Some("chatty:https://a.com/x"));
    let log = h.take_log();
    let stdout_bytes: usize = log.iter().filter(|l| l.starts_with("Info stdout: ")).map(|l| l.len() - 13 + 1).sum();
    let cap = h.policy().limits().output_bytes;
    assert!(stdout_bytes <= cap, "kept {stdout_bytes} bytes of stdout, cap {cap}");
    assert!(log.iter().any(|l| l.contains("more bytes of stdout dropped")), "the drop is reported");
    let log_lines = log.iter().filter(|l| l.contains(" log: log line ")).count();
    assert_eq!(log_lines, 256, "log lines per call are capped");
    assert!(log.iter().any(|l| l.contains("744 more log lines dropped")));
    // With the production deadline the same call is cut off, and the default answers.
    let h = PolicyTest::using_fixture("huge-stdout").deadline_ms(10).load().await.unwrap();
    let out = h.policy().cache_key(&request()).await;
    assert_eq!((out.failure(), out.value), (Some(FailureKind::Deadline), None));
}

#[tokio::test]
async fn invalid_returns_fall_back_to_the_defaults() {
    let h = PolicyTest::using_fixture("bad-returns").load().await.unwrap();
    let p = h.policy();
    let qs = queues();
    let one = vec![url_task("https://a.com/1")];
    let out = p.select_queue(&one, &qs, 0).await;
    assert_eq!(out.failure(), Some(FailureKind::InvalidReturn), "queue 99 does not exist");
    assert_eq!(out.value, defaults::select_queue(&one, &qs, 0, &BTreeMap::new()));
    let three = vec![url_task("https://a.com/1"); 3];
    let out = p.select_queue(&three, &qs, 0).await;
    assert_eq!(out.failure(), Some(FailureKind::InvalidReturn), "two indices for three tasks");
    assert_eq!(out.value.len(), 3);

    let out = p.scope_purge(&url_task("https://a.com/1")).await;
    assert_eq!(out.failure(), Some(FailureKind::InvalidReturn), "`everything` for a URL task");
    assert_eq!(out.value.actions[0].scope, Scope::Url("https://a.com/1".into()));
    let prefix = Task {
        kind: TaskKind::Prefix,
        target: "https://a.com/img/".into(),
        host: "a.com".into(),
        ..Default::default()
    };
    let out = p.scope_purge(&prefix).await;
    assert_eq!(out.failure(), Some(FailureKind::InvalidReturn), "a prefix on another host");
    assert_eq!(p.cache_key(&request()).await.failure(), Some(FailureKind::InvalidReturn), "newline in the key");
    let counts = p.failures();
    assert_eq!(counts.of_kind(FailureKind::InvalidReturn), 5);
    assert!(counts.counts.contains(&(Hook::SelectQueue, FailureKind::InvalidReturn, 2)));
    assert!(p.idle_instances() > 0, "a bad answer is not a broken instance: it is reused");
}

#[tokio::test]
async fn a_component_without_the_world_exports_is_rejected_naming_them() {
    let empty = wat::parse_str("(component)").unwrap();
    let err = PolicyTest::using_bytes(empty).load_err().await;
    for export in ["describe", "select-queue", "scope-purge", "cache-rules", "cache-key"] {
        assert!(err.contains(export), "{export} missing from: {err}");
    }
}

#[tokio::test]
async fn core_modules_and_oversized_components_are_rejected() {
    let module = wat::parse_str("(module)").unwrap();
    let err = PolicyTest::using_bytes(module).load_err().await;
    assert!(err.contains("not a valid WebAssembly component") && err.contains("wasm32-wasip2"), "{err}");
    let err = PolicyTest::using_policy("default").max_component_bytes(1000).load_err().await;
    assert!(err.contains("over the 1000-byte limit"), "{err}");
}
