//! What the control consumer reports on `GET /control`: each node's connection and, from the
//! receive buffer, its per-queue watermarks, the buffer's use, its health (unreadable now? the
//! last reset: when, why, where the damaged file went) and the latest events. Below both the
//! consumer (which updates it) and the shared state, proxy and admin listener (which read it:
//! the proxy answers `503` while [`ControlStatus::serving_blocked`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::json;

use crate::config::OnBufferFailure;
use crate::receive_buffer::SharedBuffer;

/// What one node's connection reports, for `GET /control`.
#[derive(Debug, Default)]
pub(crate) struct NodeState {
    /// Whether its stream is up.
    pub connected: bool,
    /// The id its `Hello` announced.
    pub control_id: Option<String>,
    /// The buffer key of its offsets (the control id, or `id@url` when two nodes share an id).
    pub key: Option<String>,
    /// Why its last stream ended.
    pub last_error: Option<String>,
    /// Connection attempts so far.
    pub connects: u64,
}

/// A damaged receive buffer replaced by a readable one (everything was purged).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BufferReset {
    /// When the new buffer was opened, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What was wrong with the old one.
    pub cause: String,
    /// Where the damaged file was moved (`None`: it was gone, or the operator moved it).
    pub moved_to: Option<PathBuf>,
    /// What the edge did meanwhile (`purge-and-continue` or `stop-serving`).
    pub on_failure: &'static str,
    /// With `stop-serving`: since when it answered `503`.
    pub unavailable_since_ms: Option<u64>,
}

impl BufferReset {
    /// The event text recorded in the new buffer and logged.
    pub fn message(&self) -> String {
        let moved = match &self.moved_to {
            Some(path) => format!("the damaged file was moved to {}", path.display()),
            None => "there was no damaged file left to move aside".to_owned(),
        };
        let meanwhile = match self.unavailable_since_ms {
            Some(since) => format!("; answered 503 from {since} ms until it was readable again"),
            None => String::new(),
        };
        format!(
            "receive buffer reset: {}; {moved}{meanwhile}; purged everything (hard) and started from a readable \
             buffer at {} ms, so control re-sends what it holds from this buffer's positions",
            self.cause, self.at_ms
        )
    }
}

/// The buffer's health, for `GET /control` and the proxy.
#[derive(Debug, Default)]
struct Health {
    /// Unreadable now: since when and why.
    problem: Option<(u64, String)>,
    last_reset: Option<BufferReset>,
    resets: u64,
}

/// The consumer's state as `GET /control` shows it.
pub(crate) struct ControlStatus {
    buffer: SharedBuffer,
    nodes: Vec<(String, Mutex<NodeState>)>,
    on_failure: OnBufferFailure,
    health: Mutex<Health>,
    /// `stop-serving` and the buffer is unreadable: the proxy answers `503`.
    blocked: AtomicBool,
}

impl ControlStatus {
    /// The status of a consumer of `nodes` (their URLs, in configuration order) over `buffer`,
    /// answering a damaged buffer as `on_failure` says.
    pub fn new(buffer: SharedBuffer, nodes: Vec<String>, on_failure: OnBufferFailure) -> ControlStatus {
        let nodes = nodes.into_iter().map(|url| (url, Mutex::new(NodeState::default()))).collect();
        ControlStatus { buffer, nodes, on_failure, health: Mutex::default(), blocked: AtomicBool::new(false) }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The buffer is unreadable for `cause` (found at `at_ms`); with `stop-serving` the proxy
    /// answers `503` from now on.
    pub fn buffer_failed(&self, cause: &str, at_ms: u64) {
        let mut health = self.health();
        let since = health.problem.as_ref().map_or(at_ms, |(since, _)| *since);
        health.problem = Some((since, cause.to_owned()));
        self.blocked.store(self.on_failure == OnBufferFailure::StopServing, Ordering::Relaxed);
    }

    /// Since when the buffer is unreadable, if it is.
    pub fn unavailable_since(&self) -> Option<u64> {
        self.health().problem.as_ref().map(|(since, _)| *since)
    }

    /// A readable buffer replaced the damaged one: healthy again, serving again.
    pub fn buffer_reset(&self, reset: BufferReset) {
        let mut health = self.health();
        health.problem = None;
        health.last_reset = Some(reset);
        health.resets += 1;
        self.blocked.store(false, Ordering::Relaxed);
    }

    /// Whether the proxy must answer `503` (`stop-serving` while the buffer is unreadable).
    pub fn serving_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    /// The buffer's health as `GET /control` shows it, inside `"buffer"`.
    fn health_json(&self) -> serde_json::Value {
        let health = self.health();
        json!({
            "healthy": health.problem.is_none(),
            "unreadable": health.problem.as_ref().map(|(since, cause)| json!({ "since_ms": since, "cause": cause })),
            "on_failure": self.on_failure.as_str(),
            "serving": !self.serving_blocked(),
            "resets": health.resets,
            "last_reset": health.last_reset,
        })
    }

    /// The JSON of `GET /control`: per node its connection and per queue its watermarks, the
    /// buffer's use and health, and the latest events.
    pub async fn report(&self) -> serde_json::Value {
        let nodes: Vec<(String, NodeState)> = self
            .nodes
            .iter()
            .map(|(url, state)| {
                let s = state.lock().unwrap_or_else(|e| e.into_inner());
                let copy = NodeState {
                    control_id: s.control_id.clone(),
                    key: s.key.clone(),
                    last_error: s.last_error.clone(),
                    ..*s
                };
                (url.clone(), copy)
            })
            .collect();
        let keys: Vec<(String, Option<String>)> = nodes.iter().map(|(url, s)| (url.clone(), s.key.clone())).collect();
        let stored = self
            .buffer
            .call(move |b| {
                let mut per_node = Vec::new();
                for (url, id) in keys {
                    let key = match id {
                        Some(id) => id,
                        None => b.node_key(&url)?.unwrap_or(url),
                    };
                    per_node.push((key.clone(), b.watermarks(&key)?));
                }
                Ok((per_node, b.capacity(), b.used(), b.events(10)?))
            })
            .await;
        let mut buffer = self.health_json();
        let (per_node, capacity, used, events) = match stored {
            Ok(stored) => stored,
            Err(e) => {
                let nodes: Vec<_> = nodes
                    .into_iter()
                    .map(|(url, s)| json!({ "url": url, "connected": s.connected, "last_error": s.last_error }))
                    .collect();
                return json!({ "enabled": true, "error": e.to_string(), "buffer": buffer, "nodes": nodes });
            }
        };
        let nodes: Vec<_> = nodes
            .into_iter()
            .zip(per_node)
            .map(|((url, s), (key, queues))| {
                json!({
                    "url": url, "connected": s.connected, "control_id": s.control_id, "key": key,
                    "connects": s.connects, "last_error": s.last_error, "queues": queues,
                })
            })
            .collect();
        if let Some(object) = buffer.as_object_mut() {
            object.insert("capacity".into(), capacity.into());
            object.insert("used".into(), used.into());
            object.insert("free".into(), capacity.saturating_sub(used).into());
        }
        json!({ "enabled": true, "buffer": buffer, "nodes": nodes, "events": events })
    }

    /// The state of the node at `index` (configuration order), to update.
    pub fn node(&self, index: usize) -> std::sync::MutexGuard<'_, NodeState> {
        self.nodes[index].1.lock().unwrap_or_else(|e| e.into_inner())
    }
}
