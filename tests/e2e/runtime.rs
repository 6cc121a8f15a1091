//! The runtime under concurrency, instance reuse, declared-hook skipping, configuration, and
//! the defaults invariant: the `default` policy in Wasm answers exactly like the host's
//! built-in defaults.

use edgepurge_policy_runtime::{DecisionSource, InstanceReuse, LoadedPolicy};
use edgepurge_sdk::{defaults, Header, QueueState, RequestMeta, ResponseMeta, SpeedSample, Task, TaskKind};
use edgepurge_tests::PolicyTest;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

fn task(i: u64) -> Task {
    Task {
        id: i,
        kind: TaskKind::Url,
        target: format!("https://a.com/{i}"),
        host: "a.com".into(),
        size_bytes: 100 + i,
        ..Default::default()
    }
}

fn queues() -> Vec<QueueState> {
    (0..4)
        .map(|i| QueueState {
            index: i,
            healthy: true,
            depth: u64::from(i) * 3,
            pending_bytes: 1000 * u64::from(i),
            pacing_ms: 2,
            samples: vec![SpeedSample { bytes: 100_000, millis: 100 }],
            ..Default::default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_call_one_policy_concurrently() {
    let h = Arc::new(PolicyTest::using_policy("default").load().await.unwrap());
    let mut joins = Vec::new();
    for t in 0..32u64 {
        let h = h.clone();
        joins.push(tokio::spawn(async move {
            for i in 0..20 {
                let tasks: Vec<Task> = (0..5).map(|k| task(t * 100 + i * 5 + k)).collect();
                let out = h.policy().select_queue(&tasks, &queues(), 0).await;
                assert_eq!(out.source, DecisionSource::Policy);
                assert_eq!(out.value, defaults::select_queue(&tasks, &queues(), 0, &BTreeMap::new()));
            }
        }));
    }
    for j in joins {
        j.await.expect("no task panicked");
    }
    assert_eq!(h.policy().failures().total(), 0);
    assert!(h.policy().idle_instances() >= 1);
}

#[tokio::test]
async fn pooled_instances_are_reused_and_fresh_ones_are_not() {
    let pooled = PolicyTest::using_policy("default").load().await.unwrap();
    for i in 0..3 {
        pooled.policy().scope_purge(&task(i)).await;
    }
    assert_eq!(pooled.policy().idle_instances(), 1, "sequential calls share one instance");
    let fresh = PolicyTest::using_policy("default").reuse(InstanceReuse::Fresh).load().await.unwrap();
    let out = fresh.policy().scope_purge(&task(1)).await;
    assert_eq!(out.source, DecisionSource::Policy);
    assert_eq!(fresh.policy().idle_instances(), 0);
}

#[tokio::test]
async fn undeclared_hooks_are_not_called() {
    let h = PolicyTest::using_policy("default").load().await.unwrap();
    let info = h.policy().info();
    assert_eq!((info.name.as_str(), info.hooks.cache_key), ("default", false));
    let out = h.policy().cache_key(&RequestMeta::default()).await;
    assert_eq!((out.source, out.value), (DecisionSource::NotDeclared, None));
}

#[tokio::test]
async fn policy_config_reaches_the_guest() {
    let h = PolicyTest::using_policy("default").config("default-ttl-secs", "172800").load().await.unwrap();
    let resp = ResponseMeta { status: 200, headers: vec![Header::new("content-type", "text/html")] };
    let out = h.policy().cache_rules(&RequestMeta::default(), &resp).await;
    assert_eq!(out.source, DecisionSource::Policy);
    assert_eq!(out.value.ttl_secs, Some(172800), "S3.4 default TTL when the origin states none");
}

fn arb_queue() -> impl Strategy<Value = QueueState> {
    (
        any::<bool>(),
        0u64..10_000,
        0u64..50_000_000,
        0u32..50,
        proptest::collection::vec((0u64..10_000_000, 0u64..5_000), 0..8),
        0u64..20_000_000,
    )
        .prop_map(|(healthy, depth, pending, pacing, samples, peak)| QueueState {
            index: 0,
            healthy,
            depth,
            pending_bytes: pending,
            pacing_ms: pacing,
            samples: samples.into_iter().map(|(bytes, millis)| SpeedSample { bytes, millis }).collect(),
            peak_bytes_per_sec: peak,
            slot: 0,
        })
}

fn arb_task() -> impl Strategy<Value = Task> {
    let kinds = prop_oneof![
        Just(TaskKind::Url),
        Just(TaskKind::Prefix),
        Just(TaskKind::Tag),
        Just(TaskKind::Host),
        Just(TaskKind::Everything),
        Just(TaskKind::Warm)
    ];
    (kinds, "[a-z/]{0,12}", any::<bool>(), 0u64..1_000_000).prop_map(|(kind, path, soft, size)| {
        let host = if kind == TaskKind::Everything { String::new() } else { "a.com".to_owned() };
        let target = match kind {
            TaskKind::Tag => format!("tag{path}"),
            TaskKind::Host => "a.com".into(),
            TaskKind::Everything => String::new(),
            _ => format!("https://a.com/{path}"),
        };
        Task { id: size, kind, target, soft, size_bytes: size, host, ..Default::default() }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The built-in defaults and the `default` policy are the same logic: on random chunks and
    /// queues, Wasm and native answers are identical.
    #[test]
    fn the_default_policy_is_the_builtin_defaults(
        tasks in proptest::collection::vec(arb_task(), 1..20),
        qs in proptest::collection::vec(arb_queue(), 1..6),
        cc in prop_oneof![Just(""), Just("max-age=60"), Just("no-store"), Just("public")],
    ) {
        let qs: Vec<QueueState> = qs.into_iter().enumerate().map(|(i, mut q)| { q.index = i as u32; q }).collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let config: BTreeMap<String, String> = [("default-ttl-secs".to_owned(), "3600".to_owned())].into();
            let wasm = PolicyTest::using_policy("default").config("default-ttl-secs", "3600").load().await.unwrap();
            let native = LoadedPolicy::builtin(config);
            let w = wasm.policy().select_queue(&tasks, &qs, 0).await;
            prop_assert_eq!(&w.source, &DecisionSource::Policy);
            prop_assert_eq!(w.value, native.select_queue(&tasks, &qs, 0).await.value);
            for t in &tasks {
                let w = wasm.policy().scope_purge(t).await;
                prop_assert_eq!(&w.source, &DecisionSource::Policy);
                prop_assert_eq!(w.value, native.scope_purge(t).await.value);
            }
            let resp = ResponseMeta { status: 200, headers: vec![Header::new("cache-control", cc)] };
            let w = wasm.policy().cache_rules(&RequestMeta::default(), &resp).await;
            prop_assert_eq!(w.value, native.cache_rules(&RequestMeta::default(), &resp).await.value);
            Ok(())
        })?;
    }
}
