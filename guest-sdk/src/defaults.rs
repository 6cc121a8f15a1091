//! The built-in default decision of every hook — the one place this logic lives.
//!
//! The host calls these functions when a policy does not implement a hook or when a policy
//! call fails; the [`Policy`](crate::Policy) trait's default methods call them too, and the
//! shipped `default` policy is exactly these functions compiled to a component. So "what
//! happens without a policy", "what happens when a policy fails" and "what the default policy
//! does" can never drift apart.
//!
//! Configuration keys read here (strings, parsed):
//! - [`SPEED_FLOOR_KEY`] — the queue speed assumed with no history, bytes/s
//!   (default [`DEFAULT_SPEED_FLOOR`]).
//! - [`DEFAULT_TTL_KEY`] — the TTL in seconds for responses whose origin states no freshness
//!   (S3.4); unset means RFC 9111 heuristics apply.

use crate::cache_control::{has_explicit_freshness, CacheControl};
use crate::config::ConfigSource;
use crate::cycle::speed_estimate;
use crate::types::*;

/// Config key: queue speed floor in bytes per second.
pub const SPEED_FLOOR_KEY: &str = "speed-floor-bytes-per-sec";
/// The speed floor when [`SPEED_FLOOR_KEY`] is unset: 1 MiB/s.
pub const DEFAULT_SPEED_FLOOR: f64 = 1_048_576.0;
/// Config key: default TTL in seconds when the origin gives no freshness information.
pub const DEFAULT_TTL_KEY: &str = "default-ttl-secs";

/// The expected wait of S0.3 in milliseconds: `W = pending_bytes / v + depth · d`, with `v`
/// in bytes per second.
pub fn expected_wait_ms(pending_bytes: u64, depth: u64, pacing_ms: u32, speed_bytes_per_sec: f64) -> f64 {
    let speed = if speed_bytes_per_sec > 0.0 { speed_bytes_per_sec } else { f64::MIN_POSITIVE };
    pending_bytes as f64 * 1000.0 / speed + depth as f64 * f64::from(pacing_ms)
}

/// The speed floor `config` sets with [`SPEED_FLOOR_KEY`] (a positive number of bytes per
/// second), else [`DEFAULT_SPEED_FLOOR`]. A value that does not parse or is not positive is
/// ignored (and logged by [`ConfigSource::get_parsed`]).
pub fn speed_floor(config: &impl ConfigSource) -> f64 {
    config.get_parsed::<f64>(SPEED_FLOOR_KEY).filter(|f| *f > 0.0).unwrap_or(DEFAULT_SPEED_FLOOR)
}

/// The expected wait of one queue in milliseconds, as [`select_queue`] weighs it (S0.3):
/// `W = pending_bytes / v + pending_tasks · d`, where `v` is the [`speed_estimate`] from the
/// queue's same-slot `samples`, else its `peak_bytes_per_sec`, else `floor_bytes_per_sec`
/// (see [`speed_floor`]), and `d` is `pacing_ms`.
///
/// Hosts report this figure (e.g. control's `GET /v1/queues`), so what they show is what the
/// built-in selection compares.
///
/// ```
/// use edgepurge_sdk::defaults::queue_wait_ms;
/// // No history: 2 MB at a 1 MB/s floor is 2000 ms, plus 5 tasks × 10 ms.
/// assert_eq!(queue_wait_ms(2_000_000, 5, &[], 0, 10, 1_000_000.0), 2050.0);
/// ```
pub fn queue_wait_ms(
    pending_bytes: u64,
    pending_tasks: u64,
    samples: &[SpeedSample],
    peak_bytes_per_sec: u64,
    pacing_ms: u32,
    floor_bytes_per_sec: f64,
) -> f64 {
    let speed = speed_estimate(samples, peak_bytes_per_sec, floor_bytes_per_sec);
    expected_wait_ms(pending_bytes, pending_tasks, pacing_ms, speed)
}

/// Default `select-queue`: expected-wait queue selection (S0.3).
///
/// For each queue `k`: `v_k` is the mean of the fastest 30 % of its same-slot speed samples,
/// else its recent peak speed, else the configured floor ([`speed_floor`]); its expected wait is
/// `W_k = pending_bytes_k / v_k + depth_k · d_k` ([`queue_wait_ms`]). Each task goes to the healthy queue with the
/// least `W_k` (ties: smaller depth, then smaller index), and the task's size and one message
/// are added to that queue before the next task of the chunk is placed, so a chunk spreads
/// over the queues instead of piling onto one. Unhealthy queues are never chosen — unless none
/// is healthy, when all are considered (queueing late beats dropping).
///
/// Worked example (`d` = 2 ms everywhere):
///
/// | queue | pending | depth | samples (MB/s) | peak | `v` | `W` |
/// |---|---|---|---|---|---|---|
/// | 0 | 10 MB | 100 | 5, 4, 2, 1 | — | top 2 of 4 → 4.5 MB/s | 2222.2 + 200 = 2422.2 ms |
/// | 1 | 4 MB | 1000 | none | 2 MB/s | 2 MB/s | 2000 + 2000 = 4000 ms |
/// | 2 | 0 | 0 | — | — | unhealthy | never |
///
/// A 1 MB task goes to queue 0 (`W` becomes 2644.4 + 202 ms), so does a second, ... until
/// queue 0's wait passes 4000 ms.
///
/// ```
/// use edgepurge_sdk::{defaults, QueueState, SpeedSample, Task};
/// use std::collections::BTreeMap;
/// let mb = 1_000_000;
/// let sample = |m: u64| SpeedSample { bytes: m * mb, millis: 1000 };
/// let queues = vec![
///     QueueState { index: 0, healthy: true, depth: 100, pending_bytes: 10 * mb, pacing_ms: 2,
///                  samples: vec![sample(5), sample(4), sample(2), sample(1)], ..Default::default() },
///     QueueState { index: 1, healthy: true, depth: 1000, pending_bytes: 4 * mb, pacing_ms: 2,
///                  peak_bytes_per_sec: 2 * mb, ..Default::default() },
///     QueueState { index: 2, healthy: false, ..Default::default() },
/// ];
/// let task = Task { size_bytes: mb, ..Default::default() };
/// let chosen = defaults::select_queue(&[task], &queues, 0, &BTreeMap::new());
/// assert_eq!(chosen, vec![0]);
/// ```
pub fn select_queue(tasks: &[Task], queues: &[QueueState], _now_ms: u64, config: &impl ConfigSource) -> Vec<u32> {
    if queues.is_empty() {
        return Vec::new();
    }
    let floor = speed_floor(config);
    let any_healthy = queues.iter().any(|q| q.healthy);
    // `queue_wait_ms` in two steps: a queue's speed does not change while a chunk is placed, so
    // it is estimated once per queue, not once per task and comparison.
    let speeds: Vec<f64> = queues.iter().map(|q| speed_estimate(&q.samples, q.peak_bytes_per_sec, floor)).collect();
    let mut pending: Vec<u64> = queues.iter().map(|q| q.pending_bytes).collect();
    let mut depth: Vec<u64> = queues.iter().map(|q| q.depth).collect();

    tasks
        .iter()
        .map(|task| {
            let best = (0..queues.len())
                .filter(|&k| queues[k].healthy || !any_healthy)
                .min_by(|&a, &b| {
                    let wait = |k: usize| expected_wait_ms(pending[k], depth[k], queues[k].pacing_ms, speeds[k]);
                    wait(a)
                        .total_cmp(&wait(b))
                        .then(depth[a].cmp(&depth[b]))
                        .then(queues[a].index.cmp(&queues[b].index))
                })
                .expect("at least one queue is a candidate");
            pending[best] = pending[best].saturating_add(task.size_bytes);
            depth[best] = depth[best].saturating_add(1);
            queues[best].index
        })
        .collect()
}

/// Default `scope-purge`: a URL purge covers the URL and all its stored variants, a directory
/// purge is a prefix purge, tag, host and everything pass through, and a warm task purges
/// nothing (the edge fetches it instead). Soft tasks give soft actions.
pub fn scope_purge(task: &Task) -> PurgePlan {
    let scope = match task.kind {
        TaskKind::Url => Scope::Url(task.target.clone()),
        TaskKind::Prefix => Scope::Prefix(task.target.clone()),
        TaskKind::Tag => Scope::Tag(task.target.clone()),
        TaskKind::Host => Scope::Host(task.target.clone()),
        TaskKind::Everything => Scope::Everything,
        TaskKind::Warm => return PurgePlan::default(),
    };
    PurgePlan { actions: vec![PurgeAction { scope, mode: PurgeMode::from_soft(task.soft) }] }
}

/// Default `cache-rules`: no override (RFC 9111 decides), except that a response whose origin
/// states no freshness (`s-maxage`, `max-age`, `Expires`) and does not forbid shared reuse
/// gets the configured [`DEFAULT_TTL_KEY`] as its TTL (S3.4), when one is configured.
pub fn cache_rules(_request: &RequestMeta, response: &ResponseMeta, config: &impl ConfigSource) -> CacheDecision {
    let Some(ttl) = config.get_parsed::<u32>(DEFAULT_TTL_KEY) else {
        return CacheDecision::default();
    };
    let cc = CacheControl::from_headers(&response.headers);
    if has_explicit_freshness(&response.headers) || cc.forbids_shared_reuse() {
        return CacheDecision::default();
    }
    CacheDecision { ttl_secs: Some(ttl), ..CacheDecision::default() }
}

/// Default `cache-key`: `None`, the host's own key (the normalised URL plus `Vary`).
pub fn cache_key(_request: &RequestMeta) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn q(index: u32, pending: u64, depth: u64, peak: u64) -> QueueState {
        QueueState {
            index,
            healthy: true,
            depth,
            pending_bytes: pending,
            pacing_ms: 10,
            peak_bytes_per_sec: peak,
            ..Default::default()
        }
    }

    fn tasks(n: usize, size: u64) -> Vec<Task> {
        (0..n).map(|i| Task { id: i as u64, size_bytes: size, ..Default::default() }).collect()
    }

    #[test]
    fn expected_wait_matches_the_formula() {
        // 2 MB at 1 MB/s = 2000 ms, plus 5 messages × 10 ms.
        assert_eq!(expected_wait_ms(2_000_000, 5, 10, 1_000_000.0), 2050.0);
    }

    #[test]
    fn a_chunk_spreads_over_equal_queues() {
        let queues = vec![q(0, 0, 0, 1000), q(1, 0, 0, 1000)];
        assert_eq!(select_queue(&tasks(4, 100), &queues, 0, &BTreeMap::new()), vec![0, 1, 0, 1]);
    }

    #[test]
    fn ties_break_by_depth_then_index() {
        // Equal waits: 1000 B at 1000 B/s + 0 = 1000 ms vs 0 B + 100 × 10 ms = 1000 ms.
        let queues = vec![q(0, 1000, 0, 1000), q(1, 0, 100, 1000)];
        assert_eq!(select_queue(&tasks(1, 0), &queues, 0, &BTreeMap::new()), vec![0]);
        let queues = vec![q(3, 0, 0, 1000), q(2, 0, 0, 1000)];
        assert_eq!(select_queue(&tasks(1, 0), &queues, 0, &BTreeMap::new()), vec![2]);
    }

    #[test]
    fn unhealthy_queues_are_never_chosen_while_one_is_healthy() {
        let mut queues = vec![q(0, 0, 0, 1000), q(1, 1 << 40, 1 << 20, 1)];
        queues[0].healthy = false;
        assert_eq!(select_queue(&tasks(3, 10), &queues, 0, &BTreeMap::new()), vec![1, 1, 1]);
        queues[1].healthy = false;
        assert_eq!(select_queue(&tasks(1, 10), &queues, 0, &BTreeMap::new()), vec![0]);
    }

    #[test]
    fn the_floor_is_configurable() {
        // No history: queue 0 (1 MB pending) vs queue 1 (20 messages × 10 ms = 200 ms).
        // At the 1 MiB/s default floor queue 0 waits ~954 ms; at 100 MB/s, 10 ms.
        let queues = vec![q(0, 1_000_000, 0, 0), q(1, 0, 20, 0)];
        assert_eq!(select_queue(&tasks(1, 0), &queues, 0, &BTreeMap::new()), vec![1]);
        let fast: BTreeMap<String, String> = [(SPEED_FLOOR_KEY.to_owned(), "100000000".to_owned())].into();
        assert_eq!(select_queue(&tasks(1, 0), &queues, 0, &fast), vec![0]);
    }

    #[test]
    fn a_single_task_goes_to_the_queue_with_the_least_queue_wait() {
        // Samples, peak and floor each decide one queue's speed; the floor is the configured one.
        let sample = |bytes| SpeedSample { bytes, millis: 1000 };
        let mut queues = vec![q(0, 3_000_000, 40, 0), q(1, 5_000_000, 10, 4_000_000), q(2, 800_000, 90, 0)];
        queues[0].samples = vec![sample(6_000_000), sample(2_000_000)];
        let config: BTreeMap<String, String> = [(SPEED_FLOOR_KEY.to_owned(), "2000000".to_owned())].into();
        let floor = speed_floor(&config);
        assert_eq!(floor, 2_000_000.0);
        let waits: Vec<f64> = queues
            .iter()
            .map(|q| queue_wait_ms(q.pending_bytes, q.depth, &q.samples, q.peak_bytes_per_sec, q.pacing_ms, floor))
            .collect();
        // 3 MB at 6 MB/s + 400 ms, 5 MB at 4 MB/s + 100 ms, 0.8 MB at the 2 MB/s floor + 900 ms.
        assert_eq!(waits, vec![900.0, 1350.0, 1300.0]);
        assert_eq!(select_queue(&tasks(1, 0), &queues, 0, &config), vec![0]);
        // At the default floor queue 2's wait grows past queue 1's; the choice follows the figures.
        queues[0].healthy = false;
        assert_eq!(select_queue(&tasks(1, 0), &queues, 0, &config), vec![2]);
        let default_wait = queue_wait_ms(800_000, 90, &[], 0, 10, speed_floor(&BTreeMap::new()));
        assert!(default_wait > waits[1], "{default_wait}");
        assert_eq!(select_queue(&tasks(1, 0), &queues, 0, &BTreeMap::new()), vec![1]);
    }

    #[test]
    fn a_bad_floor_falls_back_to_the_default() {
        for raw in ["fast", "0", "-5"] {
            let config: BTreeMap<String, String> = [(SPEED_FLOOR_KEY.to_owned(), raw.to_owned())].into();
            assert_eq!(speed_floor(&config), DEFAULT_SPEED_FLOOR, "{raw}");
        }
    }

    #[test]
    fn scopes_follow_the_task() {
        let t = |kind, target: &str, soft| Task { kind, target: target.into(), soft, ..Default::default() };
        let plan = scope_purge(&t(TaskKind::Prefix, "https://a.com/img/", true));
        assert_eq!(
            plan.actions,
            vec![PurgeAction { scope: Scope::Prefix("https://a.com/img/".into()), mode: PurgeMode::Soft }]
        );
        assert_eq!(scope_purge(&t(TaskKind::Everything, "", false)).actions[0].scope, Scope::Everything);
        assert!(scope_purge(&t(TaskKind::Warm, "https://a.com/", false)).actions.is_empty());
    }

    #[test]
    fn default_ttl_only_without_origin_freshness() {
        let cfg: BTreeMap<String, String> = [(DEFAULT_TTL_KEY.to_owned(), "172800".to_owned())].into();
        let resp = |cc: &str| ResponseMeta { status: 200, headers: vec![Header::new("cache-control", cc)] };
        let req = RequestMeta::default();
        assert_eq!(cache_rules(&req, &resp("public"), &cfg).ttl_secs, Some(172800));
        assert!(cache_rules(&req, &resp("max-age=60"), &cfg).is_no_override());
        assert!(cache_rules(&req, &resp("no-store"), &cfg).is_no_override());
        assert!(cache_rules(&req, &resp("public"), &BTreeMap::new()).is_no_override());
    }
}
