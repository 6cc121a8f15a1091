//! Freshness-lifetime arithmetic (RFC 9111 §4.2.1–4.2.2), with the edge's overrides.
//!
//! A stored response is fresh while `policy.age(now) < freshness_lifetime`, the `Age` coming from
//! `http-cache-semantics` (the origin's `Age` plus the time since the response arrived). The
//! lifetime is, first match wins:
//! 1. a fixed TTL ([`Overrides::ttl`]: the policy's `ttl-secs`, or the default TTL when the
//!    configuration does not honour the origin): `initial age + ttl`, i.e. fresh for `ttl` from
//!    the moment the response arrived;
//! 2. `no-cache` in the response: zero (stored, revalidated on every use);
//! 3. explicit freshness: `s-maxage`, then `max-age`, then `Expires − Date` (an invalid or
//!    conflicting value counts as already expired);
//! 4. the configured default TTL (S3.4), again from the moment the response arrived;
//! 5. the heuristic: 10 % of `Date − Last-Modified`, at most a day; zero without `Last-Modified`.
//!
//! A response `Pragma` is ignored: RFC 9111 §5.4 defines `Pragma: no-cache` for requests only.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};
use http_cache_semantics::CachePolicy;

use super::headers::Directives;
use super::store::Overrides;

/// The upper bound of a heuristic freshness lifetime.
const MAX_HEURISTIC: Duration = Duration::from_secs(24 * 3600);

/// The effective freshness lifetime and stale windows of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    /// Fresh while the age is below this.
    pub(crate) freshness: Duration,
    /// `stale-while-revalidate` window (zero when stale serving is forbidden).
    pub(crate) swr: Duration,
    /// `stale-if-error` window (zero when stale serving is forbidden).
    pub(crate) sie: Duration,
}

/// Computes [`Lifetimes`] for response `headers` that arrived at `response_time` and whose
/// policy is `policy`.
pub(crate) fn lifetimes(
    headers: &HeaderMap,
    policy: &CachePolicy,
    overrides: &Overrides,
    response_time: SystemTime,
) -> Lifetimes {
    let cc = Directives::of(headers);
    let initial_age = policy.age(response_time);
    let freshness = if let Some(ttl) = overrides.ttl {
        initial_age.saturating_add(ttl)
    } else if cc.has("no-cache") {
        Duration::ZERO
    } else if let Some(explicit) = explicit_lifetime(headers, &cc, response_time) {
        explicit
    } else if let Some(default) = overrides.default_ttl {
        initial_age.saturating_add(default)
    } else {
        heuristic_lifetime(headers, response_time)
    };
    // RFC 9111 §4.2.4: no stale response when an in-protocol directive forbids it.
    let no_stale =
        cc.has("must-revalidate") || cc.has("proxy-revalidate") || (cc.has("no-cache") && overrides.ttl.is_none());
    let window = |over: Option<Duration>, name: &str| {
        if no_stale {
            Duration::ZERO
        } else {
            over.or_else(|| cc.seconds(name).map(Duration::from_secs)).unwrap_or_default()
        }
    };
    Lifetimes {
        freshness,
        swr: window(overrides.swr, "stale-while-revalidate"),
        sie: window(overrides.sie, "stale-if-error"),
    }
}

/// `s-maxage`, then `max-age`, then `Expires − Date` (RFC 9111 §4.2.1, shared cache).
pub(crate) fn explicit_lifetime(headers: &HeaderMap, cc: &Directives, response_time: SystemTime) -> Option<Duration> {
    if let Some(s) = cc.seconds("s-maxage") {
        return Some(Duration::from_secs(s));
    }
    if let Some(s) = cc.seconds("max-age") {
        return Some(Duration::from_secs(s));
    }
    let mut expires = headers.get_all(header::EXPIRES).iter();
    let first = expires.next()?;
    if expires.any(|other| other != first) {
        return Some(Duration::ZERO);
    }
    let Some(expires) = http_date(first.to_str().ok()) else {
        return Some(Duration::ZERO); // §5.3: an invalid Expires (e.g. "0") is in the past.
    };
    let date = date_value(headers).unwrap_or(response_time);
    Some(expires.duration_since(date).unwrap_or_default())
}

/// 10 % of the time between `Last-Modified` and `Date`, capped at a day (RFC 9111 §4.2.2).
pub(crate) fn heuristic_lifetime(headers: &HeaderMap, response_time: SystemTime) -> Duration {
    let Some(modified) = http_date(headers.get(header::LAST_MODIFIED).and_then(|v| v.to_str().ok())) else {
        return Duration::ZERO;
    };
    let date = date_value(headers).unwrap_or(response_time);
    (date.duration_since(modified).unwrap_or_default() / 10).min(MAX_HEURISTIC)
}

fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    http_date(headers.get(header::DATE).and_then(|v| v.to_str().ok()))
}

fn http_date(value: Option<&str>) -> Option<SystemTime> {
    httpdate::parse_http_date(value?.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_cache::test_support::{date, get, headers, policy_for, t0};

    fn lifetime_of(h: &[(&str, &str)], overrides: Overrides) -> Lifetimes {
        let h = headers(h);
        let policy = policy_for(&get("http://a.example/x", &[]), 200, &h, t0());
        lifetimes(&h, &policy, &overrides, t0())
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        let expires = date(t0() + Duration::from_secs(300));
        let now = date(t0());
        let base = [("date", now.as_str()), ("expires", expires.as_str())];
        assert_eq!(lifetime_of(&base, Overrides::default()).freshness, Duration::from_secs(300));
        let with_max_age = [base[0], base[1], ("cache-control", "max-age=60")];
        assert_eq!(lifetime_of(&with_max_age, Overrides::default()).freshness, Duration::from_secs(60));
        let with_s = [base[0], base[1], ("cache-control", "max-age=60, s-maxage=30")];
        assert_eq!(lifetime_of(&with_s, Overrides::default()).freshness, Duration::from_secs(30));
    }

    #[test]
    fn invalid_expires_is_expired_and_heuristic_is_bounded() {
        assert_eq!(lifetime_of(&[("expires", "0")], Overrides::default()).freshness, Duration::ZERO);
        let now = date(t0());
        let ten_days_ago = date(t0() - Duration::from_secs(10 * 86_400));
        let h = [("date", now.as_str()), ("last-modified", ten_days_ago.as_str())];
        assert_eq!(lifetime_of(&h, Overrides::default()).freshness, Duration::from_secs(86_400));
        let hour_ago = date(t0() - Duration::from_secs(3600));
        let h = [("date", now.as_str()), ("last-modified", hour_ago.as_str())];
        assert_eq!(lifetime_of(&h, Overrides::default()).freshness, Duration::from_secs(360));
        assert_eq!(lifetime_of(&[], Overrides::default()).freshness, Duration::ZERO);
    }

    #[test]
    fn default_ttl_replaces_heuristics_but_not_explicit_freshness() {
        let o = Overrides { default_ttl: Some(Duration::from_secs(7200)), ..Overrides::default() };
        let lm = date(t0() - Duration::from_secs(86_400));
        assert_eq!(lifetime_of(&[("last-modified", lm.as_str())], o).freshness, Duration::from_secs(7200));
        assert_eq!(lifetime_of(&[("cache-control", "max-age=5")], o).freshness, Duration::from_secs(5));
        // The default counts from arrival: an upstream Age extends the lifetime by as much.
        assert_eq!(lifetime_of(&[("age", "100")], o).freshness, Duration::from_secs(7300));
    }

    #[test]
    fn fixed_ttl_wins_over_everything_including_no_cache() {
        let o = Overrides { ttl: Some(Duration::from_secs(9)), ..Overrides::default() };
        let l = lifetime_of(&[("cache-control", "no-cache, max-age=600, stale-while-revalidate=5")], o);
        assert_eq!(l.freshness, Duration::from_secs(9));
        assert_eq!(l.swr, Duration::from_secs(5));
    }

    #[test]
    fn revalidate_directives_and_no_cache_close_stale_windows() {
        let cc = "max-age=60, stale-while-revalidate=30, stale-if-error=300";
        let open = lifetime_of(&[("cache-control", cc)], Overrides::default());
        assert_eq!((open.swr, open.sie), (Duration::from_secs(30), Duration::from_secs(300)));
        for extra in ["must-revalidate", "proxy-revalidate", "no-cache"] {
            let value = format!("{cc}, {extra}");
            let closed = lifetime_of(&[("cache-control", value.as_str())], Overrides::default());
            assert_eq!((closed.swr, closed.sie), (Duration::ZERO, Duration::ZERO), "{extra}");
        }
        // proxy-revalidate forbids stale serving but keeps the freshness (RFC 9111 §5.2.2.8).
        let pr = lifetime_of(&[("cache-control", "max-age=60, proxy-revalidate")], Overrides::default());
        assert_eq!(pr.freshness, Duration::from_secs(60));
    }

    #[test]
    fn response_pragma_is_ignored() {
        let l = lifetime_of(&[("pragma", "no-cache"), ("cache-control", "max-age=60")], Overrides::default());
        assert_eq!(l.freshness, Duration::from_secs(60));
    }

    #[test]
    fn agrees_with_http_cache_semantics_on_plain_responses() {
        let now = date(t0());
        let later = date(t0() + Duration::from_secs(120));
        let cases: [&[(&str, &str)]; 4] = [
            &[("cache-control", "max-age=60")],
            &[("cache-control", "s-maxage=10, max-age=60")],
            &[("date", now.as_str()), ("expires", later.as_str())],
            &[("cache-control", "max-age=60"), ("age", "20")],
        ];
        for case in cases {
            let h = headers(case);
            let policy = policy_for(&get("http://a.example/x", &[]), 200, &h, t0());
            let ours = lifetimes(&h, &policy, &Overrides::default(), t0()).freshness;
            let theirs = policy.time_to_live(t0()) + policy.age(t0());
            assert_eq!(ours, theirs, "{case:?}");
        }
    }
}
