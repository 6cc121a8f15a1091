//! Header plumbing: hop-by-hop removal, the `Vary` secondary key, `Cache-Control` directives
//! and surrogate-key tags.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The hop-by-hop headers removed from every relayed or stored message (RFC 9110 §7.6.1), besides
/// the ones a `Connection` header names.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Removes `Connection` and every header it names, and the fixed hop-by-hop headers
/// (`Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
/// `Proxy-Authenticate`, `Proxy-Authorization`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The secondary cache key of a request for a response with the given `Vary` values: the
/// `(header name, request value)` pairs of the nominated headers, names lower-cased and sorted,
/// duplicates dropped, values trimmed (several lines of one header joined by `", "`, list items
/// trimmed). A nominated header absent from the request has no pair, so "absent" and "empty"
/// differ. `None` for `Vary: *` (or an unreadable `Vary`): such a response matches no request.
///
/// Pass `resp.headers.get_all(VARY)` (or the stored response's). No `Vary` gives `Some(vec![])`.
pub fn vary_key<'a>(
    vary: impl IntoIterator<Item = &'a HeaderValue>,
    request_headers: &HeaderMap,
) -> Option<Vec<(String, String)>> {
    let mut names: Vec<String> = Vec::new();
    for value in vary {
        let value = value.to_str().ok()?;
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    let key = names
        .into_iter()
        .filter_map(|name| {
            let mut values = request_headers.get_all(name.as_str()).iter().peekable();
            values.peek()?;
            let joined = values
                .flat_map(|v| {
                    String::from_utf8_lossy(v.as_bytes()).split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
                .join(", ");
            Some((name, joined))
        })
        .collect();
    Some(key)
}

/// The `Cache-Control` directives of one message (every `Cache-Control` line combined), read
/// with the SDK's one directive parser ([`edgepurge_sdk::CacheControl`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Directives(edgepurge_sdk::CacheControl);

impl Directives {
    /// Parses every `Cache-Control` value in `headers`.
    pub(crate) fn of(headers: &HeaderMap) -> Directives {
        let values = headers.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok());
        Directives(edgepurge_sdk::CacheControl::from_values(values))
    }

    /// Whether the directive is present (with or without an argument).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.has(name)
    }

    /// Whether any directive is present at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A delta-seconds directive, read strictly (conflicting or unparsable → `Some(0)`).
    pub(crate) fn seconds(&self, name: &str) -> Option<u64> {
        self.0.strict_seconds(name).map(u64::from)
    }
}

/// The purge tags of a response: `Surrogate-Key` (space-separated) and `Cache-Tag`
/// (comma-separated) values, then `extra`, without empties or duplicates, in first-seen order.
pub(crate) fn response_tags(headers: &HeaderMap, extra: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let mut push = |t: &str| {
        let t = t.trim();
        if !t.is_empty() && !tags.iter().any(|have| have == t) {
            tags.push(t.to_owned());
        }
    };
    for v in headers.get_all("surrogate-key").iter().filter_map(|v| v.to_str().ok()) {
        v.split_ascii_whitespace().for_each(&mut push);
    }
    for v in headers.get_all("cache-tag").iter().filter_map(|v| v.to_str().ok()) {
        v.split(',').for_each(&mut push);
    }
    extra.iter().for_each(|t| push(t));
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_cache::test_support::headers;

    #[test]
    fn strips_fixed_and_connection_named_headers() {
        let mut h = headers(&[
            ("connection", "close, X-Trace"),
            ("x-trace", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic eA=="),
            ("content-type", "text/plain"),
            ("etag", "\"a\""),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "etag"]);
    }

    #[test]
    fn vary_key_normalises_names_and_values() {
        let req = headers(&[("accept-encoding", "  gzip,br "), ("accept-language", "en")]);
        let vary = HeaderValue::from_static("Accept-Language, accept-encoding, Accept-Encoding");
        let key = vary_key([&vary], &req).unwrap();
        assert_eq!(key, vec![("accept-encoding".into(), "gzip, br".into()), ("accept-language".into(), "en".into())]);
    }

    #[test]
    fn vary_key_absent_differs_from_empty_and_star_is_none() {
        let vary = HeaderValue::from_static("X-Device");
        let absent = vary_key([&vary], &HeaderMap::new()).unwrap();
        let empty = vary_key([&vary], &headers(&[("x-device", "")])).unwrap();
        assert_ne!(absent, empty);
        let star = HeaderValue::from_static("accept, *");
        assert_eq!(vary_key([&star], &HeaderMap::new()), None);
        assert_eq!(vary_key([], &HeaderMap::new()), Some(vec![]));
        let odd = HeaderValue::from_static("a b, {x}");
        assert_eq!(vary_key([&odd], &headers(&[("a", "1")])), Some(vec![]));
    }

    #[test]
    fn directives_parse_quotes_case_and_conflicts() {
        let h = headers(&[("cache-control", "Public, no-cache=\"set-cookie, x\""), ("cache-control", "MAX-AGE=60")]);
        let d = Directives::of(&h);
        assert!(d.has("public") && d.has("no-cache"));
        assert_eq!(d.seconds("max-age"), Some(60));
        let conflict = Directives::of(&headers(&[("cache-control", "max-age=60, max-age=120")]));
        assert_eq!(conflict.seconds("max-age"), Some(0));
        let bad = Directives::of(&headers(&[("cache-control", "s-maxage=soon")]));
        assert_eq!(bad.seconds("s-maxage"), Some(0));
        assert_eq!(bad.seconds("max-age"), None);
    }

    #[test]
    fn tags_from_both_headers_and_policy() {
        let h = headers(&[("surrogate-key", "a  b"), ("cache-tag", "b, c ,"), ("surrogate-key", "d")]);
        assert_eq!(response_tags(&h, &["e".into(), "a".into()]), ["a", "b", "d", "c", "e"]);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn vary_key_ignores_header_order(
                pairs in proptest::collection::btree_map("[a-d]{1,3}", "[ -~]{0,8}", 0..6),
                names in proptest::collection::vec("[a-dA-D]{1,3}", 0..6),
                seed in any::<u64>(),
            ) {
                let forward: Vec<(String, String)> = pairs.into_iter().collect();
                let mut shuffled = forward.clone();
                let n = shuffled.len().max(1) as u64;
                shuffled.rotate_left((seed % n) as usize);
                shuffled.reverse();
                let build = |list: &[(String, String)]| {
                    let mut h = HeaderMap::new();
                    for (k, v) in list {
                        h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
                    }
                    h
                };
                let vary = HeaderValue::from_str(&names.join(", ")).unwrap();
                let mut rev_names = names.clone();
                rev_names.reverse();
                let vary_rev = HeaderValue::from_str(&rev_names.join(",")).unwrap();
                let a = vary_key([&vary], &build(&forward));
                let b = vary_key([&vary_rev], &build(&shuffled));
                prop_assert_eq!(a, b);
            }
        }
    }
}
