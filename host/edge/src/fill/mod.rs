//! Collapsed fills: one origin request per key, streamed to every waiter (S1.3), with the S4.1
//! waiter threshold.
//!
//! Independent of hyper and of the cache store. The proxy calls [`FillMap::join`] on a miss:
//!
//! - [`Join::Leader`] — the first request for the key. The proxy fetches from origin (best in a
//!   spawned task, so that its own client going away does not cancel the fill for everyone),
//!   calls [`FillLeader::publish_head`], then [`FillLeader::publish_chunk`] per body chunk as it
//!   arrives, then [`FillLeader::finish`] (after storing the object in the cache) or
//!   [`FillLeader::fail`]. Dropping the leader without either fails every follower with
//!   [`FillError::LeaderGone`].
//! - [`Join::Follower`] — a fill for the key is in progress. [`FillFollower::head`] then
//!   [`FillFollower::next_chunk`] (or [`FillFollower::into_stream`]) yield the leader's response
//!   as it is published; every follower gets the body from its first byte even when it joined
//!   mid-stream, replayed from a shared buffer of up to [`FillConfig::max_buffered_bytes`]. Once
//!   the fill has published more than that, a late joiner's `head` fails at once with
//!   [`FillError::TooLateToJoin`] and the proxy fetches on its own or answers from a stale copy.
//! - [`Join::Busy`] — the fill already has [`FillConfig::max_waiters`] followers (S4.1): answer
//!   at once with a stale copy or `503` + `Retry-After`.
//!
//! **After `finish` or `fail` the key leaves the map**: the next `join` starts a new fill (the
//! proxy will normally find the object in the cache the leader just filled, and should check the
//! cache again after becoming leader, since it may have lost that race). Followers that joined
//! before the end still read the rest of the body.
//!
//! **No follower hangs**: it waits at most [`FillConfig::wait_timeout`] after joining for the
//! head and [`FillConfig::idle_timeout`] for each further chunk, then gets [`FillError::Timeout`].
//! A fill whose leader stalls past those limits is abandoned: the next `join` becomes a new
//! leader. Memory per fill is bounded: once the replay window is closed, the buffer only keeps
//! chunks some follower has not read yet, and a follower that falls more than
//! [`FillConfig::max_lag_bytes`] behind the leader gets [`FillError::Lagged`].

mod follower;
#[cfg(test)]
mod proptests;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

pub use follower::FillFollower;
use state::{End, Fill};

/// Tuning of a [`FillMap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillConfig {
    /// Followers one fill may have; a further request gets [`Join::Busy`] (S4.1). Default 10.
    pub max_waiters: usize,
    /// How long a follower waits, from joining, for the response head. Should be at least the
    /// leader's origin connect + first-byte timeout. Default 30 s.
    pub wait_timeout: Duration,
    /// How long a follower waits for the next body chunk (or the end). Default 30 s.
    pub idle_timeout: Duration,
    /// Followers may join until the fill has published this many body bytes; they get the body
    /// replayed from the first byte. Later joiners get [`FillError::TooLateToJoin`]. Default 4 MiB.
    pub max_buffered_bytes: usize,
    /// Past the replay window, a follower further than this many bytes behind the leader is
    /// dropped with [`FillError::Lagged`] so a slow client cannot pin memory. Default 32 MiB.
    pub max_lag_bytes: usize,
}

impl Default for FillConfig {
    fn default() -> Self {
        Self {
            max_waiters: 10,
            wait_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_buffered_bytes: 4 << 20,
            max_lag_bytes: 32 << 20,
        }
    }
}

/// The response head a leader publishes: what followers need to build their own response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillHead {
    /// Status from origin.
    pub status: StatusCode,
    /// Headers from origin (the proxy applies its own header rules to each answer).
    pub headers: HeaderMap,
}

impl FillHead {
    /// The head of a response's `Parts` (status and headers, cloned).
    pub fn from_parts(parts: &http::response::Parts) -> Self {
        Self { status: parts.status, headers: parts.headers.clone() }
    }
}

/// Why a follower did not get (all of) the leader's response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    /// The leader's origin fetch failed (connection refused, reset, malformed response…).
    #[error("origin fetch failed: {0}")]
    OriginFailed(String),
    /// The head or the next chunk did not arrive within the configured wait.
    #[error("timed out waiting for the collapsed fill")]
    Timeout,
    /// The leader was dropped (or finished without a head) before completing the fill.
    #[error("the fill's leader went away before completing it")]
    LeaderGone,
    /// The fill has streamed past the replay buffer; fetch independently or serve stale.
    #[error("the fill is past its replay buffer; too late to join")]
    TooLateToJoin,
    /// This follower fell too far behind the leader and its chunks were released.
    #[error("fell too far behind the fill and was dropped")]
    Lagged,
}

impl FillError {
    /// The status the proxy should answer with when nothing was sent to the client yet and no
    /// stale copy is usable: 502 for origin failures, a lost leader or a lagging follower, 504
    /// for timeouts, 503 for [`FillError::TooLateToJoin`] (when the proxy cannot fetch itself).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::OriginFailed(_) | Self::LeaderGone | Self::Lagged => StatusCode::BAD_GATEWAY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::TooLateToJoin => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whether fetching again (joining again or fetching independently) is sensible when no
    /// byte has been sent to the client yet: a lost leader or a closed replay window say
    /// nothing about the origin.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::LeaderGone | Self::TooLateToJoin)
    }
}

/// What [`FillMap::join`] decided for one request.
#[derive(Debug)]
pub enum Join<K: Hash + Eq + Clone + Send + Sync + 'static> {
    /// No fill was in progress: fetch from origin and publish through this.
    Leader(FillLeader<K>),
    /// A fill is in progress: read its response from this.
    Follower(FillFollower),
    /// The fill in progress already has `waiters` followers (S4.1): answer at once.
    Busy {
        /// Followers of the fill at the time of the decision.
        waiters: usize,
    },
}

/// Counter snapshot of a [`FillMap`], for metrics. All counts are since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FillStats {
    /// Fills started (leaders handed out).
    pub fills_started: u64,
    /// Followers that joined a fill (not counting late joiners).
    pub followers_joined: u64,
    /// Requests answered [`Join::Busy`].
    pub busy: u64,
    /// Fills that ended by `fail`, by dropping the leader, or by being abandoned as stalled.
    pub leader_failures: u64,
    /// Late joiners told [`FillError::TooLateToJoin`].
    pub too_late: u64,
    /// Followers that gave up with [`FillError::Timeout`].
    pub follower_timeouts: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    fills_started: AtomicU64,
    followers_joined: AtomicU64,
    busy: AtomicU64,
    leader_failures: AtomicU64,
    too_late: AtomicU64,
    pub(crate) follower_timeouts: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct MapInner<K> {
    config: FillConfig,
    fills: Mutex<HashMap<K, Arc<Fill>>>,
    counters: Arc<Counters>,
}

/// The fills in progress, by key. Cheap to clone (shared).
pub struct FillMap<K: Hash + Eq + Clone + Send + Sync + 'static> {
    inner: Arc<MapInner<K>>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Clone for FillMap<K> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> std::fmt::Debug for FillMap<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillMap").field("in_flight", &self.in_flight()).field("stats", &self.stats()).finish()
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> FillMap<K> {
    /// An empty map.
    pub fn new(config: FillConfig) -> Self {
        let inner = MapInner { config, fills: Mutex::new(HashMap::new()), counters: Arc::default() };
        Self { inner: Arc::new(inner) }
    }

    /// The configuration.
    pub fn config(&self) -> &FillConfig {
        &self.inner.config
    }

    /// Leader, follower or busy for a request for `key` (see the module docs).
    pub fn join(&self, key: K) -> Join<K> {
        let inner = &self.inner;
        let now = Instant::now();
        let mut fills = lock(&inner.fills);
        if let Some(fill) = fills.get(&key) {
            let mut state = lock(&fill.state);
            if !state.stalled(now) {
                let waiters = state.waiters();
                if waiters >= inner.config.max_waiters {
                    bump(&inner.counters.busy);
                    return Join::Busy { waiters };
                }
                let deadline = now + inner.config.wait_timeout;
                let counters = Arc::clone(&inner.counters);
                if !state.replayable() {
                    bump(&inner.counters.too_late);
                    return Join::Follower(FillFollower::too_late(Arc::clone(fill), counters));
                }
                let id = state.attach();
                drop(state);
                bump(&inner.counters.followers_joined);
                let follower = FillFollower::new(Arc::clone(fill), id, deadline, inner.config.idle_timeout, counters);
                return Join::Follower(follower);
            }
            // Stalled past every follower's patience: abandon it and start over.
            state.end = Some(End::Failed(FillError::Timeout));
            drop(state);
            fill.wake();
            bump(&inner.counters.leader_failures);
        }
        let fill = Arc::new(Fill::new(now, &inner.config));
        fills.insert(key.clone(), Arc::clone(&fill));
        drop(fills);
        bump(&inner.counters.fills_started);
        Join::Leader(FillLeader { map: Arc::clone(inner), key, fill, ended: false })
    }

    /// Followers currently attached to the fill for `key` (0 when there is none).
    pub fn waiters(&self, key: &K) -> usize {
        let fills = lock(&self.inner.fills);
        fills.get(key).map_or(0, |fill| lock(&fill.state).waiters())
    }

    /// Fills in progress.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.fills).len()
    }

    /// Counter snapshot.
    pub fn stats(&self) -> FillStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FillStats {
            fills_started: get(&c.fills_started),
            followers_joined: get(&c.followers_joined),
            busy: get(&c.busy),
            leader_failures: get(&c.leader_failures),
            too_late: get(&c.too_late),
            follower_timeouts: get(&c.follower_timeouts),
        }
    }
}

/// The request that fetches from origin for everyone. Publishing never blocks; calls after the
/// head (for `publish_head`) or after the end are ignored, as are calls on a fill abandoned as
/// stalled (its followers already got [`FillError::Timeout`]). Drop without [`FillLeader::finish`] or
/// [`FillLeader::fail`] fails the fill with [`FillError::LeaderGone`].
pub struct FillLeader<K: Hash + Eq + Clone + Send + Sync + 'static> {
    map: Arc<MapInner<K>>,
    key: K,
    fill: Arc<Fill>,
    ended: bool,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> std::fmt::Debug for FillLeader<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillLeader").field("followers", &self.followers()).finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> FillLeader<K> {
    /// The key being filled.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Followers currently attached (for the collapsed-waiters metric).
    pub fn followers(&self) -> usize {
        lock(&self.fill.state).waiters()
    }

    /// Publishes the response head; wakes followers waiting in [`FillFollower::head`].
    pub fn publish_head(&self, head: FillHead) {
        let mut state = lock(&self.fill.state);
        if state.end.is_some() || state.head.is_some() {
            return;
        }
        state.head = Some(head);
        state.touch(Instant::now());
        drop(state);
        self.fill.wake();
    }

    /// Publishes the next body chunk (empty chunks are skipped); followers get it at once.
    pub fn publish_chunk(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        let mut state = lock(&self.fill.state);
        if state.end.is_some() {
            return;
        }
        state.push(chunk);
        state.touch(Instant::now());
        drop(state);
        self.fill.wake();
    }

    /// Ends the fill successfully: followers read the rest of the body and then see its end; the
    /// key leaves the map. Call after the object is in the cache.
    pub fn finish(mut self) {
        self.end(End::Finished);
    }

    /// Ends the fill with `error`: every follower gets it at its next call; the key leaves the map.
    pub fn fail(mut self, error: FillError) {
        self.end(End::Failed(error));
    }

    fn end(&mut self, end: End) {
        self.ended = true;
        {
            let mut fills = lock(&self.map.fills);
            if fills.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.fill)) {
                fills.remove(&self.key);
            }
        }
        let mut state = lock(&self.fill.state);
        if state.end.is_none() {
            if matches!(end, End::Failed(_)) {
                bump(&self.map.counters.leader_failures);
            }
            state.end = Some(end);
            state.trim();
        }
        drop(state);
        self.fill.wake();
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Drop for FillLeader<K> {
    fn drop(&mut self) {
        if !self.ended {
            self.end(End::Failed(FillError::LeaderGone));
        }
    }
}
