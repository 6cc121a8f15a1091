//! The control consumer: with `[control]` configured, the edge streams purge tasks and policies
//! from every control node's queue server (mutual TLS, HTTP/2, `edgepurge-wire` frames), keeps
//! what it received in a durable receive buffer, applies it and reports progress.
//!
//! - [`crate::receive_buffer`] — the SQLite receive buffer (tasks, per (node, queue) watermarks,
//!   events), with [`crate::control_status`] what `GET /control` reports.
//! - `connection` — one task per node: connect, `Hello` with the resume offsets, store `Tasks`
//!   before acknowledging them, heartbeats, reconnect with back-off.
//! - `fresh` — decoded chunks handed from the receive path to the appliers in memory.
//! - `apply` — one worker per (node, queue), woken by the receive path, applying in offset order
//!   through the same path as `POST /purge`; unreadable rows; policy frames; `Trimmed`.
//! - `recovery` — a damaged receive buffer: moved aside, everything purged, a fresh buffer
//!   (or, with `on-buffer-failure = "stop-serving"`, `503` until it is readable again).
//!
//! An edge without `[control]` runs standalone and none of this starts.

mod apply;
mod connection;
mod fresh;
mod recovery;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgepurge_tls::mtls::{ClientFiles, ReloadingClientConfig};
use edgepurge_wire::QueueId;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::config::ControlSection;
use crate::control_status::ControlStatus;
use crate::metrics::ControlMetrics;
use crate::receive_buffer::SharedBuffer;
use crate::state::Shared;

/// How long shutdown waits for the consumer's tasks before aborting them (an applier cut short
/// re-applies its batch after the restart: purges are idempotent).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

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
    status: Arc<ControlStatus>,
    links: Mutex<HashMap<String, Arc<Link>>>,
    appliers: Mutex<HashMap<(String, QueueId), Arc<Notify>>>,
    /// Decoded chunks from the receive path for the appliers (see `fresh`).
    fresh: fresh::Fresh,
    tasks: Mutex<JoinSet<()>>,
    stop: watch::Receiver<bool>,
    /// The [`ReceiveBuffer::id`](crate::receive_buffer::ReceiveBuffer::id) of the buffer in use
    /// (0: none), set by `recovery` while it installs a new one: a connection that resumed from
    /// another buffer ends and reconnects, resuming from the new buffer's positions.
    resets: Arc<watch::Sender<u64>>,
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
    /// Opens the receive buffer in `state-dir` (a damaged one is answered as
    /// `on-buffer-failure` says: see `recovery`), loads the TLS files and installs the policy
    /// last received from control (so a restarted edge serves it before it reconnects). Errors
    /// name the file, directory or key and what to fix.
    pub async fn prepare(shared: Arc<Shared>, section: ControlSection) -> anyhow::Result<Consumer> {
        let files = ClientFiles {
            cert: section.cert.clone(),
            key: section.key.clone(),
            ca: section.ca.clone(),
            crl: section.crl.clone(),
        };
        let tls = ReloadingClientConfig::new(files).map_err(|e| anyhow::anyhow!("[control]: {e}"))?;
        let (dir, capacity, mode) = (section.state_dir.clone(), section.buffer_bytes, section.on_buffer_failure);
        let opening = Arc::clone(&shared);
        let opened =
            tokio::task::spawn_blocking(move || recovery::open_at_start(&dir, capacity, mode, &opening)).await??;
        let (buffer, reset, damaged, buffer_id) = match opened {
            recovery::Opened::Ready(buffer, reset) => {
                let id = buffer.id();
                (SharedBuffer::new(*buffer), reset, None, id)
            }
            recovery::Opened::Damaged(cause) => (SharedBuffer::unavailable(cause.clone()), None, Some(cause), 0),
        };
        let status = Arc::new(ControlStatus::new(buffer.clone(), section.node_urls(), mode));
        if let Some(cause) = &damaged {
            // Before the listeners serve: with stop-serving, not one request is answered from a
            // cache whose purges are unknown. The recovery task takes it from here.
            status.buffer_failed(cause, now_ms());
            shared.metrics.control.buffer_unreadable.store(1, std::sync::atomic::Ordering::Relaxed);
        }
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
            fresh: fresh::Fresh::default(),
            tasks: Mutex::new(JoinSet::new()),
            stop: stop_rx,
            resets: Arc::new(watch::channel(buffer_id).0),
        });
        if let Some(reset) = reset {
            recovery::announce(&inner, reset).await;
        }
        inner.update_buffer_gauge().await;
        Ok(Consumer { inner, stop })
    }

    /// Starts the appliers of what the buffer still holds and one connection per node.
    pub async fn start(self) -> Running {
        let Consumer { inner, stop } = self;
        inner.spawn(recovery::run(Arc::clone(&inner)));
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
        for (index, node) in inner.section.nodes.clone().into_iter().enumerate() {
            let task_inner = Arc::clone(&inner);
            inner.spawn(connection::run_node(task_inner, node, index));
        }
        tracing::info!(nodes = ?inner.section.node_urls(), state_dir = %inner.section.state_dir.display(), "control consumer started");
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
