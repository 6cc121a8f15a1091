//! Builders shared by the `http_cache` unit tests.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use edgepurge_sdk::CacheDecision;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_cache_semantics::{CacheOptions, CachePolicy};

use super::{prepare_store, CacheConfig, StoreVerdict, StoredResponse};

/// A fixed "now" (2023-11-14T22:13:20Z), whole seconds so HTTP dates round-trip.
pub(crate) fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// `t0() + secs`.
pub(crate) fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

/// An IMF-fixdate.
pub(crate) fn date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// A header map with the pairs appended in order.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

/// A request head.
pub(crate) fn request(method: Method, uri: &str, pairs: &[(&str, &str)]) -> http::request::Parts {
    let (mut parts, ()) = Request::builder().method(method).uri(uri).body(()).unwrap().into_parts();
    parts.headers = headers(pairs);
    parts
}

/// A GET request head.
pub(crate) fn get(uri: &str, pairs: &[(&str, &str)]) -> http::request::Parts {
    request(Method::GET, uri, pairs)
}

/// A response head.
pub(crate) fn response(status: u16, pairs: &[(&str, &str)]) -> http::response::Parts {
    let (mut parts, ()) = Response::builder().status(status).body(()).unwrap().into_parts();
    parts.headers = headers(pairs);
    parts
}

/// A shared-cache policy for a response with these headers.
pub(crate) fn policy_for(req: &http::request::Parts, status: u16, h: &HeaderMap, t: SystemTime) -> CachePolicy {
    let mut resp = response(status, &[]);
    resp.status = StatusCode::from_u16(status).unwrap();
    resp.headers = h.clone();
    CachePolicy::new_options(req, &resp, t, CacheOptions { shared: true, ..CacheOptions::default() })
}

/// Runs `prepare_store` with no policy override and the default configuration.
pub(crate) fn verdict(req: &http::request::Parts, resp: &http::response::Parts) -> StoreVerdict {
    prepare_store(req, resp, &CacheDecision::default(), &CacheConfig::default(), t0())
}

/// Stores a GET of `uri` answered 200 with `pairs` and `body` at `t0()`, under `cfg`.
pub(crate) fn stored_with(
    req: &http::request::Parts,
    pairs: &[(&str, &str)],
    body: &'static [u8],
    decision: &CacheDecision,
    cfg: &CacheConfig,
) -> StoredResponse {
    match prepare_store(req, &response(200, pairs), decision, cfg, t0()) {
        StoreVerdict::Store(plan) => plan.into_stored(Bytes::from_static(body)),
        StoreVerdict::DoNotStore(reason) => panic!("not stored: {reason}"),
    }
}

/// Stores a 200 with `pairs` for a plain GET of `http://a.example/x`.
pub(crate) fn stored(pairs: &[(&str, &str)], body: &'static [u8]) -> StoredResponse {
    stored_with(&get("http://a.example/x", &[]), pairs, body, &CacheDecision::default(), &CacheConfig::default())
}
