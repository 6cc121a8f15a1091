//! Plain counters the proxy can export (to Prometheus, for example).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::{PurgeMode, ScopeKind};

/// Live counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) entries: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) inserts: AtomicU64,
    pub(crate) rejected_too_large: AtomicU64,
    pub(crate) rejected_fill: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) soft_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) purged_misses: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) expirations: AtomicU64,
    pub(crate) purges: [[AtomicU64; 2]; 5],
    pub(crate) sweep_passes: AtomicU64,
    pub(crate) sweep_removed: AtomicU64,
}

/// Adds one.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    /// Counts an entry entering the index.
    pub(crate) fn added(&self, weight: u32) {
        self.entries.fetch_add(1, Relaxed);
        self.bytes.fetch_add(u64::from(weight), Relaxed);
    }

    /// Counts an entry leaving the index.
    pub(crate) fn removed(&self, weight: u32) {
        self.entries.fetch_sub(1, Relaxed);
        self.bytes.fetch_sub(u64::from(weight), Relaxed);
    }

    /// Counts a purge.
    pub(crate) fn purged(&self, kind: ScopeKind, mode: PurgeMode) {
        bump(&self.purges[kind as usize][mode as usize]);
    }

    /// A consistent-enough copy (each counter is read once, not all atomically together).
    pub(crate) fn snapshot(&self, markers: u64) -> StoreStats {
        let get = |c: &AtomicU64| c.load(Relaxed);
        StoreStats {
            entries: get(&self.entries),
            bytes: get(&self.bytes),
            inserts: get(&self.inserts),
            rejected_too_large: get(&self.rejected_too_large),
            rejected_fill: get(&self.rejected_fill),
            hits: get(&self.hits),
            soft_hits: get(&self.soft_hits),
            misses: get(&self.misses),
            purged_misses: get(&self.purged_misses),
            evictions: get(&self.evictions),
            expirations: get(&self.expirations),
            purges: PurgeCounts(self.purges.each_ref().map(|modes| modes.each_ref().map(get))),
            sweep_passes: get(&self.sweep_passes),
            sweep_removed: get(&self.sweep_removed),
            markers,
        }
    }
}

/// Purge counts by scope kind and mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeCounts([[u64; 2]; 5]);

impl PurgeCounts {
    /// Purges of `kind` in `mode`.
    pub fn get(&self, kind: ScopeKind, mode: PurgeMode) -> u64 {
        self.0[kind as usize][mode as usize]
    }

    /// Every `(kind, mode, count)`, for exporting with labels.
    pub fn iter(&self) -> impl Iterator<Item = (ScopeKind, PurgeMode, u64)> + '_ {
        ScopeKind::ALL.into_iter().flat_map(move |kind| {
            [PurgeMode::Hard, PurgeMode::Soft].into_iter().map(move |mode| (kind, mode, self.get(kind, mode)))
        })
    }
}

/// A snapshot of the store's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Entries held (including hard-purged ones the sweeper has not reclaimed yet).
    pub entries: u64,
    /// Their total weight in bytes (value weight plus key, metadata and fixed overhead).
    pub bytes: u64,
    /// Successful inserts.
    pub inserts: u64,
    /// Inserts refused because the object exceeded the maximum object size.
    pub rejected_too_large: u64,
    /// Fills refused because a purge happened while they were in flight (or too long ago to tell).
    pub rejected_fill: u64,
    /// Lookups that returned a fresh entry.
    pub hits: u64,
    /// Lookups that returned a soft-purged entry.
    pub soft_hits: u64,
    /// Lookups that returned nothing (including `purged_misses`).
    pub misses: u64,
    /// Lookups that found a hard-purged entry (and removed it).
    pub purged_misses: u64,
    /// Entries evicted for space (including new entries the admission policy refused).
    pub evictions: u64,
    /// Entries dropped because their `keep_for` ran out.
    pub expirations: u64,
    /// Purges by scope kind and mode.
    pub purges: PurgeCounts,
    /// Completed sweep passes.
    pub sweep_passes: u64,
    /// Hard-purged entries the sweeper reclaimed.
    pub sweep_removed: u64,
    /// Live purge markers (trie nodes, hosts, tags, global).
    pub markers: u64,
}
