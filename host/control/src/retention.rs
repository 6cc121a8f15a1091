//! Retention: how long delivered tasks and old batch records are kept, and one pass that trims
//! and expires them. [`crate::background`] runs the passes on an interval.

use edgepurge_control_store::{ControlStore, Millis};

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
