//! S2.3 purge flow control: a target purged again while its earlier task is still undelivered is
//! folded into that task instead of queued again.
//!
//! When data changes many times a second, queuing a purge per change would make the edges apply
//! the same purge over and over; the earlier task has not reached every edge yet, so it will
//! purge what the new request asks for anyway. The new request is still recorded (records list
//! it, pointing at the task that carries it), only not appended to a queue.

use edgepurge_control_store::{ControlStore, TaskRef};
use edgepurge_sdk::{Task, TaskKind};

use crate::Error;

/// When folding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldSettings {
    /// How far back an earlier task may have been accepted to carry a new request, in ms; 0 turns
    /// folding off.
    pub window_ms: u64,
    /// Batches with more tasks than this are not folded: folding is for small, frequent purges of
    /// the same resources, and a lookup per task would slow down a million-URL bulk batch.
    pub max_tasks: usize,
}

impl Default for FoldSettings {
    fn default() -> Self {
        FoldSettings { window_ms: 0, max_tasks: 10_000 }
    }
}

/// Per task, the earlier undelivered task that carries it, or `None` when it must be queued.
///
/// Warm tasks and `everything` are never folded: a warm must fetch after the purge it follows,
/// and `everything` is rare and absolute.
pub async fn fold_targets<S: ControlStore>(
    store: &S,
    settings: FoldSettings,
    tasks: &[Task],
    now_ms: u64,
) -> Result<Vec<Option<TaskRef>>, Error> {
    let mut out = vec![None; tasks.len()];
    if settings.window_ms == 0 || tasks.len() > settings.max_tasks {
        return Ok(out);
    }
    let since = now_ms.saturating_sub(settings.window_ms);
    for (slot, task) in out.iter_mut().zip(tasks) {
        if matches!(task.kind, TaskKind::Warm | TaskKind::Everything) {
            continue;
        }
        *slot = store.find_fold_target(task.kind, &task.target, task.soft, since).await?;
    }
    Ok(out)
}
