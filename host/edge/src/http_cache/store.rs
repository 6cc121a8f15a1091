//! Whether and how to store a response ([`prepare_store`]), what is stored ([`StoredResponse`]),
//! and the `304` merge ([`merge_304`]).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use edgepurge_sdk::{CacheDecision, StoreChoice};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_cache_semantics::{CacheOptions, CachePolicy, RequestLike, ResponseLike};

use super::freshness::{lifetimes, Lifetimes};
use super::headers::{response_tags, strip_hop_by_hop, vary_key, Directives};
use super::CacheConfig;

/// How long a stale object with validators is still worth keeping for a conditional request,
/// beyond its stale windows (see [`StoredResponse::keep_for`]).
const VALIDATOR_GRACE: Duration = Duration::from_secs(3600);

/// Fixed overrides remembered with a stored response, so a `304` merge recomputes the freshness
/// by the same rules as the fill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// A fixed freshness lifetime from arrival: the policy's `ttl-secs`, or (when the origin is
    /// not honoured) the configured default TTL or zero.
    pub ttl: Option<Duration>,
    /// The configured default TTL for responses without explicit freshness.
    pub default_ttl: Option<Duration>,
    /// The policy's `stale-while-revalidate` window, replacing the origin's.
    pub swr: Option<Duration>,
    /// The policy's `stale-if-error` window, replacing the origin's.
    pub sie: Option<Duration>,
}

/// What the store keeps for one object (one variant of one URL).
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// The response status.
    pub status: StatusCode,
    /// The response headers, hop-by-hop removed, as received (with the origin's `Age`).
    pub headers: HeaderMap,
    /// The complete body.
    pub body: Bytes,
    /// The response's age when it arrived (its `Age` header; `CachePolicy::age` at `stored_at`).
    /// Only this is kept of the shared-cache policy: a `CachePolicy` holds copies of both requests'
    /// and responses' headers, ~2 KB per cached object, to compute the same age.
    pub initial_age: Duration,
    /// The secondary key: the request's values of the headers the response `Vary`s on
    /// ([`vary_key`]); empty without `Vary`.
    pub vary: Vec<(String, String)>,
    /// When the response (or the latest `304` for it) arrived.
    pub stored_at: SystemTime,
    /// Fresh while `policy.age(now)` is below this.
    pub freshness_lifetime: Duration,
    /// Effective `stale-while-revalidate` window after the lifetime (zero if forbidden).
    pub stale_while_revalidate: Duration,
    /// Effective `stale-if-error` window after the lifetime (zero if forbidden).
    pub stale_if_error: Duration,
    /// Purge tags: `Surrogate-Key`, `Cache-Tag` and the policy's.
    pub tags: Vec<String>,
    /// The overrides the freshness was computed with.
    pub overrides: Overrides,
}

impl StoredResponse {
    /// The current age (`Age` header value to send).
    pub fn age(&self, now: SystemTime) -> Duration {
        // As `CachePolicy::age`: the `Age` it arrived with plus the time it has been stored.
        self.initial_age + now.duration_since(self.stored_at).unwrap_or_default()
    }

    /// Whether the response is fresh at `now` (ignoring purges).
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.age(now) < self.freshness_lifetime
    }

    /// How long it has been stale (zero while fresh).
    pub fn staleness(&self, now: SystemTime) -> Duration {
        self.age(now).saturating_sub(self.freshness_lifetime)
    }

    /// Remaining freshness in seconds, negative once stale (the `ttl` of `Cache-Status`).
    pub fn ttl_remaining(&self, now: SystemTime) -> i64 {
        let (life, age) = (self.freshness_lifetime.as_secs() as i64, self.age(now).as_secs() as i64);
        life.saturating_sub(age)
    }

    /// How long the store should keep the object from `now`: the remaining freshness plus the
    /// larger stale window, plus an hour when it has a validator (`ETag` or `Last-Modified`), as
    /// a `304` is cheaper than a full refetch.
    pub fn keep_for(&self, now: SystemTime) -> Duration {
        let remaining = self.freshness_lifetime.saturating_sub(self.age(now));
        let has_validator = self.headers.contains_key(header::ETAG) || self.headers.contains_key(header::LAST_MODIFIED);
        let grace = if has_validator { VALIDATOR_GRACE } else { Duration::ZERO };
        remaining + self.stale_while_revalidate.max(self.stale_if_error) + grace
    }

    /// The object's weight in bytes for the store: body, headers (counted twice for the map's
    /// own structures), secondary key, tags and a fixed overhead for the rest. This still counts
    /// less than the resident memory of a small object (`make bench-memory` measures both).
    pub fn weight(&self) -> u32 {
        let headers: usize = self.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 16).sum();
        let vary: usize = self.vary.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
        let tags: usize = self.tags.iter().map(|t| t.len() + 24).sum();
        let total = self.body.len() + 2 * headers + vary + tags + 512;
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// The outcome of [`prepare_store`].
#[derive(Debug)]
pub enum StoreVerdict {
    /// Store it: the plan becomes a [`StoredResponse`] when the body is complete.
    Store(Box<StorePlan>),
    /// Do not store it; the reason goes into `Cache-Status` as `detail`: `method`,
    /// `policy-bypass`, `partial`, `status`, `no-store`, `vary-star`, `authorization`, `private`,
    /// `set-cookie`, `stale` (stale on arrival, no stale window, no validator).
    DoNotStore(&'static str),
}

/// Everything about a storable response except its body.
#[derive(Debug, Clone)]
pub struct StorePlan {
    /// The response's age when it arrived ([`StoredResponse::initial_age`]).
    pub initial_age: Duration,
    /// Remaining freshness at the response time (zero: stored stale, revalidated on use).
    pub ttl: Duration,
    /// Effective `stale-while-revalidate` window.
    pub swr: Duration,
    /// Effective `stale-if-error` window.
    pub sie: Duration,
    /// Purge tags.
    pub tags: Vec<String>,
    /// The response status.
    pub status: StatusCode,
    /// The response headers, hop-by-hop removed.
    pub headers: HeaderMap,
    /// The secondary key ([`vary_key`] of this request).
    pub vary: Vec<(String, String)>,
    /// The freshness lifetime (fresh while `policy.age(now)` is below it).
    pub freshness_lifetime: Duration,
    /// The overrides applied.
    pub overrides: Overrides,
    /// The response time.
    pub stored_at: SystemTime,
}

impl StorePlan {
    /// The stored object, once the complete body is in hand.
    pub fn into_stored(self, body: Bytes) -> StoredResponse {
        StoredResponse {
            status: self.status,
            headers: self.headers,
            body,
            initial_age: self.initial_age,
            vary: self.vary,
            stored_at: self.stored_at,
            freshness_lifetime: self.freshness_lifetime,
            stale_while_revalidate: self.swr,
            stale_if_error: self.sie,
            tags: self.tags,
            overrides: self.overrides,
        }
    }
}

/// Decides whether the origin's response `resp` to `req` (the request as sent to the origin for
/// the fill) is stored, applying RFC 9111 §3 for a shared cache, the policy's `cache-rules`
/// `decision` and `cfg`; `now` is when the response head arrived.
///
/// Refused, whatever the policy says: methods other than GET (HEAD is answered from a stored
/// GET), `206` (only complete bodies are stored), `304` and other non-final statuses, `no-store`
/// (request `no-store` too when `cfg.honor_client_cache_control`), `Vary: *`, and requests with
/// `Authorization` unless the response has `public`, `must-revalidate` or `s-maxage`
/// (§3.5). `StoreChoice::Bypass` refuses everything; without `StoreChoice::Store` also refused:
/// `private`, statuses outside `cfg.cacheable_statuses`, and `Set-Cookie` without `public` or
/// `immutable` (so one client's cookie is never served to another).
pub fn prepare_store(
    req: &http::request::Parts,
    resp: &http::response::Parts,
    decision: &CacheDecision,
    cfg: &CacheConfig,
    now: SystemTime,
) -> StoreVerdict {
    if req.method != Method::GET {
        return StoreVerdict::DoNotStore("method");
    }
    if decision.store == StoreChoice::Bypass {
        return StoreVerdict::DoNotStore("policy-bypass");
    }
    if resp.status == StatusCode::PARTIAL_CONTENT {
        return StoreVerdict::DoNotStore("partial");
    }
    if resp.status.is_informational() || resp.status == StatusCode::NOT_MODIFIED {
        return StoreVerdict::DoNotStore("status");
    }
    let cc = Directives::of(&resp.headers);
    let client_no_store = cfg.honor_client_cache_control && Directives::of(&req.headers).has("no-store");
    if cc.has("no-store") || client_no_store {
        return StoreVerdict::DoNotStore("no-store");
    }
    let Some(vary) = vary_key(resp.headers.get_all(header::VARY), &req.headers) else {
        return StoreVerdict::DoNotStore("vary-star");
    };
    let auth_exception = cc.has("public") || cc.has("must-revalidate") || cc.has("s-maxage");
    if req.headers.contains_key(header::AUTHORIZATION) && !auth_exception {
        return StoreVerdict::DoNotStore("authorization");
    }
    if decision.store != StoreChoice::Store {
        if cc.has("private") {
            return StoreVerdict::DoNotStore("private");
        }
        if !cfg.is_cacheable_status(resp.status) {
            return StoreVerdict::DoNotStore("status");
        }
        if resp.headers.contains_key(header::SET_COOKIE) && !cc.has("public") && !cc.has("immutable") {
            return StoreVerdict::DoNotStore("set-cookie");
        }
    }

    let mut headers = owned_headers(&resp.headers);
    strip_hop_by_hop(&mut headers);
    let policy = new_policy(req, resp.status, &headers, cfg.honor_client_cache_control, now);
    let secs = |s: Option<u32>| s.map(|s| Duration::from_secs(s.into()));
    let overrides = Overrides {
        ttl: secs(decision.ttl_secs).or(if cfg.honor_origin {
            None
        } else {
            Some(cfg.default_ttl.unwrap_or_default())
        }),
        default_ttl: cfg.default_ttl,
        swr: secs(decision.stale_while_revalidate_secs),
        sie: secs(decision.stale_if_error_secs),
    };
    let Lifetimes { freshness, swr, sie } = lifetimes(&headers, &policy, &overrides, now);
    let plan = StorePlan {
        ttl: freshness.saturating_sub(policy.age(now)),
        swr,
        sie,
        tags: response_tags(&headers, &decision.tags),
        status: resp.status,
        vary,
        freshness_lifetime: freshness,
        overrides,
        stored_at: now,
        initial_age: policy.age(now),
        headers,
    };
    // Stale on arrival with no stale window and nothing to revalidate with: no request could
    // ever use it, so it is not stored (and `Cache-Status` does not say `stored`).
    let has_validator = plan.headers.contains_key(header::ETAG) || plan.headers.contains_key(header::LAST_MODIFIED);
    if plan.ttl.is_zero() && plan.swr.is_zero() && plan.sie.is_zero() && !has_validator {
        return StoreVerdict::DoNotStore("stale");
    }
    StoreVerdict::Store(Box::new(plan))
}

/// Headers a `304` may not change: they describe the stored body (RFC 9111 §3.2).
const KEPT_ON_304: [&str; 4] = ["content-length", "content-encoding", "transfer-encoding", "content-range"];

/// Applies the origin's `304 Not Modified` answer to a revalidation of `stored` for `req` (RFC
/// 9111 §4.3.4): every header in the `304` (hop-by-hop removed) replaces the stored ones except
/// those describing the body, the `Age` restarts from the `304`'s, the policy is rebuilt as of
/// `now` and the freshness recomputed with the same overrides; body, variant and tags are kept.
///
/// `None` when the `304` names a different representation (its `ETag` differs from the stored
/// one by weak comparison, or without ETags its `Last-Modified` differs): the proxy must then
/// fetch unconditionally. A `304` without validators is taken as confirming the stored response,
/// since the conditional request was built from it.
pub fn merge_304(
    stored: &StoredResponse,
    req: &http::request::Parts,
    not_modified: &http::response::Parts,
    now: SystemTime,
) -> Option<StoredResponse> {
    let mut update = owned_headers(&not_modified.headers);
    strip_hop_by_hop(&mut update);
    match (value(&stored.headers, header::ETAG), value(&update, header::ETAG)) {
        (Some(old), Some(new)) if old.trim_start_matches("W/") != new.trim_start_matches("W/") => return None,
        (None, None) => {
            let (old, new) = (value(&stored.headers, header::LAST_MODIFIED), value(&update, header::LAST_MODIFIED));
            if old.is_some() && new.is_some() && old != new {
                return None;
            }
        }
        _ => {}
    }
    let mut headers = stored.headers.clone();
    headers.remove(header::AGE);
    for name in update.keys() {
        if KEPT_ON_304.contains(&name.as_str()) {
            continue;
        }
        headers.remove(name);
        for v in update.get_all(name) {
            headers.append(name.clone(), v.clone());
        }
    }
    let policy = new_policy(req, stored.status, &headers, false, now);
    let Lifetimes { freshness, swr, sie } = lifetimes(&headers, &policy, &stored.overrides, now);
    Some(StoredResponse {
        status: stored.status,
        headers,
        body: stored.body.clone(),
        initial_age: policy.age(now),
        vary: stored.vary.clone(),
        stored_at: now,
        freshness_lifetime: freshness,
        stale_while_revalidate: swr,
        stale_if_error: sie,
        tags: stored.tags.clone(),
        overrides: stored.overrides,
    })
}

fn value(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The shared-cache policy. The request's `Cache-Control` and `Pragma` are hidden from it unless
/// the client's are honoured, so a client cannot make the response unstorable.
fn new_policy(
    req: &http::request::Parts,
    status: StatusCode,
    headers: &HeaderMap,
    honor_client: bool,
    now: SystemTime,
) -> CachePolicy {
    let mut req_headers = req.headers.clone();
    if !honor_client {
        req_headers.remove(header::CACHE_CONTROL);
        req_headers.remove(header::PRAGMA);
    }
    let req = PolicyRequest { parts: req, headers: req_headers };
    let resp = PolicyResponse { status, headers };
    let opts = CacheOptions { shared: true, ignore_cargo_cult: false, ..CacheOptions::default() };
    CachePolicy::new_options(&req, &resp, now, opts)
}

struct PolicyRequest<'a> {
    parts: &'a http::request::Parts,
    headers: HeaderMap,
}

impl RequestLike for PolicyRequest<'_> {
    fn uri(&self) -> Uri {
        self.parts.uri.clone()
    }
    fn is_same_uri(&self, other: &Uri) -> bool {
        &self.parts.uri == other
    }
    fn method(&self) -> &Method {
        &self.parts.method
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

struct PolicyResponse<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
}

impl ResponseLike for PolicyResponse<'_> {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

/// A copy of `headers` whose values own their bytes. hyper parses every header value as a slice
/// of the connection's read buffer: a stored clone would keep that whole buffer, 8 KiB or more,
/// allocated for as long as the object is cached, where the store's byte bound counts the value.
pub(crate) fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        out.append(name.clone(), copy);
    }
    out
}

/// An `Age` header value.
pub(crate) fn age_value(age: Duration) -> HeaderValue {
    HeaderValue::from(age.as_secs())
}
