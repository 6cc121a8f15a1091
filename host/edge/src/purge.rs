//! The purge executor: a task goes through the `scope-purge` policy hook, each resulting
//! action is applied to the cache store in constant time (see `edgepurge-edge-cache`).
//!
//! Task targets are normalised with `edgepurge-url` first, so a purge names exactly the keys
//! the proxy stored; a target that does not normalise is refused with the reason, and nothing
//! is purged for it.
//!
//! The edge's cache is scheme-independent (as Varnish hashes `Host` + URL): an object is one
//! entry whether clients fetch it over http or https, so every URL the edge stores or purges is
//! written with `http://` ([`cache_url`], [`cache_prefix`]); a purge of `https://a.com/x` finds
//! what a request for `http://a.com/x` stored.
//!
//! A URL purge removes what a request for that URL is served from. When the policy's
//! `cache-key` (or the `ignore` query mode) makes several URLs share one object, the object is
//! stored under its canonical URL ([`entry_url`]) and a URL purge of any of those URLs also
//! purges that canonical URL.

use crate::metrics::EdgeMetrics;
use crate::policy_slot::PolicySlot;
use edgepurge_edge_cache::CacheStore;
use edgepurge_policy_runtime::DecisionSource;
use edgepurge_sdk::{PurgeMode, RequestMeta, Scope, Task, TaskKind};
use edgepurge_url::{NormalizedPrefix, NormalizedUrl, QueryMode, UrlError};
use serde::Serialize;
use std::sync::Arc;

/// Why a task was refused.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// The target is not a valid URL, prefix or host for its kind.
    #[error("task {id}: invalid {kind} target `{target}`: {reason}")]
    InvalidTarget {
        /// The task id.
        id: u64,
        /// The task kind.
        kind: &'static str,
        /// The target as given (cut to 200 characters).
        target: String,
        /// What is wrong.
        reason: String,
    },
}

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

/// `input` normalised as the edge stores it: scheme-independent, written with `http://`.
pub fn cache_url(input: &str) -> Result<NormalizedUrl, UrlError> {
    let url = edgepurge_url::normalize(input)?;
    match url.as_str().strip_prefix("https://") {
        Some(rest) => edgepurge_url::normalize(&format!("http://{rest}")),
        None => Ok(url),
    }
}

/// A URL prefix normalised as the edge stores URLs ([`cache_url`]).
pub fn cache_prefix(input: &str) -> Result<NormalizedPrefix, UrlError> {
    let prefix = edgepurge_url::normalize_prefix(input)?;
    match prefix.as_str().strip_prefix("https://") {
        Some(rest) => edgepurge_url::normalize_prefix(&format!("http://{rest}")),
        None => Ok(prefix),
    }
}

/// The URL an object stored under cache `key` for a request of `url` is purged by: the key
/// itself when it is a cache URL of the same host (a policy `cache-key` or the `ignore` query
/// mode merging several URLs into one object, so that purging the canonical URL finds it), the
/// request's URL otherwise.
pub fn entry_url(key: &str, url: &NormalizedUrl) -> String {
    match cache_url(key) {
        Ok(canonical) if canonical.as_str() == key && canonical.host() == url.host() => key.to_owned(),
        _ => url.as_str().to_owned(),
    }
}

/// The task with its target and host normalised, or why it cannot be.
pub fn normalize_task(task: &Task) -> Result<Task, PurgeError> {
    let invalid = |reason: String| PurgeError::InvalidTarget {
        id: task.id,
        kind: task.kind.name(),
        target: task.target.chars().take(200).collect(),
        reason,
    };
    let mut out = task.clone();
    match task.kind {
        TaskKind::Url | TaskKind::Warm => {
            let url = cache_url(&task.target).map_err(|e| invalid(e.to_string()))?;
            out.host = url.host().to_owned();
            out.target = url.into_string();
        }
        TaskKind::Prefix => {
            let prefix = cache_prefix(&task.target).map_err(|e| invalid(e.to_string()))?;
            out.host = prefix.host().to_owned();
            out.target = prefix.into_string();
        }
        TaskKind::Host => {
            let host = edgepurge_url::normalize_host(&task.target).map_err(|e| invalid(e.to_string()))?;
            out.host = host.clone();
            out.target = host;
        }
        TaskKind::Tag if task.target.is_empty() || task.target.contains(['\n', '\r']) => {
            return Err(invalid("a tag must be non-empty and on one line".into()));
        }
        TaskKind::Tag => {}
        TaskKind::Everything => {
            out.target.clear();
            out.host.clear();
        }
    }
    Ok(out)
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
    /// `target` itself (see [`entry_url`]): keyed as the proxy keys it, by the policy's
    /// `cache-key` (with no request headers) or the query mode.
    async fn canonical_url(&self, target: &str) -> Option<String> {
        let url = cache_url(target).ok()?;
        let policy = self.policy.current();
        let policy_key = if policy.info().hooks.cache_key {
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
        let canonical = self.canonical_url(url.as_str()).await;
        self.store.purge(&Scope::Url(url.as_str().to_owned()), PurgeMode::Hard);
        if let Some(canonical) = canonical {
            self.store.purge(&Scope::Url(canonical), PurgeMode::Hard);
        }
    }

    fn purge(&self, scope: Scope, mode: PurgeMode, report: &mut PurgeReport) {
        let done = self.store.purge(&scope, mode);
        report.direct += done.direct as u64;
        report.actions.push(format!("{} {:?}", mode.name(), scope));
    }

    /// Normalises the task, asks `scope-purge`, and applies every action.
    pub async fn apply(&self, task: &Task) -> Result<PurgeReport, PurgeError> {
        let task = normalize_task(task)?;
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
                Scope::Url(url) => self.canonical_url(url).await,
                _ => None,
            };
            self.purge(action.scope, action.mode, &mut report);
            if let Some(canonical) = canonical {
                self.purge(Scope::Url(canonical), action.mode, &mut report);
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(kind: TaskKind, target: &str) -> Task {
        Task { id: 1, kind, target: target.into(), ..Default::default() }
    }

    #[test]
    fn targets_are_normalised_with_their_host() {
        let t = normalize_task(&task(TaskKind::Url, "HTTPS://WWW.Example.com:443/a/%7Ex#frag")).unwrap();
        assert_eq!((t.target.as_str(), t.host.as_str()), ("http://www.example.com/a/~x", "www.example.com"));
        let t = normalize_task(&task(TaskKind::Prefix, "https://a.com:443/img/")).unwrap();
        assert_eq!(t.target, "http://a.com/img/");
        let t = normalize_task(&task(TaskKind::Url, "https://a.com:8443/x")).unwrap();
        assert_eq!(t.target, "http://a.com:8443/x");
        let t = normalize_task(&task(TaskKind::Host, "WWW.Example.COM")).unwrap();
        assert_eq!(t.host, "www.example.com");
        let err = normalize_task(&task(TaskKind::Url, "/relative")).unwrap_err().to_string();
        assert!(err.contains("invalid url target `/relative`"), "{err}");
        assert!(normalize_task(&task(TaskKind::Tag, "")).is_err());
    }

    #[test]
    fn objects_merged_under_a_url_key_are_purged_by_that_url() {
        let url = cache_url("http://a.com/css/a.css?v=2").unwrap();
        assert_eq!(entry_url("http://a.com/css/a.css", &url), "http://a.com/css/a.css");
        // A key that is not a canonical URL of the same host: the request's URL.
        assert_eq!(entry_url("css:a", &url), url.as_str());
        assert_eq!(entry_url("http://b.com/css/a.css", &url), url.as_str());
        assert_eq!(entry_url("HTTP://a.com/css/a.css", &url), url.as_str());
    }
}
