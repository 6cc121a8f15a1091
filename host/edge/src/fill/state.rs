//! The shared state of one fill: head, body buffer, end, and the followers' read cursors.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{FillConfig, FillError, FillHead};

/// How a fill ended.
#[derive(Debug, Clone)]
pub(crate) enum End {
    Finished,
    Failed(FillError),
}

/// One fill: its state behind a short-held std mutex, and a version channel that is bumped on
/// every change so followers can wait without holding the lock.
pub(crate) struct Fill {
    pub(crate) state: Mutex<State>,
    changed: watch::Sender<()>,
}

impl Fill {
    pub(crate) fn new(now: Instant, config: &FillConfig) -> Self {
        let state = State {
            head: None,
            chunks: VecDeque::new(),
            base: 0,
            published_bytes: 0,
            retained_bytes: 0,
            end: None,
            cursors: HashMap::new(),
            next_id: 0,
            started: now,
            last_activity: now,
            max_buffered: config.max_buffered_bytes,
            max_lag: config.max_lag_bytes,
            wait_timeout: config.wait_timeout,
            idle_timeout: config.idle_timeout,
        };
        Self { state: Mutex::new(state), changed: watch::Sender::new(()) }
    }

    /// Wakes every follower waiting on this fill (call after releasing the state lock).
    pub(crate) fn wake(&self) {
        self.changed.send_replace(());
    }

    /// A receiver whose `changed()` resolves at the next [`Fill::wake`].
    pub(crate) fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
}

pub(crate) struct State {
    pub(crate) head: Option<FillHead>,
    /// Body chunks with absolute indices `base..base + chunks.len()`.
    chunks: VecDeque<Bytes>,
    base: u64,
    published_bytes: usize,
    retained_bytes: usize,
    pub(crate) end: Option<End>,
    /// Attached followers: id → absolute index of the next chunk each reads.
    cursors: HashMap<u64, u64>,
    next_id: u64,
    started: Instant,
    last_activity: Instant,
    max_buffered: usize,
    max_lag: usize,
    wait_timeout: Duration,
    idle_timeout: Duration,
}

/// What a follower's read found.
pub(crate) enum Read {
    Chunk(Bytes),
    /// Nothing new yet; wait for a change.
    Pending,
    End,
    Failed(FillError),
}

impl State {
    /// Followers attached (the S4.1 waiter count).
    pub(crate) fn waiters(&self) -> usize {
        self.cursors.len()
    }

    /// Whether a new follower can still get the whole body from the buffer.
    pub(crate) fn replayable(&self) -> bool {
        self.published_bytes <= self.max_buffered
    }

    /// Whether every chunk must be kept for possible late joiners.
    fn keep_all(&self) -> bool {
        self.end.is_none() && self.replayable()
    }

    /// Whether the fill has ended or its leader stalled past what any follower waits for.
    pub(crate) fn stalled(&self, now: Instant) -> bool {
        self.end.is_some()
            || match self.head {
                None => now >= self.started + self.wait_timeout,
                Some(_) => now >= self.last_activity + self.idle_timeout,
            }
    }

    pub(crate) fn touch(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// Registers a follower reading from the first chunk; returns its id.
    pub(crate) fn attach(&mut self) -> u64 {
        debug_assert_eq!(self.base, 0, "attach only while replayable");
        let id = self.next_id;
        self.next_id += 1;
        self.cursors.insert(id, 0);
        id
    }

    pub(crate) fn detach(&mut self, id: u64) {
        if self.cursors.remove(&id).is_some() {
            self.trim();
        }
    }

    /// Appends a chunk; past the replay window, releases what every follower has read and drops
    /// followers further than `max_lag` bytes behind.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.published_bytes = self.published_bytes.saturating_add(chunk.len());
        self.retained_bytes += chunk.len();
        self.chunks.push_back(chunk);
        self.trim();
        if self.keep_all() {
            return;
        }
        while self.retained_bytes > self.max_lag && self.chunks.len() > 1 {
            self.pop_front();
            let base = self.base;
            self.cursors.retain(|_, cursor| *cursor >= base);
        }
    }

    /// Releases the chunks every attached follower has read (unless late joiners may need them).
    pub(crate) fn trim(&mut self) {
        if self.keep_all() {
            return;
        }
        let end = self.base + self.chunks.len() as u64;
        let min = self.cursors.values().copied().min().unwrap_or(end);
        while self.base < min {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(chunk) = self.chunks.pop_front() {
            self.retained_bytes -= chunk.len();
            self.base += 1;
        }
    }

    /// The next step for follower `id`: its next chunk (advancing its cursor), the end, a
    /// failure, or nothing yet. A follower no longer attached was dropped for lagging.
    pub(crate) fn read(&mut self, id: u64) -> Read {
        if let Some(End::Failed(error)) = &self.end {
            return Read::Failed(error.clone());
        }
        let Some(cursor) = self.cursors.get_mut(&id) else {
            return Read::Failed(FillError::Lagged);
        };
        let index = *cursor;
        if index < self.base + self.chunks.len() as u64 {
            *cursor += 1;
            let chunk = self.chunks[(index - self.base) as usize].clone();
            if index == self.base {
                self.trim();
            }
            return Read::Chunk(chunk);
        }
        if self.end.is_some() {
            Read::End
        } else {
            Read::Pending
        }
    }
}
