//! # edgepurge-edge — the edge role
//!
//! A caching reverse proxy (RFC 9111) with collapsed fills, policy-driven cache rules and
//! constant-time scoped purges.
//!
//! Modules, bottom first: a module imports only modules listed before it (a directory's
//! files count as its module).
//! - [`config`] — `edge.toml`, parsed into typed values at load.
//! - [`http_cache`] — the pure RFC 9111 decisions (storability, freshness, validation, Vary,
//!   Cache-Status, Range, invalidation by unsafe methods).
//! - [`fill`] — collapsed fills: one origin request per key, streamed to every waiter, with the
//!   S4.1 waiter threshold.
//! - [`metrics`] — request, origin and policy-call counters for `/metrics`.
//! - `request_id` — the request id header.
//! - `response` — body type and plain-text / JSON answers.
//! - [`receive_buffer`] — the control consumer's durable receive buffer (SQLite).
//! - `control_status` — what `GET /control` reports about the consumer.
//! - [`purge`] — tasks through `scope-purge` into constant-time store purges.
//! - [`origin_client`] — pooled http/https origin clients.
//! - `state` — `Shared`: everything the listeners and tasks share.
//! - `origin` — origin requests and the fill task (`cache-rules`, store, stream).
//! - `cache_path` — how GET and HEAD are answered through the cache.
//! - `operations` — applying a purge or warm task; warming a URL.
//! - [`consumer`] — with `[control]`: tasks and policies streamed from control nodes into the
//!   receive buffer and applied.
//! - `admin` — the admin listener's endpoints (purge, policy, control, metrics).
//! - [`proxy`] — the proxy listener's request handling.
//! - [`server`] — the listeners: [`server::run`], [`server::Edge`].
//!
//! The policy slot (`PolicySlot`, swapped on SIGHUP and `PUT /policy`) is
//! `edgepurge_policy_runtime::slot`; the task normalisation and cache keys both roles share are
//! `edgepurge_purge_model`.

mod admin;
mod cache_path;
pub mod config;
pub mod consumer;
mod control_status;
pub mod fill;
pub mod http_cache;
pub mod metrics;
mod operations;
mod origin;
pub mod origin_client;
pub mod proxy;
pub mod purge;
pub mod receive_buffer;
mod request_id;
mod response;
pub mod server;
mod state;
