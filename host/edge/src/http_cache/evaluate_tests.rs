//! Tests of `evaluate`, `stale_if_error_allowed` and `client_not_modified`.

use std::time::{Duration, SystemTime};

use edgepurge_sdk::CacheDecision;
use http::header::{self, HeaderMap};
use http::Method;

use super::test_support::{at, date, get, request, stored, stored_with, t0};
use super::{client_not_modified, evaluate, stale_if_error_allowed, CacheConfig, Evaluation, StoredResponse};

const URL: &str = "http://a.example/x";

fn eval(s: &StoredResponse, now: SystemTime) -> Evaluation {
    evaluate(s, &get(URL, &[]), false, &CacheConfig::default(), now)
}

fn fresh_age(e: Evaluation) -> Option<String> {
    match e {
        Evaluation::Fresh { headers } => Some(headers[header::AGE].to_str().unwrap().to_owned()),
        _ => None,
    }
}

fn is_revalidate(e: &Evaluation) -> bool {
    matches!(e, Evaluation::MustRevalidate { .. })
}

#[test]
fn fresh_by_max_age_with_a_correct_age_then_stale() {
    let s = stored(&[("cache-control", "max-age=60")], b"x");
    assert_eq!(fresh_age(eval(&s, at(0))).as_deref(), Some("0"));
    assert_eq!(fresh_age(eval(&s, at(59))).as_deref(), Some("59"));
    assert!(is_revalidate(&eval(&s, at(60))));
}

#[test]
fn s_maxage_beats_max_age() {
    let s = stored(&[("cache-control", "max-age=600, s-maxage=10")], b"x");
    assert!(fresh_age(eval(&s, at(9))).is_some());
    assert!(is_revalidate(&eval(&s, at(10))));
}

#[test]
fn expires_relative_to_date() {
    let (now, later) = (date(t0()), date(at(30)));
    let s = stored(&[("date", &now), ("expires", &later)], b"x");
    assert!(fresh_age(eval(&s, at(29))).is_some());
    assert!(is_revalidate(&eval(&s, at(30))));
}

#[test]
fn upstream_age_counts_against_freshness_and_is_sent_on() {
    let s = stored(&[("cache-control", "max-age=60"), ("age", "50")], b"x");
    assert_eq!(fresh_age(eval(&s, at(5))).as_deref(), Some("55"));
    assert!(is_revalidate(&eval(&s, at(10))));
}

#[test]
fn no_cache_is_stored_but_always_revalidated_with_validators() {
    let s = stored(
        &[
            ("cache-control", "no-cache, stale-while-revalidate=60"),
            ("etag", "\"v1\""),
            ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ],
        b"x",
    );
    let Evaluation::MustRevalidate { conditional_headers } = eval(&s, at(0)) else { panic!("not revalidated") };
    assert_eq!(conditional_headers[header::IF_NONE_MATCH], "\"v1\"");
    assert_eq!(conditional_headers[header::IF_MODIFIED_SINCE], "Tue, 14 Nov 2023 22:13:20 GMT");
}

#[test]
fn without_validators_revalidation_is_a_plain_fetch() {
    let s = stored(&[("cache-control", "max-age=1")], b"x");
    assert_eq!(eval(&s, at(5)), Evaluation::MustRevalidate { conditional_headers: HeaderMap::new() });
}

#[test]
fn stale_while_revalidate_window() {
    let s = stored(&[("cache-control", "max-age=10, stale-while-revalidate=20")], b"x");
    assert!(fresh_age(eval(&s, at(9))).is_some());
    let Evaluation::StaleWhileRevalidate { headers } = eval(&s, at(25)) else { panic!("not swr") };
    assert_eq!(headers[header::AGE], "25");
    assert!(is_revalidate(&eval(&s, at(30))));
}

#[test]
fn must_revalidate_and_proxy_revalidate_forbid_stale_serving() {
    for cc in [
        "max-age=10, stale-while-revalidate=20, must-revalidate",
        "max-age=10, stale-while-revalidate=20, proxy-revalidate",
    ] {
        let s = stored(&[("cache-control", cc)], b"x");
        assert!(fresh_age(eval(&s, at(5))).is_some(), "{cc}");
        assert!(is_revalidate(&eval(&s, at(15))), "{cc}");
        assert!(!stale_if_error_allowed(&s, at(15)), "{cc}");
    }
}

#[test]
fn soft_purged_is_never_fresh() {
    let swr = stored(&[("cache-control", "max-age=600, stale-while-revalidate=30")], b"x");
    let e = evaluate(&swr, &get(URL, &[]), true, &CacheConfig::default(), at(1));
    assert!(matches!(e, Evaluation::StaleWhileRevalidate { .. }));
    let plain = stored(&[("cache-control", "max-age=600"), ("etag", "\"e\"")], b"x");
    let e = evaluate(&plain, &get(URL, &[]), true, &CacheConfig::default(), at(1));
    assert!(is_revalidate(&e));
    // Past the window a soft-purged object is revalidated like any stale one.
    let e = evaluate(&swr, &get(URL, &[]), true, &CacheConfig::default(), at(700));
    assert!(is_revalidate(&e));
}

#[test]
fn vary_mismatch_is_reported() {
    let req = get(URL, &[("accept-encoding", "gzip")]);
    let cfg = CacheConfig::default();
    let s = stored_with(
        &req,
        &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
        b"x",
        &CacheDecision::default(),
        &cfg,
    );
    assert!(matches!(evaluate(&s, &req, false, &cfg, at(1)), Evaluation::Fresh { .. }));
    let other = get(URL, &[("accept-encoding", "br")]);
    assert_eq!(evaluate(&s, &other, false, &cfg, at(1)), Evaluation::VaryMismatch);
    assert_eq!(evaluate(&s, &get(URL, &[]), false, &cfg, at(1)), Evaluation::VaryMismatch);
}

#[test]
fn head_is_answered_from_a_stored_get() {
    let s = stored(&[("cache-control", "max-age=60"), ("content-length", "1")], b"x");
    let e = evaluate(&s, &request(Method::HEAD, URL, &[]), false, &CacheConfig::default(), at(1));
    let Evaluation::Fresh { headers } = e else { panic!("not fresh") };
    assert_eq!(headers[header::CONTENT_LENGTH], "1");
}

#[test]
fn client_cache_control_is_ignored_by_default_and_honoured_on_request() {
    let s = stored(&[("cache-control", "max-age=60")], b"x");
    let honour = CacheConfig { honor_client_cache_control: true, ..CacheConfig::default() };
    for (pairs, honoured_revalidates) in [
        (vec![("cache-control", "no-cache")], true),
        (vec![("cache-control", "max-age=0")], true),
        (vec![("cache-control", "max-age=5")], true),
        (vec![("cache-control", "max-age=50")], false),
        (vec![("cache-control", "min-fresh=55")], true),
        (vec![("pragma", "no-cache")], true),
        (vec![("pragma", "no-cache"), ("cache-control", "max-age=50")], false),
    ] {
        let req = get(URL, &pairs);
        assert!(
            matches!(evaluate(&s, &req, false, &CacheConfig::default(), at(10)), Evaluation::Fresh { .. }),
            "{pairs:?}"
        );
        assert_eq!(is_revalidate(&evaluate(&s, &req, false, &honour, at(10))), honoured_revalidates, "{pairs:?}");
    }
}

#[test]
fn stale_if_error_window() {
    let s = stored(&[("cache-control", "max-age=10, stale-if-error=100")], b"x");
    assert!(stale_if_error_allowed(&s, at(50)));
    assert!(stale_if_error_allowed(&s, at(110)));
    assert!(!stale_if_error_allowed(&s, at(111)));
    let none = stored(&[("cache-control", "max-age=10")], b"x");
    assert!(!stale_if_error_allowed(&none, at(11)));
}

#[test]
fn policy_windows_replace_the_origins() {
    let decision = CacheDecision {
        stale_if_error_secs: Some(5),
        stale_while_revalidate_secs: Some(0),
        ..CacheDecision::default()
    };
    let s = stored_with(
        &get(URL, &[]),
        &[("cache-control", "max-age=10, stale-while-revalidate=100, stale-if-error=1000")],
        b"x",
        &decision,
        &CacheConfig::default(),
    );
    assert!(is_revalidate(&eval(&s, at(12))));
    assert!(stale_if_error_allowed(&s, at(15)) && !stale_if_error_allowed(&s, at(16)));
}

#[test]
fn default_ttl_and_honor_origin_off() {
    let cfg = CacheConfig { default_ttl: Some(Duration::from_secs(100)), ..CacheConfig::default() };
    let s = stored_with(&get(URL, &[]), &[], b"x", &CacheDecision::default(), &cfg);
    assert!(matches!(evaluate(&s, &get(URL, &[]), false, &cfg, at(99)), Evaluation::Fresh { .. }));
    assert!(is_revalidate(&evaluate(&s, &get(URL, &[]), false, &cfg, at(100))));
    let off = CacheConfig { honor_origin: false, ..cfg };
    let s = stored_with(&get(URL, &[]), &[("cache-control", "max-age=5")], b"x", &CacheDecision::default(), &off);
    assert!(matches!(evaluate(&s, &get(URL, &[]), false, &off, at(50)), Evaluation::Fresh { .. }));
}

#[test]
fn ttl_remaining_goes_negative_when_stale() {
    let s = stored(&[("cache-control", "max-age=60")], b"x");
    assert_eq!(s.ttl_remaining(at(18)), 42);
    assert_eq!(s.ttl_remaining(at(70)), -10);
}

#[test]
fn client_conditionals_match_etag_or_date() {
    let s = stored(
        &[("cache-control", "max-age=60"), ("etag", "W/\"v1\""), ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT")],
        b"x",
    );
    let check = |pairs: &[(&str, &str)]| client_not_modified(&get(URL, pairs), &s.headers);
    assert!(check(&[("if-none-match", "\"v0\", \"v1\"")]));
    assert!(check(&[("if-none-match", "*")]));
    assert!(!check(&[("if-none-match", "\"v2\""), ("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")]));
    assert!(check(&[("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")]));
    assert!(!check(&[("if-modified-since", "Mon, 13 Nov 2023 00:00:00 GMT")]));
    assert!(!check(&[]));
    assert!(!client_not_modified(&request(Method::POST, URL, &[("if-none-match", "*")]), &s.headers));
}
