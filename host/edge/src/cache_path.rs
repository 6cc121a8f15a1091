//! The cache path: how a GET or HEAD is answered — the cache key (policy `cache-key` or the
//! query mode), the store lookup, `http_cache::evaluate`, hits and Range from stored objects,
//! collapsed fills streamed to every waiter (Range cut from the stream), SWR refresh,
//! stale-if-error and the S4.1 busy answer. Used by the proxy listener and by warm tasks, so a
//! warm takes exactly a client's path.

use std::sync::Arc;
use std::time::SystemTime;

use edgepurge_edge_cache::{CacheStore, Hit, Variant};
use edgepurge_sdk::RequestMeta;
use edgepurge_url::NormalizedUrl;
use futures_util::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Uri};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tracing::Instrument;

use crate::config::OriginConfig;
use crate::fill::{FillError, FillFollower, Join};
use crate::http_cache::{self, CacheStatusKind, Evaluation, Forward, RangeOutcome, RangePlan, StoredResponse};
use crate::origin::{origin_request, run_fill, sdk_headers, FillJob, STATUS_COLLAPSED, STATUS_OWN};
use crate::response::{empty, full, text, BoxError, ProxyBody};
use crate::state::Shared;

/// The header naming the busy resource on a `503` answered because a fill has too many waiters.
pub const BUSY_HEADER: &str = "edgepurge-busy";
/// The RFC 9211 `Cache-Status` header every answer of the cache path carries.
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

fn with_status(mut resp: Response<ProxyBody>, kind: CacheStatusKind, detail: Option<&str>) -> Response<ProxyBody> {
    resp.headers_mut().insert(CACHE_STATUS, http_cache::cache_status(kind, detail, None));
    resp
}

/// Origin request headers for a fill or a forwarded request: hop-by-hop removed.
pub(crate) fn forward_headers(headers: &HeaderMap, fill: bool) -> HeaderMap {
    let mut headers = headers.clone();
    http_cache::strip_hop_by_hop(&mut headers);
    if fill {
        // The fill's response is shared by every waiter: no client conditionals or ranges.
        for name in [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE, header::IF_RANGE, header::RANGE] {
            headers.remove(name);
        }
    }
    headers
}

/// Relays an origin response as it streams.
pub(crate) fn relay(resp: Response<Incoming>, kind: CacheStatusKind, detail: Option<&str>) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    http_cache::strip_hop_by_hop(&mut parts.headers);
    let resp = Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
    with_status(resp, kind, detail)
}

/// The answer when the origin failed: the status the failure maps to, naming the origin.
pub(crate) fn origin_error(origin: &OriginConfig, e: &FillError, fwd: Forward) -> Response<ProxyBody> {
    let resp = text(e.status(), format!("origin {} failed: {e}", origin.url));
    with_status(resp, CacheStatusKind::forward(fwd), None)
}

/// Looks up the stored response for `key` matching the request's `Vary` headers.
fn lookup(store: &CacheStore<StoredResponse>, key: &str, req_headers: &HeaderMap) -> Option<Hit<StoredResponse>> {
    let base = store.get(key, &Variant::none())?;
    if !base.value().headers.contains_key(header::VARY) {
        return Some(base);
    }
    let pairs = http_cache::vary_key(base.value().headers.get_all(header::VARY), req_headers)?;
    if pairs == base.value().vary {
        return Some(base);
    }
    store.get(key, &Variant::of_varying(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))))
}

/// A response from a stored copy (fresh hit, stale-while-revalidate, busy fallback).
fn serve_stored(
    stored: &StoredResponse,
    mut headers: HeaderMap,
    req: &http::request::Parts,
    status: HeaderValue,
) -> Response<ProxyBody> {
    headers.insert(CACHE_STATUS, status);
    if stored.status == StatusCode::OK && http_cache::client_not_modified(req, &headers) {
        headers.remove(header::CONTENT_LENGTH);
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        *resp.headers_mut() = headers;
        return resp;
    }
    if let Some(range) = wanted_range(req, stored.status, &headers) {
        match http_cache::range_response(stored, range) {
            RangeOutcome::Partial { body, content_range } => {
                headers.insert(header::CONTENT_RANGE, content_range);
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                return response(StatusCode::PARTIAL_CONTENT, headers, full(body));
            }
            RangeOutcome::Unsatisfiable { content_range } => return unsatisfiable(headers, content_range),
            RangeOutcome::Ignore => {}
        }
    }
    let body = if req.method == Method::HEAD { empty() } else { full(stored.body.clone()) };
    response(stored.status, headers, body)
}

fn response(status: StatusCode, headers: HeaderMap, body: ProxyBody) -> Response<ProxyBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// The request's `Range`, when it may be answered from a `200` with these headers: a GET with
/// a `Range` whose `If-Range` (if any) matches (RFC 9110 §14.2, §13.1.5).
fn wanted_range<'r>(req: &'r http::request::Parts, status: StatusCode, headers: &HeaderMap) -> Option<&'r HeaderValue> {
    let range = req.headers.get(header::RANGE)?;
    let allowed = req.method == Method::GET
        && status == StatusCode::OK
        && http_cache::if_range_allows(headers, req.headers.get(header::IF_RANGE));
    allowed.then_some(range)
}

/// `416` with `Content-Range: bytes */len` and no body.
fn unsatisfiable(mut headers: HeaderMap, content_range: HeaderValue) -> Response<ProxyBody> {
    headers.insert(header::CONTENT_RANGE, content_range);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response(StatusCode::RANGE_NOT_SATISFIABLE, headers, empty())
}

/// What the request path knows when it goes to a fill.
struct Pending<'a> {
    shared: &'a Arc<Shared>,
    origin: &'a OriginConfig,
    parts: http::request::Parts,
    /// The origin request URI.
    uri: Uri,
    url: &'a NormalizedUrl,
    key: String,
}

impl Pending<'_> {
    fn job(&self, fwd: Forward, revalidate: Option<(StoredResponse, HeaderMap)>) -> FillJob {
        FillJob {
            origin: self.origin.clone(),
            uri: self.uri.clone(),
            headers: forward_headers(&self.parts.headers, true),
            key: self.key.clone(),
            // Purged by its canonical URL when a policy key or query mode merges URLs.
            url: edgepurge_purge_model::entry_url(&self.key, self.url),
            host: self.url.host().to_owned(),
            fwd,
            revalidate,
        }
    }
}

/// GET and HEAD: the cache. `uri` is the origin request URI (`origin.url` joined with the
/// request's path), `url` the normalised request URL.
pub(crate) async fn cacheable(
    shared: &Arc<Shared>,
    parts: http::request::Parts,
    origin: &OriginConfig,
    uri: Uri,
    url: NormalizedUrl,
) -> Response<ProxyBody> {
    let policy = shared.policy.current();
    let policy_key = if policy.info().hooks.cache_key {
        // Only a policy that declares `cache-key` costs the request the copy of its headers.
        let meta = RequestMeta {
            method: parts.method.as_str().to_owned(),
            url: url.as_str().to_owned(),
            headers: sdk_headers(&parts.headers),
        };
        let outcome = policy.cache_key(&meta).await;
        shared.metrics.policy_call("cache-key", &outcome.source);
        outcome.value
    } else {
        None
    };
    drop(policy);
    let key = match policy_key {
        Some(key) => Some(key),
        None => url.cache_key(shared.config.cache.query_mode).map(str::to_owned),
    };
    let Some(key) = key else {
        let out = origin_request(parts.method.clone(), uri, forward_headers(&parts.headers, false), empty());
        return match shared.send(origin, out).await {
            Err(e) => origin_error(origin, &e, Forward::Bypass),
            Ok(resp) => relay(resp, CacheStatusKind::forward(Forward::Bypass), Some("query-mode")),
        };
    };
    let pending = Pending { shared, origin, parts, uri, url: &url, key };
    let mut fwd = Forward::Miss;
    let mut stale: Option<StoredResponse> = None;
    let mut revalidate = None;
    if let Some(hit) = lookup(&shared.store, &pending.key, &pending.parts.headers) {
        let now = SystemTime::now();
        let stored = hit.value();
        let ttl = Some(stored.ttl_remaining(now));
        match http_cache::evaluate(stored, &pending.parts, hit.soft_purged, &shared.cache_cfg, now) {
            Evaluation::Fresh { headers } => {
                let status = http_cache::cache_status(CacheStatusKind::Hit, None, ttl);
                return serve_stored(stored, headers, &pending.parts, status);
            }
            Evaluation::StaleWhileRevalidate { headers } => {
                if let Join::Leader(leader) = shared.fills.join(pending.key.clone()) {
                    let job =
                        pending.job(Forward::Stale, Some((stored.clone(), http_cache::conditional_headers(stored))));
                    tokio::spawn(run_fill(Arc::clone(shared), leader, job).instrument(tracing::Span::current()));
                }
                let status = http_cache::cache_status(CacheStatusKind::Hit, Some("stale-while-revalidate"), ttl);
                return serve_stored(stored, headers, &pending.parts, status);
            }
            Evaluation::MustRevalidate { conditional_headers } => {
                // A fresh, unpurged object is revalidated only because the client asked (RFC 9211).
                let fresh = !hit.soft_purged && stored.is_fresh(now);
                fwd = if fresh { Forward::Request } else { Forward::Stale };
                stale = Some(stored.clone());
                revalidate = Some((stored.clone(), conditional_headers));
            }
            Evaluation::VaryMismatch => fwd = Forward::VaryMiss,
        }
    }
    fill(pending, fwd, stale, revalidate).await
}

/// A miss or a revalidation: lead or join the key's collapsed fill.
async fn fill(
    pending: Pending<'_>,
    fwd: Forward,
    stale: Option<StoredResponse>,
    revalidate: Option<(StoredResponse, HeaderMap)>,
) -> Response<ProxyBody> {
    let shared = pending.shared;
    let mut last_error = FillError::LeaderGone;
    for _attempt in 0..3 {
        let (follower, collapsed) = match shared.fills.join(pending.key.clone()) {
            Join::Leader(leader) => {
                // Another fill may have stored the object just before this one started.
                if revalidate.is_none() {
                    if let Some(hit) = lookup(&shared.store, &pending.key, &pending.parts.headers) {
                        let now = SystemTime::now();
                        let stored = hit.value();
                        let eval =
                            http_cache::evaluate(stored, &pending.parts, hit.soft_purged, &shared.cache_cfg, now);
                        if let Evaluation::Fresh { headers } = eval {
                            drop(leader);
                            let status =
                                http_cache::cache_status(CacheStatusKind::Hit, None, Some(stored.ttl_remaining(now)));
                            return serve_stored(stored, headers, &pending.parts, status);
                        }
                    }
                }
                // Join our own fill before it starts, so this request streams like every waiter.
                let own = shared.fills.join(pending.key.clone());
                tokio::spawn(
                    run_fill(Arc::clone(shared), leader, pending.job(fwd, revalidate.clone()))
                        .instrument(tracing::Span::current()),
                );
                match own {
                    Join::Follower(follower) => (follower, false),
                    _ => return busy(&pending, stale.as_ref()),
                }
            }
            Join::Follower(follower) => (follower, true),
            Join::Busy { .. } => return busy(&pending, stale.as_ref()),
        };
        match from_fill(follower, collapsed, &pending.parts).await {
            Ok(resp) => return resp,
            Err(e) if e.is_retryable() => last_error = e,
            Err(e) => {
                last_error = e;
                break;
            }
        }
    }
    if let Some(stored) = stale.as_ref().filter(|s| http_cache::stale_if_error_allowed(s, SystemTime::now())) {
        let kind = CacheStatusKind::Forward {
            fwd: Forward::Stale,
            fwd_status: Some(last_error.status()),
            stored: false,
            collapsed: true,
        };
        return stale_copy(stored, &pending.parts, http_cache::cache_status(kind, Some("stale-if-error"), None));
    }
    origin_error(pending.origin, &last_error, fwd)
}

/// A stored copy with its current `Age`.
fn stale_copy(stored: &StoredResponse, req: &http::request::Parts, status: HeaderValue) -> Response<ProxyBody> {
    let mut headers = stored.headers.clone();
    headers.insert(header::AGE, HeaderValue::from(stored.age(SystemTime::now()).as_secs()));
    serve_stored(stored, headers, req, status)
}

/// S4.1: the fill has too many waiters. A stale copy if there is one, else `503`.
fn busy(pending: &Pending<'_>, stale: Option<&StoredResponse>) -> Response<ProxyBody> {
    if let Some(stored) = stale {
        return stale_copy(stored, &pending.parts, http_cache::cache_status(CacheStatusKind::Hit, Some("busy"), None));
    }
    let mut resp =
        text(StatusCode::SERVICE_UNAVAILABLE, format!("busy: too many requests waiting for {}", pending.key));
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if let Ok(value) = HeaderValue::from_str(&pending.key) {
        resp.headers_mut().insert(HeaderName::from_static(BUSY_HEADER), value);
    }
    with_status(resp, CacheStatusKind::forward(Forward::Miss), Some("busy"))
}

/// A waiter's response, streamed from the fill. A `Range` is cut from the stream when the
/// origin's `Content-Length` says how long the whole body is; otherwise the whole `200` is sent.
async fn from_fill(
    mut follower: FillFollower,
    collapsed: bool,
    req: &http::request::Parts,
) -> Result<Response<ProxyBody>, FillError> {
    let head = follower.head().await?;
    let mut headers = head.headers;
    let own = headers.remove(STATUS_OWN);
    let other = headers.remove(STATUS_COLLAPSED);
    if let Some(status) = if collapsed { other } else { own } {
        headers.insert(CACHE_STATUS, status);
    }
    if req.method == Method::HEAD {
        return Ok(response(head.status, headers, empty()));
    }
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let plan = match (wanted_range(req, head.status, &headers), length) {
        (Some(range), Some(len)) => http_cache::plan_range(len, range),
        _ => RangePlan::Ignore,
    };
    let (status, window) = match plan {
        RangePlan::Unsatisfiable { content_range } => return Ok(unsatisfiable(headers, content_range)),
        RangePlan::Ignore => (head.status, None),
        RangePlan::Partial { first, last, content_range } => {
            headers.insert(header::CONTENT_RANGE, content_range);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(last - first + 1));
            (StatusCode::PARTIAL_CONTENT, Some((first, last)))
        }
    };
    let mut offset = 0u64;
    let stream = follower.into_stream().filter_map(move |chunk| {
        let chunk = match (chunk, window) {
            (Ok(data), Some((first, last))) => {
                let start = offset;
                offset += data.len() as u64;
                let from = first.saturating_sub(start).min(data.len() as u64) as usize;
                let to = (last + 1).saturating_sub(start).min(data.len() as u64) as usize;
                (from < to).then(|| Ok(data.slice(from..to)))
            }
            (chunk, _) => Some(chunk),
        };
        std::future::ready(chunk.map(|c| c.map(Frame::data).map_err(|e| Box::new(e) as BoxError)))
    });
    Ok(response(status, headers, StreamBody::new(stream).boxed_unsync()))
}
