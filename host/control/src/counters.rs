//! The control role's counters, cheap to update from any task: the purge API's ([`Metrics`]:
//! submissions by outcome, accepted tasks) and the queue server's ([`QueueMetrics`]: refused
//! handshakes by reason, frames and tasks sent, acks received). `GET /metrics`
//! ([`crate::metrics`]) renders them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use edgepurge_tls::mtls::Refusal;

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
            400 | 413 | 415 => 4,
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

/// Refusals the queue server adds to the certificate ones of [`Refusal::LABELS`]: a certificate
/// without an edge name, a client that never finished its handshake.
const QUEUE_REFUSALS: [&str; 2] = ["no_edge_name", "timeout"];

/// Every reason a queue-server handshake is counted under, in exposition order (see
/// `queue_server::refusal`).
pub fn refusal_labels() -> impl Iterator<Item = &'static str> {
    Refusal::LABELS.into_iter().chain(QUEUE_REFUSALS)
}

/// The control frames counted by type, in exposition order (`ControlFrame::name`).
pub const FRAME_TYPES: [&str; 6] = ["Hello", "Tasks", "Trimmed", "Policy", "Heartbeat", "Log"];

/// Counters of the queue server. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    refused: [AtomicU64; Refusal::LABELS.len() + QUEUE_REFUSALS.len()],
    frames_sent: [AtomicU64; FRAME_TYPES.len()],
    tasks_sent: AtomicU64,
    task_bytes_sent: AtomicU64,
    acks: AtomicU64,
    streams: AtomicU64,
    positions_reset: [AtomicU64; POSITION_RESETS.len()],
    watermarks_refused: AtomicU64,
}

/// Why an edge's resume positions were refused (it purged everything and started over), in
/// exposition order (`queue_server::positions`).
pub const POSITION_RESETS: [&str; 3] = ["other_log", "beyond_log_end", "other_task"];

impl QueueMetrics {
    /// Counts a refused handshake; `reason` is one of [`refusal_labels`] (anything else counts as
    /// `other`).
    pub fn refused(&self, reason: &str) {
        let index = |label: &str| refusal_labels().position(|r| r == label);
        let i = index(reason).or_else(|| index("other")).unwrap_or(0);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Handshakes refused for `reason` so far.
    pub fn refused_count(&self, reason: &str) -> u64 {
        refusal_labels().position(|r| r == reason).map_or(0, |i| self.refused[i].load(Ordering::Relaxed))
    }

    /// Counts a frame sent to an edge, by its name, and for `Tasks` its tasks and their bytes.
    pub fn frame_sent(&self, name: &str, tasks: u64, bytes: u64) {
        if let Some(i) = FRAME_TYPES.iter().position(|t| *t == name) {
            self.frames_sent[i].fetch_add(1, Ordering::Relaxed);
        }
        self.tasks_sent.fetch_add(tasks, Ordering::Relaxed);
        self.task_bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts an `Ack` received from an edge.
    pub fn ack(&self) {
        self.acks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an edge whose positions were refused, by one of [`POSITION_RESETS`].
    pub fn positions_reset(&self, reason: &str) {
        if let Some(i) = POSITION_RESETS.iter().position(|r| *r == reason) {
            self.positions_reset[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Edges whose positions were refused for `reason` so far.
    pub fn positions_reset_count(&self, reason: &str) -> u64 {
        POSITION_RESETS.iter().position(|r| *r == reason).map_or(0, |i| self.positions_reset[i].load(Ordering::Relaxed))
    }

    /// Counts a watermark an edge reported beyond what its stream had sent (ignored).
    pub fn watermark_refused(&self) {
        self.watermarks_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stream that an edge opened (and passed the version check).
    pub fn stream_opened(&self) {
        self.streams.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in the Prometheus text format, with `connected` as the connected-edges gauge.
    pub fn render(&self, connected: usize, out: &mut String) {
        out.push_str("# HELP edgepurge_control_edges_connected Edges with an open queue stream to this node.\n");
        out.push_str("# TYPE edgepurge_control_edges_connected gauge\n");
        let _ = writeln!(out, "edgepurge_control_edges_connected {connected}");
        out.push_str(
            "# HELP edgepurge_control_queue_handshakes_refused_total Queue-server TLS handshakes refused, by reason.\n",
        );
        out.push_str("# TYPE edgepurge_control_queue_handshakes_refused_total counter\n");
        for (name, counter) in refusal_labels().zip(&self.refused) {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(out, "edgepurge_control_queue_handshakes_refused_total{{reason=\"{name}\"}} {n}");
        }
        out.push_str("# HELP edgepurge_control_queue_streams_total Queue streams edges opened.\n");
        out.push_str("# TYPE edgepurge_control_queue_streams_total counter\n");
        let _ = writeln!(out, "edgepurge_control_queue_streams_total {}", self.streams.load(Ordering::Relaxed));
        out.push_str("# HELP edgepurge_control_queue_frames_sent_total Frames sent to edges, by type.\n");
        out.push_str("# TYPE edgepurge_control_queue_frames_sent_total counter\n");
        for (name, counter) in FRAME_TYPES.iter().zip(&self.frames_sent) {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(out, "edgepurge_control_queue_frames_sent_total{{type=\"{name}\"}} {n}");
        }
        out.push_str("# HELP edgepurge_control_queue_tasks_sent_total Tasks sent to edges (a resend counts again).\n");
        out.push_str("# TYPE edgepurge_control_queue_tasks_sent_total counter\n");
        let _ = writeln!(out, "edgepurge_control_queue_tasks_sent_total {}", self.tasks_sent.load(Ordering::Relaxed));
        out.push_str("# HELP edgepurge_control_queue_task_bytes_sent_total Task bytes (size_bytes) sent to edges.\n");
        out.push_str("# TYPE edgepurge_control_queue_task_bytes_sent_total counter\n");
        let bytes = self.task_bytes_sent.load(Ordering::Relaxed);
        let _ = writeln!(out, "edgepurge_control_queue_task_bytes_sent_total {bytes}");
        out.push_str("# HELP edgepurge_control_queue_acks_total Acks received from edges.\n");
        out.push_str("# TYPE edgepurge_control_queue_acks_total counter\n");
        let _ = writeln!(out, "edgepurge_control_queue_acks_total {}", self.acks.load(Ordering::Relaxed));
        out.push_str(
            "# HELP edgepurge_control_edge_positions_reset_total Edges whose resume positions were not this log's: \
             they purged everything and started at the log's start, by reason.\n",
        );
        out.push_str("# TYPE edgepurge_control_edge_positions_reset_total counter\n");
        for (name, counter) in POSITION_RESETS.iter().zip(&self.positions_reset) {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(out, "edgepurge_control_edge_positions_reset_total{{reason=\"{name}\"}} {n}");
        }
        out.push_str(
            "# HELP edgepurge_control_watermarks_refused_total Watermarks edges reported beyond what was sent to them \
             (ignored).\n",
        );
        out.push_str("# TYPE edgepurge_control_watermarks_refused_total counter\n");
        let refused = self.watermarks_refused.load(Ordering::Relaxed);
        let _ = writeln!(out, "edgepurge_control_watermarks_refused_total {refused}");
    }
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

    #[test]
    fn queue_server_figures_are_rendered() {
        let m = QueueMetrics::default();
        m.refused("revoked");
        m.refused("something new");
        m.frame_sent("Tasks", 3, 120);
        m.frame_sent("Heartbeat", 0, 0);
        m.ack();
        m.positions_reset("other_log");
        m.watermark_refused();
        let mut out = String::new();
        m.render(2, &mut out);
        assert!(out.contains("edgepurge_control_edge_positions_reset_total{reason=\"other_log\"} 1\n"), "{out}");
        assert!(out.contains("edgepurge_control_edge_positions_reset_total{reason=\"other_task\"} 0\n"));
        assert!(out.contains("edgepurge_control_watermarks_refused_total 1\n"));
        assert!(out.contains("edgepurge_control_edges_connected 2\n"), "{out}");
        assert!(out.contains("edgepurge_control_queue_handshakes_refused_total{reason=\"revoked\"} 1\n"));
        assert!(out.contains("edgepurge_control_queue_handshakes_refused_total{reason=\"other\"} 1\n"));
        assert!(out.contains("edgepurge_control_queue_frames_sent_total{type=\"Tasks\"} 1\n"));
        assert!(out.contains("edgepurge_control_queue_tasks_sent_total 3\n"));
        assert!(out.contains("edgepurge_control_queue_task_bytes_sent_total 120\n"));
        assert!(out.contains("edgepurge_control_queue_acks_total 1\n"));
        assert_eq!(m.refused_count("revoked"), 1);
    }
}
