//! `policy check`: every declared hook once on synthetic input, inside the production limits.

use crate::Harness;
use edgepurge_policy_runtime::{DecisionSource, Outcome};
use edgepurge_sdk::{Header, Hook, QueueState, RequestMeta, ResponseMeta, SpeedSample, Task, TaskKind};
use std::time::{Duration, Instant};

/// How one hook did on synthetic input.
#[derive(Debug, Clone)]
pub struct HookCheck {
    /// The hook.
    pub hook: Hook,
    /// Wall time of the call (includes instantiation on the first call).
    pub elapsed: Duration,
    /// Whether the policy answered or failed.
    pub result: HookCheckResult,
}

/// The result of one synthetic call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookCheckResult {
    /// The policy answered; a short rendering of the answer.
    Answered(String),
    /// The call failed and the built-in default would be used.
    Failed(String),
}

fn task() -> Task {
    Task {
        id: 1,
        kind: TaskKind::Url,
        target: "https://www.example.com/index.html".into(),
        size_bytes: 120,
        tenant: "check".into(),
        host: "www.example.com".into(),
        ..Default::default()
    }
}

fn queues() -> Vec<QueueState> {
    (0..4)
        .map(|i| QueueState {
            index: i,
            healthy: i != 3,
            depth: u64::from(i) * 10,
            pending_bytes: u64::from(i) * 10_000,
            pacing_ms: 2,
            samples: vec![SpeedSample { bytes: 1_000_000, millis: 1000 }],
            peak_bytes_per_sec: 2_000_000,
            slot: 0,
        })
        .collect()
}

fn request() -> RequestMeta {
    RequestMeta {
        method: "GET".into(),
        url: "https://www.example.com/api/items?id=7&utm_source=x".into(),
        headers: vec![Header::new("accept", "application/json")],
    }
}

fn response() -> ResponseMeta {
    ResponseMeta {
        status: 200,
        headers: vec![
            Header::new("content-type", "application/json"),
            Header::new("cache-control", "public, max-age=60"),
        ],
    }
}

fn render<T: std::fmt::Debug>(outcome: Outcome<T>) -> HookCheckResult {
    match outcome.source {
        DecisionSource::Fallback { kind, detail } => HookCheckResult::Failed(format!("{kind}: {detail}")),
        _ => HookCheckResult::Answered(format!("{:?}", outcome.value)),
    }
}

impl Harness {
    /// Calls every hook the policy declares once on synthetic input.
    pub async fn check_hooks(&self) -> Vec<HookCheck> {
        let mut checks = Vec::new();
        for hook in self.policy().info().hooks.iter() {
            let started = Instant::now();
            let p = self.policy();
            let result = match hook {
                Hook::SelectQueue => render(p.select_queue(&[task(), task()], &queues(), 0).await),
                Hook::ScopePurge => render(p.scope_purge(&task()).await),
                Hook::CacheRules => render(p.cache_rules(&request(), &response()).await),
                Hook::CacheKey => render(p.cache_key(&request()).await),
            };
            checks.push(HookCheck { hook, elapsed: started.elapsed(), result });
        }
        checks
    }
}
