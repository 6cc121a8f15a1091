//! Writing an edge's acks to the store without holding up its stream.
//!
//! Edges ack every durable receipt and every advance of their applied offsets, so acks come
//! faster than fsynced transactions. The session merges them here (the highest applied offset per
//! queue, every failure) and one writer task per stream writes whatever accumulated in one
//! `record_report` transaction, then looks again: under load many acks share one write, when idle
//! each is written at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use edgepurge_control_store::{ControlStore, EdgeReport, TaskRef};
use edgepurge_wire::{Offset, QueueId, TaskFailure};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::now_ms;
use crate::state::QueueState;

#[derive(Default)]
struct Pending {
    applied: BTreeMap<QueueId, Offset>,
    failures: Vec<(TaskRef, String)>,
    closed: bool,
}

/// The per-stream ack writer.
pub struct ReportWriter {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl ReportWriter {
    /// Starts the writer of `edge`'s reports.
    pub fn spawn<S: ControlStore + 'static>(state: Arc<QueueState<S>>, edge: String) -> Self {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(write_loop(state, edge, pending.clone(), wake.clone()));
        ReportWriter { pending, wake, task }
    }

    /// Adds one ack's applied offsets and failures.
    pub fn add(&self, applied: &[(QueueId, Offset)], failures: Vec<TaskFailure>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        merge_applied(&mut pending.applied, applied);
        pending.failures.extend(failures.into_iter().map(|f| (TaskRef { queue: f.queue, offset: f.offset }, f.reason)));
        drop(pending);
        self.wake.notify_one();
    }

    /// Writes what is left and stops.
    pub async fn finish(self) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.wake.notify_one();
        let _ = self.task.await;
    }
}

/// Keeps the highest applied offset per queue.
fn merge_applied(into: &mut BTreeMap<QueueId, Offset>, applied: &[(QueueId, Offset)]) {
    for &(queue, offset) in applied {
        let mark = into.entry(queue).or_insert(0);
        *mark = (*mark).max(offset);
    }
}

/// What to write now: the applied offsets above what was written, and the failures.
fn take(pending: &mut Pending, written: &mut BTreeMap<QueueId, Offset>) -> EdgeReport {
    let applied: Vec<_> = std::mem::take(&mut pending.applied)
        .into_iter()
        .filter(|&(queue, offset)| written.get(&queue).is_none_or(|&w| offset > w))
        .collect();
    merge_applied(written, &applied);
    EdgeReport { applied, failures: std::mem::take(&mut pending.failures) }
}

async fn write_loop<S: ControlStore>(
    state: Arc<QueueState<S>>,
    edge: String,
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
) {
    let mut written = BTreeMap::new();
    loop {
        wake.notified().await;
        let (report, closed) = {
            let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
            (take(&mut p, &mut written), p.closed)
        };
        if !report.applied.is_empty() || !report.failures.is_empty() {
            match state.store.record_report(&edge, report, now_ms()).await {
                Ok(0) => state.queue.notify_progressed(),
                Ok(skipped) => {
                    state.queue.notify_progressed();
                    tracing::debug!(%edge, skipped, "failure reports for tasks no longer in the log");
                }
                // The edge will ack higher offsets again; a later write carries the watermarks.
                Err(e) => {
                    tracing::warn!(%edge, error = %e, "cannot record the edge's progress");
                    written.clear();
                }
            }
        }
        if closed {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_reports_carry_only_what_moved() {
        let mut pending = Pending::default();
        let mut written = BTreeMap::new();
        merge_applied(&mut pending.applied, &[(0, 5), (1, 2)]);
        merge_applied(&mut pending.applied, &[(0, 3), (1, 4)]);
        let report = take(&mut pending, &mut written);
        assert_eq!(report.applied, vec![(0, 5), (1, 4)]);
        merge_applied(&mut pending.applied, &[(0, 5), (1, 6)]);
        pending.failures.push((TaskRef { queue: 1, offset: 6 }, "x".into()));
        let report = take(&mut pending, &mut written);
        assert_eq!(report.applied, vec![(1, 6)], "queue 0 did not move");
        assert_eq!(report.failures.len(), 1);
        assert_eq!(take(&mut pending, &mut written), EdgeReport::default());
    }
}
