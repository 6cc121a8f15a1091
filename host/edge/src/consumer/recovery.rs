//! A damaged receive buffer (see [`crate::receive_buffer`]'s `BufferError::damage`): the tasks it
//! held are unknown, so anything cached may be stale. The answer is `control.on-buffer-failure`:
//!
//! - `purge-and-continue` (default): close it, move it aside
//!   (`receive-buffer.sqlite.damaged-<unix ms>`, with its `-wal` and `-shm`), purge everything
//!   (hard), open a fresh buffer, record the reset in it (node `*`: every control node), and make
//!   the connections reconnect, so they resume from the fresh buffer's empty positions (control
//!   re-sends from its log's start, or sends `Trimmed`, which purges everything again: harmless).
//!   At start-up this happens in `Consumer::prepare`, while running in [`run`].
//! - `stop-serving`: close it and leave it where it is; the proxy answers `503` until the file
//!   at that path is readable again (the operator moved it aside or repaired it; retried every
//!   few seconds). Then everything is purged (what the file held is still unknown) and the
//!   connections reconnect, as above.
//!
//! Only damage does this. A directory the edge cannot write is a start-up error naming it, and
//! errors that may pass (disk full, busy, I/O) are retried with back-off by whoever met them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edgepurge_edge_cache::{PurgeMode, Scope};

use super::{now_ms, Inner};
use crate::config::OnBufferFailure;
use crate::control_status::BufferReset;
use crate::metrics::ControlMetrics;
use crate::receive_buffer::{BufferError, ReceiveBuffer, FILE_NAME};
use crate::state::Shared;

/// The suffixes of the database file and the two files SQLite's WAL mode keeps beside it.
const FILES: [&str; 3] = ["", "-wal", "-shm"];
/// Waits between attempts to open a fresh buffer after a failed one.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// With `stop-serving`, the file is tried again at least this often (how soon moving it aside
/// takes effect).
const STOPPED_RETRY_MAX: Duration = Duration::from_secs(5);

/// Moves the buffer's files in `dir` to `receive-buffer.sqlite.damaged-<at_ms>` (and `…-wal`,
/// `…-shm`, so SQLite finds the log beside the copy); returns where the database file went, or
/// `None` when there was none (only its companions, if any, were moved).
pub(crate) fn move_aside(dir: &Path, at_ms: u64) -> std::io::Result<Option<PathBuf>> {
    let mut moved = None;
    for suffix in FILES {
        let from = dir.join(format!("{FILE_NAME}{suffix}"));
        let to = dir.join(format!("{FILE_NAME}.damaged-{at_ms}{suffix}"));
        match std::fs::rename(&from, &to) {
            Ok(()) if suffix.is_empty() => moved = Some(to),
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let what = format!("cannot move {} aside to {}: {e}", from.display(), to.display());
                return Err(std::io::Error::new(e.kind(), what));
            }
        }
    }
    Ok(moved)
}

/// Opens the buffer in `dir`. A `-wal` or `-shm` left without its database (deleted by hand) is
/// moved aside first: SQLite would replay that log into the new, empty database.
pub(crate) fn open_in_place(dir: &Path, capacity: u64) -> Result<ReceiveBuffer, BufferError> {
    let path = dir.join(FILE_NAME);
    if std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        move_aside(dir, now_ms()).map_err(|e| open_error(&path, e))?;
    }
    ReceiveBuffer::open(dir, capacity)
}

fn open_error(path: &Path, e: std::io::Error) -> BufferError {
    BufferError::Open { path: path.to_owned(), message: format!("{e}; check that control.state-dir is writable") }
}

/// The buffer the consumer starts with.
pub(super) enum Opened {
    /// Readable; with the reset that replaced a damaged one, if any.
    Ready(Box<ReceiveBuffer>, Option<BufferReset>),
    /// Damaged and left in place (`stop-serving`): why.
    Damaged(String),
}

/// At start-up: opens the buffer in `dir`, answering damage as `mode` says. Other errors (an
/// unwritable directory) are returned: the edge does not start.
pub(super) fn open_at_start(
    dir: &Path,
    capacity: u64,
    mode: OnBufferFailure,
    shared: &Shared,
) -> Result<Opened, BufferError> {
    match open_in_place(dir, capacity) {
        Ok(buffer) => Ok(Opened::Ready(Box::new(buffer), None)),
        Err(BufferError::Damaged { path, cause }) => {
            let cause = format!("{}: {cause}", path.display());
            match mode {
                OnBufferFailure::StopServing => Ok(Opened::Damaged(cause)),
                OnBufferFailure::PurgeAndContinue => {
                    let (buffer, reset) = start_fresh(dir, capacity, cause, shared)?;
                    Ok(Opened::Ready(Box::new(buffer), Some(reset)))
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// Purges everything the edge holds, hard: the tasks of the damaged buffer are unknown.
fn purge_everything(shared: &Shared) {
    shared.store.purge(&Scope::Everything, PurgeMode::Hard);
}

/// Records `reset` in `buffer` as an event of every node (`*`).
fn record(buffer: &mut ReceiveBuffer, reset: &BufferReset) {
    if let Err(e) = buffer.record_event(reset.at_ms, "*", &reset.message()) {
        tracing::warn!(error = %e, "cannot record the receive buffer reset as an event");
    }
}

/// `purge-and-continue`: moves the (closed) damaged buffer aside, purges everything, opens a
/// fresh one and records the reset in it.
fn start_fresh(
    dir: &Path,
    capacity: u64,
    cause: String,
    shared: &Shared,
) -> Result<(ReceiveBuffer, BufferReset), BufferError> {
    let at_ms = now_ms();
    let moved_to = move_aside(dir, at_ms).map_err(|e| open_error(&dir.join(FILE_NAME), e))?;
    purge_everything(shared);
    let mut buffer = ReceiveBuffer::open(dir, capacity)?;
    let reset = BufferReset {
        at_ms,
        cause,
        moved_to,
        on_failure: OnBufferFailure::PurgeAndContinue.as_str(),
        unavailable_since_ms: None,
    };
    record(&mut buffer, &reset);
    Ok((buffer, reset))
}

/// Publishes `buffer` as the one in use, while the slot is still locked: a connection reading
/// the new buffer sees its id already, one that resumed from the old buffer sees another and
/// reconnects (the connections' offsets were the old buffer's).
fn installed(resets: &tokio::sync::watch::Sender<u64>, buffer: ReceiveBuffer) -> ReceiveBuffer {
    resets.send_replace(buffer.id());
    buffer
}

/// Tells everyone a reset is done: metrics, `GET /control`, the log.
pub(super) async fn announce(inner: &Inner, reset: BufferReset) {
    let metrics = inner.metrics();
    ControlMetrics::add(&metrics.buffer_resets, 1);
    metrics.buffer_unreadable.store(0, std::sync::atomic::Ordering::Relaxed);
    tracing::error!(
        cause = %reset.cause, moved_to = ?reset.moved_to,
        "{}; the purges it held are unknown, which the purge answers", reset.message()
    );
    inner.status.buffer_reset(reset);
    inner.update_buffer_gauge().await;
}

/// The consumer's recovery task: waits for a damage report, answers it as configured, and waits
/// again, until the consumer stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut stop = inner.stop.clone();
    loop {
        let cause = tokio::select! {
            cause = inner.buffer.damage_reported() => cause,
            _ = stop.changed() => return,
        };
        if inner.stopped() {
            return;
        }
        inner.status.buffer_failed(&cause, now_ms());
        inner.metrics().buffer_unreadable.store(1, std::sync::atomic::Ordering::Relaxed);
        let done = match inner.section.on_buffer_failure {
            OnBufferFailure::PurgeAndContinue => reset(&inner, cause).await,
            OnBufferFailure::StopServing => wait_readable(&inner, cause).await,
        };
        match done {
            Some(reset) => announce(&inner, reset).await,
            None => return,
        }
    }
}

/// `purge-and-continue` while running: replaces the buffer, retrying with back-off while no
/// fresh one can be opened. `None`: the consumer stopped first.
async fn reset(inner: &Arc<Inner>, cause: String) -> Option<BufferReset> {
    tracing::error!(%cause, "the receive buffer is damaged: moving it aside, purging everything and starting a fresh one");
    let mut delay = RETRY_MIN;
    loop {
        let (dir, capacity, shared, cause) =
            (inner.section.state_dir.clone(), inner.section.buffer_bytes, Arc::clone(&inner.shared), cause.clone());
        let resets = Arc::clone(&inner.resets);
        let attempt = inner
            .buffer
            .replace(move |old| {
                // Closed before its files move, as they are (see `ReceiveBuffer::close_as_is`).
                if let Some(old) = old {
                    old.close_as_is();
                }
                match start_fresh(&dir, capacity, cause, &shared) {
                    Ok((buffer, reset)) => (Some(installed(&resets, buffer)), Ok(reset)),
                    Err(e) => (None, Err(e)),
                }
            })
            .await;
        match attempt.and_then(|r| r) {
            Ok(reset) => return Some(reset),
            Err(e) => tracing::error!(error = %e, "cannot start a fresh receive buffer; retrying in {delay:?}"),
        }
        if !pause(inner, delay).await {
            return None;
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// `stop-serving`: closes the damaged buffer, leaves it in place and tries the file again until
/// it is readable; then purges everything. `None`: the consumer stopped first.
async fn wait_readable(inner: &Arc<Inner>, cause: String) -> Option<BufferReset> {
    let dir = inner.section.state_dir.clone();
    // Closed, so the operator can move or repair the file; nothing reads it until then.
    let _ = inner
        .buffer
        .replace(|old| {
            if let Some(old) = old {
                old.close_as_is();
            }
            (None, ())
        })
        .await;
    tracing::error!(
        %cause,
        "the receive buffer is damaged: answering 503 to every proxy request (control.on-buffer-failure = \
         \"stop-serving\") until it is readable again; move {} aside (or repair it) and the edge continues \
         within {STOPPED_RETRY_MAX:?} with a fresh buffer, purging everything",
        dir.join(FILE_NAME).display()
    );
    let since = inner.status.unavailable_since();
    let mut delay = RETRY_MIN;
    let mut last = String::new();
    loop {
        if !pause(inner, delay).await {
            return None;
        }
        delay = (delay * 2).min(STOPPED_RETRY_MAX);
        let (dir, capacity, shared, cause) =
            (dir.clone(), inner.section.buffer_bytes, Arc::clone(&inner.shared), cause.clone());
        let resets = Arc::clone(&inner.resets);
        let attempt = inner
            .buffer
            .replace(move |_| match open_in_place(&dir, capacity) {
                Ok(mut buffer) => {
                    purge_everything(&shared);
                    let reset = BufferReset {
                        at_ms: now_ms(),
                        cause,
                        moved_to: None,
                        on_failure: OnBufferFailure::StopServing.as_str(),
                        unavailable_since_ms: since,
                    };
                    record(&mut buffer, &reset);
                    (Some(installed(&resets, buffer)), Ok(reset))
                }
                Err(e) => (None, Err(e)),
            })
            .await;
        match attempt.and_then(|r| r) {
            Ok(reset) => return Some(reset),
            Err(e) => {
                let now = e.to_string();
                if now != last {
                    tracing::warn!(error = %now, "the receive buffer is still unreadable; answering 503 and trying again");
                    last = now;
                }
            }
        }
    }
}

/// Sleeps `delay`; `false` when the consumer stops first.
async fn pause(inner: &Inner, delay: Duration) -> bool {
    let mut stop = inner.stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => !inner.stopped(),
        _ = stop.changed() => false,
    }
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
