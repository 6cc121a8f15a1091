//! The edge's operations on its state, outside any HTTP module: applying a purge or warm task
//! (the one path for `POST /purge` and tasks from control) and warming a URL through the
//! client's path.

use std::sync::Arc;

use edgepurge_purge_model::cache_url;
use edgepurge_sdk::Task;
use http::{header, Request};
use http_body_util::BodyExt;

use crate::cache_path::{cacheable, CACHE_STATUS};
use crate::config::EdgeConfig;
use crate::purge::PurgeReport;
use crate::state::Shared;

/// What applying one task did.
pub(crate) struct Applied {
    /// The executor's report.
    pub report: PurgeReport,
    /// For a warm task, the fetch.
    pub warmed: Option<WarmReport>,
}

impl Applied {
    /// The report as `POST /purge` answers it (with `warmed` for a warm task).
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(&self.report).unwrap_or_default();
        if let (Some(warmed), Some(object)) = (&self.warmed, body.as_object_mut()) {
            object.insert("warmed".into(), serde_json::to_value(warmed).unwrap_or_default());
        }
        body
    }
}

/// Why a task could not be applied as asked.
#[derive(Debug)]
pub(crate) enum TaskError {
    /// The target is invalid for its kind; nothing was purged.
    Invalid(String),
    /// A warm task's fetch failed.
    Warm(String),
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::Invalid(e) | TaskError::Warm(e) => f.write_str(e),
        }
    }
}

/// Applies one purge or warm task: `scope-purge` and the store purges, then the warm fetch.
/// The one path for `POST /purge` and tasks from control.
pub(crate) async fn apply_task(shared: &Arc<Shared>, task: &Task) -> Result<Applied, TaskError> {
    apply_owned(shared, task.clone(), true).await
}

/// [`apply_task`] of a task the caller gives up; `describe` false leaves the report's `actions`
/// empty (see `PurgeExecutor::apply_owned`).
pub(crate) async fn apply_owned(shared: &Arc<Shared>, task: Task, describe: bool) -> Result<Applied, TaskError> {
    let report = shared.purger.apply_owned(task, describe).await.map_err(|e| TaskError::Invalid(e.to_string()))?;
    let warmed = match &report.warm {
        None => None,
        Some(url) => Some(warm(shared, url).await.map_err(TaskError::Warm)?),
    };
    Ok(Applied { report, warmed })
}

/// What a warm task did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WarmReport {
    /// The URL fetched.
    pub url: String,
    /// The status the edge answered (as a client would have seen it).
    pub status: u16,
    /// The `Cache-Status` of that answer (`hit` when it was already fresh, `fwd=miss; stored`…).
    pub cache_status: String,
}

/// Warms `url` (as [`cache_url`] writes it) into the cache: a GET that takes the client's path —
/// `cache-key`, lookup, the collapsed fill — with the body read to the end so the object is
/// stored. An object that is already fresh is left as it is.
pub(crate) async fn warm(shared: &Arc<Shared>, url: &str) -> Result<WarmReport, String> {
    let url = cache_url(url).map_err(|e| format!("cannot warm {url}: {e}"))?;
    let rest = url.as_str().strip_prefix("http://").ok_or_else(|| format!("cannot warm {url}: not http"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let origin = shared.config.origin_for(url.host()).cloned().ok_or_else(|| EdgeConfig::no_origin(url.host()))?;
    let (parts, ()) = Request::get(path)
        .header(header::HOST, authority)
        .body(())
        .map_err(|e| format!("cannot warm {url}: {e}"))?
        .into_parts();
    let uri = origin.url.join(path).map_err(|e| format!("cannot warm {url} from origin {}: {e}", origin.url))?;
    let resp = cacheable(shared, parts, &origin, uri, url.clone()).await;
    let status = resp.status().as_u16();
    let cache_status = resp.headers().get(CACHE_STATUS).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    resp.into_body().collect().await.map_err(|e| format!("warming {url}: the origin's body failed: {e}"))?;
    Ok(WarmReport { url: url.into_string(), status, cache_status })
}
