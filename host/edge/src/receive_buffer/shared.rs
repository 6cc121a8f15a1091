//! [`SharedBuffer`]: the one receive buffer the connections, appliers and `GET /control` share,
//! its calls on tokio's blocking pool, and the damage report that hands a damaged buffer to the
//! consumer's recovery.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{BufferError, ReceiveBuffer, Result};

/// The buffer shared by the connections and appliers; calls run on the blocking pool.
///
/// It holds no buffer while a damaged one is being replaced; from the first call that finds the
/// buffer damaged until it is replaced, every call fails with [`BufferError::Unavailable`], so
/// nothing more is acknowledged from a file that is about to be moved aside.
#[derive(Clone)]
pub struct SharedBuffer {
    inner: Arc<Mutex<Option<ReceiveBuffer>>>,
    /// Why the buffer is unusable, set by the first call that found it damaged (its own lock:
    /// [`SharedBuffer::damage_reported`] must not wait for a long call).
    damage: Arc<Mutex<Option<String>>>,
    damaged: Arc<Notify>,
}

impl SharedBuffer {
    /// Wraps an open buffer.
    pub fn new(buffer: ReceiveBuffer) -> Self {
        SharedBuffer { inner: Arc::new(Mutex::new(Some(buffer))), damage: Arc::default(), damaged: Arc::default() }
    }

    /// No buffer: the one at hand is damaged for `cause` (reported at once).
    pub fn unavailable(cause: String) -> Self {
        let shared =
            SharedBuffer { inner: Arc::default(), damage: Arc::new(Mutex::new(Some(cause))), damaged: Arc::default() };
        shared.damaged.notify_one();
        shared
    }

    fn damage(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.damage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the buffer on tokio's blocking pool, after checking that its file is still the
    /// one opened. An error that means damage is reported (see [`SharedBuffer::damage_reported`]).
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ReceiveBuffer) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = this.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(cause) = this.damage().clone() {
                return Err(BufferError::Unavailable(cause));
            }
            let Some(buffer) = slot.as_mut() else {
                return Err(BufferError::Unavailable("no receive buffer is open".into()));
            };
            let result = buffer.check_file().and_then(|()| f(buffer));
            if let Some(cause) = result.as_ref().err().and_then(BufferError::damage) {
                *this.damage() = Some(format!("{}: {cause}", buffer.path.display()));
                this.damaged.notify_one();
            }
            result
        })
        .await
        .map_err(|e| BufferError::Task(e.to_string()))?
    }

    /// Waits until a call finds the buffer damaged (at once if it is already); returns why.
    pub async fn damage_reported(&self) -> String {
        loop {
            if let Some(cause) = self.damage().clone() {
                return cause;
            }
            self.damaged.notified().await;
        }
    }

    /// Runs `f` on the blocking pool with the buffer taken out (`None` when none is open); the
    /// buffer `f` gives back is the one used from then on, and a newly opened one clears the
    /// damage report.
    pub async fn replace<R: Send + 'static>(
        &self,
        f: impl FnOnce(Option<ReceiveBuffer>) -> (Option<ReceiveBuffer>, R) + Send + 'static,
    ) -> Result<R> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = this.inner.lock().unwrap_or_else(|e| e.into_inner());
            let before = slot.as_ref().map(ReceiveBuffer::id);
            let (buffer, out) = f(slot.take());
            if buffer.as_ref().is_some_and(|b| Some(b.id) != before) {
                *this.damage() = None;
            }
            *slot = buffer;
            out
        })
        .await
        .map_err(|e| BufferError::Task(e.to_string()))
    }
}
