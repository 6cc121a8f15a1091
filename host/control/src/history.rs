//! Per-queue send history by cycle slot (S0.3's `v_k`): bytes the edges applied and how long the
//! queue was busy sending them, per slot window, kept per slot across cycles.
//!
//! [`crate::health::QueueMonitor`] feeds it from watermark advances: between two observations a
//! queue that had work pending was sending for that time, and the bytes of the tasks its lowest
//! watermark moved over were sent. A window is one slot of one cycle; when the slot changes the
//! window closes and becomes a sample of its slot. `select-queue` then gets the samples of the
//! current slot from earlier cycles and, for when there are none, the highest recent speed.
//!
//! The history lives in memory: after a restart selection starts from the policy's floor and
//! the peak of the first windows, which S0.3 allows ("with no such history, use the highest
//! recent speed").

use std::collections::{HashMap, VecDeque};

use edgepurge_control_store::Millis;
use edgepurge_sdk::cycle::slot_of;
use edgepurge_sdk::SpeedSample;

/// Samples kept per slot: a month of daily cycles.
pub const SAMPLES_PER_SLOT: usize = 30;
/// Closed windows (of any slot) the peak speed is taken over, besides the open one.
pub const PEAK_WINDOWS: usize = 4;

/// The cycle: slots of `slot_ms` in a cycle of `cycle_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleSettings {
    /// Slot length in ms (`slot-secs`).
    pub slot_ms: u64,
    /// Cycle length in ms (`cycle-secs`).
    pub cycle_ms: u64,
}

impl Default for CycleSettings {
    fn default() -> Self {
        CycleSettings { slot_ms: 900_000, cycle_ms: 86_400_000 }
    }
}

/// The open window of one queue.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    /// Which cycle (`now / cycle_ms`) and slot it belongs to.
    cycle: u64,
    slot: u32,
    sample: SpeedSample,
}

/// One queue's history.
#[derive(Debug, Clone, Default)]
struct QueueHistory {
    open: Option<Window>,
    by_slot: HashMap<u32, VecDeque<SpeedSample>>,
    recent: VecDeque<SpeedSample>,
}

/// What `select-queue` gets for one queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpeedInputs {
    /// Closed windows of the current slot, from earlier cycles, oldest first.
    pub samples: Vec<SpeedSample>,
    /// The highest speed of the open window and the last closed ones, bytes per second.
    pub peak_bytes_per_sec: u64,
    /// The current slot.
    pub slot: u32,
}

/// Every queue's send history.
#[derive(Debug, Clone, Default)]
pub struct SendHistory {
    settings: CycleSettings,
    queues: Vec<QueueHistory>,
}

impl SendHistory {
    /// An empty history for this cycle.
    pub fn new(settings: CycleSettings) -> Self {
        SendHistory { settings, queues: Vec::new() }
    }

    fn position(&self, now: Millis) -> (u64, u32) {
        let s = self.settings;
        (now.checked_div(s.cycle_ms).unwrap_or(0), slot_of(now, s.slot_ms, s.cycle_ms))
    }

    /// Records that `queue` sent `bytes` while busy for `busy_ms`, in the interval ending at `now`
    /// (the whole interval is credited to `now`'s window).
    pub fn record(&mut self, queue: u32, now: Millis, bytes: u64, busy_ms: u64) {
        let (cycle, slot) = self.position(now);
        let i = queue as usize;
        if self.queues.len() <= i {
            self.queues.resize(i + 1, QueueHistory::default());
        }
        let h = &mut self.queues[i];
        if h.open.is_some_and(|w| (w.cycle, w.slot) != (cycle, slot)) {
            Self::close(h);
        }
        let w = h.open.get_or_insert(Window { cycle, slot, sample: SpeedSample::default() });
        w.sample.bytes += bytes;
        w.sample.millis += busy_ms;
    }

    /// Moves a queue's open window into its slot's samples and the recent windows.
    fn close(h: &mut QueueHistory) {
        let Some(w) = h.open.take() else { return };
        if w.sample.millis == 0 {
            return;
        }
        let samples = h.by_slot.entry(w.slot).or_default();
        samples.push_back(w.sample);
        if samples.len() > SAMPLES_PER_SLOT {
            samples.pop_front();
        }
        h.recent.push_back(w.sample);
        if h.recent.len() > PEAK_WINDOWS {
            h.recent.pop_front();
        }
    }

    /// The speed inputs of `queue` at `now`.
    pub fn inputs(&mut self, queue: u32, now: Millis) -> SpeedInputs {
        let (cycle, slot) = self.position(now);
        let Some(h) = self.queues.get_mut(queue as usize) else { return SpeedInputs { slot, ..Default::default() } };
        // A window whose slot has passed is closed even when nothing was recorded since.
        if h.open.is_some_and(|w| (w.cycle, w.slot) != (cycle, slot)) {
            Self::close(h);
        }
        let samples = h.by_slot.get(&slot).map(|s| s.iter().copied().collect()).unwrap_or_default();
        let peak = h
            .recent
            .iter()
            .chain(h.open.as_ref().map(|w| &w.sample))
            .filter_map(SpeedSample::bytes_per_sec)
            .fold(0.0f64, f64::max);
        SpeedInputs { samples, peak_bytes_per_sec: peak as u64, slot }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: u64 = 1000;
    const CYCLE: u64 = 4000;

    fn history() -> SendHistory {
        SendHistory::new(CycleSettings { slot_ms: SLOT, cycle_ms: CYCLE })
    }

    fn s(bytes: u64, millis: u64) -> SpeedSample {
        SpeedSample { bytes, millis }
    }

    #[test]
    fn windows_become_samples_of_their_slot_in_later_cycles() {
        let mut h = history();
        h.record(0, 100, 1000, 100);
        h.record(0, 500, 3000, 400);
        // Still in slot 0 of cycle 0: no sample yet, the open window gives the peak.
        assert_eq!(h.inputs(0, 600), SpeedInputs { samples: vec![], peak_bytes_per_sec: 8000, slot: 0 });
        h.record(0, 1500, 500, 1000);
        let now = h.inputs(0, 1600);
        assert_eq!((now.slot, now.samples.clone()), (1, vec![]), "slot 1 has no history yet");
        assert_eq!(now.peak_bytes_per_sec, 8000, "the closed slot-0 window is still recent");
        // Next cycle, slot 0: the window from cycle 0 is a sample.
        let later = h.inputs(0, CYCLE + 10);
        assert_eq!(later.slot, 0);
        assert_eq!(later.samples, vec![s(4000, 500)]);
        // Slot 1 of the next cycle sees slot 1's window.
        assert_eq!(h.inputs(0, CYCLE + SLOT + 10).samples, vec![s(500, 1000)]);
        // Other queues are apart.
        assert_eq!(h.inputs(1, CYCLE + 10), SpeedInputs { samples: vec![], peak_bytes_per_sec: 0, slot: 0 });
    }

    #[test]
    fn idle_windows_are_no_samples_and_history_is_bounded() {
        let mut h = history();
        h.record(0, 10, 0, 0);
        assert!(h.inputs(0, CYCLE + 10).samples.is_empty());
        for cycle in 0..(SAMPLES_PER_SLOT as u64 + 5) {
            h.record(0, cycle * CYCLE + 10, cycle + 1, 10);
        }
        let samples = h.inputs(0, 100 * CYCLE).samples;
        assert_eq!(samples.len(), SAMPLES_PER_SLOT);
        assert_eq!(samples.last(), Some(&s(SAMPLES_PER_SLOT as u64 + 5, 10)), "the newest are kept");
    }
}
