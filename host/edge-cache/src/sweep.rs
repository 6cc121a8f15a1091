//! The sweeper: reclaims hard-purged entries and drops markers that no longer matter.
//!
//! A pass begins by sealing the current marker generation (a new, empty one takes purges from
//! then on) and noting the sequence `S0`; every sealed marker is `<= S0`. It then walks the URL
//! index shard by shard ([`CacheStore::sweep_step`] does a bounded slice of the walk), checks
//! each entry against the markers, removes hard-purged entries and turns "a soft marker applies"
//! into the entry's own soft flag. When the walk completes, every entry stored before `S0` has
//! been dealt with, and every entry stored since was checked against the sealed markers at insert
//! (see `store.rs`), so the sealed generation is dropped whole and `S0` becomes the floor below
//! which fill tokens are refused. Lookups give the same answers before and after.
//!
//! A pass only starts when the current generation holds a marker: with no scoped purges the
//! sweeper does nothing.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::markers::Verdict;
use crate::stats::bump;
use crate::CacheStore;

/// Entries checked per acquisition of the marker read lock.
const CHUNK: usize = 256;

/// The position of the running pass.
#[derive(Debug, Default)]
pub(crate) struct SweepState {
    pass: Option<Pass>,
}

#[derive(Debug)]
struct Pass {
    start_seq: u64,
    next_shard: usize,
}

/// What one [`CacheStore::sweep_step`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries checked.
    pub visited: usize,
    /// Hard-purged entries removed.
    pub removed: usize,
    /// Entries newly flagged soft-purged.
    pub soft_flagged: usize,
    /// This step started a pass.
    pub pass_started: bool,
    /// This step completed a pass (and dropped its markers).
    pub pass_completed: bool,
    /// Markers dropped when the pass completed.
    pub markers_dropped: usize,
    /// Another sweep step was running; this one did nothing.
    pub busy: bool,
}

impl<V: Send + Sync + 'static> CacheStore<V> {
    /// Does a slice of sweeping: checks whole index shards until at least `budget` entries were
    /// visited (at least one shard), starting a pass first if scoped purges are waiting, and
    /// completing it when the last shard is done. Run it periodically (see
    /// [`CacheStore::spawn_sweeper`]); it never changes what a lookup returns.
    pub fn sweep_step(&self, budget: usize) -> SweepReport {
        let mut report = SweepReport::default();
        let Some(mut state) = self.sweep.try_lock() else {
            report.busy = true;
            return report;
        };
        if state.pass.is_none() {
            let mut markers = self.markers.write();
            if markers.current.is_empty() {
                return report;
            }
            debug_assert!(markers.sealed.is_none());
            markers.sealed = Some(std::mem::take(&mut markers.current));
            state.pass = Some(Pass { start_seq: self.seq.load(SeqCst), next_shard: 0 });
            report.pass_started = true;
        }
        let pass = state.pass.as_mut().expect("a pass is running");
        let index = &self.shared.index;
        while pass.next_shard < index.shard_count() && (report.visited == 0 || report.visited < budget) {
            let entries = index.snapshot_shard(pass.next_shard);
            pass.next_shard += 1;
            report.visited += entries.len();
            for chunk in entries.chunks(CHUNK) {
                let verdicts: Vec<Verdict> = {
                    let markers = self.markers.read();
                    chunk
                        .iter()
                        .map(|e| match e.is_dead() {
                            true => Verdict::Hard,
                            false => markers.check(e.url(), e.host(), e.tags()).verdict(e.stored_at()),
                        })
                        .collect()
                };
                for (entry, verdict) in chunk.iter().zip(verdicts) {
                    match verdict {
                        Verdict::Hard => {
                            self.kill(entry);
                            report.removed += 1;
                        }
                        Verdict::Soft if !entry.is_soft_flagged() => {
                            entry.mark_soft();
                            report.soft_flagged += 1;
                        }
                        Verdict::Soft | Verdict::Fresh => {}
                    }
                }
            }
        }
        let counters = &self.shared.counters;
        counters.sweep_removed.fetch_add(report.removed as u64, SeqCst);
        if pass.next_shard == index.shard_count() {
            let start_seq = pass.start_seq;
            state.pass = None;
            let dropped = {
                let mut markers = self.markers.write();
                markers.floor = start_seq;
                markers.sealed.take()
            };
            // Freed outside the lock.
            report.markers_dropped = dropped.map_or(0, |m| m.len());
            report.pass_completed = true;
            bump(&counters.sweep_passes);
        }
        report
    }

    /// Finishes the running pass, or runs a whole new one if scoped purges are waiting.
    pub fn sweep_full(&self) -> SweepReport {
        self.sweep_step(usize::MAX)
    }

    /// Starts a thread calling [`CacheStore::sweep_step`]`(budget)` every `interval`. It stops
    /// when the returned [`Sweeper`] is dropped or the store is.
    pub fn spawn_sweeper(self: &Arc<Self>, interval: Duration, budget: usize) -> std::io::Result<Sweeper> {
        let store: Weak<Self> = Arc::downgrade(self);
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new().name("edge-cache-sweeper".into()).spawn(move || loop {
            match stopped.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some(store) = store.upgrade() else { return };
            let report = store.sweep_step(budget);
            if report.pass_completed {
                tracing::debug!(
                    removed = report.removed,
                    markers_dropped = report.markers_dropped,
                    "edge cache sweep pass completed"
                );
            }
        })?;
        Ok(Sweeper { stop: Some(stop), handle: Some(handle) })
    }
}

/// A running sweeper thread (see [`CacheStore::spawn_sweeper`]); dropping it stops the thread.
#[derive(Debug)]
pub struct Sweeper {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
