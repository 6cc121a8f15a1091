//! The control consumer: with `[control]` configured, the edge streams purge tasks and policies
//! from every control node's queue server (mutual TLS, HTTP/2, `edgepurge-wire` frames), keeps
//! what it received in a durable receive buffer, applies it and reports progress.
//!
//! - [`buffer`] — the SQLite receive buffer (tasks, per (node, queue) watermarks, events).
//! - `connection` — one task per node: connect, `Hello` with the resume offsets, store `Tasks`
//!   before acknowledging them, heartbeats, reconnect with back-off.
//! - `apply` — one worker per (node, queue), woken by the receive path, applying in offset order
//!   through the same path as `POST /purge`; policy frames; `Trimmed`.
//!
//! An edge without `[control]` runs standalone and none of this starts.

mod apply;
pub mod buffer;
mod connection;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgepurge_tls::mtls::{ClientFiles, ReloadingClientConfig};
use edgepurge_wire::QueueId;
use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::config::{ControlNode, ControlSection};
use crate::metrics::ControlMetrics;
use crate::origin::Shared;
use buffer::{ReceiveBuffer, SharedBuffer};

/// How long shutdown waits for the consumer's tasks before aborting them (an applier cut short
/// re-applies its batch after the restart: purges are idempotent).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What one node's connection reports, for `GET /control`.
#[derive(Debug, Default)]
struct NodeState {
    connected: bool,
    control_id: Option<String>,
    /// The buffer key of its offsets (the control id, or `id@url` when two nodes share an id).
    key: Option<String>,
    last_error: Option<String>,
    connects: u64,
}

/// The consumer's state as `GET /control` shows it.
pub(crate) struct Status {
    buffer: SharedBuffer,
    nodes: Vec<(String, Mutex<NodeState>)>,
}

impl Status {
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

    fn node(&self, index: usize) -> std::sync::MutexGuard<'_, NodeState> {
        self.nodes[index].1.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the appliers of one node key tell its connection: an Ack is due (the failure reports
/// travel through the receive buffer).
#[derive(Default)]
struct Link {
    ack: Notify,
}

/// Everything the consumer's tasks share.
struct Inner {
    shared: Arc<Shared>,
    section: ControlSection,
    buffer: SharedBuffer,
    tls: ReloadingClientConfig,
    status: Arc<Status>,
    links: Mutex<HashMap<String, Arc<Link>>>,
    appliers: Mutex<HashMap<(String, QueueId), Arc<Notify>>>,
    tasks: Mutex<JoinSet<()>>,
    stop: watch::Receiver<bool>,
}

impl Inner {
    fn metrics(&self) -> &ControlMetrics {
        &self.shared.metrics.control
    }

    fn link(&self, key: &str) -> Arc<Link> {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(links.entry(key.to_owned()).or_default())
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).spawn(task);
    }

    /// Whether to stop: asked to, or the handle is gone (so no task outlives its edge).
    fn stopped(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// Refreshes the buffer gauge from the buffer.
    async fn update_buffer_gauge(&self) {
        if let Ok(used) = self.buffer.call(|b| Ok(b.used())).await {
            self.metrics().buffer_bytes.store(used, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A prepared consumer: buffer open, TLS files loaded, persisted policy installed.
pub(crate) struct Consumer {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
}

/// The running consumer, to stop on shutdown.
pub(crate) struct Running {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
}

impl Consumer {
    /// Opens the receive buffer in `state-dir`, loads the TLS files and installs the policy last
    /// received from control (so a restarted edge serves it before it reconnects). Errors name
    /// the file or key and what to fix.
    pub async fn prepare(shared: Arc<Shared>, section: ControlSection) -> anyhow::Result<Consumer> {
        let files = ClientFiles {
            cert: section.cert.clone(),
            key: section.key.clone(),
            ca: section.ca.clone(),
            crl: section.crl.clone(),
        };
        let tls = ReloadingClientConfig::new(files).map_err(|e| anyhow::anyhow!("[control]: {e}"))?;
        let (dir, capacity) = (section.state_dir.clone(), section.buffer_bytes);
        let buffer = tokio::task::spawn_blocking(move || ReceiveBuffer::open(&dir, capacity)).await??;
        let buffer = SharedBuffer::new(buffer);
        let nodes = section.nodes.iter().map(|url| (url.clone(), Mutex::new(NodeState::default()))).collect();
        let status = Arc::new(Status { buffer: buffer.clone(), nodes });
        let _ = shared.control.set(Arc::clone(&status));
        apply::load_persisted_policy(&shared, &section.state_dir).await;
        let (stop, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            shared,
            section,
            buffer,
            tls,
            status,
            links: Mutex::default(),
            appliers: Mutex::default(),
            tasks: Mutex::new(JoinSet::new()),
            stop: stop_rx,
        });
        inner.update_buffer_gauge().await;
        Ok(Consumer { inner, stop })
    }

    /// Starts the appliers of what the buffer still holds and one connection per node.
    pub async fn start(self) -> Running {
        let Consumer { inner, stop } = self;
        match inner.buffer.call(|b| b.pending_queues()).await {
            Ok(queues) => {
                for (key, queue) in queues {
                    apply::wake(&inner, &key, queue);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the receive buffer; received tasks wait for the next frame")
            }
        }
        let nodes: Vec<ControlNode> = inner.section.parsed_nodes();
        for (index, node) in nodes.into_iter().enumerate() {
            let task_inner = Arc::clone(&inner);
            inner.spawn(connection::run_node(task_inner, node, index));
        }
        tracing::info!(nodes = ?inner.section.nodes, state_dir = %inner.section.state_dir.display(), "control consumer started");
        Running { inner, stop }
    }
}

impl Running {
    /// Signals every connection and applier to stop and waits for them (at most a few seconds).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut tasks = std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_TIMEOUT, drain).await.is_err() {
            tracing::warn!("control consumer tasks still running after {STOP_TIMEOUT:?}; aborting them");
            tasks.abort_all();
        }
    }
}

/// Where the last policy received from control is kept.
fn persisted_policy_paths(state_dir: &std::path::Path) -> (PathBuf, PathBuf) {
    (state_dir.join("policy-from-control.wasm"), state_dir.join("policy-from-control.json"))
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
