//! Serving a stored response: fresh, stale-while-revalidate, revalidate, or another variant
//! ([`evaluate`]); stale-if-error ([`stale_if_error_allowed`]); a client's own conditional
//! request ([`client_not_modified`]).

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};
use http::Method;

use super::headers::{vary_key, Directives};
use super::store::{age_value, StoredResponse};
use super::CacheConfig;

/// What to do with a stored response for a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// Serve it: these are the response headers to send (stored headers with the current `Age`).
    Fresh {
        /// Headers to send.
        headers: HeaderMap,
    },
    /// Stale but within `stale-while-revalidate`: serve it now and refresh it in the background
    /// (once per object).
    StaleWhileRevalidate {
        /// Headers to send.
        headers: HeaderMap,
    },
    /// Ask the origin first, adding these headers to the origin request: `If-None-Match` from
    /// the stored `ETag` and `If-Modified-Since` from its `Last-Modified` (none without
    /// validators). A `304` goes to [`merge_304`](super::merge_304); on an origin error the
    /// stored copy may still be served when [`stale_if_error_allowed`].
    MustRevalidate {
        /// Validators for the origin request.
        conditional_headers: HeaderMap,
    },
    /// The stored variant does not match the request's `Vary` headers.
    VaryMismatch,
}

/// Evaluates `stored` for a GET or HEAD request `req` at `now`.
///
/// A `soft_purged` object is never fresh: it is served under `stale-while-revalidate` if its
/// staleness (zero if it was purged while fresh) is within the window, otherwise revalidated.
/// `must-revalidate`, `proxy-revalidate` and `no-cache` already closed the stale windows at
/// store time. With `cfg.honor_client_cache_control`, the request's `no-cache` (or
/// `Pragma: no-cache` without `Cache-Control`), `max-age` (0 always revalidates) and `min-fresh`
/// force a revalidation; otherwise the request's `Cache-Control` is ignored (S3.1).
pub fn evaluate(
    stored: &StoredResponse,
    req: &http::request::Parts,
    soft_purged: bool,
    cfg: &CacheConfig,
    now: SystemTime,
) -> Evaluation {
    if vary_key(stored.headers.get_all(header::VARY), &req.headers).as_ref() != Some(&stored.vary) {
        return Evaluation::VaryMismatch;
    }
    let age = stored.age(now);
    if cfg.honor_client_cache_control && client_requires_validation(stored, &req.headers, age) {
        return Evaluation::MustRevalidate { conditional_headers: conditional_headers(stored) };
    }
    if !soft_purged && stored.is_fresh(now) {
        return Evaluation::Fresh { headers: served_headers(stored, age) };
    }
    let staleness = stored.staleness(now);
    if !stored.stale_while_revalidate.is_zero() && staleness < stored.stale_while_revalidate {
        return Evaluation::StaleWhileRevalidate { headers: served_headers(stored, age) };
    }
    Evaluation::MustRevalidate { conditional_headers: conditional_headers(stored) }
}

/// Whether `stored` may answer a request whose revalidation failed (origin error, timeout, or a
/// `5xx`) at `now`: its staleness (zero if it was only soft-purged) is within a non-zero
/// `stale-if-error` window (RFC 5861 §4). Use [`StoredResponse::age`] for the `Age` header.
pub fn stale_if_error_allowed(stored: &StoredResponse, now: SystemTime) -> bool {
    !stored.stale_if_error.is_zero() && stored.staleness(now) <= stored.stale_if_error
}

/// Whether a client's conditional GET/HEAD can be answered `304 Not Modified` from the
/// `response_headers` about to be sent (RFC 9110 §13.1.2–13.1.3, §13.2.2): `If-None-Match`
/// (weak comparison, `*` matches) decides when present; otherwise `If-Modified-Since` at or after
/// `Last-Modified`. Only meaningful for a `200` response.
pub fn client_not_modified(req: &http::request::Parts, response_headers: &HeaderMap) -> bool {
    let conditional =
        req.headers.contains_key(header::IF_NONE_MATCH) || req.headers.contains_key(header::IF_MODIFIED_SINCE);
    if !conditional || (req.method != Method::GET && req.method != Method::HEAD) {
        return false;
    }
    let inm: Vec<&str> = req
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if !inm.is_empty() {
        let Some(etag) = response_headers.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return inm.contains(&"*");
        };
        let etag = etag.trim().trim_start_matches("W/");
        return inm.iter().any(|t| *t == "*" || t.trim_start_matches("W/") == etag);
    }
    let date = |h: &HeaderMap, name| {
        h.get(name).and_then(|v: &http::HeaderValue| v.to_str().ok()).and_then(|v| httpdate::parse_http_date(v).ok())
    };
    match (date(&req.headers, header::IF_MODIFIED_SINCE), date(response_headers, header::LAST_MODIFIED)) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

fn client_requires_validation(stored: &StoredResponse, req_headers: &HeaderMap, age: Duration) -> bool {
    let cc = Directives::of(req_headers);
    if cc.is_empty() {
        let pragma = req_headers.get_all(header::PRAGMA).iter().filter_map(|v| v.to_str().ok());
        return pragma.flat_map(|v| v.split(',')).any(|d| d.trim().eq_ignore_ascii_case("no-cache"));
    }
    if cc.has("no-cache") {
        return true;
    }
    if let Some(max_age) = cc.seconds("max-age") {
        if max_age == 0 || age.as_secs() > max_age {
            return true;
        }
    }
    if let Some(min_fresh) = cc.seconds("min-fresh") {
        if stored.freshness_lifetime.saturating_sub(age) < Duration::from_secs(min_fresh) {
            return true;
        }
    }
    false
}

fn served_headers(stored: &StoredResponse, age: Duration) -> HeaderMap {
    let mut headers = stored.headers.clone();
    headers.insert(header::AGE, age_value(age));
    headers
}

/// The validators of a stored response as conditional request headers (`If-None-Match`
/// from `ETag`, `If-Modified-Since` from `Last-Modified`).
pub fn conditional_headers(stored: &StoredResponse) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(etag) = stored.headers.get(header::ETAG) {
        out.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = stored.headers.get(header::LAST_MODIFIED) {
        out.insert(header::IF_MODIFIED_SINCE, modified.clone());
    }
    out
}
