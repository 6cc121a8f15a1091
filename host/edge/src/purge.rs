//! The purge executor: a task goes through the `scope-purge` policy hook, each resulting
//! action is applied to the cache store in constant time (see `edgepurge-edge-cache`).
//!
//! Task targets are normalised first ([`normalize_task_owned`], the keys both roles share in
//! `edgepurge-purge-model`: scheme-independent, written with `http://`), so a purge names exactly
//! the keys the proxy stored; a target that does not normalise is refused with the reason, and
//! nothing is purged for it.
//!
//! A URL purge removes what a request for that URL is served from. When the policy's
//! `cache-key` (or the `ignore` query mode) makes several URLs share one object, the object is
//! stored under its canonical URL ([`entry_url`]) and a URL purge of any of those URLs also
//! purges that canonical URL.

use crate::metrics::EdgeMetrics;
use edgepurge_edge_cache::CacheStore;
use edgepurge_policy_runtime::{DecisionSource, LoadedPolicy, PolicySlot};
use edgepurge_purge_model::{cache_url, entry_url, normalize_task_owned, PurgeError};
use edgepurge_sdk::{PurgeMode, RequestMeta, Scope, Task, TaskKind};
use edgepurge_url::{NormalizedUrl, QueryMode};
use serde::Serialize;
use std::sync::Arc;

/// What one task did.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeReport {
    /// The task id.
    pub id: u64,
    /// The actions applied, as `mode scope target`.
    pub actions: Vec<String>,
    /// Entries removed or marked directly (exact-URL purges); scoped purges act on lookup.
    pub direct: u64,
    /// `policy`, `not-declared` or `fallback:<kind>`: who decided the scopes.
    pub decided_by: String,
    /// For a warm task: the normalised URL to fetch into the cache.
    pub warm: Option<String>,
}

/// Applies purge tasks to one store with the current policy.
pub struct PurgeExecutor<V: Send + Sync + 'static> {
    store: Arc<CacheStore<V>>,
    policy: PolicySlot,
    metrics: Arc<EdgeMetrics>,
    query_mode: QueryMode,
}

impl<V: Send + Sync + 'static> PurgeExecutor<V> {
    /// An executor over `store`, asking `policy` for scopes and counting the calls in `metrics`.
    pub fn new(store: Arc<CacheStore<V>>, policy: PolicySlot, metrics: Arc<EdgeMetrics>) -> Self {
        PurgeExecutor { store, policy, metrics, query_mode: QueryMode::default() }
    }

    /// The proxy's query mode (`[cache] query-mode`), to find the object a URL is served from.
    pub fn with_query_mode(mut self, query_mode: QueryMode) -> Self {
        self.query_mode = query_mode;
        self
    }

    /// The canonical URL the object for a GET of `target` is stored under, when it is not
    /// `target` itself (see [`entry_url`]): keyed as the proxy keys it, by `policy`'s
    /// `cache-key` (with no request headers) or the query mode.
    async fn canonical_url(&self, policy: &LoadedPolicy, target: &str) -> Option<String> {
        let hooked = policy.info().hooks.cache_key;
        // Without a `cache-key` hook only the `ignore` mode keys a URL by something other than
        // itself, and only when it has a query (no `?`, no query): decided without parsing the
        // URL again, the common case of every bulk purge.
        if !hooked && (self.query_mode != QueryMode::Ignore || !target.contains('?')) {
            return None;
        }
        let url = cache_url(target).ok()?;
        let policy_key = if hooked {
            let meta = RequestMeta { method: "GET".into(), url: url.as_str().to_owned(), headers: Vec::new() };
            let outcome = policy.cache_key(&meta).await;
            self.metrics.policy_call("cache-key", &outcome.source);
            outcome.value
        } else {
            None
        };
        let key = policy_key.or_else(|| url.cache_key(self.query_mode).map(str::to_owned))?;
        let canonical = entry_url(&key, &url);
        (canonical != url.as_str()).then_some(canonical)
    }

    /// Hard-purges what a request for `url` is served from (RFC 9111 §4.4 invalidation by an
    /// unsafe method): the URL and, if the object is stored under another URL, that one.
    pub async fn invalidate_url(&self, url: &NormalizedUrl) {
        let canonical = self.canonical_url(&self.policy.current(), url.as_str()).await;
        self.store.purge_owned(Scope::Url(url.as_str().to_owned()), PurgeMode::Hard);
        if let Some(canonical) = canonical {
            self.store.purge_owned(Scope::Url(canonical), PurgeMode::Hard);
        }
    }

    fn purge(&self, scope: Scope, mode: PurgeMode, report: &mut PurgeReport, describe: bool) {
        if describe {
            report.actions.push(format!("{} {:?}", mode.name(), scope));
        }
        let done = self.store.purge_owned(scope, mode);
        report.direct += done.direct as u64;
    }

    /// Normalises the task, asks `scope-purge`, and applies every action.
    pub async fn apply(&self, task: &Task) -> Result<PurgeReport, PurgeError> {
        self.apply_owned(task.clone(), true).await
    }

    /// [`apply`](Self::apply) of a task the caller gives up; with `describe` false the report's
    /// `actions` stay empty (tasks from control: nobody reads them, and writing them cost a
    /// third of applying a bulk purge).
    pub async fn apply_owned(&self, task: Task, describe: bool) -> Result<PurgeReport, PurgeError> {
        let task = normalize_task_owned(task)?;
        let policy = self.policy.current();
        let outcome = policy.scope_purge(&task).await;
        self.metrics.policy_call("scope-purge", &outcome.source);
        let decided_by = match &outcome.source {
            DecisionSource::Policy => "policy".to_owned(),
            DecisionSource::NotDeclared => "not-declared".to_owned(),
            DecisionSource::Fallback { kind, .. } => format!("fallback:{kind}"),
        };
        let mut report = PurgeReport {
            id: task.id,
            actions: Vec::new(),
            direct: 0,
            decided_by,
            warm: (task.kind == TaskKind::Warm).then(|| task.target.clone()),
        };
        for action in outcome.value.actions {
            let canonical = match &action.scope {
                Scope::Url(url) => self.canonical_url(&policy, url).await,
                _ => None,
            };
            self.purge(action.scope, action.mode, &mut report, describe);
            if let Some(canonical) = canonical {
                self.purge(Scope::Url(canonical), action.mode, &mut report, describe);
            }
        }
        Ok(report)
    }
}
