//! The control role's periodic work: retention (trimming delivered tasks from the queue logs and
//! expiring old records) and the queue monitor's regular observations.
//!
//! Both run as tokio tasks beside the API and stop with it. A failed pass is logged and retried
//! at the next interval: retention is housekeeping, never a reason to stop serving purges.

use std::sync::Arc;
use std::time::Duration;

use edgepurge_control_store::ControlStore;
use tokio::task::JoinHandle;

use crate::health::{Clock, QueueMonitor};
use crate::retention::{retention_pass, RetentionReport, RetentionSettings};

/// Runs a retention pass every `interval_ms` (the first after one interval), forever; each
/// pass's outcome also goes to `reports` when given (tests wait on it).
pub fn spawn_retention<S: ControlStore + 'static>(
    store: S,
    settings: RetentionSettings,
    clock: Clock,
    reports: Option<tokio::sync::mpsc::UnboundedSender<RetentionReport>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = Duration::from_millis(settings.interval_ms.max(1));
        loop {
            tokio::time::sleep(interval).await;
            match retention_pass(&store, settings, clock()).await {
                Ok(report) => {
                    if report.trimmed + report.expired > 0 {
                        tracing::info!(trimmed = report.trimmed, expired = report.expired, "retention pass");
                    }
                    if let Some(reports) = &reports {
                        let _ = reports.send(report);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying at the next interval"),
            }
        }
    })
}

/// Observes `store`'s queues with `monitor` (the API's, so it sees the same history) every
/// `every`, so health and the send history (S0.2, S0.3) follow the edges even when no purge is
/// submitted.
pub fn spawn_observer<S: ControlStore + 'static>(
    store: S,
    monitor: Arc<QueueMonitor>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = monitor.observe(&store).await {
                tracing::warn!(error = %e, "queue observation failed");
            }
        }
    })
}
