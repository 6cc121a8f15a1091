//! The URL index: every stored entry by its normalised URL's hash, in shards.
//!
//! It serves exact-URL purges (all variants of a URL, found without a scan) and the sweeper
//! (which walks it shard by shard, because the cache itself offers no resumable cursor). The
//! store adds an entry here before it enters the cache; the cache's removal listener takes it
//! out again, by pointer, so a newer entry under the same key is never removed by mistake.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use ahash::RandomState;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::entry::Entry;

/// A hasher for keys that already are hashes.
#[derive(Default)]
pub(crate) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The entries under one URL hash: nearly always one, so without a `Vec` allocation.
enum Slot<V> {
    One(Arc<Entry<V>>),
    Many(Vec<Arc<Entry<V>>>),
}

impl<V> Slot<V> {
    fn as_slice(&self) -> &[Arc<Entry<V>>] {
        match self {
            Slot::One(entry) => std::slice::from_ref(entry),
            Slot::Many(list) => list,
        }
    }

    fn push(&mut self, entry: Arc<Entry<V>>) {
        match self {
            Slot::One(first) => *self = Slot::Many(vec![Arc::clone(first), entry]),
            Slot::Many(list) => list.push(entry),
        }
    }

    /// Removes `entry` by pointer; returns (found, now empty).
    fn remove(&mut self, entry: &Arc<Entry<V>>) -> (bool, bool) {
        match self {
            Slot::One(only) => {
                let found = Arc::ptr_eq(only, entry);
                (found, found)
            }
            Slot::Many(list) => {
                let Some(pos) = list.iter().position(|e| Arc::ptr_eq(e, entry)) else { return (false, false) };
                list.swap_remove(pos);
                if let [last] = list.as_slice() {
                    *self = Slot::One(Arc::clone(last));
                }
                (true, false)
            }
        }
    }
}

type Shard<V> = HashMap<u64, Slot<V>, BuildHasherDefault<PreHashed>>;

/// Entries by URL hash, in independently locked shards.
pub(crate) struct UrlIndex<V> {
    hasher: RandomState,
    shards: Box<[Mutex<Shard<V>>]>,
}

impl<V> UrlIndex<V> {
    /// An empty index with `shards` shards (at least one).
    pub(crate) fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1)).map(|_| Mutex::new(Shard::default())).collect();
        UrlIndex { hasher: RandomState::new(), shards }
    }

    /// The hash under which `url` is indexed.
    pub(crate) fn hash_url(&self, url: &str) -> u64 {
        self.hasher.hash_one(url)
    }

    fn shard(&self, url_hash: u64) -> &Mutex<Shard<V>> {
        // The low bits pick the bucket inside the shard's map; use the high bits here.
        let n = self.shards.len() as u64;
        &self.shards[((url_hash >> 32) % n) as usize]
    }

    /// Adds `entry`.
    pub(crate) fn add(&self, entry: Arc<Entry<V>>) {
        let mut shard = self.shard(entry.url_hash).lock();
        match shard.entry(entry.url_hash) {
            std::collections::hash_map::Entry::Occupied(mut slot) => slot.get_mut().push(entry),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Slot::One(entry));
            }
        }
    }

    /// Removes exactly this entry (by pointer); false if it was not indexed.
    pub(crate) fn remove(&self, entry: &Arc<Entry<V>>) -> bool {
        let mut shard = self.shard(entry.url_hash).lock();
        let Some(slot) = shard.get_mut(&entry.url_hash) else { return false };
        let (found, empty) = slot.remove(entry);
        if empty {
            shard.remove(&entry.url_hash);
        }
        found
    }

    /// Every indexed entry whose URL is `url` (all variants, all primary keys).
    pub(crate) fn entries_for_url(&self, url: &str) -> Vec<Arc<Entry<V>>> {
        let hash = self.hash_url(url);
        let shard = self.shard(hash).lock();
        shard
            .get(&hash)
            .map_or_else(Vec::new, |slot| slot.as_slice().iter().filter(|e| e.url() == url).cloned().collect())
    }

    /// Number of shards.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// A copy of shard `i`'s entries (the lock is held only while copying pointers).
    pub(crate) fn snapshot_shard(&self, i: usize) -> Vec<Arc<Entry<V>>> {
        let shard = self.shards[i].lock();
        shard.values().flat_map(|slot| slot.as_slice().iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryMeta;
    use crate::key::{EntryKey, Variant};

    fn entry(index: &UrlIndex<u8>, primary: &str, variant: &str, url: &str) -> Arc<Entry<u8>> {
        let key = EntryKey::new(primary, &Variant::opaque(variant));
        Arc::new(Entry::new(key, EntryMeta::new(url, "h"), index.hash_url(url), 0, 1, false, 0))
    }

    #[test]
    fn finds_all_variants_and_removes_by_pointer() {
        let index = UrlIndex::new(4);
        let a = entry(&index, "k", "gzip", "https://h/a");
        let b = entry(&index, "k", "br", "https://h/a");
        let a2 = entry(&index, "k", "gzip", "https://h/a");
        let other = entry(&index, "k2", "", "https://h/b");
        for e in [&a, &b, &other] {
            index.add(Arc::clone(e));
        }
        assert_eq!(index.entries_for_url("https://h/a").len(), 2);
        assert!(!index.remove(&a2), "same key, other entry: not indexed");
        assert!(index.remove(&a));
        assert!(!index.remove(&a));
        assert_eq!(index.entries_for_url("https://h/a").len(), 1);
        let total: usize = (0..index.shard_count()).map(|i| index.snapshot_shard(i).len()).sum();
        assert_eq!(total, 2);
    }
}
