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

use crate::metrics::EdgeMetrics;
use crate::policy_slot::PolicySlot;
use edgepurge_edge_cache::CacheStore;
use edgepurge_policy_runtime::DecisionSource;
use edgepurge_sdk::{Task, TaskKind};
use edgepurge_url::{NormalizedPrefix, NormalizedUrl, UrlError};
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
}

fn kind_name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Url => "url",
        TaskKind::Prefix => "prefix",
        TaskKind::Tag => "tag",
        TaskKind::Host => "host",
        TaskKind::Everything => "everything",
        TaskKind::Warm => "warm",
    }
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

/// The task with its target and host normalised, or why it cannot be.
pub fn normalize_task(task: &Task) -> Result<Task, PurgeError> {
    let invalid = |reason: String| PurgeError::InvalidTarget {
        id: task.id,
        kind: kind_name(task.kind),
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
        PurgeExecutor { store, policy, metrics }
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
            let done = self.store.purge(&action.scope, action.mode);
            report.direct += done.direct as u64;
            report.actions.push(format!("{} {:?}", action.mode.name(), action.scope));
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
}
