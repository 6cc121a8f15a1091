//! The edge's cache store: objects of any type `V`, independent of HTTP.
//!
//! - **Bounded in bytes.** A caller-supplied weigher prices each value; the store adds the key's,
//!   the metadata's and a fixed per-entry overhead. When the store is full, the concurrent cache
//!   underneath ([`moka`], TinyLFU admission with LRU eviction) evicts the least valuable objects,
//!   before they expire (SEEDS S3.6). Objects larger than the maximum object size are refused
//!   ([`InsertError::TooLarge`]) so the proxy streams them through uncached.
//! - **Addressed by primary key and variant.** The primary key is the normalised URL or a policy's
//!   cache key; the [`Variant`] is the `Vary` secondary key. Each entry also records its
//!   normalised URL, host, tags and the purge sequence current when it was stored ([`EntryMeta`]).
//! - **Purges in O(1) of the cache size** (DESIGN decision 7): [`CacheStore::purge`] records a
//!   marker (see `markers.rs`); lookups compare the entry's sequence with the markers on its URL's
//!   path, host, tags and the global one. Exact-URL purges also remove or flag the URL's variants
//!   directly. [`CacheStore::sweep_step`] reclaims hard-purged entries and drops old markers.
//! - **Hard or soft.** Hard-purged objects are gone. Soft-purged ones are returned with
//!   [`Hit::soft_purged`] set, for the proxy to serve only stale-while-revalidate or
//!   stale-if-error, or to revalidate; storing the object again makes it fresh.
//!
//! Every method takes `&self`; the store is `Send + Sync` and meant to be shared (in an `Arc`)
//! by many tokio tasks. Critical sections are short and never await.
//!
//! ```
//! use edgepurge_edge_cache::{CacheStore, EntryMeta, PurgeMode, Scope, StoreConfig, Variant};
//!
//! let store = CacheStore::new(StoreConfig::new(64 << 20), |body: &Vec<u8>| body.len() as u64).unwrap();
//! let meta = EntryMeta::new("https://a.example/img/1.png", "a.example").with_tags(["img"]);
//! store.insert("https://a.example/img/1.png", &Variant::none(), meta, b"png".to_vec()).unwrap();
//!
//! store.purge(&Scope::Prefix("https://a.example/im".into()), PurgeMode::Soft);
//! let hit = store.get("https://a.example/img/1.png", &Variant::none()).unwrap();
//! assert!(hit.soft_purged);
//!
//! store.purge(&Scope::Tag("img".into()), PurgeMode::Hard);
//! assert!(store.get("https://a.example/img/1.png", &Variant::none()).is_none());
//! ```

#![deny(missing_docs)]

mod entry;
mod index;
mod key;
mod markers;
mod stats;
mod store;
mod sweep;

pub use entry::{Entry, EntryMeta, Hit};
pub use key::{EntryKey, Variant};
pub use stats::{PurgeCounts, StoreStats};
pub use store::{CacheStore, FillToken, PurgeOutcome, StoreConfig};
pub use sweep::{SweepReport, Sweeper};

/// What a purge applies to and how: the SDK's types, so a policy's `scope-purge` plan applies
/// as it is. For [`Scope::Prefix`], any byte prefix of the normalised URL counts (the empty
/// prefix matches everything); [`PurgeMode::Soft`] keeps entries but returns them with
/// [`Hit::soft_purged`] set.
pub use edgepurge_sdk::{PurgeMode, Scope};

/// The kinds of [`Scope`], without their arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// [`Scope::Url`].
    Url = 0,
    /// [`Scope::Prefix`].
    Prefix = 1,
    /// [`Scope::Tag`].
    Tag = 2,
    /// [`Scope::Host`].
    Host = 3,
    /// [`Scope::Everything`].
    Everything = 4,
}

impl ScopeKind {
    /// The kind of a scope, for counting.
    pub fn of(scope: &Scope) -> ScopeKind {
        match scope {
            Scope::Url(_) => ScopeKind::Url,
            Scope::Prefix(_) => ScopeKind::Prefix,
            Scope::Tag(_) => ScopeKind::Tag,
            Scope::Host(_) => ScopeKind::Host,
            Scope::Everything => ScopeKind::Everything,
        }
    }

    /// Every kind, in declaration order.
    pub const ALL: [ScopeKind; 5] =
        [ScopeKind::Url, ScopeKind::Prefix, ScopeKind::Tag, ScopeKind::Host, ScopeKind::Everything];

    /// A lowercase name, for metric labels.
    pub fn name(self) -> &'static str {
        match self {
            ScopeKind::Url => "url",
            ScopeKind::Prefix => "prefix",
            ScopeKind::Tag => "tag",
            ScopeKind::Host => "host",
            ScopeKind::Everything => "everything",
        }
    }
}

/// Why an object was not stored. The proxy serves it uncached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// Larger than the store's maximum object size (value weight plus metadata and overhead).
    #[error("object weighs {size} bytes, above the {max}-byte maximum object size")]
    TooLarge {
        /// The object's weight.
        size: u64,
        /// The maximum.
        max: u64,
    },
    /// A purge matching the object was made after its fill began: what was fetched may be the
    /// content the purge meant to remove.
    #[error("purged at sequence {purge_seq} while its fill (begun at sequence {fill_seq}) was in flight")]
    PurgedDuringFill {
        /// The fill token's sequence.
        fill_seq: u64,
        /// The newest matching hard purge.
        purge_seq: u64,
    },
    /// A tag contains a line feed (HTTP header values cannot), or the metadata exceeds 4 GiB.
    #[error("invalid metadata: a tag contains a line feed, or the URL, host and tags exceed 4 GiB")]
    InvalidMetadata,
    /// The fill began before the oldest purge markers the store still holds, so purges made
    /// meanwhile can no longer be checked.
    #[error("fill begun at sequence {fill_seq} is older than the purge markers kept (floor {floor})")]
    FillTooOld {
        /// The fill token's sequence.
        fill_seq: u64,
        /// Markers at or below this sequence have been dropped.
        floor: u64,
    },
}

/// An invalid [`StoreConfig`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The capacity is zero.
    #[error("the cache capacity must be above zero bytes")]
    ZeroCapacity,
    /// The maximum object size is zero, above the capacity, or above 4 GiB.
    #[error("the maximum object size ({max} bytes) must be in 1..={limit} (capacity or 4 GiB)")]
    MaxObjectSize {
        /// The configured maximum object size.
        max: u64,
        /// The largest allowed.
        limit: u64,
    },
}
