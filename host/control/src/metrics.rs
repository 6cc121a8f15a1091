//! `GET /metrics` in the Prometheus text format: the API's and the queue server's counters
//! ([`crate::counters`]), the connected edges, and per-queue depth and pending bytes read from
//! the store at scrape time.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use edgepurge_control_store::ControlStore;

use crate::state::MetricsState;

/// `GET /metrics` (no token: aggregate figures only, nothing per tenant).
pub async fn metrics<S: ControlStore>(State(MetricsState { counters, queues }): State<MetricsState<S>>) -> Response {
    let mut out = String::new();
    counters.render(&mut out);
    queues.queue.metrics.render(queues.queue.connected_count(), &mut out);
    match queues.store.queue_stats().await {
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
