//! # edgepurge-edge — the edge role
//!
//! A caching reverse proxy (RFC 9111) with collapsed fills, policy-driven cache rules and
//! constant-time scoped purges. Modules:
//! - [`http_cache`] — the pure RFC 9111 decisions (storability, freshness, validation, Vary,
//!   Cache-Status, Range, invalidation by unsafe methods).
//! - [`fill`] — collapsed fills: one origin request per key, streamed to every waiter, with the
//!   S4.1 waiter threshold.
//! - [`config`] — `edge.toml`.
//! - `consumer` — with `[control]`: tasks and policies streamed from control nodes into a durable
//!   receive buffer ([`consumer::buffer`]) and applied.
//! - [`metrics`] — request, origin and policy-call counters for `/metrics`.
//! - [`purge`] — tasks through `scope-purge` into constant-time store purges.
//! - [`policy_slot`] — the swappable current policy (SIGHUP, `PUT /policy`).
//! - `warm` — warm (prefetch) tasks through the client's path.
//! - `admin` — the admin listener's endpoints (purge, metrics).
//! - [`server`] — the listeners: [`server::run`], [`server::Edge`] (proxy path in `proxy`,
//!   origin fills in `origin`).

mod admin;
pub mod config;
pub mod consumer;
pub mod fill;
pub mod http_cache;
pub mod metrics;
mod origin;
pub mod origin_client;
pub mod policy_slot;
pub mod proxy;
pub mod purge;
mod request_id;
pub mod server;
mod warm;
