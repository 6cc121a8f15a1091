//! Warm (prefetch) tasks: fetch a URL into the cache through the same path as a client's GET,
//! so a warm joins or starts the same collapsed fill and obeys the same cache rules.

use std::sync::Arc;

use http::{header, Request};
use http_body_util::BodyExt;

use crate::origin::Shared;
use crate::proxy::{cacheable, CACHE_STATUS};

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

/// Warms `url` (as [`crate::purge::cache_url`] writes it) into the cache: a GET that takes the
/// client's path — `cache-key`, lookup, the collapsed fill — with the body read to the end so
/// the object is stored. An object that is already fresh is left as it is.
pub(crate) async fn warm(shared: &Arc<Shared>, url: &str) -> Result<WarmReport, String> {
    let url = crate::purge::cache_url(url).map_err(|e| format!("cannot warm {url}: {e}"))?;
    let rest = url.as_str().strip_prefix("http://").ok_or_else(|| format!("cannot warm {url}: not http"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let origin = shared.config.origin_for(url.host()).cloned().ok_or_else(|| crate::proxy::no_origin(url.host()))?;
    let (parts, ()) = Request::get(path)
        .header(header::HOST, authority)
        .body(())
        .map_err(|e| format!("cannot warm {url}: {e}"))?
        .into_parts();
    let path = path.to_owned();
    let resp = cacheable(shared, parts, &origin, &path, url.clone()).await;
    let status = resp.status().as_u16();
    let cache_status = resp.headers().get(CACHE_STATUS).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    resp.into_body().collect().await.map_err(|e| format!("warming {url}: the origin's body failed: {e}"))?;
    Ok(WarmReport { url: url.into_string(), status, cache_status })
}
