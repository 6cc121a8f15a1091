//! # edgepurge-control — the control role's purge API
//!
//! Where customers' purges enter (issue \[3\]): an authenticated HTTP API (axum) over the
//! [`edgepurge_control_store`] traits.
//!
//! Modules, bottom first: each imports only modules listed before it (and the crate root's
//! [`Error`], [`now_ms`], [`rfc3339`], below them all).
//!
//! - [`history`] — the per-queue send history by cycle slot: `select-queue`'s speed samples and
//!   peak (S0.3).
//! - [`health`] — the `QueueMonitor`: queue health (storage failure, stall; S0.2) from
//!   observations of the store on an injectable clock.
//! - [`fold`] — S2.3: a repeated purge folded into the earlier, still undelivered task.
//! - [`retention`] — how long delivered tasks and old records are kept; one retention pass.
//! - [`auth`] — API tokens (random, stored as SHA-256 only), host patterns, the per-token token
//!   bucket.
//! - [`config`] — `control.toml` (`control.example.toml` documents it), typed and checked at load:
//!   listener, TLS (required off loopback), database, queues, rate limit, request limits, policy.
//! - [`counters`] — the API's and the queue server's counters.
//! - [`hub`] — what the API and the queue streams share: the "appended" signal, the policy sent
//!   to edges, the connected edges.
//! - [`tail`] — the newest chunks of every queue in memory, read from the store once and sent
//!   as the same `Tasks` frame bytes by every edge's stream.
//! - [`response`] — how an [`Error`] becomes an HTTP answer; the `RateLimit-*` headers;
//!   `Checked`, through which axum's extractor rejections become [`Error`]s (the JSON body too).
//! - [`state`] — `QueueState` (store and hub: all the queue server sees) and the API's `AppState`.
//! - [`authenticated`] — the `Authenticated` extractor: the request's token, or a 401.
//! - [`tasks`] — the task generator: JSON or streamed bulk bodies → validated, normalised
//!   (with `edgepurge_purge_model::normalize_task`, the same as the edge), de-duplicated tasks.
//! - [`select`] — queue choice through the policy's `select-queue`, per chunk of 1,000 tasks; the
//!   expected wait the API reports.
//! - [`progress`] — a batch's status document (`edgepurge_api::BatchStatus`) from the watermarks.
//! - [`views`] — `GET /v1/records` and `GET /v1/edges`; [`events`] — a batch's progress as
//!   Server-Sent Events; `admin` — `GET`/`PUT /v1/policy`, `DELETE /v1/edges/{name}`;
//!   [`metrics`] — `GET /metrics`.
//! - [`api`] — the routes (one table, [`api::routes`]): `POST /v1/purges`, `GET /v1/purges/{id}`,
//!   `GET /v1/queues`, `/healthz`, `/readyz`.
//! - [`queue_server`] — issue \[4\]: the mutual-TLS HTTP/2 listener edges stream tasks and the
//!   active policy from (`POST /v1/stream`), acks becoming watermarks in the store.
//! - [`background`] — retention passes and the periodic queue observation, as tokio tasks.
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
//! a rejected request (400, 401, 403, 413, 415, 429) queues nothing, because every task is checked before
//! the single `append`.

#![deny(missing_docs)]

mod admin;
pub mod api;
pub mod auth;
pub mod authenticated;
pub mod background;
pub mod config;
pub mod counters;
pub mod events;
pub mod fold;
pub mod health;
pub mod history;
pub mod hub;
pub mod metrics;
pub mod progress;
pub mod queue_server;
pub mod response;
pub mod retention;
pub mod select;
pub mod server;
pub mod state;
pub mod tail;
pub mod tasks;
pub mod views;

use std::time::{SystemTime, UNIX_EPOCH};

use edgepurge_control_store::Millis;

pub use auth::RateState;

/// An API error; each variant is one HTTP status (see [`response`]).
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
    /// A body larger than the operation accepts (413); the message names the limit.
    #[error("{0}")]
    TooLarge(String),
    /// A body in a format the API does not read (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The token's rate limit is exhausted (429).
    #[error("rate limit exceeded: retry in {} s", .0.retry_after_secs)]
    RateLimited(RateState),
    /// Nothing with this id is visible to the token, or no such route (404).
    #[error("{0}")]
    NotFound(String),
    /// A method the path does not serve (405; the answer's `Allow` header lists those it does).
    #[error("{0}")]
    MethodNotAllowed(String),
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
