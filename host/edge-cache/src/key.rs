//! Entry addresses: the primary key (normalised URL or a policy's cache key) plus the
//! [`Variant`] chosen by the `Vary` response header.
//!
//! The stored key ([`EntryKey`]) is one shared allocation (`primary ++ variant`), cloned cheaply
//! into the cache and the entry; lookups borrow ([`KeyRef`]) and allocate nothing.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The secondary key of an entry: which variant of the primary key's response it is.
///
/// The caller computes it from the request headers named by the stored response's `Vary`
/// header. [`Variant::none`] is the single variant of responses without `Vary`. A response with
/// `Vary: *` must not be stored at all (the caller's business).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Variant(Box<str>);

impl Variant {
    /// The only variant of a response without `Vary`.
    pub fn none() -> Self {
        Self::default()
    }

    /// An opaque variant string chosen by the caller (for example a hash of the varied headers).
    pub fn opaque(text: impl Into<Box<str>>) -> Self {
        Self(text.into())
    }

    /// The variant for the given `(header name, request value)` pairs.
    ///
    /// Header names are compared case-insensitively and the order of the pairs does not matter;
    /// values are taken as given (normalise them first if the origin treats them loosely). The
    /// encoding is length-prefixed, so no pair list can collide with another.
    pub fn from_headers<N: AsRef<str>, W: AsRef<str>>(pairs: impl IntoIterator<Item = (N, W)>) -> Self {
        let mut pairs: Vec<(String, String)> =
            pairs.into_iter().map(|(n, v)| (n.as_ref().to_ascii_lowercase(), v.as_ref().to_owned())).collect();
        pairs.sort();
        let mut text = String::new();
        for (name, value) in &pairs {
            use std::fmt::Write as _;
            let _ = write!(text, "{}:{}{}:{}", name.len(), name, value.len(), value);
        }
        Self(text.into())
    }

    /// The variant of a response that has a `Vary` header, for a request carrying these `pairs`
    /// of the headers it names: [`Variant::from_headers`], except that a request with none of
    /// them gets a variant of its own, not [`Variant::none`]. That one belongs to responses
    /// without `Vary` (a caller may use it for the key's latest response, to learn what the key
    /// varies on), so the no-header variant of a varying response must not share it.
    pub fn of_varying<N: AsRef<str>, W: AsRef<str>>(pairs: impl IntoIterator<Item = (N, W)>) -> Self {
        let variant = Self::from_headers(pairs);
        // `from_headers` text starts with a digit (a length prefix) or is empty: `-` is free.
        if variant.0.is_empty() {
            Self("-".into())
        } else {
            variant
        }
    }

    /// The variant's canonical text (empty for [`Variant::none`]).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Variant({:?})", &*self.0)
    }
}

/// The owned address of a stored entry: primary key and variant in one shared allocation.
#[derive(Clone)]
pub struct EntryKey {
    text: Arc<str>,
    split: usize,
}

impl EntryKey {
    /// Builds the key of `primary` / `variant`.
    pub fn new(primary: &str, variant: &Variant) -> Self {
        let mut text = String::with_capacity(primary.len() + variant.as_str().len());
        text.push_str(primary);
        text.push_str(variant.as_str());
        Self { text: text.into(), split: primary.len() }
    }

    /// The primary key (normalised URL or policy cache key).
    pub fn primary(&self) -> &str {
        &self.text[..self.split]
    }

    /// The variant's canonical text.
    pub fn variant(&self) -> &str {
        &self.text[self.split..]
    }

    /// Bytes held by the key's allocation.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.len()
    }
}

impl PartialEq for EntryKey {
    fn eq(&self, other: &Self) -> bool {
        self.split == other.split && self.text == other.text
    }
}

impl Eq for EntryKey {}

impl Hash for EntryKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.primary().hash(state);
        self.variant().hash(state);
    }
}

impl fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntryKey").field("primary", &self.primary()).field("variant", &self.variant()).finish()
    }
}

/// A borrowed key for lookups; hashes and compares like the [`EntryKey`] it names.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRef<'a> {
    pub(crate) primary: &'a str,
    pub(crate) variant: &'a str,
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.primary.hash(state);
        self.variant.hash(state);
    }
}

impl moka::Equivalent<EntryKey> for KeyRef<'_> {
    fn equivalent(&self, key: &EntryKey) -> bool {
        key.primary() == self.primary && key.variant() == self.variant
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash_of(value: &impl Hash) -> u64 {
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        h.finish()
    }

    #[test]
    fn key_ref_hashes_like_the_owned_key() {
        let variant = Variant::from_headers([("Accept-Encoding", "gzip")]);
        let key = EntryKey::new("https://a.example/x", &variant);
        let borrowed = KeyRef { primary: "https://a.example/x", variant: variant.as_str() };
        assert_eq!(hash_of(&key), hash_of(&borrowed));
        assert!(moka::Equivalent::equivalent(&borrowed, &key));
        // Moving bytes between primary and variant gives another key.
        let shifted = EntryKey::new("https://a.example/", &Variant::opaque(format!("x{}", variant.as_str())));
        assert_ne!(key, shifted);
    }

    #[test]
    fn header_variants_ignore_case_and_order() {
        let a = Variant::from_headers([("Accept-Encoding", "gzip"), ("Accept-Language", "en")]);
        let b = Variant::from_headers([("accept-language", "en"), ("ACCEPT-ENCODING", "gzip")]);
        assert_eq!(a, b);
        assert_ne!(a, Variant::from_headers([("accept-encoding", "br"), ("accept-language", "en")]));
        // Length prefixes keep "a"="b:c" apart from "a:b"="c".
        assert_ne!(Variant::from_headers([("a", "1:b1:c")]), Variant::from_headers([("a", "1"), ("b", "c")]));
        assert_eq!(Variant::none().as_str(), "");
    }

    #[test]
    fn a_varying_response_never_takes_the_none_variant() {
        let empty: [(&str, &str); 0] = [];
        assert_ne!(Variant::of_varying(empty), Variant::none());
        assert_eq!(Variant::of_varying(empty), Variant::of_varying(empty));
        let gzip = [("Accept-Encoding", "gzip")];
        assert_eq!(Variant::of_varying(gzip), Variant::from_headers(gzip));
        assert_ne!(Variant::of_varying(empty), Variant::from_headers([("a", "")]));
    }
}
