//! The `default` policy: exactly the host's built-in defaults ([`edgepurge_sdk::defaults`]),
//! compiled to a component.
//!
//! - `select-queue`: expected-wait queue selection of S0.3 (config `speed-floor-bytes-per-sec`).
//! - `scope-purge`: URL → the URL and all its variants; directory → prefix; tag, host,
//!   everything pass through; warm purges nothing.
//! - `cache-rules`: RFC 9111 alone, plus `default-ttl-secs` (config) when the origin states no
//!   freshness (S3.4).
//!
//! It declares these three hooks, so a host running it makes real policy calls — useful to
//! measure the sandbox and as the template for a custom policy.

use edgepurge_sdk::{export, Hook, Policy};

/// The default policy.
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    const NAME: &'static str = "default";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const HOOKS: &'static [Hook] = &[Hook::SelectQueue, Hook::ScopePurge, Hook::CacheRules];
}

export!(DefaultPolicy);

#[cfg(test)]
mod tests {
    //! The policy's hooks are plain Rust natively: test them with worked examples, and set the
    //! operator's configuration with `set_test_config`.
    use super::*;
    use edgepurge_sdk::config::set_test_config;
    use edgepurge_sdk::*;

    #[test]
    fn the_worked_example_of_s0_3() {
        set_test_config([]);
        let mb = 1_000_000;
        let sample = |m: u64| SpeedSample { bytes: m * mb, millis: 1000 };
        let queues = vec![
            QueueState {
                index: 0,
                healthy: true,
                depth: 100,
                pending_bytes: 10 * mb,
                pacing_ms: 2,
                samples: vec![sample(5), sample(4), sample(2), sample(1)],
                ..Default::default()
            },
            QueueState {
                index: 1,
                healthy: true,
                depth: 1000,
                pending_bytes: 4 * mb,
                pacing_ms: 2,
                peak_bytes_per_sec: 2 * mb,
                ..Default::default()
            },
            QueueState { index: 2, healthy: false, ..Default::default() },
        ];
        let tasks: Vec<Task> = (0..12).map(|id| Task { id, size_bytes: mb, ..Default::default() }).collect();
        // W0 = 2422.2 + 224.2 ms per task, W1 = 4000 + 502 ms per task: eight tasks fit on
        // queue 0 before its wait passes queue 1's.
        assert_eq!(DefaultPolicy::select_queue(&tasks, &queues, 0), [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn soft_tasks_give_soft_actions_and_warm_purges_nothing() {
        let task = |kind, soft| Task { kind, soft, target: "https://a.com/img/".into(), ..Default::default() };
        let plan = DefaultPolicy::scope_purge(&task(TaskKind::Prefix, true));
        assert_eq!(
            plan.actions,
            [PurgeAction { scope: Scope::Prefix("https://a.com/img/".into()), mode: PurgeMode::Soft }]
        );
        assert!(DefaultPolicy::scope_purge(&task(TaskKind::Warm, false)).actions.is_empty());
    }

    #[test]
    fn the_default_ttl_applies_only_without_origin_freshness() {
        set_test_config([(defaults::DEFAULT_TTL_KEY, "3600")]);
        let resp = |cc: &str| ResponseMeta { status: 200, headers: vec![Header::new("cache-control", cc)] };
        let req = RequestMeta::default();
        assert_eq!(DefaultPolicy::cache_rules(&req, &resp("public")).ttl_secs, Some(3600));
        assert!(DefaultPolicy::cache_rules(&req, &resp("max-age=60")).is_no_override());
    }
}
