//! Queue choice: the policy's `select-queue` hook, called per chunk of tasks (DESIGN decision 4),
//! with queue states built from the store's figures.
//!
//! Each chunk sees the depth and pending bytes the earlier chunks of the same batch added, so a
//! large batch spreads over the queues by expected wait instead of landing on whichever queue
//! looked emptiest before it started. Health (S0.2) and the send history by cycle slot (S0.3)
//! come from [`crate::health::QueueMonitor`].

use std::collections::HashMap;

use edgepurge_control_store::{NewTask, Placement, TaskRef};

use crate::health::QueueView;
use edgepurge_policy_runtime::LoadedPolicy;
use edgepurge_sdk::defaults::queue_wait_ms;
use edgepurge_sdk::{QueueState, Task, TaskKind};

/// Tasks per `select-queue` call: large enough that a million-URL batch is a thousand calls,
/// small enough that later chunks see the load earlier ones added.
pub const CHUNK: usize = 1000;

/// The `select-queue` inputs for the observed queues (a queue whose figures could not be read
/// shows as empty and unhealthy).
pub fn queue_states(views: &[QueueView], pacing_ms: u32) -> Vec<QueueState> {
    views
        .iter()
        .map(|v| QueueState {
            index: v.queue,
            healthy: v.healthy,
            depth: v.stats.map_or(0, |s| s.pending.tasks),
            pending_bytes: v.stats.map_or(0, |s| s.pending.bytes),
            pacing_ms,
            samples: v.speed.samples.clone(),
            peak_bytes_per_sec: v.speed.peak_bytes_per_sec,
            slot: v.speed.slot,
        })
        .collect()
}

/// The expected wait of an observed queue in milliseconds, as the built-in `select-queue` weighs
/// it ([`edgepurge_sdk::defaults::queue_wait_ms`] at `floor`, the configured speed floor); `None`
/// when the queue's figures could not be read.
pub fn expected_wait_ms(view: &QueueView, pacing_ms: u32, floor: f64) -> Option<u64> {
    view.stats.map(|s| {
        let (samples, peak) = (&view.speed.samples, view.speed.peak_bytes_per_sec);
        queue_wait_ms(s.pending.bytes, s.pending.tasks, samples, peak, pacing_ms, floor) as u64
    })
}

/// Chooses a queue for every task and turns the tasks into store rows, in order.
///
/// `folds[i]` (from `fold::fold_targets`; empty means none) is the earlier task that carries task
/// `i` (S2.3): it gets no queue and is not shown to the policy. A warm task goes to the queue of
/// the URL purge with the same target (or of the task that purge was folded into), so an edge
/// applies the purge first.
pub async fn place(
    policy: &LoadedPolicy,
    tasks: Vec<Task>,
    folds: &[Option<TaskRef>],
    mut queues: Vec<QueueState>,
    now_ms: u64,
) -> Vec<NewTask> {
    let count = queues.len().max(1) as u32;
    let fold = |i: usize| folds.get(i).copied().flatten();
    let mut chosen: Vec<u32> = (0..tasks.len()).map(|i| fold(i).map_or(0, |r| r.queue)).collect();
    let purge_idx: Vec<usize> =
        (0..tasks.len()).filter(|&i| tasks[i].kind != TaskKind::Warm && fold(i).is_none()).collect();
    for chunk in purge_idx.chunks(CHUNK) {
        let batch: Vec<Task> = chunk.iter().map(|&i| tasks[i].clone()).collect();
        let outcome = policy.select_queue(&batch, &queues, now_ms).await;
        for (k, &i) in chunk.iter().enumerate() {
            // The runtime checks the policy's answer; the modulo only guards against a length or
            // range slip, so a task is never lost.
            let mut q = outcome.value.get(k).copied().unwrap_or(0) % count;
            // The runtime already refuses a policy's pick of an unhealthy queue; this keeps the
            // rule (S0.2) whatever answer comes back: the least loaded healthy queue instead.
            if !queues.get(q as usize).is_some_and(|s| s.healthy) {
                if let Some(h) = queues.iter().filter(|s| s.healthy).min_by_key(|s| (s.pending_bytes, s.depth)) {
                    q = h.index;
                }
            }
            chosen[i] = q;
            if let Some(state) = queues.get_mut(q as usize) {
                state.depth += 1;
                state.pending_bytes += tasks[i].size_bytes;
            }
        }
    }
    if tasks.iter().any(|t| t.kind == TaskKind::Warm) {
        let by_url: HashMap<&str, u32> = (0..tasks.len())
            .filter(|&i| tasks[i].kind == TaskKind::Url)
            .map(|i| (tasks[i].target.as_str(), chosen[i]))
            .collect();
        for (i, t) in tasks.iter().enumerate().filter(|(_, t)| t.kind == TaskKind::Warm) {
            chosen[i] = by_url.get(t.target.as_str()).copied().unwrap_or(0);
        }
    }
    tasks
        .into_iter()
        .zip(chosen)
        .enumerate()
        .map(|(i, (t, q))| NewTask {
            placement: fold(i).map_or(Placement::Queue(q), Placement::FoldInto),
            kind: t.kind,
            target: t.target,
            soft: t.soft,
            size_bytes: t.size_bytes,
            host: t.host,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_control_store::{Pending, QueueInfo, QueueStats};

    fn stats(depths: &[u64]) -> Vec<QueueView> {
        depths
            .iter()
            .enumerate()
            .map(|(q, &d)| QueueView {
                queue: q as u32,
                stats: Some(QueueStats {
                    queue: q as u32,
                    delivered: 0,
                    pending: Pending { tasks: d, bytes: d * 100 },
                    info: QueueInfo { queue: q as u32, first: 1, next: d + 1 },
                }),
                healthy: true,
                problem: None,
                speed: Default::default(),
            })
            .collect()
    }

    fn url(i: usize) -> Task {
        Task {
            id: i as u64,
            target: format!("http://a.com/{i}"),
            size_bytes: 30,
            host: "a.com".into(),
            ..Task::default()
        }
    }

    #[test]
    fn the_expected_wait_follows_the_configured_floor() {
        // No send history: the floor is the speed. 4 tasks of 100 B (400 B), 5 ms pacing each.
        let views = stats(&[4]);
        assert_eq!(expected_wait_ms(&views[0], 5, 100.0), Some(4000 + 20));
        assert_eq!(expected_wait_ms(&views[0], 5, 400_000.0), Some(1 + 20));
        let unread = QueueView { stats: None, ..views[0].clone() };
        assert_eq!(expected_wait_ms(&unread, 5, 100.0), None);
    }

    #[tokio::test]
    async fn a_large_batch_spreads_and_avoids_the_loaded_queue() {
        let policy = LoadedPolicy::builtin(Default::default());
        let tasks: Vec<Task> = (0..5000).map(url).collect();
        let placed = place(&policy, tasks, &[], queue_states(&stats(&[0, 0, 0, 100_000]), 0), 0).await;
        let mut per_queue = [0usize; 4];
        for t in &placed {
            let Placement::Queue(q) = t.placement else { panic!("no folding here") };
            per_queue[q as usize] += 1;
        }
        assert_eq!(per_queue[3], 0, "{per_queue:?}");
        assert!(per_queue[..3].iter().all(|&n| n > 0), "later chunks see earlier ones' load: {per_queue:?}");
    }

    #[tokio::test]
    async fn an_unhealthy_queue_gets_nothing_even_when_emptiest() {
        let policy = LoadedPolicy::builtin(Default::default());
        let mut views = stats(&[0, 50, 50]);
        views[0].healthy = false;
        let placed = place(&policy, (0..3000).map(url).collect(), &[], queue_states(&views, 0), 0).await;
        assert!(placed.iter().all(|t| t.placement != Placement::Queue(0)));
    }

    #[tokio::test]
    async fn warm_follows_its_purge() {
        let policy = LoadedPolicy::builtin(Default::default());
        let mut tasks: Vec<Task> = (0..3).map(url).collect();
        tasks.push(Task { kind: TaskKind::Warm, ..url(2) });
        let placed = place(&policy, tasks, &[], queue_states(&stats(&[5, 0, 9]), 0), 0).await;
        assert_eq!(placed[3].kind, TaskKind::Warm);
        assert_eq!(placed[3].placement, placed[2].placement);
    }

    #[tokio::test]
    async fn a_folded_task_gets_no_queue_and_its_warm_follows_the_carrier() {
        let policy = LoadedPolicy::builtin(Default::default());
        let mut tasks: Vec<Task> = (0..2).map(url).collect();
        tasks.push(Task { kind: TaskKind::Warm, ..url(1) });
        let carrier = TaskRef { queue: 2, offset: 7 };
        let placed = place(&policy, tasks, &[None, Some(carrier), None], queue_states(&stats(&[0, 0, 9]), 0), 0).await;
        assert_eq!(placed[1].placement, Placement::FoldInto(carrier));
        assert_eq!(placed[2].placement, Placement::Queue(2), "the warm goes after the carrying task");
        assert!(matches!(placed[0].placement, Placement::Queue(_)));
    }
}
