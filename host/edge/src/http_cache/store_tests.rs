//! Tests of `prepare_store` and `merge_304`: one per storability rule, override and merge case.

use std::time::Duration;

use bytes::Bytes;
use edgepurge_sdk::{CacheDecision, StoreChoice};
use http::header;
use http::Method;

use super::test_support::{at, date, get, request, response, stored, stored_with, t0, verdict};
use super::{merge_304, prepare_store, CacheConfig, StorePlan, StoreVerdict};

fn plan(v: StoreVerdict) -> StorePlan {
    match v {
        StoreVerdict::Store(plan) => *plan,
        StoreVerdict::DoNotStore(reason) => panic!("not stored: {reason}"),
    }
}

fn reason(v: StoreVerdict) -> &'static str {
    match v {
        StoreVerdict::Store(_) => panic!("stored"),
        StoreVerdict::DoNotStore(reason) => reason,
    }
}

fn with(
    decision: CacheDecision,
    cfg: &CacheConfig,
    req: &http::request::Parts,
    pairs: &[(&str, &str)],
) -> StoreVerdict {
    prepare_store(req, &response(200, pairs), &decision, cfg, t0())
}

fn store_choice(store: StoreChoice) -> CacheDecision {
    CacheDecision { store, ..CacheDecision::default() }
}

const URL: &str = "http://a.example/x";

#[test]
fn explicit_freshness_sets_the_ttl() {
    let p = plan(verdict(&get(URL, &[]), &response(200, &[("cache-control", "public, max-age=120")])));
    assert_eq!(p.ttl, Duration::from_secs(120));
    let p = plan(verdict(&get(URL, &[]), &response(200, &[("cache-control", "max-age=120"), ("age", "20")])));
    assert_eq!((p.ttl, p.freshness_lifetime), (Duration::from_secs(100), Duration::from_secs(120)));
    let expires = date(at(300));
    let now = date(t0());
    let p = plan(verdict(&get(URL, &[]), &response(200, &[("date", &now), ("expires", &expires)])));
    assert_eq!(p.ttl, Duration::from_secs(300));
}

#[test]
fn only_get_is_stored() {
    for m in [Method::HEAD, Method::POST, Method::PUT] {
        let v = verdict(&request(m, URL, &[]), &response(200, &[("cache-control", "max-age=60")]));
        assert_eq!(reason(v), "method");
    }
}

#[test]
fn no_store_is_never_stored_even_when_the_policy_says_store() {
    assert_eq!(
        reason(verdict(&get(URL, &[]), &response(200, &[("cache-control", "no-store, max-age=60")]))),
        "no-store"
    );
    let forced = with(
        store_choice(StoreChoice::Store),
        &CacheConfig::default(),
        &get(URL, &[]),
        &[("cache-control", "no-store")],
    );
    assert_eq!(reason(forced), "no-store");
}

#[test]
fn client_no_store_counts_only_when_client_cache_control_is_honoured() {
    let req = get(URL, &[("cache-control", "no-store")]);
    let pairs = [("cache-control", "max-age=60")];
    assert!(matches!(with(CacheDecision::default(), &CacheConfig::default(), &req, &pairs), StoreVerdict::Store(_)));
    let honour = CacheConfig { honor_client_cache_control: true, ..CacheConfig::default() };
    assert_eq!(reason(with(CacheDecision::default(), &honour, &req, &pairs)), "no-store");
}

#[test]
fn private_is_not_stored_unless_the_policy_forces_it() {
    let pairs = [("cache-control", "private, max-age=60")];
    assert_eq!(reason(verdict(&get(URL, &[]), &response(200, &pairs))), "private");
    let p = plan(with(store_choice(StoreChoice::Store), &CacheConfig::default(), &get(URL, &[]), &pairs));
    assert_eq!(p.ttl, Duration::from_secs(60));
}

#[test]
fn authorization_needs_public_must_revalidate_or_s_maxage() {
    let req = get(URL, &[("authorization", "Bearer t")]);
    assert_eq!(reason(verdict(&req, &response(200, &[("cache-control", "max-age=60")]))), "authorization");
    let forced =
        with(store_choice(StoreChoice::Store), &CacheConfig::default(), &req, &[("cache-control", "max-age=60")]);
    assert_eq!(reason(forced), "authorization");
    for cc in ["public, max-age=60", "must-revalidate, max-age=60", "s-maxage=60"] {
        assert!(matches!(verdict(&req, &response(200, &[("cache-control", cc)])), StoreVerdict::Store(_)), "{cc}");
    }
}

#[test]
fn vary_star_is_never_stored() {
    let forced =
        with(store_choice(StoreChoice::Store), &CacheConfig::default(), &get(URL, &[]), &[("vary", "accept, *")]);
    assert_eq!(reason(forced), "vary-star");
}

#[test]
fn vary_records_the_secondary_key() {
    let req = get(URL, &[("accept-encoding", "gzip"), ("x-other", "1")]);
    let p = plan(verdict(&req, &response(200, &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")])));
    assert_eq!(p.vary, vec![("accept-encoding".to_owned(), "gzip".to_owned())]);
}

#[test]
fn statuses_follow_the_configured_list() {
    let cc = [("cache-control", "max-age=60")];
    assert_eq!(reason(verdict(&get(URL, &[]), &response(500, &cc))), "status");
    assert_eq!(reason(verdict(&get(URL, &[]), &response(304, &cc))), "status");
    assert_eq!(reason(verdict(&get(URL, &[]), &response(206, &cc))), "partial");
    assert!(matches!(verdict(&get(URL, &[]), &response(404, &cc)), StoreVerdict::Store(_)));
    let only_200 = CacheConfig { cacheable_statuses: vec![200], ..CacheConfig::default() };
    let v = prepare_store(&get(URL, &[]), &response(404, &cc), &CacheDecision::default(), &only_200, t0());
    assert_eq!(reason(v), "status");
    let forced = prepare_store(&get(URL, &[]), &response(500, &cc), &store_choice(StoreChoice::Store), &only_200, t0());
    assert!(matches!(forced, StoreVerdict::Store(_)));
}

#[test]
fn set_cookie_needs_public() {
    let cookie = ("set-cookie", "sid=1");
    assert_eq!(
        reason(verdict(&get(URL, &[]), &response(200, &[("cache-control", "max-age=60"), cookie]))),
        "set-cookie"
    );
    assert!(matches!(
        verdict(&get(URL, &[]), &response(200, &[("cache-control", "public, max-age=60"), cookie])),
        StoreVerdict::Store(_)
    ));
}

#[test]
fn policy_bypass_wins() {
    let v = with(
        store_choice(StoreChoice::Bypass),
        &CacheConfig::default(),
        &get(URL, &[]),
        &[("cache-control", "max-age=60")],
    );
    assert_eq!(reason(v), "policy-bypass");
}

#[test]
fn policy_overrides_ttl_windows_and_adds_tags() {
    let decision = CacheDecision {
        ttl_secs: Some(30),
        stale_while_revalidate_secs: Some(5),
        stale_if_error_secs: Some(600),
        tags: vec!["product-7".into()],
        ..CacheDecision::default()
    };
    let pairs =
        [("cache-control", "max-age=3600, stale-while-revalidate=60"), ("surrogate-key", "a b"), ("cache-tag", "c")];
    let p = plan(with(decision, &CacheConfig::default(), &get(URL, &[]), &pairs));
    assert_eq!((p.ttl, p.swr, p.sie), (Duration::from_secs(30), Duration::from_secs(5), Duration::from_secs(600)));
    assert_eq!(p.tags, ["a", "b", "c", "product-7"]);
}

#[test]
fn default_ttl_applies_only_without_explicit_freshness() {
    let cfg = CacheConfig { default_ttl: Some(Duration::from_secs(172_800)), ..CacheConfig::default() };
    let p = plan(with(CacheDecision::default(), &cfg, &get(URL, &[]), &[]));
    assert_eq!(p.ttl, Duration::from_secs(172_800));
    let p = plan(with(CacheDecision::default(), &cfg, &get(URL, &[]), &[("cache-control", "max-age=10")]));
    assert_eq!(p.ttl, Duration::from_secs(10));
    // Without a default TTL and without Last-Modified the heuristic gives nothing: with a
    // validator it is stored stale (revalidated on use); without one no request could use it.
    assert_eq!(plan(verdict(&get(URL, &[]), &response(200, &[("etag", "\"e\"")]))).ttl, Duration::ZERO);
    assert_eq!(reason(verdict(&get(URL, &[]), &response(200, &[]))), "stale");
    let swr = [("cache-control", "max-age=0, stale-while-revalidate=30")];
    assert_eq!(plan(verdict(&get(URL, &[]), &response(200, &swr))).swr, Duration::from_secs(30));
}

#[test]
fn honor_origin_off_uses_the_default_ttl_for_everything() {
    let cfg =
        CacheConfig { honor_origin: false, default_ttl: Some(Duration::from_secs(600)), ..CacheConfig::default() };
    for cc in ["max-age=5", "no-cache", "s-maxage=99999"] {
        let p = plan(with(CacheDecision::default(), &cfg, &get(URL, &[]), &[("cache-control", cc)]));
        assert_eq!(p.ttl, Duration::from_secs(600), "{cc}");
    }
    let decided = CacheDecision { ttl_secs: Some(7), ..CacheDecision::default() };
    assert_eq!(plan(with(decided, &cfg, &get(URL, &[]), &[])).ttl, Duration::from_secs(7));
    // Storage prohibitions still hold.
    assert_eq!(
        reason(with(CacheDecision::default(), &cfg, &get(URL, &[]), &[("cache-control", "private")])),
        "private"
    );
}

#[test]
fn hop_by_hop_headers_are_not_stored() {
    let p = plan(verdict(
        &get(URL, &[]),
        &response(
            200,
            &[("cache-control", "max-age=60"), ("connection", "x-hop"), ("x-hop", "1"), ("keep-alive", "5")],
        ),
    ));
    assert!(p.headers.get("x-hop").is_none() && p.headers.get("keep-alive").is_none());
    assert!(p.headers.get("cache-control").is_some());
}

#[test]
fn weight_counts_body_and_headers() {
    let small = stored(&[("cache-control", "max-age=60")], b"x");
    let big = stored(&[("cache-control", "max-age=60")], &[0u8; 4096]);
    assert_eq!(big.weight() - small.weight(), 4095);
    assert!(small.weight() > 1);
}

#[test]
fn merge_304_updates_headers_and_freshness_and_keeps_the_body() {
    let pairs = [("cache-control", "max-age=60"), ("etag", "\"v1\""), ("content-length", "5"), ("x-old", "1")];
    let old = stored(&pairs, b"hello");
    let not_modified = response(
        304,
        &[
            ("cache-control", "max-age=300"),
            ("etag", "\"v1\""),
            ("content-length", "0"),
            ("x-new", "2"),
            ("connection", "close"),
        ],
    );
    let merged = merge_304(&old, &get(URL, &[]), &not_modified, at(100)).unwrap();
    assert_eq!(merged.body, Bytes::from_static(b"hello"));
    assert_eq!(merged.headers[header::CACHE_CONTROL], "max-age=300");
    assert_eq!(merged.headers[header::CONTENT_LENGTH], "5");
    assert_eq!(
        (&merged.headers["x-old"], &merged.headers["x-new"]),
        (&"1".parse::<http::HeaderValue>().unwrap(), &"2".parse().unwrap())
    );
    assert!(merged.headers.get(header::CONNECTION).is_none());
    assert!(merged.is_fresh(at(350)) && !merged.is_fresh(at(400)));
    assert_eq!(merged.age(at(110)), Duration::from_secs(10));
    assert_eq!(merged.stored_at, at(100));
}

#[test]
fn merge_304_refuses_another_representation() {
    let old = stored(&[("cache-control", "max-age=60"), ("etag", "\"v1\"")], b"hello");
    assert!(merge_304(&old, &get(URL, &[]), &response(304, &[("etag", "\"v2\"")]), at(100)).is_none());
    assert!(merge_304(&old, &get(URL, &[]), &response(304, &[("etag", "W/\"v1\"")]), at(100)).is_some());
    assert!(merge_304(&old, &get(URL, &[]), &response(304, &[]), at(100)).is_some());
    let dated = stored(&[("cache-control", "max-age=60"), ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT")], b"x");
    let newer = response(304, &[("last-modified", "Wed, 15 Nov 2023 22:13:20 GMT")]);
    assert!(merge_304(&dated, &get(URL, &[]), &newer, at(100)).is_none());
}

#[test]
fn merge_304_keeps_a_policy_ttl() {
    let decision = CacheDecision { ttl_secs: Some(30), ..CacheDecision::default() };
    let old =
        stored_with(&get(URL, &[]), &[("cache-control", "max-age=3600")], b"x", &decision, &CacheConfig::default());
    let merged =
        merge_304(&old, &get(URL, &[]), &response(304, &[("cache-control", "max-age=3600")]), at(100)).unwrap();
    assert!(merged.is_fresh(at(129)) && !merged.is_fresh(at(130)));
}

/// hyper hands header values over as slices of the connection's read buffer: what is stored must
/// own its bytes, or every cached object keeps a whole read buffer allocated.
#[test]
fn stored_headers_do_not_share_the_connections_read_buffer() {
    let mut read_buffer = vec![b'x'; 8192];
    read_buffer[100..104].copy_from_slice(b"\"v1\"");
    let read_buffer = Bytes::from(read_buffer);
    let inside = |v: &http::HeaderValue| {
        let (start, p) = (read_buffer.as_ptr() as usize, v.as_bytes().as_ptr() as usize);
        (start..start + read_buffer.len()).contains(&p)
    };
    // As hyper's parser makes them: `Bytes` slices of the one buffer.
    let x_origin = http::HeaderValue::from_maybe_shared(read_buffer.slice(0..8)).unwrap();
    let etag = http::HeaderValue::from_maybe_shared(read_buffer.slice(100..104)).unwrap();
    assert!(inside(&x_origin) && inside(&etag), "the test's values are slices of the buffer");
    let mut resp = response(200, &[("cache-control", "max-age=60")]);
    resp.headers.insert("x-origin", x_origin.clone());
    resp.headers.insert(header::ETAG, etag.clone());
    let p = plan(verdict(&get(URL, &[]), &resp));
    assert_eq!((&p.headers["x-origin"], &p.headers[header::ETAG]), (&x_origin, &etag), "same values");
    assert!(p.headers.values().all(|v| !inside(v)), "every stored value is a copy");
    let owned = super::store::owned_headers(&resp.headers);
    assert_eq!(owned, resp.headers);
    assert!(owned.values().all(|v| !inside(v)));
}

/// Only the arrival age is kept of the shared-cache policy: the age it gives at any time is the
/// one `CachePolicy` computes (the `Age` received plus the time stored; never less, also when
/// the clock went back).
#[test]
fn stored_age_is_what_the_shared_cache_policy_computes() {
    use super::test_support::{headers, policy_for, stored_with};
    let req = get(URL, &[]);
    let pairs = [("cache-control", "max-age=600"), ("age", "42")];
    let s = stored_with(&req, &pairs, b"x", &CacheDecision::default(), &CacheConfig::default());
    let policy = policy_for(&req, 200, &headers(&pairs), t0());
    assert_eq!(s.initial_age, Duration::from_secs(42));
    for t in [t0() - Duration::from_secs(5), t0(), at(1), at(300), at(100_000)] {
        assert_eq!(s.age(t), policy.age(t), "at {t:?}");
    }
}
