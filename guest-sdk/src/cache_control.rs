//! Reading `Cache-Control` in a policy.
//!
//! The host applies RFC 9111 with a full library; a policy usually only needs to ask "did the
//! origin say how long?" or "is this private?", which is what this small reader answers.
//! Directive names are case-insensitive; values may be quoted; repeated headers are combined.

use crate::types::{header_values, Header};

/// The directives of one or more `Cache-Control` header values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheControl {
    directives: Vec<(String, Option<String>)>,
}

impl CacheControl {
    /// Parses one header value, e.g. `public, max-age=180`.
    ///
    /// ```
    /// use edgepurge_sdk::CacheControl;
    /// let cc = CacheControl::parse(r#"Public, max-age=180, no-cache="set-cookie""#);
    /// assert!(cc.has("public"));
    /// assert_eq!(cc.max_age(), Some(180));
    /// assert_eq!(cc.value("no-cache"), Some("set-cookie"));
    /// ```
    pub fn parse(value: &str) -> CacheControl {
        let mut cc = CacheControl::default();
        cc.add(value);
        cc
    }

    /// Combines every `Cache-Control` header in `headers`.
    pub fn from_headers(headers: &[Header]) -> CacheControl {
        CacheControl::from_values(header_values(headers, "cache-control"))
    }

    /// Combines several `Cache-Control` values (e.g. every header line of one message).
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a str>) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in values {
            cc.add(value);
        }
        cc
    }

    /// Whether no directive is present.
    pub fn is_empty(&self) -> bool {
        self.directives.is_empty()
    }

    /// A delta-seconds directive read strictly, as a cache must (RFC 9111 §4.2.1): repeated
    /// with different arguments, or with an unparsable one, it is invalid and reads as `0`
    /// (stale); values beyond 2^31 are capped (§1.2.2). `None` when absent.
    ///
    /// ```
    /// use edgepurge_sdk::CacheControl;
    /// assert_eq!(CacheControl::parse("max-age=5, max-age=5").strict_seconds("max-age"), Some(5));
    /// assert_eq!(CacheControl::parse("max-age=5, max-age=6").strict_seconds("max-age"), Some(0));
    /// assert_eq!(CacheControl::parse("max-age=x").strict_seconds("max-age"), Some(0));
    /// ```
    pub fn strict_seconds(&self, name: &str) -> Option<u32> {
        let mut found: Option<&Option<String>> = None;
        for (n, arg) in &self.directives {
            if n != name {
                continue;
            }
            match found {
                Some(prev) if prev != arg => return Some(0),
                _ => found = Some(arg),
            }
        }
        let arg = found?.as_deref().unwrap_or("");
        Some(arg.parse::<u64>().map(|s| s.min(1 << 31) as u32).unwrap_or(0))
    }

    fn add(&mut self, value: &str) {
        for part in split_outside_quotes(value) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, arg) = match part.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"').to_owned())),
                None => (part, None),
            };
            self.directives.push((name.to_ascii_lowercase(), arg));
        }
    }

    /// Whether the directive `name` (lower-case) is present.
    pub fn has(&self, name: &str) -> bool {
        self.directives.iter().any(|(n, _)| n == name)
    }

    /// The argument of the first `name` directive, if it has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.directives.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    /// A delta-seconds argument; an unparsable one counts as absent.
    pub fn seconds(&self, name: &str) -> Option<u32> {
        let v = self.value(name)?;
        // RFC 9111 §1.2.2: values too large to represent are treated as 2^31.
        v.parse::<u64>().ok().map(|s| s.min(1 << 31) as u32)
    }

    /// `max-age`.
    pub fn max_age(&self) -> Option<u32> {
        self.seconds("max-age")
    }

    /// `s-maxage` (shared caches only).
    pub fn s_maxage(&self) -> Option<u32> {
        self.seconds("s-maxage")
    }

    /// `stale-while-revalidate` (RFC 5861).
    pub fn stale_while_revalidate(&self) -> Option<u32> {
        self.seconds("stale-while-revalidate")
    }

    /// `stale-if-error` (RFC 5861).
    pub fn stale_if_error(&self) -> Option<u32> {
        self.seconds("stale-if-error")
    }

    /// `no-store`, `private` or `no-cache` without field names: a shared cache must not
    /// serve this response without asking origin.
    pub fn forbids_shared_reuse(&self) -> bool {
        self.has("no-store")
            || (self.has("private") && self.value("private").is_none())
            || (self.has("no-cache") && self.value("no-cache").is_none())
    }
}

/// Whether the response states its freshness itself (`s-maxage`, `max-age` or `Expires`), so
/// no heuristic or default TTL applies (RFC 9111 §4.2.1).
pub fn has_explicit_freshness(headers: &[Header]) -> bool {
    let cc = CacheControl::from_headers(headers);
    cc.s_maxage().is_some() || cc.max_age().is_some() || header_values(headers, "expires").next().is_some()
}

fn split_outside_quotes(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_common_responses() {
        let cc = CacheControl::parse("public, max-age=180, stale-while-revalidate=30");
        assert_eq!((cc.max_age(), cc.stale_while_revalidate()), (Some(180), Some(30)));
        assert!(!cc.forbids_shared_reuse());
        assert!(CacheControl::parse("private").forbids_shared_reuse());
        assert!(!CacheControl::parse("private=\"x, y\"").forbids_shared_reuse());
        assert!(CacheControl::parse("NO-STORE").forbids_shared_reuse());
        assert_eq!(CacheControl::parse("max-age=abc").max_age(), None);
        assert_eq!(CacheControl::parse("max-age=99999999999").max_age(), Some(1 << 31));
    }

    #[test]
    fn freshness_comes_from_any_source() {
        let h = |n: &str, v: &str| vec![Header::new(n, v)];
        assert!(has_explicit_freshness(&h("Cache-Control", "s-maxage=5")));
        assert!(has_explicit_freshness(&h("Expires", "Thu, 01 Dec 1994 16:00:00 GMT")));
        assert!(!has_explicit_freshness(&h("Cache-Control", "public")));
    }

    proptest! {
        /// Any well-formed list of directives reads back exactly.
        #[test]
        fn parses_what_it_is_given(dirs in proptest::collection::vec(("[a-z][a-z-]{0,12}", proptest::option::of(0u32..1_000_000)), 0..8)) {
            let text = dirs.iter().map(|(n, v)| match v { Some(v) => format!("{n}={v}"), None => n.clone() }).collect::<Vec<_>>().join(", ");
            let cc = CacheControl::parse(&text);
            for (n, v) in &dirs {
                prop_assert!(cc.has(n));
                let first = dirs.iter().find(|(m, _)| m == n).unwrap().1;
                prop_assert_eq!(cc.seconds(n), first);
                let _ = v;
            }
        }

        /// Arbitrary input never panics.
        #[test]
        fn never_panics(text in ".*") {
            let _ = CacheControl::parse(&text).max_age();
        }
    }
}
