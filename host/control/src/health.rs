//! Queue health (S0.2): a queue whose storage fails, or that stalls while others progress, is
//! unhealthy and gets no new tasks until it recovers; its existing tasks are still delivered.
//!
//! Health is judged from observations of the store's figures (at every submission and every
//! `GET /v1/queues`), with an injected clock so tests decide the time:
//!
//! - **storage failure**: reading the queue's pending work failed at the last observation;
//! - **stall**: the queue has had work pending, with no advance of its lowest edge watermark, for
//!   `stall-after-ms`, while another queue's watermark advanced within that time. When every
//!   queue is stuck (all edges away) none is singled out: there is nowhere better to send tasks.
//!
//! A stalled queue recovers at the first observation that sees its watermark advance; a failed
//! one at the first observation whose read succeeds.

use std::sync::{Arc, Mutex};

use edgepurge_control_store::{ControlStore, Millis, QueueStats};

use crate::history::{CycleSettings, SendHistory, SpeedInputs};
use crate::Error;

/// The time source: milliseconds since the Unix epoch. Tests pass a settable one.
pub type Clock = Arc<dyn Fn() -> Millis + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(crate::now_ms)
}

/// What makes a queue unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// A queue with pending work and no edge progress for this long, while another queue
    /// progressed within it, is stalled; 0 turns stall detection off.
    pub stall_after_ms: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings { stall_after_ms: 60_000 }
    }
}

/// One queue as the API and the queue selection see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    /// Queue index.
    pub queue: u32,
    /// The store's figures; `None` when reading them failed (then `healthy` is false).
    pub stats: Option<QueueStats>,
    /// Whether new tasks may go here.
    pub healthy: bool,
    /// Why not, when unhealthy.
    pub problem: Option<String>,
    /// Its send history for `select-queue` (S0.3).
    pub speed: SpeedInputs,
}

/// What the monitor remembers of one queue between observations.
#[derive(Debug, Clone, Default)]
struct Track {
    /// The lowest watermark last seen.
    delivered: u64,
    /// Whether any observation has been made.
    seen: bool,
    /// When the watermark was last seen to advance.
    last_advance: Option<Millis>,
    /// Since when the queue has had pending work without an advance.
    waiting_since: Option<Millis>,
    /// When it was last observed, and whether it had work pending then (so it was sending since).
    seen_at: Millis,
    had_pending: bool,
}

/// What the monitor keeps between observations.
struct Inner {
    tracks: Vec<Track>,
    history: SendHistory,
}

/// Bytes an observation saw delivered on one queue: the tasks above `from` (the previously seen
/// watermark) up to the new watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The watermark the bytes were counted from.
    pub from: u64,
    /// The bytes of the tasks between the two watermarks.
    pub bytes: u64,
}

/// Tracks every queue's health across observations.
pub struct QueueMonitor {
    settings: HealthSettings,
    clock: Clock,
    inner: Mutex<Inner>,
}

impl Default for QueueMonitor {
    fn default() -> Self {
        QueueMonitor::new(HealthSettings::default(), CycleSettings::default(), system_clock())
    }
}

impl QueueMonitor {
    /// A monitor with these settings, reading time from `clock`.
    pub fn new(settings: HealthSettings, cycle: CycleSettings, clock: Clock) -> Self {
        QueueMonitor {
            settings,
            clock,
            inner: Mutex::new(Inner { tracks: Vec::new(), history: SendHistory::new(cycle) }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Now, by the monitor's clock (the API stamps batches with it too).
    pub fn now(&self) -> Millis {
        (self.clock)()
    }

    /// Reads every queue's figures from `store` and judges their health now. Fails only when the
    /// store cannot say which queues exist or where the edges are; a failure reading one queue
    /// makes that queue unhealthy.
    pub async fn observe<S: ControlStore>(&self, store: &S) -> Result<Vec<QueueView>, Error> {
        let lowest = store.lowest_watermarks().await?;
        let previous: Vec<Option<u64>> = self.lock().tracks.iter().map(|t| t.seen.then_some(t.delivered)).collect();
        let mut observed = Vec::new();
        let mut sent = Vec::new();
        for info in store.queue_info().await? {
            let delivered = lowest.as_ref().and_then(|l| l.get(info.queue as usize).copied()).unwrap_or(0);
            // The same figures as `ControlStore::queue_stats`, read queue by queue so one queue's
            // failure does not hide the others.
            let after = delivered.max(info.first.saturating_sub(1));
            let pending = match store.pending(info.queue, after).await {
                Ok(pending) => pending,
                Err(e) => {
                    observed.push(Err((info.queue, e.to_string())));
                    sent.push(None);
                    continue;
                }
            };
            let mut bytes = None;
            if let Some(from) = previous.get(info.queue as usize).copied().flatten().filter(|&p| p < delivered) {
                // The bytes the watermark moved over: what was pending above the old watermark
                // minus what is above the new one. Counted only when no append slipped in between
                // the two reads (the task counts must differ by exactly the advance) and nothing
                // in between was trimmed.
                if let Ok(before) = store.pending(info.queue, from).await {
                    if before.tasks.checked_sub(pending.tasks) == Some(delivered - from) {
                        bytes = Some(Sent { from, bytes: before.bytes.saturating_sub(pending.bytes) });
                    }
                }
            }
            observed.push(Ok(QueueStats { queue: info.queue, delivered, pending, info }));
            sent.push(bytes);
        }
        Ok(self.update(self.now(), observed, &sent))
    }

    /// Judges health from one observation made at `now` and records what was sent since the last
    /// one (`sent[i]` for queue `i`; missing means unknown).
    pub fn update(
        &self,
        now: Millis,
        observed: Vec<Result<QueueStats, (u32, String)>>,
        sent: &[Option<Sent>],
    ) -> Vec<QueueView> {
        let mut inner = self.lock();
        let Inner { tracks, history } = &mut *inner;
        if tracks.len() < observed.len() {
            tracks.resize(observed.len(), Track::default());
        }
        for (i, (track, obs)) in tracks.iter_mut().zip(&observed).enumerate() {
            let Ok(stats) = obs else { continue };
            let advanced = track.seen && stats.delivered > track.delivered;
            if advanced {
                track.last_advance = Some(now);
            }
            // S0.3's window: the queue was sending for the whole interval when it had work at its
            // start; the bytes count only when measured from the watermark this track holds (a
            // concurrent observation may have counted them already).
            let busy = if track.seen && track.had_pending { now.saturating_sub(track.seen_at) } else { 0 };
            let bytes = match sent.get(i).copied().flatten() {
                Some(s) if s.from == track.delivered && advanced => s.bytes,
                _ => 0,
            };
            if busy > 0 || bytes > 0 {
                history.record(stats.queue, now, bytes, busy);
            }
            track.seen_at = now;
            track.had_pending = stats.pending.tasks > 0;
            track.waiting_since = match (stats.pending.tasks > 0, track.waiting_since) {
                (false, _) => None,
                // Work arrived (or the queue moved on): the no-progress interval starts now.
                (true, None) => Some(now),
                (true, Some(_)) if advanced => Some(now),
                (true, since) => since,
            };
            track.delivered = stats.delivered;
            track.seen = true;
        }
        let stall = self.settings.stall_after_ms;
        let recent = |t: &Track| t.last_advance.is_some_and(|a| now.saturating_sub(a) < stall);
        observed
            .into_iter()
            .enumerate()
            .map(|(i, obs)| match obs {
                Err((queue, e)) => {
                    let problem = Some(format!("storage failed: {e}"));
                    QueueView { queue, stats: None, healthy: false, problem, speed: history.inputs(queue, now) }
                }
                Ok(stats) => {
                    let track = &tracks[i];
                    let waited = track.waiting_since.map_or(0, |w| now.saturating_sub(w));
                    let others_progress = tracks.iter().enumerate().any(|(j, t)| j != i && recent(t));
                    let stalled = stall > 0 && waited >= stall && others_progress;
                    QueueView {
                        queue: stats.queue,
                        stats: Some(stats),
                        healthy: !stalled,
                        problem: stalled.then(|| {
                            format!(
                                "stalled: no edge progress for {waited} ms with {} tasks pending",
                                stats.pending.tasks
                            )
                        }),
                        speed: history.inputs(stats.queue, now),
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_control_store::{Pending, QueueInfo};

    /// Queue figures: `(delivered, pending tasks)` per queue.
    fn obs(queues: &[(u64, u64)]) -> Vec<Result<QueueStats, (u32, String)>> {
        queues
            .iter()
            .enumerate()
            .map(|(q, &(delivered, tasks))| {
                Ok(QueueStats {
                    queue: q as u32,
                    delivered,
                    pending: Pending { tasks, bytes: tasks * 50 },
                    info: QueueInfo { queue: q as u32, first: 1, next: delivered + tasks + 1 },
                })
            })
            .collect()
    }

    fn healthy(views: &[QueueView]) -> Vec<bool> {
        views.iter().map(|v| v.healthy).collect()
    }

    fn monitor() -> QueueMonitor {
        QueueMonitor::new(HealthSettings { stall_after_ms: 1000 }, CycleSettings::default(), Arc::new(|| 0))
    }

    impl QueueMonitor {
        fn update_(&self, now: Millis, observed: Vec<Result<QueueStats, (u32, String)>>) -> Vec<QueueView> {
            self.update(now, observed, &[])
        }
    }

    #[test]
    fn a_queue_stuck_while_another_progresses_is_stalled_until_it_moves() {
        let m = monitor();
        assert_eq!(healthy(&m.update_(0, obs(&[(0, 5), (0, 5)]))), [true, true]);
        assert_eq!(healthy(&m.update_(500, obs(&[(3, 2), (0, 5)]))), [true, true], "not stuck for long enough yet");
        let views = m.update_(1000, obs(&[(5, 0), (0, 5)]));
        assert_eq!(healthy(&views), [true, false]);
        assert!(views[1].problem.as_deref().unwrap().contains("stalled"), "{views:?}");
        assert_eq!(healthy(&m.update_(1500, obs(&[(5, 0), (0, 5)]))), [true, false], "still stuck");
        assert_eq!(healthy(&m.update_(1600, obs(&[(5, 0), (1, 4)]))), [true, true], "recovers on progress");
    }

    #[test]
    fn no_queue_is_singled_out_when_all_are_stuck_or_idle() {
        let m = monitor();
        m.update_(0, obs(&[(0, 5), (0, 5)]));
        assert_eq!(healthy(&m.update_(10_000, obs(&[(0, 5), (0, 5)]))), [true, true], "every edge is away");
        // An idle queue (nothing pending) is never stalled, however long nothing moves on it.
        let m = monitor();
        m.update_(0, obs(&[(0, 5), (0, 0)]));
        assert_eq!(healthy(&m.update_(5000, obs(&[(5, 0), (0, 0)]))), [true, true]);
        // Work that arrived late on a long-quiet queue gets the full stall time from its arrival.
        m.update_(5500, obs(&[(5, 3), (0, 2)]));
        m.update_(6000, obs(&[(8, 0), (0, 2)]));
        assert_eq!(healthy(&m.update_(6400, obs(&[(8, 1), (0, 2)]))), [true, true]);
        assert_eq!(healthy(&m.update_(6500, obs(&[(9, 0), (0, 2)]))), [true, false]);
    }

    #[test]
    fn a_storage_failure_is_unhealthy_until_a_read_succeeds() {
        let m = monitor();
        let mut o = obs(&[(0, 1), (0, 1)]);
        o[1] = Err((1, "disk I/O error".into()));
        let views = m.update_(0, o);
        assert_eq!(healthy(&views), [true, false]);
        assert!(views[1].problem.as_deref().unwrap().contains("disk I/O error"));
        assert_eq!(healthy(&m.update_(10, obs(&[(0, 1), (0, 1)]))), [true, true]);
    }

    #[test]
    fn stall_detection_can_be_off() {
        let m = QueueMonitor::new(HealthSettings { stall_after_ms: 0 }, CycleSettings::default(), Arc::new(|| 0));
        m.update_(0, obs(&[(0, 5), (0, 5)]));
        assert_eq!(healthy(&m.update_(100_000, obs(&[(5, 0), (0, 5)]))), [true, true]);
    }
}
