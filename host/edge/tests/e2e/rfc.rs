//! RFC 9111 through the real proxy, one submodule per area: freshness, what is stored,
//! validation and `Vary`, stale serving, invalidation and headers, and the edge's
//! configuration switches (client `Cache-Control`, query modes, honor-origin).

mod config;
mod freshness;
mod stale;
mod storage;
mod validation;
