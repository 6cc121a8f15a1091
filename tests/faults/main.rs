//! The fault suite (issue 14): faults a real operator meets, against the real binary — control
//! and the edges as separate processes, an origin and TCP proxies in the test. Every case asserts
//! the outcome that matters: **no purge is reported applied on an edge that still serves the old
//! object** (`check::assert_no_purged_but_served`).
//!
//! `make test` runs every case in a bounded form (20,000-URL batches, a 20-second soak);
//! `make faults` sets `EDGEPURGE_FAULTS=full` (200,000-URL batches); `make soak MINUTES=10` runs
//! the soak. The binary is `target/<profile>/edgepurge` (`cargo build -p edgepurge`) or
//! `EDGEPURGE_BIN`.
//!
//! Adding a case: a `#[test]` in the module of its fault family (or a new module listed here)
//! that builds a cluster, applies the fault, and ends with `assert_no_purged_but_served`:
//!
//! ```text
//! let Some(mut c) = Cluster::builder().edges(2).build() else { return };
//! c.warm(&paths);                       // cached on every edge
//! let purge = c.purge_urls(&paths);     // new content at the origin, then the purge
//! c.kill_edge(1);  /* the fault */  c.start_edge(1);
//! c.wait_done(purge.batch);
//! assert!(assert_no_purged_but_served(&c, &[purge]) > 0);
//! ```

#![cfg(unix)]

// The harness.
mod api;
mod check;
mod cluster;
mod http;
mod origin;
mod process;
mod proxy;
mod scale;

// The fault families.
mod buffer;
mod control_kill;
mod disk;
mod edge_kill;
mod origin_faults;
mod partition;
mod pending;
mod soak;
mod tls;
