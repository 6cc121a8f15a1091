//! What the control consumer reports on `GET /control`: each node's connection and, from the
//! receive buffer, its per-queue watermarks, the buffer's use and the latest events. Below both
//! the consumer (which updates it) and the shared state and admin listener (which read it).

use std::sync::Mutex;

use serde_json::json;

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

/// The consumer's state as `GET /control` shows it.
pub(crate) struct ControlStatus {
    buffer: SharedBuffer,
    nodes: Vec<(String, Mutex<NodeState>)>,
}

impl ControlStatus {
    /// The status of a consumer of `nodes` (their URLs, in configuration order) over `buffer`.
    pub fn new(buffer: SharedBuffer, nodes: Vec<String>) -> ControlStatus {
        let nodes = nodes.into_iter().map(|url| (url, Mutex::new(NodeState::default()))).collect();
        ControlStatus { buffer, nodes }
    }

    /// The JSON of `GET /control`: per node its connection and per queue its watermarks, the
    /// buffer's use and the latest events.
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
        let (per_node, capacity, used, events) = match stored {
            Ok(stored) => stored,
            Err(e) => return json!({ "enabled": true, "error": e.to_string() }),
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
        json!({
            "enabled": true,
            "buffer": { "capacity": capacity, "used": used, "free": capacity.saturating_sub(used) },
            "nodes": nodes,
            "events": events,
        })
    }

    /// The state of the node at `index` (configuration order), to update.
    pub fn node(&self, index: usize) -> std::sync::MutexGuard<'_, NodeState> {
        self.nodes[index].1.lock().unwrap_or_else(|e| e.into_inner())
    }
}
