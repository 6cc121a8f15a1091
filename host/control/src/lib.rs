//! # edgepurge-control — the control role's purge API
//!
//! Where customers' purges enter (issue \[3\]): an authenticated HTTP API (axum) over the
//! [`edgepurge_control_store`] traits.
//!
//! - [`config`] — `control.toml` (`control.example.toml` documents it): listener, TLS (required
//!   off loopback), database, queues, rate limit, request limits, policy.
//! - [`auth`] — API tokens (random, stored as SHA-256 only), host patterns, the per-token token
//!   bucket.
//! - [`tasks`] — the task generator: JSON or streamed bulk bodies → validated, normalised
//!   (with the edge's own `normalize_task`), de-duplicated tasks.
//! - [`select`] — queue choice through the policy's `select-queue`, per chunk of 1,000 tasks.
//! - [`fold`] — S2.3: a repeated purge folded into the earlier, still undelivered task.
//! - [`health`] — the `QueueMonitor`: queue health (storage failure, stall; S0.2) from
//!   observations of the store on an injectable clock; [`history`] — the per-queue send history
//!   by cycle slot that becomes `select-queue`'s speed samples and peak (S0.3).
//! - [`background`] — retention (trim delivered tasks, expire old records) and the periodic queue
//!   observation.
//! - [`api`] — the routes: `POST /v1/purges`, `GET /v1/purges/{id}`, `GET /v1/queues`,
//!   `/healthz`, `/readyz`, `/metrics` ([`metrics`]); [`views`] — `GET /v1/records` and `GET /v1/edges`.
//! - [`queue_server`] — issue \[4\]: the mutual-TLS HTTP/2 listener edges stream tasks and the
//!   active policy from (`POST /v1/stream`), acks becoming watermarks in the store.
//! - [`server`] — binding (plain HTTP on loopback, else TLS through `edgepurge-tls`) and graceful
//!   shutdown.
//!
//! Normalisation is shared, not copied: targets go through
//! `edgepurge_purge_model::normalize_task` (and `cache_url`/`cache_prefix` for record queries),
//! the same keys the edge stores and purges under, and the `[policy]` section loads with
//! `edgepurge_policy_runtime::load_section_component`, the loader the edge uses. This crate does
//! not depend on the edge crate.
//!
//! A batch is answered `202` only after the store's `append` returned, i.e. once it is fsynced;
//! a rejected request (401, 403, 429, 400) queues nothing, because every task is checked before
//! the single `append`.

#![deny(missing_docs)]

mod admin;
pub mod api;
pub mod auth;
pub mod background;
pub mod config;
pub mod events;
pub mod fold;
pub mod health;
pub mod history;
pub mod metrics;
pub mod queue_server;
pub mod select;
pub mod server;
pub mod tasks;
pub mod views;

use std::time::{SystemTime, UNIX_EPOCH};

use edgepurge_control_store::Millis;

pub use auth::RateState;

/// An API error; each variant is one HTTP status (see [`api`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No token, or not a known one (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The token may not do this (403), e.g. a host outside its patterns.
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed or over a limit (400); the message names the item.
    #[error("{0}")]
    Invalid(String),
    /// A bulk body in a format the API does not read (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The token's rate limit is exhausted (429).
    #[error("rate limit exceeded: retry in {} s", .0.retry_after_secs)]
    RateLimited(RateState),
    /// Nothing with this id is visible to the token (404).
    #[error("{0}")]
    NotFound(String),
    /// The store failed (503): nothing was queued; retrying (with the same `Idempotency-Key`) is
    /// safe.
    #[error(transparent)]
    Store(#[from] edgepurge_control_store::Error),
    /// Anything else on our side (500).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `ms` (since the Unix epoch) as RFC 3339 UTC with milliseconds, e.g. `2026-11-22T01:02:03.456Z`.
pub fn rfc3339(ms: Millis) -> String {
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), to avoid a date crate.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{milli:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(super::rfc3339(1_795_309_323_456), "2026-11-22T01:02:03.456Z");
    }
}
