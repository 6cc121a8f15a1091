//! Queue choice: the policy's `select-queue` hook, called per chunk of tasks (DESIGN decision 4),
//! with queue states built from the store's figures.
//!
//! Each chunk sees the depth and pending bytes the earlier chunks of the same batch added, so a
//! large batch spreads over the queues by expected wait instead of landing on whichever queue
//! looked emptiest before it started. Speed samples, the cycle slot and health are not measured
//! yet: samples are empty, peak speed 0 (the default policy then uses its speed floor), every
//! queue healthy.

use std::collections::HashMap;

use edgepurge_control_store::{NewTask, Placement, QueueStats};
use edgepurge_policy_runtime::LoadedPolicy;
use edgepurge_sdk::{QueueState, Task, TaskKind};

/// Tasks per `select-queue` call: large enough that a million-URL batch is a thousand calls,
/// small enough that later chunks see the load earlier ones added.
pub const CHUNK: usize = 1000;

/// The `select-queue` inputs for the store's current figures.
pub fn queue_states(stats: &[QueueStats], pacing_ms: u32) -> Vec<QueueState> {
    stats
        .iter()
        .map(|s| QueueState {
            index: s.queue,
            healthy: true,
            depth: s.pending.tasks,
            pending_bytes: s.pending.bytes,
            pacing_ms,
            samples: Vec::new(),
            peak_bytes_per_sec: 0,
            slot: 0,
        })
        .collect()
}

/// Chooses a queue for every task and turns the tasks into store rows, in order. A warm task goes
/// to the queue of the URL purge with the same target, so an edge applies the purge first.
pub async fn place(policy: &LoadedPolicy, tasks: Vec<Task>, mut queues: Vec<QueueState>, now_ms: u64) -> Vec<NewTask> {
    let count = queues.len().max(1) as u32;
    let mut chosen = vec![0u32; tasks.len()];
    let purge_idx: Vec<usize> = (0..tasks.len()).filter(|&i| tasks[i].kind != TaskKind::Warm).collect();
    for chunk in purge_idx.chunks(CHUNK) {
        let batch: Vec<Task> = chunk.iter().map(|&i| tasks[i].clone()).collect();
        let outcome = policy.select_queue(&batch, &queues, now_ms).await;
        for (k, &i) in chunk.iter().enumerate() {
            // The runtime checks the policy's answer; the modulo only guards against a length or
            // range slip, so a task is never lost.
            let q = outcome.value.get(k).copied().unwrap_or(0) % count;
            chosen[i] = q;
            if let Some(state) = queues.get_mut(q as usize) {
                state.depth += 1;
                state.pending_bytes += tasks[i].size_bytes;
            }
        }
    }
    if tasks.iter().any(|t| t.kind == TaskKind::Warm) {
        let by_url: HashMap<&str, u32> = purge_idx
            .iter()
            .filter(|&&i| tasks[i].kind == TaskKind::Url)
            .map(|&i| (tasks[i].target.as_str(), chosen[i]))
            .collect();
        for (i, t) in tasks.iter().enumerate().filter(|(_, t)| t.kind == TaskKind::Warm) {
            chosen[i] = by_url.get(t.target.as_str()).copied().unwrap_or(0);
        }
    }
    tasks
        .into_iter()
        .zip(chosen)
        .map(|(t, q)| NewTask {
            placement: Placement::Queue(q),
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
    use edgepurge_control_store::{Pending, QueueInfo};

    fn stats(depths: &[u64]) -> Vec<QueueStats> {
        depths
            .iter()
            .enumerate()
            .map(|(q, &d)| QueueStats {
                queue: q as u32,
                delivered: 0,
                pending: Pending { tasks: d, bytes: d * 100 },
                info: QueueInfo { queue: q as u32, first: 1, next: d + 1 },
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

    #[tokio::test]
    async fn a_large_batch_spreads_and_avoids_the_loaded_queue() {
        let policy = LoadedPolicy::builtin(Default::default());
        let tasks: Vec<Task> = (0..5000).map(url).collect();
        let placed = place(&policy, tasks, queue_states(&stats(&[0, 0, 0, 100_000]), 0), 0).await;
        let mut per_queue = [0usize; 4];
        for t in &placed {
            let Placement::Queue(q) = t.placement else { panic!("no folding here") };
            per_queue[q as usize] += 1;
        }
        assert_eq!(per_queue[3], 0, "{per_queue:?}");
        assert!(per_queue[..3].iter().all(|&n| n > 0), "later chunks see earlier ones' load: {per_queue:?}");
    }

    #[tokio::test]
    async fn warm_follows_its_purge() {
        let policy = LoadedPolicy::builtin(Default::default());
        let mut tasks: Vec<Task> = (0..3).map(url).collect();
        tasks.push(Task { kind: TaskKind::Warm, ..url(2) });
        let placed = place(&policy, tasks, queue_states(&stats(&[5, 0, 9]), 0), 0).await;
        assert_eq!(placed[3].kind, TaskKind::Warm);
        assert_eq!(placed[3].placement, placed[2].placement);
    }
}
