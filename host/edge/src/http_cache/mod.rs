//! The pure RFC 9111 layer of the edge: every caching decision the proxy makes, with no I/O.
//!
//! The proxy calls, in order:
//! 1. [`strip_hop_by_hop`] on every response it relays or stores.
//! 2. On a lookup, [`vary_key`] picks the variant and [`evaluate`] says whether the stored
//!    response is [`Evaluation::Fresh`], may be served stale while a background refresh runs
//!    ([`Evaluation::StaleWhileRevalidate`]), must be revalidated with the conditional headers
//!    it returns, or is another variant. [`range_response`] answers `Range` from a stored body.
//! 3. On a fill, [`prepare_store`] applies the storability rules, the policy's `cache-rules`
//!    decision and the configuration, and returns a [`StorePlan`] that becomes a
//!    [`StoredResponse`] once the body is complete ([`StorePlan::into_stored`]).
//! 4. A `304` to a revalidation goes through [`merge_304`]; an origin error may be answered with
//!    the stored copy when [`stale_if_error_allowed`].
//! 5. A successful unsafe request invalidates [`invalidation_targets`].
//! 6. Every response carries a [`cache_status`] header (RFC 9211).
//!
//! ## Who decides what
//!
//! `http-cache-semantics` (a shared-cache [`CachePolicy`](http_cache_semantics::CachePolicy))
//! computes the `Age` of a stored response and is kept, rebuilt on every `304`, in the
//! [`StoredResponse`]. Storability is checked rule by rule here so that each refusal has a
//! `Cache-Status` reason and the policy can override it; the freshness lifetime is computed here
//! too (module `freshness`) because the crate cannot be told a TTL override, a default TTL instead
//! of heuristics, or "ignore the origin", and because as a shared cache it zeroes the freshness
//! of `proxy-revalidate` responses, where RFC 9111 §5.2.2.8 only forbids serving them stale.
//! A stored response is fresh while `policy.age(now) < freshness_lifetime`.

mod evaluate;
mod freshness;
mod headers;
mod invalidate;
mod range;
mod status;
mod store;

#[cfg(test)]
mod evaluate_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod test_support;

use std::time::Duration;

pub use evaluate::{client_not_modified, conditional_headers, evaluate, stale_if_error_allowed, Evaluation};
pub use headers::{strip_hop_by_hop, vary_key};
pub use invalidate::invalidation_targets;
pub use range::{if_range_allows, plan_range, range_response, RangeOutcome, RangePlan};
pub use status::{cache_status, CacheStatusKind, Forward, CACHE_NAME};
pub use store::{merge_304, prepare_store, Overrides, StorePlan, StoreVerdict, StoredResponse};

/// The RFC 9111 statuses that are heuristically cacheable (RFC 9110 §15.1), the default of
/// [`CacheConfig::cacheable_statuses`].
pub const RFC_CACHEABLE_STATUSES: [u16; 12] = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// How the edge applies RFC 9111 (S3.1, S3.3, S3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Take the freshness lifetime from the origin (`s-maxage`, `max-age`, `Expires`, `no-cache`,
    /// heuristics). When `false` every stored response is fresh for [`default_ttl`] (or the
    /// policy's TTL); with neither it is stored but always revalidated. Storage prohibitions
    /// (`no-store`, `private`, `Authorization`, `Set-Cookie`) and `must-revalidate` /
    /// `proxy-revalidate` are honoured either way (S3.4 is about the cache duration).
    ///
    /// [`default_ttl`]: CacheConfig::default_ttl
    pub honor_origin: bool,
    /// The freshness lifetime of responses that state none (`s-maxage`, `max-age`, `Expires`),
    /// used instead of the RFC's `Last-Modified` heuristic; `None` keeps the heuristic (10 % of the
    /// time since `Last-Modified`, at most one day).
    pub default_ttl: Option<Duration>,
    /// Honour the client's request `Cache-Control` (`no-cache`, `max-age`, `min-fresh`,
    /// `no-store`) and `Pragma: no-cache`. Off by default: a CDN ignores them (S3.1).
    pub honor_client_cache_control: bool,
    /// The statuses the edge stores (unless the policy says `store`). `206` is listed by the RFC
    /// but never stored here: the store keeps complete bodies and answers ranges from them.
    pub cacheable_statuses: Vec<u16>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            honor_origin: true,
            default_ttl: None,
            honor_client_cache_control: false,
            cacheable_statuses: RFC_CACHEABLE_STATUSES.to_vec(),
        }
    }
}

impl CacheConfig {
    /// Whether `status` is in [`CacheConfig::cacheable_statuses`].
    pub fn is_cacheable_status(&self, status: http::StatusCode) -> bool {
        self.cacheable_statuses.contains(&status.as_u16())
    }
}
