//! [`QueryMode`]: the three query-string modes of S3.5 and the cache key each gives.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::NormalizedUrl;

/// How the query string takes part in the cache key (S3.5).
///
/// | mode | `https://a.com/x` | `https://a.com/x?b=1` |
/// |---|---|---|
/// | `ignore` | `https://a.com/x` | `https://a.com/x` |
/// | `unique` (default) | `https://a.com/x` | `https://a.com/x?b=1` |
/// | `bypass` | `https://a.com/x` | none: not cached |
///
/// The default is `unique`: it never makes two different URLs share an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QueryMode {
    /// Ignore the query string: every query of a path shares the path's entry.
    Ignore,
    /// Cache every unique URL: the query (as given, in its order) is part of the key.
    #[default]
    Unique,
    /// Bypass the cache for URLs with a query string; cache the others.
    Bypass,
}

impl QueryMode {
    /// Every mode, in declaration order.
    pub const ALL: [QueryMode; 3] = [QueryMode::Ignore, QueryMode::Unique, QueryMode::Bypass];

    /// The cache key of `url` under this mode, borrowed from `url`; `None` means bypass the
    /// cache (only `Bypass` with a query).
    ///
    /// ```
    /// use edgepurge_url::{normalize, QueryMode};
    /// let u = normalize("https://a.com/x?b=1#f").unwrap();
    /// assert_eq!(QueryMode::Ignore.cache_key(&u), Some("https://a.com/x"));
    /// assert_eq!(QueryMode::Unique.cache_key(&u), Some("https://a.com/x?b=1"));
    /// assert_eq!(QueryMode::Bypass.cache_key(&u), None);
    /// ```
    pub fn cache_key(self, url: &NormalizedUrl) -> Option<&str> {
        match self {
            QueryMode::Ignore => Some(url.without_query()),
            QueryMode::Unique => Some(url.as_str()),
            QueryMode::Bypass if url.query().is_some() => None,
            QueryMode::Bypass => Some(url.as_str()),
        }
    }

    /// The mode's name: `ignore`, `unique` or `bypass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryMode::Ignore => "ignore",
            QueryMode::Unique => "unique",
            QueryMode::Bypass => "bypass",
        }
    }
}

impl fmt::Display for QueryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A query mode name that is none of `ignore`, `unique`, `bypass`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown query mode `{0}`: use `ignore`, `unique` or `bypass`")]
pub struct UnknownQueryMode(pub String);

impl FromStr for QueryMode {
    type Err = UnknownQueryMode;

    /// Parses `ignore`, `unique` or `bypass` (exactly, lower-case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QueryMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownQueryMode(s.chars().take(32).collect()))
    }
}

/// Serialises as the mode's name.
#[cfg(feature = "serde")]
impl serde::Serialize for QueryMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Deserialises from the mode's name.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for QueryMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_per_mode() {
        let plain = crate::normalize("http://a.com/x").unwrap();
        let query = crate::normalize("http://a.com/x?b=2&a=1").unwrap();
        let empty = crate::normalize("http://a.com/x?").unwrap();
        for mode in QueryMode::ALL {
            assert_eq!(mode.cache_key(&plain), Some("http://a.com/x"), "{mode}");
            assert_eq!(mode.cache_key(&empty), Some("http://a.com/x"), "{mode}");
        }
        assert_eq!(QueryMode::Ignore.cache_key(&query), Some("http://a.com/x"));
        assert_eq!(query.cache_key(QueryMode::Unique), Some("http://a.com/x?b=2&a=1"));
        assert_eq!(query.cache_key(QueryMode::Bypass), None);
    }

    #[test]
    fn names_round_trip() {
        for mode in QueryMode::ALL {
            assert_eq!(mode.to_string().parse::<QueryMode>(), Ok(mode));
        }
        assert_eq!(QueryMode::default(), QueryMode::Unique);
        let err = "Ignore".parse::<QueryMode>().unwrap_err();
        assert_eq!(err.to_string(), "unknown query mode `Ignore`: use `ignore`, `unique` or `bypass`");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_names() {
        assert_eq!(serde_json::to_string(&QueryMode::Bypass).unwrap(), "\"bypass\"");
        assert_eq!(serde_json::from_str::<QueryMode>("\"ignore\"").unwrap(), QueryMode::Ignore);
        assert!(serde_json::from_str::<QueryMode>("\"all\"").is_err());
    }
}
