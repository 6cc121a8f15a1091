//! What the control role's parts share, split by who reads it: [`QueueState`] (the store and the
//! queue hub) is all the queue server sees; [`AppState`] is the API's, a `QueueState` plus the
//! policy, limits, rate limiter, counters and queue monitor. Both hold the one `QueueState`, so an
//! append through the API wakes the queue streams. [`WriteProbe`] is `/readyz`'s check that the
//! store still takes writes.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use edgepurge_policy_runtime::LoadedPolicy;
use edgepurge_policy_runtime::PolicySection;
use edgepurge_policy_runtime::{PolicyLoadError, PolicySlot, PolicyStatus};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth::RateLimiter;
use crate::config::{ControlConfig, LimitsSection};
use crate::counters::Metrics;
use crate::fold::FoldSettings;
use crate::health::{Clock, QueueMonitor};
use crate::hub::{PublishedPolicy, QueueHub};
use crate::tail::Tail;

/// What the queue server's streams use: the store and what they share with the API.
#[derive(Debug)]
pub struct QueueState<S> {
    /// The store (queues, records, tokens).
    pub store: S,
    /// The "appended" signal, the policy sent to edges, the connected edges
    /// (`Default::default()` when there is no queue server).
    pub queue: QueueHub,
    /// The newest chunks of every queue with their `Tasks` frames, shared by all streams.
    pub tail: Tail,
}

impl<S> QueueState<S> {
    /// The state over `store` with a hub that has no policy and no edge yet.
    pub fn new(store: S) -> Self {
        QueueState { store, queue: QueueHub::default(), tail: Tail::default() }
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
    /// `/readyz`'s write probe of the store, at most one write a second.
    pub write_probe: WriteProbe,
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
            write_probe: WriteProbe::default(),
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

/// Whether the store takes writes, for `/readyz`: one probe write at a time and at most one a
/// second however often a load balancer asks (a result younger than [`WriteProbe::FRESH`] is
/// answered again).
///
/// The probe runs as its own task and a check waits for it at most [`WriteProbe::WAIT`]: the
/// store has one writer, so a probe may queue behind a million-URL append, and the node is ready
/// meanwhile (the append is writing). A probe still unfinished after [`WriteProbe::HUNG`] means
/// the store's writes hang: not ready.
#[derive(Debug)]
pub struct WriteProbe {
    state: Arc<watch::Sender<Probed>>,
}

/// Where the probes are.
#[derive(Debug, Clone, Default)]
struct Probed {
    /// When the running probe started; `None` when none runs.
    running: Option<Instant>,
    /// When the last probe finished, and its result.
    finished: Option<(Instant, Result<(), String>)>,
}

impl Default for WriteProbe {
    fn default() -> Self {
        WriteProbe { state: Arc::new(watch::Sender::new(Probed::default())) }
    }
}

impl WriteProbe {
    /// How long a finished probe's result is answered again.
    pub const FRESH: Duration = Duration::from_secs(1);
    /// How long a check waits for the probe it started (or found running).
    pub const WAIT: Duration = Duration::from_secs(2);
    /// How long a probe may run before the store counts as hung.
    pub const HUNG: Duration = Duration::from_secs(30);

    /// `Ok` when the store took a write (recently, or through `probe` now), else why not. Calls
    /// `probe` only when no result is fresh and no probe runs.
    pub async fn check<F>(&self, probe: impl FnOnce() -> F) -> Result<(), String>
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let now = Instant::now();
        let mut start = false;
        self.state.send_if_modified(|p| {
            let fresh = p.finished.as_ref().is_some_and(|(at, _)| now.duration_since(*at) < Self::FRESH);
            start = !fresh && p.running.is_none();
            if start {
                p.running = Some(now);
            }
            start
        });
        if start {
            let state = self.state.clone();
            let probe = probe();
            tokio::spawn(async move {
                let result = probe.await;
                state.send_modify(|p| (p.running, p.finished) = (None, Some((Instant::now(), result))));
            });
        }
        let mut seen = self.state.subscribe();
        // Timing out is an answer too (below): a probe behind a long write is still running.
        let _ = tokio::time::timeout(Self::WAIT, seen.wait_for(|p| p.running.is_none())).await;
        let p = self.state.borrow().clone();
        match (p.running, p.finished) {
            (Some(since), _) if since.elapsed() >= Self::HUNG => Err(format!(
                "no write to the store has finished in {} s: its writes hang (check the disk under the database)",
                since.elapsed().as_secs()
            )),
            (_, Some((_, result))) => result,
            // The first probe is still running, behind another write: nothing failed yet.
            (_, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_probe_runs_at_most_once_a_second_and_its_failure_is_answered() {
        let probe = WriteProbe::default();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = |result: Result<(), String>| {
            let calls = calls.clone();
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                result
            }
        };
        assert_eq!(probe.check(counted(Ok(()))).await, Ok(()));
        assert_eq!(probe.check(counted(Err("full".into()))).await, Ok(()), "answered from the fresh result");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(WriteProbe::FRESH).await;
        assert_eq!(probe.check(counted(Err("disk full".into()))).await, Err("disk full".into()));
        assert_eq!(probe.check(counted(Ok(()))).await, Err("disk full".into()), "a failure is fresh for a second too");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_behind_a_long_write_is_ready_until_it_counts_as_hung() {
        let probe = WriteProbe::default();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let slow = move || async move {
            let _ = released.await;
            Ok(())
        };
        assert_eq!(probe.check(slow).await, Ok(()), "still running after WAIT: nothing failed");
        let never = || async { panic!("a second probe while one runs") };
        assert_eq!(probe.check(never).await, Ok(()));
        tokio::time::advance(WriteProbe::HUNG).await;
        let err = probe.check(never).await.unwrap_err();
        assert!(err.contains("hang"), "{err}");
        release.send(()).unwrap();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(probe.check(never).await, Ok(()), "the probe finished: its result, fresh");
    }
}
