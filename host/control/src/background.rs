//! The control role's periodic work: retention (trimming delivered tasks from the queue logs and
//! expiring old records) and the queue monitor's regular observations.
//!
//! Both run as tokio tasks beside the API and stop with it. A failed pass is logged and retried
//! at the next interval: retention is housekeeping, never a reason to stop serving purges.

use std::sync::Arc;
use std::time::Duration;

use edgepurge_control_store::{ControlStore, Millis};
use tokio::task::JoinHandle;

use crate::api::AppState;
use crate::health::Clock;

/// How often and how much is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Time between two passes, in ms.
    pub interval_ms: u64,
    /// Records of batches older than this (ms) are deleted once all their tasks are trimmed.
    pub keep_records_ms: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings { interval_ms: 60_000, keep_records_ms: 7 * 86_400_000 }
    }
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Tasks trimmed from the queue logs (applied by every registered edge).
    pub trimmed: u64,
    /// Batches whose records expired.
    pub expired: u64,
}

/// One retention pass at `now`: trims every queue below the lowest watermark of the registered
/// edges, then deletes the records of batches accepted before `now - keep_records_ms` whose tasks
/// are all trimmed (the store never expires a record an edge may still need).
pub async fn retention_pass<S: ControlStore>(
    store: &S,
    settings: RetentionSettings,
    now: Millis,
) -> Result<RetentionReport, edgepurge_control_store::Error> {
    let trimmed = store.trim_delivered().await?;
    let expired = store.expire(now.saturating_sub(settings.keep_records_ms)).await?;
    Ok(RetentionReport { trimmed, expired })
}

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

/// Observes the queues every `every`, so health and the send history (S0.2, S0.3) follow the
/// edges even when no purge is submitted.
pub fn spawn_observer<S: ControlStore + 'static>(state: Arc<AppState<S>>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = state.monitor.observe(&state.store).await {
                tracing::warn!(error = %e, "queue observation failed");
            }
        }
    })
}
