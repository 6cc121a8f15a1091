//! What the API and the queue streams share: the "tasks appended" signal, the policy to
//! distribute, and which edges are connected now (with their latest acks). An edge connecting or
//! disconnecting wakes the status streams like recorded progress does: a batch's status document
//! says which of its edges are connected.
//!
//! Lives in [`crate::state::QueueState::queue`], shared by the API's state and the queue server,
//! so the submit handler can wake every stream after an append and `PUT /v1/policy` can push a
//! policy, without the API knowing about streams.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use edgepurge_control_store::Millis;
use edgepurge_wire::{ControlFrame, Offset, QueueId};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};

use crate::counters::QueueMetrics;

/// A policy component as edges receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPolicy {
    /// Name from `describe`.
    pub name: String,
    /// Version from `describe`.
    pub version: String,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
    /// The Wasm component.
    pub bytes: Bytes,
}

impl PublishedPolicy {
    /// A policy from its component bytes (the digest is computed here).
    pub fn new(name: impl Into<String>, version: impl Into<String>, bytes: Bytes) -> Self {
        let sha256 = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        PublishedPolicy { name: name.into(), version: version.into(), sha256, bytes }
    }

    /// The `Policy` frame that carries it.
    pub fn frame(&self) -> ControlFrame {
        ControlFrame::Policy {
            name: self.name.clone(),
            version: self.version.clone(),
            sha256: self.sha256.clone(),
            bytes: self.bytes.to_vec(),
        }
    }
}

/// What `GET /v1/edges` shows of an edge's stream (kept after it disconnects, until restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEdge {
    /// Whether a stream of this edge is open now.
    pub connected: bool,
    /// The address its latest stream came from.
    pub peer: SocketAddr,
    /// When its latest stream opened.
    pub connected_at: Millis,
    /// When its latest `Ack` arrived.
    pub last_ack_at: Option<Millis>,
    /// Per queue, its latest `received` watermark.
    pub received: Vec<(QueueId, Offset)>,
    /// Per queue, its latest `applied` watermark.
    pub applied: Vec<(QueueId, Offset)>,
}

impl LiveEdge {
    /// When this node last heard from the edge on its latest stream: its latest ack, else when
    /// the stream opened.
    pub fn last_seen(&self) -> Millis {
        self.last_ack_at.map_or(self.connected_at, |ack| ack.max(self.connected_at))
    }
}

struct Slot {
    session: u64,
    /// Woken when a newer stream of the same edge takes over.
    replaced: Arc<Notify>,
    live: LiveEdge,
}

/// The queue server's shared state. `Default` makes one with no policy and no edge.
pub struct QueueHub {
    appended: watch::Sender<u64>,
    progressed: watch::Sender<u64>,
    policy: watch::Sender<Option<Arc<PublishedPolicy>>>,
    edges: Mutex<HashMap<String, Slot>>,
    next_session: AtomicU64,
    /// The queue server's counters (`GET /metrics`).
    pub metrics: QueueMetrics,
}

impl Default for QueueHub {
    fn default() -> Self {
        QueueHub {
            appended: watch::channel(0).0,
            progressed: watch::channel(0).0,
            policy: watch::channel(None).0,
            edges: Mutex::default(),
            next_session: AtomicU64::new(1),
            metrics: QueueMetrics::default(),
        }
    }
}

impl std::fmt::Debug for QueueHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueHub").field("connected", &self.connected_count()).finish()
    }
}

/// A registered stream; dropping it marks the edge disconnected (unless a newer stream took over).
pub struct Registration<'a> {
    hub: &'a QueueHub,
    edge: String,
    session: u64,
    /// Notified when a newer stream of the same edge registers: this one must end.
    pub replaced: Arc<Notify>,
}

impl QueueHub {
    /// Wakes every stream: tasks were appended (call after a successful `append`).
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes at every [`QueueHub::notify_appended`].
    pub fn subscribe_appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Wakes every status stream: an edge's progress was recorded (call after a successful
    /// `record_report`), so `GET /v1/purges/{id}/events` answers without waiting for its poll.
    /// [`QueueHub::register`] and the end of a [`Registration`] call it too: whether an edge is
    /// connected is part of every status document.
    pub fn notify_progressed(&self) {
        self.progressed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes at every [`QueueHub::notify_progressed`].
    pub fn subscribe_progressed(&self) -> watch::Receiver<u64> {
        self.progressed.subscribe()
    }

    /// Sets the policy edges should run and sends it to every connected edge. `None` (the
    /// built-in defaults, which have no component) is recorded but sends nothing: edges keep
    /// what they run.
    pub fn publish_policy(&self, policy: Option<PublishedPolicy>) {
        self.policy.send_replace(policy.map(Arc::new));
    }

    /// The policy edges should run, if it has a component.
    pub fn policy(&self) -> Option<Arc<PublishedPolicy>> {
        self.policy.borrow().clone()
    }

    /// A receiver that changes at every [`QueueHub::publish_policy`].
    pub fn subscribe_policy(&self) -> watch::Receiver<Option<Arc<PublishedPolicy>>> {
        self.policy.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.edges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new stream of `edge`; an older stream of the same edge is told to end
    /// (its `replaced` is notified): the newer one wins.
    pub fn register(&self, edge: &str, peer: SocketAddr, at: Millis) -> Registration<'_> {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let replaced = Arc::new(Notify::new());
        let live = LiveEdge {
            connected: true,
            peer,
            connected_at: at,
            last_ack_at: None,
            received: Vec::new(),
            applied: Vec::new(),
        };
        let slot = Slot { session, replaced: replaced.clone(), live };
        let old = self.lock().insert(edge.to_owned(), slot);
        if let Some(old) = old {
            if old.live.connected {
                // notify_one stores a permit, so the old stream sees it even if not waiting yet.
                old.replaced.notify_one();
            }
        }
        self.notify_progressed();
        Registration { hub: self, edge: edge.to_owned(), session, replaced }
    }

    /// Records an ack of stream `session` of `edge` for `GET /v1/edges`.
    fn record_ack(
        &self,
        edge: &str,
        session: u64,
        received: &[(QueueId, Offset)],
        applied: &[(QueueId, Offset)],
        at: Millis,
    ) {
        if let Some(slot) = self.lock().get_mut(edge).filter(|s| s.session == session) {
            slot.live.last_ack_at = Some(at);
            merge(&mut slot.live.received, received);
            merge(&mut slot.live.applied, applied);
        }
    }

    /// How many edges have a stream open now.
    pub fn connected_count(&self) -> usize {
        self.lock().values().filter(|s| s.live.connected).count()
    }

    /// Every edge seen since start, by name.
    pub fn live_edges(&self) -> HashMap<String, LiveEdge> {
        self.lock().iter().map(|(name, slot)| (name.clone(), slot.live.clone())).collect()
    }
}

/// Raises each queue's watermark in `marks` to the one in `update` (never lowers it).
fn merge(marks: &mut Vec<(QueueId, Offset)>, update: &[(QueueId, Offset)]) {
    for &(queue, mark) in update {
        match marks.iter_mut().find(|(q, _)| *q == queue) {
            Some((_, current)) => *current = (*current).max(mark),
            None => marks.push((queue, mark)),
        }
    }
    marks.sort_unstable();
}

impl Registration<'_> {
    /// Records an ack of this stream for `GET /v1/edges`.
    pub fn ack(&self, received: &[(QueueId, Offset)], applied: &[(QueueId, Offset)], at: Millis) {
        self.hub.record_ack(&self.edge, self.session, received, applied, at);
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let disconnected = {
            let mut edges = self.hub.lock();
            match edges.get_mut(&self.edge).filter(|s| s.session == self.session) {
                Some(slot) => {
                    slot.live.connected = false;
                    true
                }
                // A newer stream of the edge took over: it is still connected.
                None => false,
            }
        };
        if disconnected {
            self.hub.notify_progressed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn a_newer_stream_replaces_the_older_one() {
        let hub = QueueHub::default();
        let first = hub.register("e", addr(), 1);
        assert_eq!(hub.connected_count(), 1);
        let second = hub.register("e", addr(), 2);
        assert_eq!(hub.connected_count(), 1, "one edge, one stream");
        // The first was told to end (a stored permit: no waiter was there).
        {
            let fut = first.replaced.notified();
            futures_util::pin_mut!(fut);
            assert!(futures_util::FutureExt::now_or_never(fut).is_some());
        }
        first.ack(&[(0, 9)], &[(0, 9)], 3); // a late ack of the old stream changes nothing
        let mut progressed = hub.subscribe_progressed();
        drop(first);
        assert!(!progressed.has_changed().unwrap(), "the edge is still connected: no status changed");
        assert_eq!(hub.connected_count(), 1, "the old stream ending does not disconnect the new one");
        second.ack(&[(0, 4), (1, 2)], &[(0, 3)], 4);
        second.ack(&[(0, 2)], &[], 5);
        let live = hub.live_edges().remove("e").unwrap();
        assert_eq!((live.connected_at, live.last_ack_at, live.last_seen()), (2, Some(5), 5));
        assert_eq!((live.received, live.applied), (vec![(0, 4), (1, 2)], vec![(0, 3)]));
        drop(second);
        assert!(progressed.has_changed().unwrap(), "a disconnect wakes the status streams");
        progressed.borrow_and_update();
        assert_eq!(hub.connected_count(), 0);
        assert!(!hub.live_edges()["e"].connected, "kept, as disconnected");
        let _third = hub.register("e", addr(), 6);
        assert!(progressed.has_changed().unwrap(), "a connect wakes the status streams");
        assert_eq!(hub.live_edges()["e"].last_seen(), 6, "no ack yet: when the stream opened");
    }

    #[test]
    fn policies_and_appends_wake_subscribers() {
        let hub = QueueHub::default();
        let mut appended = hub.subscribe_appended();
        let policy = hub.subscribe_policy();
        hub.notify_appended();
        assert!(appended.has_changed().unwrap());
        appended.borrow_and_update();
        hub.publish_policy(Some(PublishedPolicy::new("p", "1", Bytes::from_static(b"abc"))));
        assert!(policy.has_changed().unwrap());
        let p = hub.policy().unwrap();
        assert_eq!(p.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(p.frame().name(), "Policy");
    }
}
