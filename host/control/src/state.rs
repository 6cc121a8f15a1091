//! What the control role's parts share, split by who reads it: [`QueueState`] (the store and the
//! queue hub) is all the queue server sees; [`AppState`] is the API's, a `QueueState` plus the
//! policy, limits, rate limiter, counters and queue monitor. Both hold the one `QueueState`, so an
//! append through the API wakes the queue streams.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRef;
use edgepurge_policy_runtime::LoadedPolicy;
use edgepurge_policy_runtime::PolicySection;
use edgepurge_policy_runtime::{PolicyLoadError, PolicySlot, PolicyStatus};

use crate::auth::RateLimiter;
use crate::config::{ControlConfig, LimitsSection};
use crate::counters::Metrics;
use crate::fold::FoldSettings;
use crate::health::{Clock, QueueMonitor};
use crate::hub::{PublishedPolicy, QueueHub};

/// What the queue server's streams use: the store and what they share with the API.
#[derive(Debug)]
pub struct QueueState<S> {
    /// The store (queues, records, tokens).
    pub store: S,
    /// The "appended" signal, the policy sent to edges, the connected edges
    /// (`Default::default()` when there is no queue server).
    pub queue: QueueHub,
}

impl<S> QueueState<S> {
    /// The state over `store` with a hub that has no policy and no edge yet.
    pub fn new(store: S) -> Self {
        QueueState { store, queue: QueueHub::default() }
    }
}

/// What every API handler shares. It dereferences to its [`QueueState`], so handlers reach the
/// store and the hub as `state.store` and `state.queue`.
pub struct AppState<S> {
    /// The store and the queue hub, shared with the queue server.
    pub queues: Arc<QueueState<S>>,
    /// The policy whose `select-queue` picks queues; replaced by `PUT /v1/policy`.
    pub policy: PolicySlot,
    /// The configured `[policy]` section (its `config` applies to uploaded policies too).
    pub policy_section: PolicySection,
    /// The speed floor of the expected wait (S0.3) in bytes per second: the `[policy.config]`
    /// key the built-in `select-queue` reads, so the reported wait is the one it compares.
    pub speed_floor: f64,
    /// Per-token rate limit of submissions.
    pub limiter: RateLimiter,
    /// Validation limits.
    pub limits: LimitsSection,
    /// S0.3's pacing interval `d`, passed to `select-queue`.
    pub pacing_ms: u32,
    /// Counters for `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// S2.3 folding of repeated purges.
    pub fold: FoldSettings,
    /// Queue health (S0.2) and the clock batches are stamped with; the background observer
    /// shares it.
    pub monitor: Arc<QueueMonitor>,
}

impl<S> AppState<S> {
    /// The state `config` describes, selecting queues with `policy`; `clock` stamps batches and
    /// judges queue health. No policy is published to edges yet
    /// ([`QueueHub::publish_policy`]).
    pub fn new(store: S, policy: LoadedPolicy, config: &ControlConfig, clock: Clock) -> Self {
        AppState {
            queues: Arc::new(QueueState::new(store)),
            policy: PolicySlot::new(policy),
            policy_section: config.policy.clone(),
            speed_floor: config.speed_floor(),
            limiter: RateLimiter::new(config.rate_limit.burst, config.rate_limit.per_second),
            limits: config.limits,
            pacing_ms: config.pacing_ms,
            metrics: Default::default(),
            fold: config.fold(),
            monitor: Arc::new(config.monitor(clock)),
        }
    }

    /// Re-reads the `[policy]` section (its file, or the built-in defaults), installs it for
    /// queue selection and sends it to every connected edge (a component only: the built-in
    /// defaults have none, so edges keep what they run). For SIGHUP.
    pub async fn reload_policy(&self) -> Result<PolicyStatus, PolicyLoadError> {
        let (status, bytes) = self.policy.reload_component(&self.policy_section).await?;
        let published = bytes.map(|b| PublishedPolicy::new(status.name.clone(), status.version.clone(), b.into()));
        self.queue.publish_policy(published);
        tracing::info!(policy = %status.name, version = %status.version, source = %status.source, "policy reloaded");
        Ok(status)
    }
}

impl<S> Deref for AppState<S> {
    type Target = QueueState<S>;

    fn deref(&self) -> &QueueState<S> {
        &self.queues
    }
}

/// What `GET /metrics` reads: the API's counters and the queue state (the hub's counters and
/// connected edges, the store's queue figures). Extracted from the router's state.
pub struct MetricsState<S> {
    /// The purge API's counters.
    pub counters: Arc<Metrics>,
    /// The store and the queue hub.
    pub queues: Arc<QueueState<S>>,
}

impl<S> Clone for MetricsState<S> {
    fn clone(&self) -> Self {
        MetricsState { counters: self.counters.clone(), queues: self.queues.clone() }
    }
}

impl<S> FromRef<Arc<AppState<S>>> for MetricsState<S> {
    fn from_ref(state: &Arc<AppState<S>>) -> Self {
        MetricsState { counters: state.metrics.clone(), queues: state.queues.clone() }
    }
}
