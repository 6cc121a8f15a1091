//! [`CacheStore`]: inserts, lookups and purges.
//!
//! Ordering rules that keep purges exact under concurrency:
//!
//! - A purge takes the marker write lock, takes the next sequence `p` and records its marker
//!   there. An insert takes the read lock, reads the sequence `s` (so `s >= p` for every purge
//!   already recorded, and no recorded marker applies to it) and adds the entry to the URL index
//!   before releasing the lock. So every entry is either checked against a marker at insert or is
//!   in the index before that marker exists — which is what lets the sweeper drop markers.
//! - The entry enters the cache after the index, so the cache's removal listener always finds it
//!   there. Removals are by pointer, so they never take out a newer entry under the same key.
//! - Hard-purged entries are flagged dead before they are removed; the insert re-checks the flag
//!   after its cache insert, so a removal racing with it is not lost.

use std::sync::atomic::{fence, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::ops::compute::Op;
use parking_lot::{Mutex, RwLock};

use crate::entry::{Entry, EntryMeta, Hit};
use crate::index::UrlIndex;
use crate::key::{EntryKey, KeyRef, Variant};
use crate::markers::{MarkerSet, Verdict};
use crate::stats::{bump, Counters, StoreStats};
use crate::sweep::SweepState;
use crate::{ConfigError, InsertError, PurgeMode, Scope, ScopeKind};

/// Sizing of a [`CacheStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Total weight the store holds, in bytes.
    pub capacity_bytes: u64,
    /// Objects weighing more are refused by [`CacheStore::insert`] (at most 4 GiB).
    pub max_object_bytes: u64,
    /// Bytes charged per entry on top of the value's weight, the key and the metadata: the
    /// cache's, the index's and the entry's bookkeeping (about 550 bytes measured; see the
    /// README), so that the capacity bounds the process's memory, not only the values'.
    pub entry_overhead_bytes: u64,
    /// Shards of the URL index (locking granularity; the sweeper visits one shard at a time).
    pub index_shards: usize,
}

impl StoreConfig {
    /// A store of `capacity_bytes`, with a maximum object size of an eighth of it (capped at
    /// 4 GiB), 512 bytes of overhead per entry and 1024 index shards.
    pub fn new(capacity_bytes: u64) -> Self {
        StoreConfig {
            capacity_bytes,
            max_object_bytes: (capacity_bytes / 8).clamp(1, u64::from(u32::MAX)),
            entry_overhead_bytes: 512,
            index_shards: 1024,
        }
    }

    /// Sets [`StoreConfig::max_object_bytes`].
    pub fn with_max_object_bytes(mut self, max: u64) -> Self {
        self.max_object_bytes = max;
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity_bytes == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        let limit = self.capacity_bytes.min(u64::from(u32::MAX));
        if self.max_object_bytes == 0 || self.max_object_bytes > limit {
            return Err(ConfigError::MaxObjectSize { max: self.max_object_bytes, limit });
        }
        Ok(())
    }
}

/// The purge sequence at the start of a fill (see [`CacheStore::begin_fill`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FillToken(u64);

impl FillToken {
    /// The sequence number.
    pub fn seq(self) -> u64 {
        self.0
    }
}

/// What a purge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// The purge's sequence number: entries stored before it are matched.
    pub seq: u64,
    /// Variants removed (hard) or flagged (soft) directly; only exact-URL purges do that, the
    /// other scopes act through their marker.
    pub direct: usize,
}

/// What the cache's removal listener needs: shared by the store and the listener.
pub(crate) struct Shared<V> {
    pub(crate) index: UrlIndex<V>,
    pub(crate) counters: Counters,
}

impl<V> Shared<V> {
    /// Takes `entry` out of the index, counting it if it was there.
    pub(crate) fn unindex(&self, entry: &Arc<Entry<V>>) {
        if self.index.remove(entry) {
            self.counters.removed(entry.weight());
        }
    }
}

type Inner<V> = moka::sync::Cache<EntryKey, Arc<Entry<V>>>;
type Weigher<V> = Box<dyn Fn(&V) -> u64 + Send + Sync>;

/// Expires entries after their `keep_for`, if they have one.
struct KeepFor;

impl<V> moka::Expiry<EntryKey, Arc<Entry<V>>> for KeepFor {
    fn expire_after_create(&self, _: &EntryKey, entry: &Arc<Entry<V>>, _: Instant) -> Option<Duration> {
        entry.keep_for()
    }

    fn expire_after_update(
        &self,
        _: &EntryKey,
        entry: &Arc<Entry<V>>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        entry.keep_for()
    }
}

/// The edge's cache store. See the crate documentation.
pub struct CacheStore<V> {
    pub(crate) cache: Inner<V>,
    pub(crate) shared: Arc<Shared<V>>,
    pub(crate) markers: RwLock<MarkerSet>,
    pub(crate) seq: AtomicU64,
    pub(crate) sweep: Mutex<SweepState>,
    config: StoreConfig,
    weigher: Weigher<V>,
}

impl<V: Send + Sync + 'static> CacheStore<V> {
    /// A store sized by `config`, pricing values with `weigher` (bytes).
    pub fn new(config: StoreConfig, weigher: impl Fn(&V) -> u64 + Send + Sync + 'static) -> Result<Self, ConfigError> {
        config.validate()?;
        let shared = Arc::new(Shared { index: UrlIndex::new(config.index_shards), counters: Counters::default() });
        let listener_shared = Arc::clone(&shared);
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.capacity_bytes)
            .weigher(|_: &EntryKey, entry: &Arc<Entry<V>>| entry.weight())
            .expire_after(KeepFor)
            .eviction_listener(move |_key, entry: Arc<Entry<V>>, cause| {
                listener_shared.unindex(&entry);
                match cause {
                    RemovalCause::Size => bump(&listener_shared.counters.evictions),
                    RemovalCause::Expired => bump(&listener_shared.counters.expirations),
                    RemovalCause::Explicit | RemovalCause::Replaced => {}
                }
            })
            .build();
        Ok(CacheStore {
            cache,
            shared,
            markers: RwLock::new(MarkerSet::default()),
            seq: AtomicU64::new(0),
            sweep: Mutex::new(SweepState::default()),
            config,
            weigher: Box::new(weigher),
        })
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Stores `value` under `primary` / `variant`, replacing what was there; the entry is fresh.
    ///
    /// Refused (with the reason) when the object is too large. Note that a successful insert
    /// does not guarantee the object stays: when the store is full, the admission policy may
    /// evict it at once if it is less valuable than what it would displace.
    pub fn insert(&self, primary: &str, variant: &Variant, meta: EntryMeta, value: V) -> Result<(), InsertError> {
        self.insert_at(None, primary, variant, meta, value)
    }

    /// The current purge sequence, to take before fetching an object from the origin and pass to
    /// [`CacheStore::insert_filled`]: a purge made while the fetch is in flight then keeps the
    /// (possibly outdated) response out of the cache.
    pub fn begin_fill(&self) -> FillToken {
        FillToken(self.seq.load(SeqCst))
    }

    /// Stores an object fetched since `fill` was taken, as [`CacheStore::insert`] does, unless a
    /// matching hard purge was made meanwhile ([`InsertError::PurgedDuringFill`]). A matching
    /// soft purge stores it soft-purged.
    pub fn insert_filled(
        &self,
        fill: FillToken,
        primary: &str,
        variant: &Variant,
        meta: EntryMeta,
        value: V,
    ) -> Result<(), InsertError> {
        self.insert_at(Some(fill.0), primary, variant, meta, value)
    }

    fn insert_at(
        &self,
        fill: Option<u64>,
        primary: &str,
        variant: &Variant,
        meta: EntryMeta,
        value: V,
    ) -> Result<(), InsertError> {
        if !Entry::<V>::check_meta(&meta) {
            return Err(InsertError::InvalidMetadata);
        }
        let key = EntryKey::new(primary, variant);
        let size = (self.weigher)(&value)
            .saturating_add(self.config.entry_overhead_bytes)
            .saturating_add((key.heap_bytes() + Entry::<V>::meta_bytes(&meta)) as u64);
        if size > self.config.max_object_bytes {
            bump(&self.shared.counters.rejected_too_large);
            return Err(InsertError::TooLarge { size, max: self.config.max_object_bytes });
        }
        let weight = u32::try_from(size).unwrap_or(u32::MAX);
        let url_hash = self.shared.index.hash_url(&meta.url);
        let markers = self.markers.read();
        let now = self.seq.load(SeqCst);
        let (stored_at, soft) = match fill {
            None => (now, false),
            Some(fill_seq) => {
                let fill_seq = fill_seq.min(now);
                if fill_seq < markers.floor {
                    bump(&self.shared.counters.rejected_fill);
                    return Err(InsertError::FillTooOld { fill_seq, floor: markers.floor });
                }
                let pair = markers.check(&meta.url, &meta.host, meta.tags.iter().map(String::as_str));
                match pair.verdict(fill_seq) {
                    Verdict::Hard => {
                        bump(&self.shared.counters.rejected_fill);
                        return Err(InsertError::PurgedDuringFill { fill_seq, purge_seq: pair.hard });
                    }
                    Verdict::Soft => (fill_seq, true),
                    Verdict::Fresh => (fill_seq, false),
                }
            }
        };
        let entry = Arc::new(Entry::new(key.clone(), meta, url_hash, stored_at, weight, soft, value));
        self.shared.index.add(Arc::clone(&entry));
        self.shared.counters.added(weight);
        drop(markers);
        self.cache.insert(key, Arc::clone(&entry));
        bump(&self.shared.counters.inserts);
        // Pairs with the fence in `kill`: either that removal saw this insert or this sees the flag.
        fence(SeqCst);
        if entry.is_dead() {
            // Purged between the index and the cache: the purge could not remove it yet.
            self.remove_entry(&entry);
        }
        Ok(())
    }

    /// Looks up `primary` / `variant`. Hard-purged entries are never returned (and are removed
    /// when met); soft-purged ones come back with [`Hit::soft_purged`] set. The cost depends on
    /// the URL's length and the entry's tag count, not on the cache size or the purge count.
    pub fn get(&self, primary: &str, variant: &Variant) -> Option<Hit<V>> {
        let counters = &self.shared.counters;
        let Some(entry) = self.cache.get(&KeyRef { primary, variant: variant.as_str() }) else {
            bump(&counters.misses);
            return None;
        };
        // Markers first, flags second: a sweep pass sets an entry's flags before it drops the
        // markers, so whichever this lookup misses, it sees the other.
        let verdict = {
            let markers = self.markers.read();
            markers.check(entry.url(), entry.host(), entry.tags()).verdict(entry.stored_at())
        };
        let verdict = if entry.is_dead() { Verdict::Hard } else { verdict };
        match verdict {
            Verdict::Hard => {
                self.kill(&entry);
                bump(&counters.misses);
                bump(&counters.purged_misses);
                None
            }
            Verdict::Soft => {
                bump(&counters.soft_hits);
                Some(Hit { entry, soft_purged: true })
            }
            Verdict::Fresh => {
                let soft_purged = entry.is_soft_flagged();
                bump(if soft_purged { &counters.soft_hits } else { &counters.hits });
                Some(Hit { entry, soft_purged })
            }
        }
    }

    /// Purges `scope`. Costs O(1) in the cache size: O(len) of the prefix or URL for URL scopes,
    /// one hash map update for hosts and tags. Exact-URL purges also remove (hard) or flag (soft)
    /// the URL's stored variants at once.
    pub fn purge(&self, scope: &Scope, mode: PurgeMode) -> PurgeOutcome {
        self.purge_owned(scope.clone(), mode)
    }

    /// [`purge`](Self::purge) of a scope the caller gives up: its string becomes the marker's
    /// key without a copy (a bulk purge records a million URL markers on every edge).
    pub fn purge_owned(&self, scope: Scope, mode: PurgeMode) -> PurgeOutcome {
        self.shared.counters.purged(ScopeKind::of(&scope), mode);
        let (seq, found) = {
            let mut markers = self.markers.write();
            let seq = self.seq.fetch_add(1, SeqCst) + 1;
            // Looked up under the write lock: inserts add to the index under the read lock, so
            // this finds every variant stored before `seq`, as after the lock.
            let found = match &scope {
                Scope::Url(url) => self.shared.index.entries_for_url(url),
                _ => Vec::new(),
            };
            markers.current.record(scope, mode, seq);
            (seq, found)
        };
        let mut direct = 0;
        for entry in found {
            if entry.stored_at() >= seq {
                continue; // stored after the purge
            }
            direct += 1;
            match mode {
                PurgeMode::Hard => self.kill(&entry),
                PurgeMode::Soft => entry.mark_soft(),
            }
        }
        PurgeOutcome { seq, direct }
    }

    /// The latest purge sequence number.
    pub fn current_seq(&self) -> u64 {
        self.seq.load(SeqCst)
    }

    /// Flags `entry` dead (never served again) and removes it.
    pub(crate) fn kill(&self, entry: &Arc<Entry<V>>) {
        entry.mark_dead();
        fence(SeqCst);
        self.remove_entry(entry);
    }

    /// Removes exactly `entry` from the cache (if it still holds it) and from the index.
    pub(crate) fn remove_entry(&self, entry: &Arc<Entry<V>>) {
        self.cache.entry(entry.key().clone()).and_compute_with(|current| match current {
            Some(current) if Arc::ptr_eq(current.value(), entry) => Op::Remove,
            _ => Op::Nop,
        });
        self.shared.unindex(entry);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StoreStats {
        let markers = self.markers.read().len() as u64;
        self.shared.counters.snapshot(markers)
    }

    /// Runs the cache's pending maintenance now (evictions, expirations and their listener
    /// calls), which otherwise happens in small steps during inserts and lookups.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }
}

impl<V> std::fmt::Debug for CacheStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStore")
            .field("config", &self.config)
            .field("seq", &self.seq.load(SeqCst))
            .field("entries", &self.shared.counters.entries)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
