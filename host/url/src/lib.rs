//! The one URL normalisation of edgepurge, shared by the control role (which turns purge
//! requests into tasks) and the edge (which computes cache keys), so both compute the same
//! keys. **This page is the normative definition**: a purge matches a cached object exactly
//! when the two normalised strings are equal (URL purge) or one starts with the other
//! (prefix purge).
//!
//! # Input
//!
//! An absolute `http` or `https` URL: `scheme://host[:port][path][?query][#fragment]`. The
//! entry points take `&str`; [`normalize_bytes`] takes raw bytes (e.g. a request line) and
//! checks UTF-8 first. Refused, with a [`UrlError`] saying what was wrong and what to do, in
//! this order of checks:
//!
//! | rule | error | example |
//! |---|---|---|
//! | longer than the limit (default [`DEFAULT_MAX_LEN`] = 8192 bytes, see [`Normalizer`]); the normalised form must fit too | `TooLong`, `NormalizedTooLong` | |
//! | not UTF-8 (bytes entry point only) | `InvalidUtf8` | `b"http://a/\xff"` |
//! | a control character or whitespace anywhere, ASCII or Unicode (the fragment too) | `ControlOrWhitespace` | `http://a.com/a b` |
//! | `%` not followed by two hex digits, anywhere | `InvalidPercentEncoding` | `http://a.com/%zz` |
//! | no `scheme://` | `NotAbsolute` | `/a/b`, `//a.com/`, `http:a.com` |
//! | scheme other than http/https | `UnsupportedScheme` | `ftp://a.com/` |
//! | userinfo, even empty | `UserInfo` | `http://user:pw@a.com/`, `http://@a.com/` |
//! | empty host | `EmptyHost` | `http:///x`, `http://:8080/` |
//! | host or port the WHATWG parser refuses | `InvalidHost`, `InvalidPort` | `http://[::1/`, `http://a.com:99999/` |
//!
//! # Output
//!
//! `scheme://host[:port]path[?query]`, ASCII only, built as follows. Parsing is the WHATWG URL
//! Standard's (the `url` crate); the last four rules are what WHATWG does not do.
//!
//! | rule | input | output |
//! |---|---|---|
//! | scheme lower-cased | `HTTP://a.com/` | `http://a.com/` |
//! | host lower-cased; non-ASCII names to IDNA (`xn--`); `%XX` in the host decoded; IPv4 to dotted decimal, IPv6 to its shortest bracketed form | `http://Bücher.Example/` | `http://xn--bcher-kva.example/` |
//! | default port dropped (80 for http, 443 for https), other ports kept (without leading zeros) | `https://a.com:443/`, `http://a.com:443/` | `https://a.com/`, `http://a.com:443/` |
//! | empty path becomes `/` | `http://a.com?x` | `http://a.com/?x` |
//! | dot-segments resolved, also spelt `%2e` | `http://a.com/a/./b/../%2e%2E/c` | `http://a.com/c` |
//! | characters not allowed raw in a path percent-encoded as UTF-8 (non-ASCII, `"` `<` `>` `` ` `` `{` `}`) | `http://a.com/é` | `http://a.com/%C3%A9` |
//! | `\` before the query becomes `%5C` (WHATWG would read it as `/`, giving `/a\b` the key of `/a/b`) | `http://a.com/a\b` | `http://a.com/a%5Cb` |
//! | path escapes: hex upper-case; escaped unreserved characters (`A-Z a-z 0-9 - . _ ~`) decoded; every other escape kept | `http://a.com/%7euser/a%2fb` | `http://a.com/~user/a%2Fb` |
//! | fragment dropped | `http://a.com/x#top` | `http://a.com/x` |
//! | `?` with an empty query dropped | `http://a.com/x?` | `http://a.com/x` |
//! | query otherwise kept as given: no reordering, no escape changes (ordering is a policy decision); only what WHATWG must encode (non-ASCII, `"` `<` `>` `'`) is encoded | `http://a.com/x?b=%7e&a=1` | `http://a.com/x?b=%7e&a=1` |
//!
//! Normalisation is idempotent and its output always normalises again to itself.
//!
//! # Prefixes (directory purges)
//!
//! [`normalize_prefix`] takes a URL prefix such as `https://example.com/img/`. Decision: a
//! prefix is normalised like a URL up to its last complete path segment (everything up to and
//! including the last `/` before any `?`), or up to the `?` when it has a query; what follows
//! is *kept as given* apart from escaping, because it is the start of something longer:
//!
//! - a trailing partial segment is not dot-resolved (`/img/..` stays `/img/..`, which matches
//!   `/img/..hidden`), but its escapes are normalised as in a path and raw characters encoded;
//! - a trailing partial escape is allowed: `%` stays, `%h` becomes `%H` in the path and stays
//!   as given in the query;
//! - a trailing `?` is kept (`/x?` matches only `/x` with a query); the query tail is kept as
//!   given, like a query;
//! - the fragment is dropped;
//! - the host must be complete: the prefix needs a `/`, `?` or `#` after the authority,
//!   otherwise it fails with [`UrlError::PrefixEndsInAuthority`] (`https://example.com` could
//!   match `https://example.com.evil/` or `:8080`). Use [`normalize_host`] for a host purge.
//!
//! Guarantee (property-tested): for every URL `u` and every prefix `p` of `normalize(u)` that
//! reaches past the host, `normalize_prefix(p)` is `p` itself, so it is a prefix of
//! `normalize(u)`. A prefix matches with [`NormalizedPrefix::is_prefix_of`]; to purge a
//! directory, end the prefix with `/`.
//!
//! ```
//! use edgepurge_url::{normalize, normalize_prefix};
//! let p = normalize_prefix("HTTPS://Example.com:443/img/./x/../%7Eme/a%e").unwrap();
//! assert_eq!(p.as_str(), "https://example.com/img/~me/a%E");
//! assert!(p.is_prefix_of(&normalize("https://example.com/img/%7eme/a%e9.png").unwrap()));
//! ```
//!
//! # Hosts (host purges)
//!
//! [`normalize_host`] takes a bare host (no scheme, port, path or userinfo) and normalises it
//! exactly like the host of a URL, so a host purge of `h` covers every URL `u` with
//! `u.host() == h`, whatever its scheme and port. A trailing dot is kept (`a.com.` is not
//! `a.com`, as for WHATWG).
//!
//! # Cache keys and query modes
//!
//! [`QueryMode`] holds the three modes of S3.5 (`ignore`, `unique`, `bypass`);
//! [`QueryMode::cache_key`] gives the key of a [`NormalizedUrl`] (`None`: bypass the cache).
//!
//! ```
//! use edgepurge_url::{normalize, QueryMode};
//! let u = normalize("HTTP://Example.COM:80/a/../b/%7e?x=1#frag").unwrap();
//! assert_eq!(u.as_str(), "http://example.com/b/~?x=1");
//! assert_eq!(u.cache_key("ignore".parse::<QueryMode>().unwrap()), Some("http://example.com/b/~"));
//! assert_eq!(u.cache_key(QueryMode::Bypass), None);
//! ```

#![deny(missing_docs)]

mod check;
mod error;
mod normalize;
mod normalized;
mod query;

pub use error::{Refused, UrlError};
pub use normalized::{NormalizedPrefix, NormalizedUrl};
pub use query::{QueryMode, UnknownQueryMode};

/// The default input (and output) length limit, in bytes.
pub const DEFAULT_MAX_LEN: usize = 8192;

/// Normalisation with a configurable length limit; [`Normalizer::default`] uses
/// [`DEFAULT_MAX_LEN`], as do the free functions.
///
/// ```
/// use edgepurge_url::{Normalizer, UrlError};
/// let n = Normalizer::new().with_max_len(20);
/// assert!(n.normalize("http://a.com/short").is_ok());
/// assert_eq!(n.normalize("http://a.com/far-too-long"), Err(UrlError::TooLong { len: 25, max: 20 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Normalizer {
    max_len: usize,
}

impl Default for Normalizer {
    fn default() -> Self {
        Normalizer { max_len: DEFAULT_MAX_LEN }
    }
}

impl Normalizer {
    /// A normaliser with the default limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same with a limit of `max_len` bytes, applied to the input and to the output.
    pub fn with_max_len(self, max_len: usize) -> Self {
        Normalizer { max_len }
    }

    /// The limit in force, in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Normalises a full URL (see the crate docs).
    pub fn normalize(&self, input: &str) -> Result<NormalizedUrl, UrlError> {
        normalize::url(input, self.max_len)
    }

    /// [`normalize`](Self::normalize) of a string the caller gives up: one already in normal form
    /// is returned as it is, without a copy.
    pub fn normalize_owned(&self, input: String) -> Result<NormalizedUrl, Refused> {
        normalize::url_owned(input, self.max_len)
    }

    /// Normalises a full URL given as bytes, refusing invalid UTF-8 (the length is checked
    /// first, so a huge input costs nothing).
    pub fn normalize_bytes(&self, input: &[u8]) -> Result<NormalizedUrl, UrlError> {
        check::length(input.len(), self.max_len)?;
        self.normalize(check::utf8(input)?)
    }

    /// Normalises a prefix purge target (see "Prefixes" in the crate docs).
    pub fn normalize_prefix(&self, input: &str) -> Result<NormalizedPrefix, UrlError> {
        normalize::prefix(input, self.max_len)
    }

    /// Normalises a bare host for a host purge (see "Hosts" in the crate docs).
    pub fn normalize_host(&self, input: &str) -> Result<String, UrlError> {
        normalize::host(input, self.max_len)
    }
}

/// Normalises a full URL with the default limit.
///
/// ```
/// assert_eq!(edgepurge_url::normalize("https://A.com:443").unwrap().as_str(), "https://a.com/");
/// assert!(edgepurge_url::normalize("https://user@a.com/").is_err());
/// ```
pub fn normalize(input: &str) -> Result<NormalizedUrl, UrlError> {
    Normalizer::default().normalize(input)
}

/// [`normalize`] of a string the caller gives up (no copy when it is already in normal form).
///
/// ```
/// assert_eq!(edgepurge_url::normalize_owned("http://a.com/x".to_owned()).unwrap(), "http://a.com/x");
/// assert_eq!(edgepurge_url::normalize_owned("HTTP://A.com/x".to_owned()).unwrap(), "http://a.com/x");
/// let refused = edgepurge_url::normalize_owned("http://a b/".to_owned()).unwrap_err();
/// assert_eq!(refused.input, "http://a b/");
/// ```
pub fn normalize_owned(input: String) -> Result<NormalizedUrl, Refused> {
    Normalizer::default().normalize_owned(input)
}

/// Normalises a full URL given as bytes with the default limit, refusing invalid UTF-8.
///
/// ```
/// use edgepurge_url::{normalize_bytes, UrlError};
/// assert_eq!(normalize_bytes(b"http://a.com/\xff"), Err(UrlError::InvalidUtf8 { at: 13 }));
/// ```
pub fn normalize_bytes(input: &[u8]) -> Result<NormalizedUrl, UrlError> {
    Normalizer::default().normalize_bytes(input)
}

/// Normalises a prefix purge target with the default limit.
///
/// ```
/// use edgepurge_url::{normalize_prefix, UrlError};
/// assert_eq!(normalize_prefix("http://A.com/img/..").unwrap().as_str(), "http://a.com/img/..");
/// assert_eq!(normalize_prefix("http://a.com"), Err(UrlError::PrefixEndsInAuthority));
/// ```
pub fn normalize_prefix(input: &str) -> Result<NormalizedPrefix, UrlError> {
    Normalizer::default().normalize_prefix(input)
}

/// Normalises a bare host for a host purge with the default limit.
///
/// ```
/// assert_eq!(edgepurge_url::normalize_host("Bücher.Example").unwrap(), "xn--bcher-kva.example");
/// assert!(edgepurge_url::normalize_host("example.com:8080").is_err());
/// ```
pub fn normalize_host(input: &str) -> Result<String, UrlError> {
    Normalizer::default().normalize_host(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_entry_point() {
        assert_eq!(normalize_bytes(b"HTTP://a.com/x").unwrap(), "http://a.com/x");
        assert_eq!(normalize_bytes(b"http://a.com/\xc3"), Err(UrlError::InvalidUtf8 { at: 13 }));
        let n = Normalizer::new().with_max_len(4);
        assert_eq!(n.normalize_bytes(b"\xff\xff\xff\xff\xff"), Err(UrlError::TooLong { len: 5, max: 4 }));
    }

    #[test]
    fn limit_is_configurable() {
        let n = Normalizer::new().with_max_len(13);
        assert_eq!(n.max_len(), 13);
        assert_eq!(Normalizer::new().max_len(), DEFAULT_MAX_LEN);
        assert!(n.normalize_prefix("http://a.com/").is_ok());
        assert!(n.normalize_prefix("http://a.com/x").is_err());
        assert!(n.normalize_host("abcdefghijklmn").is_err());
        let long = format!("http://a.com/{}", "x".repeat(DEFAULT_MAX_LEN));
        assert!(matches!(normalize(&long), Err(UrlError::TooLong { .. })));
    }

    #[test]
    fn the_two_roles_agree() {
        // The control role normalises the purge target, the edge the request URL.
        let purge = normalize("https://Shop.Example:443/cart/./../img/%7elogo.png#x").unwrap();
        let request = normalize("https://shop.example/img/~logo.png").unwrap();
        assert_eq!(purge, request);
        let dir = normalize_prefix("https://SHOP.example/img/").unwrap();
        assert!(dir.is_prefix_of(&request));
        assert_eq!(normalize_host("shop.EXAMPLE").unwrap(), request.host());
    }
}
