//! Applying what control sent: one worker per (node, queue) takes tasks from the receive buffer
//! (or, when it keeps up, the same chunks held in memory by the receive path: `fresh`) in offset
//! order and applies them through the same path as `POST /purge`, then advances the
//! applied watermark durably and asks the node's connection for an Ack. Queues run concurrently,
//! each strictly in order; workers sleep on a [`Notify`] the receive path wakes, never polling.
//!
//! A row whose task does not decode is answered by purging its host (or everything when the row
//! names none), reported to control as a failed task with the reason, and skipped. A buffer that
//! cannot be read is retried with back-off (a damaged one is the `recovery` task's to replace).
//!
//! Also here: `Policy` frames (verify, install, persist) and `Trimmed` (purge everything).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use edgepurge_edge_cache::{PurgeMode, Scope};
use edgepurge_policy_runtime::sha256_hex;
use edgepurge_sdk::Task;
use edgepurge_wire::{EdgeFrame, Offset, QueueId, TaskFailure};
use tokio::sync::Notify;

use super::{now_ms, persisted_policy_paths, Inner};
use crate::metrics::ControlMetrics;
use crate::operations::{apply_owned, TaskError};
use crate::receive_buffer::{BufferError, Pending};
use crate::state::Shared;

/// Offsets taken from the buffer per round, in whole rows (a row is one received Tasks frame,
/// up to 1,000 tasks): one durable watermark write and one Ack cover them all. After a crash, at
/// most one round is applied again, which purges make harmless.
const BATCH: usize = 1000;
/// Back-off between attempts after a buffer error.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Wakes the worker of (`key`, `queue`), starting it if it is not running.
pub(super) fn wake(inner: &Arc<Inner>, key: &str, queue: QueueId) {
    let (notify, started) = {
        let mut appliers = inner.appliers.lock().unwrap_or_else(|e| e.into_inner());
        match appliers.get(&(key.to_owned(), queue)) {
            Some(notify) => (Arc::clone(notify), false),
            None => {
                let notify = Arc::new(Notify::new());
                appliers.insert((key.to_owned(), queue), Arc::clone(&notify));
                (notify, true)
            }
        }
    };
    if started {
        inner.spawn(worker(Arc::clone(inner), key.to_owned(), queue, Arc::clone(&notify)));
    }
    // A permit is stored when the worker is busy, so a wake-up during a batch is not lost.
    notify.notify_one();
}

/// Applies (`key`, `queue`) in offset order until the consumer stops.
async fn worker(inner: Arc<Inner>, key: String, queue: QueueId, notify: Arc<Notify>) {
    let mut delay = RETRY_MIN;
    // The offset after the last round recorded, once known: the chunks the receive path holds
    // from there are taken from memory (see `fresh`), anything else is read from the buffer.
    let mut next: Option<Offset> = None;
    while !inner.stopped() {
        let in_use = *inner.resets.borrow();
        let fresh = next.map(|n| inner.fresh.take(&key, queue, n, in_use, BATCH as u64)).unwrap_or_default();
        let (buffer_id, batch) = if !fresh.is_empty() {
            (in_use, fresh)
        } else {
            let (k, q) = (key.clone(), queue);
            match inner.buffer.call(move |b| Ok((b.id(), b.pending(&k, q, BATCH)?))).await {
                Ok(read) => read,
                Err(e) => {
                    retry_later(&inner, &key, queue, "read", &e, &mut delay, &notify).await;
                    continue;
                }
            }
        };
        let Some(last) = batch.last().map(|chunk| chunk.last) else {
            let mut stop = inner.stop.clone();
            tokio::select! { _ = notify.notified() => {}, _ = stop.changed() => {} }
            continue;
        };
        let mut failures = Vec::new();
        for chunk in batch {
            match chunk.tasks {
                Pending::Tasks(tasks) => {
                    for (offset, task) in (chunk.from..).zip(tasks) {
                        if let Err(reason) = apply_one(&inner.shared, Task::from(task)).await {
                            tracing::warn!(node = %key, queue, offset, %reason, "task from control failed (counted as applied)");
                            failures.push(TaskFailure { queue, offset, reason });
                        }
                    }
                }
                Pending::Unreadable { reason, hosts } => {
                    let reason = unreadable(&inner, &key, queue, chunk.from..=chunk.last, reason, hosts);
                    let each = |offset| TaskFailure { queue, offset, reason: reason.clone() };
                    failures.extend((chunk.from..=chunk.last).map(each));
                }
            }
        }
        let metrics = inner.metrics();
        ControlMetrics::add(&metrics.tasks_failed, failures.len() as u64);
        let (k, q) = (key.clone(), queue);
        let recorded = inner.buffer.call(move |b| {
            // A batch read from a buffer since replaced (after damage) is not the new one's to
            // record: its rows at these offsets are other tasks.
            if b.id() != buffer_id {
                return Ok(false);
            }
            b.mark_applied(&k, q, last, &failures, now_ms())?;
            Ok(true)
        });
        match recorded.await {
            Ok(true) => {
                next = Some(last + 1);
                delay = RETRY_MIN;
                let count = inner.buffer.call(|b| Ok(b.used())).await.unwrap_or(0);
                metrics.buffer_bytes.store(count, Ordering::Relaxed);
                inner.link(&key).ack.notify_one();
            }
            Ok(false) => next = None,
            // Not durable: the batch is applied again after this error clears (purges are
            // idempotent), so the failures are reported then.
            Err(e) => retry_later(&inner, &key, queue, "record applied tasks in", &e, &mut delay, &notify).await,
        }
    }
}

/// Waits before the next attempt after `e` (`what` the worker could not do), doubling `delay`.
/// A damaged buffer is the recovery task's to replace: waited for quietly, and a wake-up (new
/// tasks, which only a replaced buffer receives) ends the wait. Anything else (disk full, busy,
/// I/O) is logged with its cause and waited out.
async fn retry_later(
    inner: &Inner,
    key: &str,
    queue: QueueId,
    what: &str,
    e: &BufferError,
    delay: &mut Duration,
    notify: &Notify,
) {
    let mut stop = inner.stop.clone();
    let wait = *delay;
    *delay = (*delay * 2).min(RETRY_MAX);
    if matches!(e, BufferError::Unavailable(_)) || e.damage().is_some() {
        tracing::debug!(node = %key, queue, error = %e, "receive buffer being replaced; waiting");
        tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = notify.notified() => {}, _ = stop.changed() => {} }
    } else {
        tracing::error!(node = %key, queue, error = %e, "cannot {what} the receive buffer; retrying in {wait:?}");
        tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = stop.changed() => {} }
    }
}

/// Answers a chunk row whose tasks do not decode: purges the hosts they named (hard: whether
/// they were soft is unknown), or everything when the row names no usable host, counts its
/// tasks, and returns the failure reason to report for each of them.
fn unreadable(
    inner: &Inner,
    key: &str,
    queue: QueueId,
    offsets: std::ops::RangeInclusive<Offset>,
    reason: String,
    hosts: Option<Vec<String>>,
) -> String {
    let metrics = inner.metrics();
    let count = offsets.end() + 1 - offsets.start();
    ControlMetrics::add(&metrics.tasks_applied, count);
    ControlMetrics::add(&metrics.unreadable_tasks, count);
    let normalized: Option<Vec<String>> =
        hosts.and_then(|hosts| hosts.iter().map(|h| edgepurge_url::normalize_host(h).ok()).collect());
    let instead = match normalized {
        Some(hosts) => {
            for host in &hosts {
                inner.shared.store.purge_owned(Scope::Host(host.clone()), PurgeMode::Hard);
            }
            let noun = if hosts.len() == 1 { "host" } else { "hosts" };
            format!("purged {noun} {} (hard) instead", hosts.join(", "))
        }
        None => {
            inner.shared.store.purge(&Scope::Everything, PurgeMode::Hard);
            "purged everything (hard) instead: the row names no usable host".into()
        }
    };
    let reason = format!("{reason}; {instead}");
    tracing::error!(node = %key, queue, offsets = ?offsets, %reason, "skipping unreadable tasks from control");
    reason
}

/// Applies one task (counting it); `Err` is the reason it failed (it still counts as applied).
async fn apply_one(shared: &Arc<Shared>, task: Task) -> Result<(), String> {
    ControlMetrics::add(&shared.metrics.control.tasks_applied, 1);
    match apply_owned(shared, task, false).await {
        Ok(applied) => match &applied.warmed {
            Some(warmed) if warmed.status >= 500 => Err(format!(
                "warming {} failed: the edge answered {} ({})",
                warmed.url, warmed.status, warmed.cache_status
            )),
            _ => Ok(()),
        },
        Err(TaskError::Invalid(e) | TaskError::Warm(e)) => Err(e),
    }
}

/// Handles `Trimmed`: purges everything (the tasks in between are gone, so anything cached may
/// be stale), records it and moves the queue's watermarks to `first_retained − 1`.
pub(super) async fn trimmed(
    inner: &Arc<Inner>,
    key: &str,
    queue: QueueId,
    first_retained: Offset,
) -> Result<(), crate::receive_buffer::BufferError> {
    inner.shared.store.purge(&Scope::Everything, PurgeMode::Hard);
    tracing::warn!(
        node = %key, queue, first_retained,
        "control trimmed tasks this edge had not received: purged everything (hard) and continuing from there"
    );
    ControlMetrics::add(&inner.metrics().trimmed, 1);
    inner.fresh.forget(key);
    let k = key.to_owned();
    inner.buffer.call(move |b| b.trimmed(&k, queue, first_retained, now_ms())).await?;
    inner.update_buffer_gauge().await;
    Ok(())
}

/// Handles `Log`: with `reset`, control refused this edge's positions (they are another log's,
/// or beyond its end): purge everything, drop what is buffered from this node and continue from
/// `start`. Without, adopt `log_id` for the positions control accepted.
pub(super) async fn log(
    inner: &Arc<Inner>,
    key: &str,
    log_id: &str,
    reset: Option<String>,
    start: &[(QueueId, Offset)],
) -> Result<(), crate::receive_buffer::BufferError> {
    let (k, id) = (key.to_owned(), log_id.to_owned());
    let Some(reason) = reset else {
        return inner.buffer.call(move |b| b.set_log_id(&k, &id)).await;
    };
    inner.shared.store.purge(&Scope::Everything, PurgeMode::Hard);
    inner.fresh.forget(key);
    tracing::error!(
        node = %key, %log_id, %reason,
        "control refused this edge's positions: purged everything (hard) and continuing from the log's start"
    );
    ControlMetrics::add(&inner.metrics().positions_reset, 1);
    let start = start.to_vec();
    inner.buffer.call(move |b| b.reset_positions(&k, &id, &start, &reason, now_ms())).await?;
    inner.update_buffer_gauge().await;
    Ok(())
}

/// What the persisted policy's side file records.
#[derive(serde::Serialize, serde::Deserialize)]
struct PersistedPolicy {
    name: String,
    version: String,
    sha256: String,
    control_id: String,
}

/// Handles `Policy`: verifies the bytes, installs them unless they are what runs, persists
/// them, and returns the `PolicyLoaded` answer.
pub(super) async fn policy(
    inner: &Arc<Inner>,
    control_id: &str,
    name: String,
    version: String,
    sha256: String,
    bytes: Vec<u8>,
) -> EdgeFrame {
    let computed = sha256_hex(&bytes);
    let loaded = |error: Option<String>| EdgeFrame::PolicyLoaded {
        name: name.clone(),
        version: version.clone(),
        sha256: computed.clone(),
        error,
    };
    if !computed.eq_ignore_ascii_case(&sha256) {
        ControlMetrics::add(&inner.metrics().policies_refused, 1);
        let error = format!(
            "policy {name} {version}: the bytes hash to {computed}, not the announced {sha256}; the transfer is \
             corrupt — keeping the current policy"
        );
        tracing::error!(node = %control_id, "{error}");
        return loaded(Some(error));
    }
    let slot = &inner.shared.policy;
    if slot.sha256().as_deref() == Some(computed.as_str()) {
        tracing::debug!(node = %control_id, %name, %version, "policy from control is already serving");
        return loaded(None);
    }
    let source = format!("control:{control_id}");
    match slot.upload_from(&bytes, &inner.shared.config.policy, &source).await {
        Ok(status) => {
            ControlMetrics::add(&inner.metrics().policies_installed, 1);
            tracing::info!(node = %control_id, name = %status.name, version = %status.version, sha256 = %computed, "policy from control installed");
            let record = PersistedPolicy {
                name: name.clone(),
                version: version.clone(),
                sha256: computed.clone(),
                control_id: control_id.to_owned(),
            };
            if let Err(e) = persist_policy(&inner.section.state_dir, bytes, record).await {
                tracing::warn!(error = %e, "cannot keep the policy from control in state-dir; after a restart the edge serves its configured policy until it reconnects");
            }
            loaded(None)
        }
        Err(e) => {
            ControlMetrics::add(&inner.metrics().policies_refused, 1);
            let error = format!("{e}; the previous policy keeps serving");
            tracing::error!(node = %control_id, "{error}");
            loaded(Some(error))
        }
    }
}

/// Writes the policy and its record next to the receive buffer (each via a temporary file and a
/// rename, so a crash leaves the old pair or the new one).
async fn persist_policy(state_dir: &Path, bytes: Vec<u8>, record: PersistedPolicy) -> std::io::Result<()> {
    let (wasm, meta) = persisted_policy_paths(state_dir);
    let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        for (path, content) in [(&wasm, bytes), (&meta, json)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, content)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, path)?;
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Installs the policy last received from control, when `state-dir` holds one whose bytes match
/// its record; anything else is logged and the configured policy keeps serving.
pub(super) async fn load_persisted_policy(shared: &Arc<Shared>, state_dir: &Path) {
    let (wasm, meta) = persisted_policy_paths(state_dir);
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        if !wasm.exists() || !meta.exists() {
            return Ok(None);
        }
        Ok(Some((std::fs::read(&wasm)?, std::fs::read(&meta)?)))
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    let (bytes, meta) = match read {
        Ok(Some(files)) => files,
        Ok(None) => return,
        Err(e) => {
            return tracing::warn!(error = %e, "cannot read the persisted policy from control; serving the configured one")
        }
    };
    let record: PersistedPolicy = match serde_json::from_slice(&meta) {
        Ok(record) => record,
        Err(e) => {
            return tracing::warn!(error = %e, "persisted policy record is unreadable; serving the configured one")
        }
    };
    if sha256_hex(&bytes) != record.sha256 {
        return tracing::warn!("persisted policy from control does not match its sha256; serving the configured one");
    }
    let source = format!("control:{} (persisted)", record.control_id);
    match shared.policy.upload_from(&bytes, &shared.config.policy, &source).await {
        Ok(_) => {
            tracing::info!(name = %record.name, version = %record.version, "serving the policy last received from control")
        }
        Err(e) => tracing::warn!(error = %e, "persisted policy from control refused; serving the configured one"),
    }
}
