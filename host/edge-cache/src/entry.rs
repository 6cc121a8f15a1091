//! A stored object with its purge metadata, and the answer of a lookup.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::key::EntryKey;

/// Flag: a soft purge applies (set by exact soft purges, insert-time checks and the sweeper).
const SOFT: u8 = 1;
/// Flag: a hard purge applies; the entry is being removed and is never served again.
const DEAD: u8 = 2;

/// What the caller tells the store about an object besides its key and value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryMeta {
    /// The normalised URL, matched by [`Scope::Url`](crate::Scope::Url) and
    /// [`Scope::Prefix`](crate::Scope::Prefix) purges. It may differ from the primary key (a
    /// policy's cache key may, for example, drop query parameters).
    pub url: String,
    /// The host (tenant) the object belongs to, matched by [`Scope::Host`](crate::Scope::Host).
    pub host: String,
    /// Surrogate keys, each matched by [`Scope::Tag`](crate::Scope::Tag).
    pub tags: Vec<String>,
    /// Drop the object this long after it is stored (for example when its stale-if-error window
    /// ends); `None` keeps it until it is evicted or purged.
    pub keep_for: Option<Duration>,
}

impl EntryMeta {
    /// Metadata with the given URL and host, no tags, no time limit.
    pub fn new(url: impl Into<String>, host: impl Into<String>) -> Self {
        Self { url: url.into(), host: host.into(), tags: Vec::new(), keep_for: None }
    }

    /// Adds surrogate keys.
    pub fn with_tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Sets [`EntryMeta::keep_for`].
    pub fn with_keep_for(mut self, keep_for: Duration) -> Self {
        self.keep_for = Some(keep_for);
        self
    }
}

/// A stored object: the caller's value plus what purges match on.
///
/// URL (when it differs from the primary key), host and tags share one allocation.
#[derive(Debug)]
pub struct Entry<V> {
    key: EntryKey,
    /// `[url][host][tag 1 '\n' tag 2 ...]`; the URL part is empty when it equals the primary key.
    text: Box<str>,
    url_end: u32,
    host_end: u32,
    tag_count: u32,
    url_is_primary: bool,
    pub(crate) url_hash: u64,
    stored_at: u64,
    weight: u32,
    flags: AtomicU8,
    keep_for: Option<Duration>,
    value: V,
}

impl<V> Entry<V> {
    /// Builds an entry; `weight` is its charge against the store's capacity. The metadata must
    /// have passed [`Entry::check_meta`].
    pub(crate) fn new(
        key: EntryKey,
        meta: EntryMeta,
        url_hash: u64,
        stored_at: u64,
        weight: u32,
        soft: bool,
        value: V,
    ) -> Self {
        let url_is_primary = meta.url == key.primary();
        let url = if url_is_primary { "" } else { meta.url.as_str() };
        let mut text = String::with_capacity(Self::meta_bytes(&meta));
        text.push_str(url);
        let url_end = text.len() as u32;
        text.push_str(&meta.host);
        let host_end = text.len() as u32;
        for (i, tag) in meta.tags.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(tag);
        }
        Entry {
            key,
            text: text.into_boxed_str(),
            url_end,
            host_end,
            tag_count: meta.tags.len() as u32,
            url_is_primary,
            url_hash,
            stored_at,
            weight,
            flags: AtomicU8::new(if soft { SOFT } else { 0 }),
            keep_for: meta.keep_for,
            value,
        }
    }

    /// Whether the metadata can be stored: tags without `'\n'` (which HTTP header values cannot
    /// hold anyway) and under 4 GiB of text.
    pub(crate) fn check_meta(meta: &EntryMeta) -> bool {
        Self::meta_bytes(meta) < u32::MAX as usize && meta.tags.iter().all(|t| !t.contains('\n'))
    }

    /// The stored value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The entry's address (primary key and variant).
    pub fn key(&self) -> &EntryKey {
        &self.key
    }

    /// The normalised URL the entry was stored under.
    pub fn url(&self) -> &str {
        if self.url_is_primary {
            self.key.primary()
        } else {
            &self.text[..self.url_end as usize]
        }
    }

    /// The entry's host.
    pub fn host(&self) -> &str {
        &self.text[self.url_end as usize..self.host_end as usize]
    }

    /// The entry's surrogate keys.
    pub fn tags(&self) -> impl Iterator<Item = &str> + Clone {
        let tags = if self.tag_count == 0 { None } else { Some(self.text[self.host_end as usize..].split('\n')) };
        tags.into_iter().flatten()
    }

    /// The purge sequence current when the entry was stored (or when its fill began).
    pub fn stored_at(&self) -> u64 {
        self.stored_at
    }

    /// The entry's charge against the store's capacity, in bytes.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// How long after storing the entry expires, if it does.
    pub fn keep_for(&self) -> Option<Duration> {
        self.keep_for
    }

    /// Bytes of the entry's metadata text (an upper bound; for the weight).
    pub(crate) fn meta_bytes(meta: &EntryMeta) -> usize {
        meta.url.len() + meta.host.len() + meta.tags.iter().map(|t| t.len() + 1).sum::<usize>()
    }

    pub(crate) fn is_soft_flagged(&self) -> bool {
        self.flags.load(Ordering::Acquire) & SOFT != 0
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.flags.load(Ordering::SeqCst) & DEAD != 0
    }

    pub(crate) fn mark_soft(&self) {
        self.flags.fetch_or(SOFT, Ordering::AcqRel);
    }

    pub(crate) fn mark_dead(&self) {
        self.flags.fetch_or(DEAD, Ordering::SeqCst);
    }
}

/// A lookup's answer: the entry, and whether a soft purge applies to it.
#[derive(Debug)]
pub struct Hit<V> {
    /// The stored entry (shared; the store may drop its own reference meanwhile).
    pub entry: Arc<Entry<V>>,
    /// A soft purge newer than the entry applies: serve it only where stale content is allowed
    /// (stale-while-revalidate, stale-if-error) or revalidate it first. Storing the object again
    /// under the same key and variant makes it fresh.
    pub soft_purged: bool,
}

impl<V> Hit<V> {
    /// The stored value.
    pub fn value(&self) -> &V {
        self.entry.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Variant;

    #[test]
    fn metadata_round_trips_through_the_shared_text() {
        let key = EntryKey::new("https://h/a", &Variant::none());
        let cases = [
            EntryMeta::new("https://h/a", "h"),
            EntryMeta::new("https://h/a?x", "h").with_tags(["t1", "", "t3"]),
            EntryMeta::new("https://h/a", "").with_tags([""]),
            EntryMeta::new("", "host"),
        ];
        for meta in cases {
            let entry = Entry::new(key.clone(), meta.clone(), 0, 0, 1, false, ());
            assert_eq!(entry.url(), meta.url);
            assert_eq!(entry.host(), meta.host);
            assert_eq!(entry.tags().collect::<Vec<_>>(), meta.tags);
        }
        assert!(!Entry::<()>::check_meta(&EntryMeta::new("u", "h").with_tags(["a\nb"])));
    }
}
