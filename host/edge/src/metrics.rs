//! The edge's own request metrics (the store and fill engines keep theirs): requests by cache
//! outcome and status class, origin requests and their latency, policy calls by hook and by who
//! decided, and the control consumer's ([`ControlMetrics`]). Lock-free counters, written as
//! Prometheus text by the admin listener.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edgepurge_policy_runtime::DecisionSource;

/// What a request's `Cache-Status` says, as one label value.
pub const OUTCOMES: [&str; 9] = ["hit", "stale", "miss", "expired", "busy", "bypass", "pass", "request", "none"];
/// The policy hooks the edge calls.
pub const HOOKS: [&str; 3] = ["cache-key", "cache-rules", "scope-purge"];
const DECIDERS: [&str; 3] = ["policy", "not-declared", "fallback"];
const ORIGIN_OUTCOMES: [&str; 3] = ["ok", "error", "timeout"];
/// Upper bounds (seconds) of the origin latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 11] = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// How an origin request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginOutcome {
    /// A response head arrived.
    Ok = 0,
    /// Connecting or sending failed.
    Error = 1,
    /// No response head within the read timeout.
    Timeout = 2,
}

/// The edge's request counters.
#[derive(Default)]
pub struct EdgeMetrics {
    requests: [AtomicU64; OUTCOMES.len()],
    status_classes: [AtomicU64; 5],
    origin: [AtomicU64; ORIGIN_OUTCOMES.len()],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_micros: AtomicU64,
    policy_calls: [[AtomicU64; DECIDERS.len()]; HOOKS.len()],
    /// The control consumer's counters.
    pub control: ControlMetrics,
}

/// The control consumer's counters and gauges (all zero on a standalone edge).
#[derive(Default)]
pub struct ControlMetrics {
    /// Tasks durably written to the receive buffer.
    pub tasks_received: AtomicU64,
    /// Tasks applied (failed ones included).
    pub tasks_applied: AtomicU64,
    /// Tasks applied that failed (bad target, warm failure).
    pub tasks_failed: AtomicU64,
    /// Tasks received again at offsets already held, ignored.
    pub duplicates: AtomicU64,
    /// `Trimmed` frames: everything was purged.
    pub trimmed: AtomicU64,
    /// Control nodes connected now.
    pub connected: AtomicU64,
    /// Connection attempts after the first, per node.
    pub reconnects: AtomicU64,
    /// Receive buffer bytes held (received, not applied).
    pub buffer_bytes: AtomicU64,
    /// Policies from control installed.
    pub policies_installed: AtomicU64,
    /// Policies from control refused.
    pub policies_refused: AtomicU64,
    /// Resume positions control refused (another log, beyond its end): everything was purged.
    pub positions_reset: AtomicU64,
    /// Damaged receive buffers replaced by a readable one (everything purged each time).
    pub buffer_resets: AtomicU64,
    /// 1 while the receive buffer cannot be read (damaged, being replaced, or waiting with
    /// `stop-serving`), else 0.
    pub buffer_unreadable: AtomicU64,
    /// Rows of the receive buffer whose task did not decode (their host, or everything, purged).
    pub unreadable_tasks: AtomicU64,
}

impl ControlMetrics {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String) {
        let series: [(&str, &str, &str, &AtomicU64); 14] = [
            (
                "edgepurge_control_tasks_received_total",
                "counter",
                "Tasks from control durably received.",
                &self.tasks_received,
            ),
            (
                "edgepurge_control_tasks_applied_total",
                "counter",
                "Tasks from control applied (failed ones too).",
                &self.tasks_applied,
            ),
            (
                "edgepurge_control_tasks_failed_total",
                "counter",
                "Tasks from control that failed when applied.",
                &self.tasks_failed,
            ),
            (
                "edgepurge_control_duplicates_total",
                "counter",
                "Tasks received again at offsets already held (ignored).",
                &self.duplicates,
            ),
            (
                "edgepurge_control_trimmed_total",
                "counter",
                "Trimmed notices from control (everything was purged).",
                &self.trimmed,
            ),
            (
                "edgepurge_control_positions_reset_total",
                "counter",
                "Resume positions control refused as not its log's (everything was purged).",
                &self.positions_reset,
            ),
            ("edgepurge_control_connected_nodes", "gauge", "Control nodes connected now.", &self.connected),
            (
                "edgepurge_control_reconnects_total",
                "counter",
                "Connection attempts to control nodes after the first.",
                &self.reconnects,
            ),
            (
                "edgepurge_control_buffer_bytes",
                "gauge",
                "Receive buffer bytes received but not yet applied.",
                &self.buffer_bytes,
            ),
            (
                "edgepurge_control_policies_installed_total",
                "counter",
                "Policies from control installed.",
                &self.policies_installed,
            ),
            (
                "edgepurge_control_policies_refused_total",
                "counter",
                "Policies from control refused.",
                &self.policies_refused,
            ),
            (
                "edgepurge_control_buffer_resets_total",
                "counter",
                "Damaged receive buffers moved aside or replaced by a readable one (everything purged).",
                &self.buffer_resets,
            ),
            (
                "edgepurge_control_buffer_unreadable",
                "gauge",
                "1 while the receive buffer cannot be read (damaged), else 0.",
                &self.buffer_unreadable,
            ),
            (
                "edgepurge_control_unreadable_tasks_total",
                "counter",
                "Receive buffer rows whose task did not decode (their host or everything purged, reported failed).",
                &self.unreadable_tasks,
            ),
        ];
        for (name, kind, help, value) in series {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", value.load(Ordering::Relaxed));
        }
    }
}

/// Appends the store's size gauges: `edgepurge_cache_entries` (objects stored now) and
/// `edgepurge_cache_bytes` (their weight against `capacity-mib`), from `CacheStore::stats`.
pub fn write_store_gauges(out: &mut String, entries: u64, bytes: u64) {
    for (name, help, value) in [
        ("edgepurge_cache_entries", "Objects stored.", entries),
        ("edgepurge_cache_bytes", "Bytes stored (weighed).", bytes),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
}

/// The outcome label for a response's `Cache-Status` value (`none` when there is none).
pub fn outcome_of(cache_status: Option<&[u8]>) -> &'static str {
    let Some(value) = cache_status.and_then(|v| std::str::from_utf8(v).ok()) else { return "none" };
    let has = |needle: &str| value.split(';').any(|p| p.trim() == needle);
    let fwd = value.split(';').find_map(|p| p.trim().strip_prefix("fwd="));
    match fwd {
        None if value.contains("detail=") => "stale",
        None => "hit",
        Some(_) if value.contains("detail=busy") => "busy",
        Some("stale") if value.contains("stale-if-error") => "stale",
        Some("stale") => "expired",
        Some("miss" | "uri-miss" | "vary-miss" | "partial") => "miss",
        Some("bypass") => "bypass",
        Some("method") => "pass",
        Some("request") => "request",
        Some(_) if has("hit") => "hit",
        Some(_) => "none",
    }
}

impl EdgeMetrics {
    /// Counts one answered request.
    pub fn request(&self, outcome: &str, status: http::StatusCode) {
        let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(OUTCOMES.len() - 1);
        self.requests[i].fetch_add(1, Ordering::Relaxed);
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.status_classes[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one origin request and the time to its response head (or failure).
    pub fn origin(&self, outcome: OriginOutcome, elapsed: Duration) {
        self.origin[outcome as usize].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts one policy call of `hook` (one of [`HOOKS`]) and who decided.
    pub fn policy_call(&self, hook: &str, source: &DecisionSource) {
        let Some(h) = HOOKS.iter().position(|x| *x == hook) else { return };
        let d = match source {
            DecisionSource::Policy => 0,
            DecisionSource::NotDeclared => 1,
            DecisionSource::Fallback { .. } => 2,
        };
        self.policy_calls[h][d].fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the Prometheus text exposition of these counters to `out`.
    pub fn write(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(out, "edgepurge_requests_total", "counter", "Proxy requests answered, by cache outcome.");
        for (name, c) in OUTCOMES.iter().zip(&self.requests) {
            let _ = writeln!(out, "edgepurge_requests_total{{cache=\"{name}\"}} {}", get(c));
        }
        head(out, "edgepurge_responses_total", "counter", "Proxy responses, by status class.");
        for (i, c) in self.status_classes.iter().enumerate() {
            let _ = writeln!(out, "edgepurge_responses_total{{code=\"{}xx\"}} {}", i + 1, get(c));
        }
        head(out, "edgepurge_origin_requests_total", "counter", "Origin requests, by outcome.");
        for (name, c) in ORIGIN_OUTCOMES.iter().zip(&self.origin) {
            let _ = writeln!(out, "edgepurge_origin_requests_total{{outcome=\"{name}\"}} {}", get(c));
        }
        let name = "edgepurge_origin_latency_seconds";
        head(out, name, "histogram", "Time from sending an origin request to its response head.");
        let mut cumulative = 0;
        for (bound, c) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += get(c);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count: u64 = self.origin.iter().map(get).sum();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", get(&self.latency_micros) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        head(out, "edgepurge_policy_calls_total", "counter", "Policy hook calls, by hook and by who decided.");
        for (hook, row) in HOOKS.iter().zip(&self.policy_calls) {
            for (decided, c) in DECIDERS.iter().zip(row) {
                let _ =
                    writeln!(out, "edgepurge_policy_calls_total{{hook=\"{hook}\",decided=\"{decided}\"}} {}", get(c));
            }
        }
        self.control.write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_status_values_map_to_outcomes() {
        let o = |s: &str| outcome_of(Some(s.as_bytes()));
        assert_eq!(o("edgepurge; hit; ttl=42"), "hit");
        assert_eq!(o("edgepurge; hit; ttl=-3; detail=stale-while-revalidate"), "stale");
        assert_eq!(o("edgepurge; hit; detail=busy"), "stale");
        assert_eq!(o("edgepurge; fwd=miss; stored"), "miss");
        assert_eq!(o("edgepurge; fwd=uri-miss; detail=no-store"), "miss");
        assert_eq!(o("edgepurge; fwd=miss; detail=busy"), "busy");
        assert_eq!(o("edgepurge; fwd=stale; fwd-status=304; ttl=60; stored"), "expired");
        assert_eq!(o("edgepurge; fwd=stale; fwd-status=502; detail=stale-if-error"), "stale");
        assert_eq!(o("edgepurge; fwd=bypass; detail=query-mode"), "bypass");
        assert_eq!(o("edgepurge; fwd=method"), "pass");
        assert_eq!(outcome_of(None), "none");
    }

    #[test]
    fn exposition_has_every_series_and_a_cumulative_histogram() {
        let m = EdgeMetrics::default();
        m.request("hit", http::StatusCode::OK);
        m.request("busy", http::StatusCode::SERVICE_UNAVAILABLE);
        m.origin(OriginOutcome::Ok, Duration::from_millis(3));
        m.origin(OriginOutcome::Timeout, Duration::from_secs(20));
        m.policy_call("cache-rules", &DecisionSource::NotDeclared);
        let mut out = String::new();
        m.write(&mut out);
        assert!(out.contains("edgepurge_requests_total{cache=\"hit\"} 1"), "{out}");
        assert!(out.contains("edgepurge_responses_total{code=\"5xx\"} 1"), "{out}");
        assert!(out.contains("edgepurge_origin_latency_seconds_bucket{le=\"0.005\"} 1"), "{out}");
        assert!(out.contains("edgepurge_origin_latency_seconds_bucket{le=\"10\"} 1"), "{out}");
        assert!(out.contains("edgepurge_origin_latency_seconds_bucket{le=\"+Inf\"} 2"), "{out}");
        assert!(out.contains("edgepurge_policy_calls_total{hook=\"cache-rules\",decided=\"not-declared\"} 1"), "{out}");
        ControlMetrics::add(&m.control.tasks_received, 3);
        let mut out = String::new();
        m.write(&mut out);
        assert!(out.contains("edgepurge_control_tasks_received_total 3"), "{out}");
        assert!(out.contains("edgepurge_control_connected_nodes 0"), "{out}");
        assert!(out.contains("# TYPE edgepurge_control_buffer_resets_total counter\n"), "{out}");
        assert!(out.contains("edgepurge_control_buffer_unreadable 0"), "{out}");
    }

    #[test]
    fn store_gauges_show_entries_and_bytes() {
        let mut out = String::new();
        write_store_gauges(&mut out, 1_000_000, 1_509_000_000);
        assert!(out.contains("# TYPE edgepurge_cache_entries gauge\nedgepurge_cache_entries 1000000\n"), "{out}");
        assert!(out.contains("# TYPE edgepurge_cache_bytes gauge\nedgepurge_cache_bytes 1509000000\n"), "{out}");
    }
}
