//! `GET /metrics` in the Prometheus text format: submissions by outcome, accepted batches and
//! tasks, and per-queue depth and pending bytes read from the store at scrape time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use edgepurge_control_store::ControlStore;

use crate::api::AppState;

/// The outcomes a submission is counted under, in exposition order.
const OUTCOMES: [&str; 8] =
    ["accepted", "replayed", "unauthorized", "forbidden", "invalid", "rate_limited", "store_error", "other"];

/// Counters of the purge API. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    submissions: [AtomicU64; 8],
    tasks_accepted: AtomicU64,
}

impl Metrics {
    /// Counts one submission by its HTTP status (and whether an idempotent retry was replayed),
    /// plus its tasks when a new batch was queued.
    pub fn submission(&self, status: StatusCode, replayed: bool, tasks: u64) {
        let outcome = match status.as_u16() {
            202 if replayed => 1,
            202 => 0,
            401 => 2,
            403 => 3,
            400 | 415 => 4,
            429 => 5,
            503 => 6,
            _ => 7,
        };
        self.submissions[outcome].fetch_add(1, Ordering::Relaxed);
        if outcome == 0 {
            self.tasks_accepted.fetch_add(tasks, Ordering::Relaxed);
        }
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP edgepurge_control_submissions_total Purge submissions by outcome.\n");
        out.push_str("# TYPE edgepurge_control_submissions_total counter\n");
        for (name, counter) in OUTCOMES.iter().zip(&self.submissions) {
            let _ = writeln!(
                out,
                "edgepurge_control_submissions_total{{outcome=\"{name}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP edgepurge_control_tasks_accepted_total Tasks in newly queued batches.\n");
        out.push_str("# TYPE edgepurge_control_tasks_accepted_total counter\n");
        let _ = writeln!(out, "edgepurge_control_tasks_accepted_total {}", self.tasks_accepted.load(Ordering::Relaxed));
    }
}

/// `GET /metrics` (no token: aggregate figures only, nothing per tenant).
pub async fn metrics<S: ControlStore>(State(state): State<Arc<AppState<S>>>) -> Response {
    let mut out = String::new();
    state.metrics.render(&mut out);
    match state.store.queue_stats().await {
        Ok(stats) => {
            out.push_str("# HELP edgepurge_control_queue_depth Tasks the slowest edge has still to apply.\n");
            out.push_str("# TYPE edgepurge_control_queue_depth gauge\n");
            for s in &stats {
                let _ = writeln!(out, "edgepurge_control_queue_depth{{queue=\"{}\"}} {}", s.queue, s.pending.tasks);
            }
            out.push_str("# HELP edgepurge_control_queue_pending_bytes Bytes the slowest edge has still to apply.\n");
            out.push_str("# TYPE edgepurge_control_queue_pending_bytes gauge\n");
            for s in &stats {
                let _ =
                    writeln!(out, "edgepurge_control_queue_pending_bytes{{queue=\"{}\"}} {}", s.queue, s.pending.bytes);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: queue figures unavailable"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_and_rendered() {
        let m = Metrics::default();
        m.submission(StatusCode::ACCEPTED, false, 10);
        m.submission(StatusCode::ACCEPTED, true, 10);
        m.submission(StatusCode::TOO_MANY_REQUESTS, false, 0);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("edgepurge_control_submissions_total{outcome=\"accepted\"} 1\n"), "{out}");
        assert!(out.contains("edgepurge_control_submissions_total{outcome=\"replayed\"} 1\n"));
        assert!(out.contains("edgepurge_control_submissions_total{outcome=\"rate_limited\"} 1\n"));
        assert!(out.contains("edgepurge_control_tasks_accepted_total 10\n"));
    }
}
