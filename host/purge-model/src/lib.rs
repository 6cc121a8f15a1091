//! # edgepurge-purge-model — what both roles compute about purges
//!
//! The one home of the keys a purge names, shared by the control role (which normalises every
//! task it queues and every record query) and the edge (which stores and purges under the same
//! keys), so both agree without either depending on the other:
//!
//! - [`normalize_task`] — a task with its target and host normalised for its kind, or a
//!   [`PurgeError`] naming the task, the target and the reason.
//! - [`cache_url`], [`cache_prefix`] — a URL or prefix normalised (with `edgepurge-url`) as the
//!   edge stores URLs: **scheme-independent, written with `http://`** (invariant 6 of
//!   ARCHITECTURE.md). An object is one entry whether clients fetch it over http or https (as
//!   Varnish hashes `Host` + URL), so a purge of `https://a.com/x` finds what a request for
//!   `http://a.com/x` stored.
//! - [`entry_url`] — the URL an object is purged by when a policy `cache-key` or the `ignore`
//!   query mode merges several URLs into one object: its canonical URL.

use edgepurge_sdk::{Task, TaskKind};
use edgepurge_url::{NormalizedPrefix, NormalizedUrl, Refused, UrlError};

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

/// `input` normalised as the edge stores it: scheme-independent, written with `http://`.
pub fn cache_url(input: &str) -> Result<NormalizedUrl, UrlError> {
    let url = edgepurge_url::normalize(input)?;
    match url.as_str().strip_prefix("https://") {
        Some(rest) => edgepurge_url::normalize(&format!("http://{rest}")),
        None => Ok(url),
    }
}

/// [`cache_url`] of a string the caller gives up: a target already in cache form (what control
/// sends every edge) is kept as it is, without a copy.
pub fn cache_url_owned(input: String) -> Result<NormalizedUrl, Refused> {
    let url = edgepurge_url::normalize_owned(input)?;
    let Some(rest) = url.as_str().strip_prefix("https://") else {
        return Ok(url);
    };
    edgepurge_url::normalize_owned(format!("http://{rest}"))
        .map_err(|refused| Refused { error: refused.error, input: url.into_string() })
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
    normalize_task_owned(task.clone())
}

/// [`normalize_task`] for a task the caller no longer needs: its strings are reused, not copied
/// (the bulk path at control and the applier at the edge normalise a million tasks at a time).
pub fn normalize_task_owned(mut task: Task) -> Result<Task, PurgeError> {
    let normalized = match task.kind {
        TaskKind::Url | TaskKind::Warm => return normalize_url_task(task),
        TaskKind::Prefix => cache_prefix(&task.target).map(|prefix| {
            let host = prefix.host().to_owned();
            (prefix.into_string(), host)
        }),
        TaskKind::Host => edgepurge_url::normalize_host(&task.target).map(|host| (host.clone(), host)),
        TaskKind::Tag if task.target.is_empty() || task.target.contains(['\n', '\r']) => {
            return Err(invalid(&task, "a tag must be non-empty and on one line".into()));
        }
        TaskKind::Tag => return Ok(task),
        TaskKind::Everything => Ok((String::new(), String::new())),
    };
    match normalized {
        Ok((target, host)) => {
            (task.target, task.host) = (target, host);
            Ok(task)
        }
        Err(e) => Err(invalid(&task, e.to_string())),
    }
}

/// A URL or warm task's target in cache form. The target moves into the normaliser and back (no
/// copy when it is in cache form already, as control sends it to every edge); the host is
/// rewritten only when it is not the URL's already.
fn normalize_url_task(mut task: Task) -> Result<Task, PurgeError> {
    match cache_url_owned(std::mem::take(&mut task.target)) {
        Ok(url) => {
            if task.host != url.host() {
                task.host = url.host().to_owned();
            }
            task.target = url.into_string();
            Ok(task)
        }
        Err(refused) => {
            task.target = refused.input;
            Err(invalid(&task, refused.error.to_string()))
        }
    }
}

fn invalid(task: &Task, reason: String) -> PurgeError {
    PurgeError::InvalidTarget {
        id: task.id,
        kind: task.kind.name(),
        target: task.target.chars().take(200).collect(),
        reason,
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
    fn owned_normalisation_keeps_cache_forms_and_names_refused_targets() {
        // In cache form already (as control sends it): kept, and a wrong host is corrected.
        let t = Task { host: "other.example".into(), ..task(TaskKind::Url, "http://a.com/x?y=1") };
        let t = normalize_task_owned(t).unwrap();
        assert_eq!((t.target.as_str(), t.host.as_str()), ("http://a.com/x?y=1", "a.com"));
        let t = normalize_task_owned(task(TaskKind::Warm, "https://a.com:8443/x")).unwrap();
        assert_eq!((t.target.as_str(), t.host.as_str()), ("http://a.com:8443/x", "a.com"));
        // A refused target is named in the error as it was given.
        let e = normalize_task_owned(task(TaskKind::Url, "http://a b/")).unwrap_err();
        assert!(e.to_string().contains("http://a b/"), "{e}");
        assert_eq!(cache_url_owned("https://A.com/x".into()).unwrap(), cache_url("https://A.com/x").unwrap());
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
