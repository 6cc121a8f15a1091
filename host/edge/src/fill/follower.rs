//! The reading side of a collapsed fill.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

use super::state::{End, Fill, Read};
use super::{bump, lock, Counters, FillError, FillHead};

/// A request waiting on another request's fill. Read [`FillFollower::head`], then
/// [`FillFollower::next_chunk`] until `None` (or use [`FillFollower::into_stream`]). Every wait
/// is bounded; dropping the follower detaches it (the waiter count drops).
///
/// When the head declares a `Content-Length`, the chunk that completes it is handed out only
/// once the fill has ended: a client knows its body is complete when it has that many bytes, so
/// holding the last ones back until the leader has stored the object and finished means a
/// client that got a whole response finds the object in the cache on its next request (and one
/// whose fill failed at the very end gets the error, not a body that looks complete).
pub struct FillFollower {
    fill: Arc<Fill>,
    id: u64,
    changed: watch::Receiver<()>,
    head_deadline: Instant,
    idle_timeout: Duration,
    counters: Arc<Counters>,
    /// Boxed: followers are moved around in [`Join`](super::Join), which stays small.
    head: Option<Box<FillHead>>,
    /// Body bytes still to come when the head declared a `Content-Length`.
    remaining: Option<u64>,
    /// The chunk completing the declared length, read but held until the fill ends (boxed, as
    /// the head).
    held: Option<Box<Bytes>>,
    /// Set once detached: the error to repeat from `head`, or `None` after a clean end.
    done: Option<Option<FillError>>,
}

impl std::fmt::Debug for FillFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillFollower").field("id", &self.id).field("done", &self.done).finish_non_exhaustive()
    }
}

impl FillFollower {
    pub(crate) fn new(
        fill: Arc<Fill>,
        id: u64,
        head_deadline: Instant,
        idle_timeout: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        let changed = fill.subscribe();
        Self {
            fill,
            id,
            changed,
            head_deadline,
            idle_timeout,
            counters,
            head: None,
            remaining: None,
            held: None,
            done: None,
        }
    }

    /// A follower that is not attached and fails at once with [`FillError::TooLateToJoin`].
    pub(crate) fn too_late(fill: Arc<Fill>, counters: Arc<Counters>) -> Self {
        let mut follower = Self::new(fill, u64::MAX, Instant::now(), Duration::ZERO, counters);
        follower.done = Some(Some(FillError::TooLateToJoin));
        follower
    }

    /// Waits for the leader's response head, at most `wait_timeout` from joining. Errors:
    /// [`FillError::TooLateToJoin`] at once for a late joiner, else the leader's failure,
    /// [`FillError::LeaderGone`], [`FillError::Timeout`] or [`FillError::Lagged`]. After an error
    /// the follower is detached and repeats that error.
    pub async fn head(&mut self) -> Result<FillHead, FillError> {
        loop {
            if let Some(head) = &self.head {
                return Ok(FillHead::clone(head));
            }
            if let Some(done) = &self.done {
                return Err(done.clone().unwrap_or(FillError::LeaderGone));
            }
            self.changed.borrow_and_update();
            let found = {
                let state = lock(&self.fill.state);
                match (&state.end, &state.head) {
                    (Some(End::Failed(error)), _) => Err(error.clone()),
                    (_, Some(head)) => Ok(Some(head.clone())),
                    // Finished without ever publishing a head: a leader bug, treated as gone.
                    (Some(End::Finished), None) => Err(FillError::LeaderGone),
                    (None, None) => Ok(None),
                }
            };
            match found {
                Ok(Some(head)) => {
                    let length = head.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
                    self.remaining = length.and_then(|v| v.trim().parse().ok());
                    self.head = Some(Box::new(head));
                }
                Ok(None) => {
                    if timeout_at(self.head_deadline, self.changed.changed()).await.is_err() {
                        bump(&self.counters.follower_timeouts);
                        return Err(self.detach(Some(FillError::Timeout)).unwrap_or(FillError::Timeout));
                    }
                }
                Err(error) => return Err(self.detach(Some(error.clone())).unwrap_or(error)),
            }
        }
    }

    /// The next body chunk, in order from the body's first byte; `None` at the end of the body
    /// (and on every call after an error). Waits for the head first if it was not read. Each
    /// wait for a new chunk is bounded by `idle_timeout`.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, FillError>> {
        if self.done.is_some() {
            return None;
        }
        if let Err(error) = self.head().await {
            return Some(Err(error));
        }
        let deadline = Instant::now() + self.idle_timeout;
        loop {
            if self.held.is_some() {
                // Kept in `self` while waiting, so a cancelled call loses nothing.
                if let Err(error) = self.wait_for_end(deadline).await {
                    self.held = None;
                    return Some(Err(error));
                }
                return self.held.take().map(|chunk| Ok(*chunk));
            }
            self.changed.borrow_and_update();
            let read = lock(&self.fill.state).read(self.id);
            match read {
                Read::Chunk(chunk) => {
                    if let Some(remaining) = &mut self.remaining {
                        *remaining = remaining.saturating_sub(chunk.len() as u64);
                        if *remaining == 0 {
                            self.held = Some(Box::new(chunk));
                            continue;
                        }
                    }
                    return Some(Ok(chunk));
                }
                Read::End => {
                    self.detach(None);
                    return None;
                }
                Read::Failed(error) => return Some(Err(self.detach(Some(error.clone())).unwrap_or(error))),
                Read::Pending => {
                    if timeout_at(deadline, self.changed.changed()).await.is_err() {
                        bump(&self.counters.follower_timeouts);
                        return Some(Err(self.detach(Some(FillError::Timeout)).unwrap_or(FillError::Timeout)));
                    }
                }
            }
        }
    }

    /// Waits (until `deadline`) for the fill to end: `Ok` once it finished, its error if it failed.
    async fn wait_for_end(&mut self, deadline: Instant) -> Result<(), FillError> {
        loop {
            self.changed.borrow_and_update();
            let end = lock(&self.fill.state).end.clone();
            match end {
                Some(End::Finished) => return Ok(()),
                Some(End::Failed(error)) => return Err(self.detach(Some(error.clone())).unwrap_or(error)),
                None => {
                    if timeout_at(deadline, self.changed.changed()).await.is_err() {
                        bump(&self.counters.follower_timeouts);
                        return Err(self.detach(Some(FillError::Timeout)).unwrap_or(FillError::Timeout));
                    }
                }
            }
        }
    }

    /// The body as a stream of chunks (call [`FillFollower::head`] first to get the head; if it
    /// was not called, the stream waits for it and yields its error, if any).
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, FillError>> + Send + 'static {
        futures_util::stream::unfold(self, |mut follower| async move {
            follower.next_chunk().await.map(|item| (item, follower))
        })
    }

    /// Leaves the fill (once); returns the error recorded for later calls.
    fn detach(&mut self, error: Option<FillError>) -> Option<FillError> {
        if self.done.is_none() {
            self.done = Some(error);
            lock(&self.fill.state).detach(self.id);
        }
        self.done.clone().flatten()
    }
}

impl Drop for FillFollower {
    fn drop(&mut self) {
        if self.done.is_none() {
            lock(&self.fill.state).detach(self.id);
        }
    }
}
