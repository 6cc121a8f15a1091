//! # edgepurge-bench — shared inputs of the criterion benchmarks
//!
//! The benchmarks themselves live in `policy_calls.rs` (`cargo bench -p edgepurge-bench`);
//! this library holds what they share: where the built policy components are, and plain,
//! deterministic hook inputs ([`sample_tasks`], [`sample_queues`], [`sample_request`],
//! [`sample_response`], [`sample_config`]) shaped like what an edge sees in production, so
//! the Wasm and native (builtin) paths do the same work.

#[path = "support/dev_cluster.rs"]
pub mod dev_cluster;
#[path = "support/edge_proc.rs"]
pub mod edge_proc;
#[path = "support/fill.rs"]
pub mod fill;
#[path = "support/stats.rs"]
pub mod stats;
#[path = "support/varnish.rs"]
pub mod varnish;
#[path = "support/wrk.rs"]
pub mod wrk;

use edgepurge_policy_runtime::policy::PolicyOptions;
use edgepurge_policy_runtime::{InstanceReuse, Limits};
use edgepurge_sdk::defaults::{DEFAULT_TTL_KEY, SPEED_FLOOR_KEY};
use edgepurge_sdk::{Header, QueueState, RequestMeta, ResponseMeta, SpeedSample, Task, TaskKind};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where `make policies` puts the shipped policy `name`:
/// `<workspace>/target/policies/<name>.wasm` (always under `./target`, even when
/// `CARGO_TARGET_DIR` points elsewhere).
pub fn policy_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("policies").join(format!("{name}.wasm"))
}

/// The bytes of the built policy `name`, or `None` when it has not been built.
pub fn try_read_policy(name: &str) -> Option<Vec<u8>> {
    std::fs::read(policy_path(name)).ok()
}

/// The bytes of the built policy `name`.
///
/// # Panics
///
/// When the component is missing, with a message telling to run `make policies` first.
pub fn read_policy(name: &str) -> Vec<u8> {
    let path = policy_path(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("cannot read the {name} policy at {} ({e}): run `make policies` first", path.display())
    })
}

/// The operator configuration used by every benchmark: a speed floor for `select-queue` and a
/// default TTL, so `cache-rules` parses the response's caching headers instead of returning
/// at once.
pub fn sample_config() -> BTreeMap<String, String> {
    BTreeMap::from([(SPEED_FLOOR_KEY.to_owned(), "2097152".to_owned()), (DEFAULT_TTL_KEY.to_owned(), "300".to_owned())])
}

/// Load options for the benchmarks: [`sample_config`], the default limits with `reuse`, and a
/// 1 s deadline instead of 10 ms, so a call preempted on a busy machine is measured rather
/// than answered by the fallback (the deadline does not change a call's cost).
pub fn options(reuse: InstanceReuse) -> PolicyOptions {
    PolicyOptions {
        config: sample_config(),
        limits: Limits { deadline: Duration::from_secs(1), reuse, ..Limits::default() },
        log_sink: None,
    }
}

/// `n` URL purge tasks of one tenant and host, with distinct ids, targets and sizes
/// (300–1299 bytes).
pub fn sample_tasks(n: usize) -> Vec<Task> {
    (0..n as u64)
        .map(|i| Task {
            id: 1_000 + i,
            kind: TaskKind::Url,
            target: format!("https://www.example.com/assets/img/product-{i:05}.jpg"),
            soft: i % 4 == 0,
            size_bytes: 300 + (i * 7_919) % 1_000,
            tenant: "acme".to_owned(),
            host: "www.example.com".to_owned(),
        })
        .collect()
}

/// `k` healthy queues with different backlogs, pacing and eight same-slot speed samples each,
/// so the expected-wait selection has real choices to make.
pub fn sample_queues(k: u32) -> Vec<QueueState> {
    (0..k)
        .map(|q| {
            let q64 = u64::from(q);
            QueueState {
                index: q,
                healthy: true,
                depth: 50 + 40 * q64,
                pending_bytes: 60_000 + 25_000 * q64,
                pacing_ms: 2 + q % 3,
                samples: (0..8u64)
                    .map(|s| SpeedSample { bytes: 1_000_000 + 150_000 * ((s + q64) % 5), millis: 1_000 })
                    .collect(),
                peak_bytes_per_sec: 2_000_000 + 100_000 * q64,
                slot: 17,
            }
        })
        .collect()
}

/// A browser-like `GET` of a JSON API collection (`/api/…`, the `api-read-through` policy's
/// default prefix) whose query string mixes kept parameters with a tracking parameter and a
/// cache buster, so a `cache-key` hook has filtering and sorting to do.
pub fn sample_request() -> RequestMeta {
    RequestMeta {
        method: "GET".to_owned(),
        url: "https://api.example.com/api/products?sort=name&utm_source=newsletter&page=2&cb=1718".to_owned(),
        headers: vec![
            Header::new("host", "api.example.com"),
            Header::new("accept", "application/json"),
            Header::new("accept-encoding", "gzip, br"),
            Header::new("accept-language", "en-GB,en;q=0.9"),
            Header::new("user-agent", "Mozilla/5.0 (X11; Linux x86_64) edgepurge-bench"),
            Header::new("cookie", "session=abc123; theme=dark"),
        ],
    }
}

/// A `200` JSON response with validators but no freshness information, so the default
/// `cache-rules` applies the configured default TTL.
pub fn sample_response() -> ResponseMeta {
    ResponseMeta {
        status: 200,
        headers: vec![
            Header::new("content-type", "application/json; charset=utf-8"),
            Header::new("content-length", "1834"),
            Header::new("cache-control", "public"),
            Header::new("etag", "\"5f2b-1a2b3c\""),
            Header::new("last-modified", "Tue, 03 Jun 2025 10:00:00 GMT"),
            Header::new("vary", "accept-encoding"),
            Header::new("surrogate-key", "product-12345 catalog"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "run `make policies` first")]
    fn a_missing_policy_says_how_to_build_it() {
        read_policy("no-such-policy");
    }

    #[test]
    fn inputs_have_the_requested_sizes() {
        assert_eq!(sample_tasks(100).len(), 100);
        assert_eq!(sample_queues(4).iter().map(|q| q.index).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert!(policy_path("default").ends_with("target/policies/default.wasm"));
    }
}
