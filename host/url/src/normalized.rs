//! The output types: [`NormalizedUrl`] (a purge target or cache key) and [`NormalizedPrefix`]
//! (a directory/prefix purge target). Both can only be built by normalising, so holding one
//! means holding the normative form; they compare, hash and order as their strings.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::{QueryMode, UrlError};

/// An absolute `http`/`https` URL in the normative form of this crate (see the crate docs):
/// `scheme://host[:port]path[?query]`, ASCII only.
///
/// ```
/// let u = edgepurge_url::normalize("HTTPS://Example.COM:443/a/./b/%7euser?x=1#top").unwrap();
/// assert_eq!(u.as_str(), "https://example.com/a/b/~user?x=1");
/// assert_eq!((u.scheme(), u.host(), u.port()), ("https", "example.com", None));
/// assert_eq!((u.path(), u.query()), ("/a/b/~user", Some("x=1")));
/// ```
#[derive(Clone)]
pub struct NormalizedUrl {
    s: String,
    scheme_end: usize,
    host_end: usize,
    port: Option<u16>,
    path_start: usize,
    /// Index of the `?`, when there is a query.
    query_at: Option<usize>,
}

/// Where the parts of a normalised URL string are (byte offsets), for [`NormalizedUrl::from_layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub scheme_end: usize,
    pub host_end: usize,
    pub port: Option<u16>,
    pub path_start: usize,
    pub query_at: Option<usize>,
}

impl NormalizedUrl {
    /// Takes `s`, already in normal form with its parts at `layout`, as it is.
    pub(crate) fn from_layout(s: String, layout: Layout) -> Self {
        let Layout { scheme_end, host_end, port, path_start, query_at } = layout;
        NormalizedUrl { s, scheme_end, host_end, port, path_start, query_at }
    }

    /// Assembles the string from already-normalised parts.
    pub(crate) fn from_parts(scheme: &str, host: &str, port: Option<u16>, path: &str, query: Option<&str>) -> Self {
        let mut s = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
        s.push_str(scheme);
        let scheme_end = s.len();
        s.push_str("://");
        s.push_str(host);
        let host_end = s.len();
        if let Some(port) = port {
            s.push(':');
            s.push_str(&port.to_string());
        }
        let path_start = s.len();
        s.push_str(path);
        let query_at = query.map(|q| {
            let at = s.len();
            s.push('?');
            s.push_str(q);
            at
        });
        NormalizedUrl { s, scheme_end, host_end, port, path_start, query_at }
    }

    /// Normalises `s` with the default limit; the same as [`crate::normalize`].
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        crate::normalize(s)
    }

    /// The whole normalised URL.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    /// The whole normalised URL, as an owned string.
    pub fn into_string(self) -> String {
        self.s
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.s[..self.scheme_end]
    }

    /// The host: lower-case, IDNA (`xn--`) form for international names, IPv4 in dotted
    /// decimal, IPv6 in brackets in its shortest form. Never empty; no port.
    pub fn host(&self) -> &str {
        &self.s[self.scheme_end + 3..self.host_end]
    }

    /// The port, when it is not the scheme's default (80 for http, 443 for https).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The path: starts with `/`, no dot-segments, escapes normalised.
    pub fn path(&self) -> &str {
        &self.s[self.path_start..self.query_at.unwrap_or(self.s.len())]
    }

    /// The query without `?`, as given (never `Some("")`: an empty query is dropped).
    pub fn query(&self) -> Option<&str> {
        self.query_at.map(|at| &self.s[at + 1..])
    }

    /// The URL without `?query`: `scheme://host[:port]path`.
    pub fn without_query(&self) -> &str {
        &self.s[..self.query_at.unwrap_or(self.s.len())]
    }

    /// The cache key under `mode`; `None` means bypass the cache. See [`QueryMode::cache_key`].
    pub fn cache_key(&self, mode: QueryMode) -> Option<&str> {
        mode.cache_key(self)
    }
}

/// A directory or prefix purge target: a [`NormalizedUrl`] prefix, normalised by
/// [`crate::normalize_prefix`]. It matches every normalised URL that starts with it.
///
/// ```
/// let p = edgepurge_url::normalize_prefix("HTTPS://Example.com/img/./%7eicons/").unwrap();
/// assert_eq!(p.as_str(), "https://example.com/img/~icons/");
/// assert!(p.is_prefix_of(&edgepurge_url::normalize("https://example.com/img/~icons/a.png").unwrap()));
/// ```
#[derive(Clone)]
pub struct NormalizedPrefix {
    s: String,
    scheme_end: usize,
    host_end: usize,
}

impl NormalizedPrefix {
    /// A prefix made of a normalised head (`scheme://host[:port]/...`) and a normalised tail.
    pub(crate) fn new(head: &NormalizedUrl, s: String) -> Self {
        debug_assert!(s.starts_with(head.without_query()));
        NormalizedPrefix { s, scheme_end: head.scheme_end, host_end: head.host_end }
    }

    /// The whole prefix.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    /// The whole prefix, as an owned string.
    pub fn into_string(self) -> String {
        self.s
    }

    /// The host the prefix is confined to (normalised like [`NormalizedUrl::host`]).
    pub fn host(&self) -> &str {
        &self.s[self.scheme_end + 3..self.host_end]
    }

    /// Whether `url` falls under this prefix (plain string prefix of the normalised forms).
    pub fn is_prefix_of(&self, url: &NormalizedUrl) -> bool {
        url.as_str().starts_with(&self.s)
    }
}

/// The shared trait implementations: both types behave as their string.
macro_rules! string_like {
    ($t:ty, $parse:path) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.s)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($t)).field(&self.s).finish()
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.s
            }
        }
        impl Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.s
            }
        }
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.s == other.s
            }
        }
        impl Eq for $t {}
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.s == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.s == *other
            }
        }
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.s.hash(state)
            }
        }
        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $t {
            fn cmp(&self, other: &Self) -> Ordering {
                self.s.cmp(&other.s)
            }
        }
        impl FromStr for $t {
            type Err = UrlError;
            fn from_str(s: &str) -> Result<Self, UrlError> {
                $parse(s)
            }
        }
        impl TryFrom<&str> for $t {
            type Error = UrlError;
            fn try_from(s: &str) -> Result<Self, UrlError> {
                $parse(s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.s
            }
        }
        /// Serialises as the string.
        #[cfg(feature = "serde")]
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.s)
            }
        }
        /// Deserialises a string and normalises it (with the default limit), so a deserialised
        /// value is always in normative form; a string that does not normalise is an error.
        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                $parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_like!(NormalizedUrl, crate::normalize);
string_like!(NormalizedPrefix, crate::normalize_prefix);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn accessors() {
        let u = NormalizedUrl::parse("http://[::1]:8080/a?b=c").unwrap();
        assert_eq!((u.scheme(), u.host(), u.port()), ("http", "[::1]", Some(8080)));
        assert_eq!((u.path(), u.query(), u.without_query()), ("/a", Some("b=c"), "http://[::1]:8080/a"));
        let u = NormalizedUrl::parse("https://a.com").unwrap();
        assert_eq!((u.path(), u.query(), u.without_query()), ("/", None, "https://a.com/"));
    }

    #[test]
    fn string_like_traits() {
        let a: NormalizedUrl = "HTTP://A.com/x".parse().unwrap();
        let b = NormalizedUrl::try_from("http://a.com:80/x#f").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, "http://a.com/x");
        assert_eq!(a.to_string(), "http://a.com/x");
        assert_eq!(format!("{a:?}"), "NormalizedUrl(\"http://a.com/x\")");
        assert_eq!(a.as_ref(), "http://a.com/x");
        let c = NormalizedUrl::parse("http://a.com/y").unwrap();
        assert!(a < c);
        let mut m = HashMap::new();
        m.insert(a, 1);
        assert_eq!(m.get("http://a.com/x"), Some(&1));
        assert_eq!(String::from(c), "http://a.com/y");
    }

    #[test]
    fn prefix_host_and_matching() {
        let p: NormalizedPrefix = "https://EXAMPLE.com:8443/img/".parse().unwrap();
        assert_eq!(p.host(), "example.com");
        assert!(p.is_prefix_of(&"https://example.com:8443/img/a.png".parse().unwrap()));
        assert!(!p.is_prefix_of(&"https://example.com/img/a.png".parse().unwrap()));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip_normalises() {
        let u: NormalizedUrl = serde_json::from_str("\"HTTP://A.com:80/%7e\"").unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"http://a.com/~\"");
        assert!(serde_json::from_str::<NormalizedUrl>("\"ftp://a/\"").is_err());
        let p: NormalizedPrefix = serde_json::from_str("\"http://a.com/x%7\"").unwrap();
        assert_eq!(p.as_str(), "http://a.com/x%7");
    }
}
