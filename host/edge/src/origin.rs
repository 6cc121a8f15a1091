//! The origin side of the proxy: origin requests and the collapsed-fill task run by a fill's
//! leader (fetch, `cache-rules`, store, stream to every waiter).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use edgepurge_sdk::{Header, RequestMeta, ResponseMeta};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;

use crate::config::OriginConfig;
use crate::fill::{FillError, FillHead, FillLeader};
use crate::http_cache::{self, CacheStatusKind, Forward, StoreVerdict, StoredResponse};
use crate::response::{empty, ProxyBody};
use crate::state::Shared;

/// Internal head headers carrying the `Cache-Status` a fill's waiters answer with: the first for
/// the request that started the fill, the second for collapsed ones. Removed before sending.
pub(crate) const STATUS_OWN: &str = "x-edgepurge-internal-status";
pub(crate) const STATUS_COLLAPSED: &str = "x-edgepurge-internal-status-collapsed";

/// A request to the origin at `uri` (from [`crate::config::OriginUrl::join`]).
pub(crate) fn origin_request(method: Method, uri: Uri, headers: HeaderMap, body: ProxyBody) -> Request<ProxyBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req
}

/// Headers as the policy sees them.
pub(crate) fn sdk_headers(headers: &HeaderMap) -> Vec<Header> {
    headers
        .iter()
        .map(|(n, v)| Header { name: n.as_str().to_owned(), value: String::from_utf8_lossy(v.as_bytes()).into_owned() })
        .collect()
}

/// `Cache-Status` values for the request that started a fill and for collapsed waiters.
fn statuses(kind: CacheStatusKind, detail: Option<&str>, ttl: Option<i64>) -> (HeaderValue, HeaderValue) {
    let own = http_cache::cache_status(kind, detail, ttl);
    let collapsed = match kind {
        CacheStatusKind::Forward { fwd, fwd_status, stored, .. } => {
            let kind = CacheStatusKind::Forward { fwd, fwd_status, stored, collapsed: true };
            http_cache::cache_status(kind, detail, ttl)
        }
        CacheStatusKind::Hit => own.clone(),
    };
    (own, collapsed)
}

fn with_statuses(mut headers: HeaderMap, (own, collapsed): (HeaderValue, HeaderValue)) -> HeaderMap {
    headers.insert(HeaderName::from_static(STATUS_OWN), own);
    headers.insert(HeaderName::from_static(STATUS_COLLAPSED), collapsed);
    headers
}

/// Publishes a stored response as the whole fill and finishes it.
fn publish_stored(leader: FillLeader<String>, stored: &StoredResponse, kind: CacheStatusKind, detail: Option<&str>) {
    let now = SystemTime::now();
    let mut headers = stored.headers.clone();
    headers.insert(header::AGE, HeaderValue::from(stored.age(now).as_secs()));
    let headers = with_statuses(headers, statuses(kind, detail, Some(stored.ttl_remaining(now))));
    leader.publish_head(FillHead { status: stored.status, headers });
    leader.publish_chunk(stored.body.clone());
    leader.finish();
}

/// What a fill fetches and where it stores the result.
pub(crate) struct FillJob {
    pub origin: OriginConfig,
    /// The origin URI.
    pub uri: Uri,
    /// Headers for the origin request (hop-by-hop and client conditionals removed).
    pub headers: HeaderMap,
    pub key: String,
    /// The normalised URL and its host (the entry's purge metadata).
    pub url: String,
    pub host: String,
    /// Why the request went forward (`Cache-Status`).
    pub fwd: Forward,
    /// A stored copy being revalidated, with the conditional headers to send.
    pub revalidate: Option<(StoredResponse, HeaderMap)>,
}

fn stale_or_fail(leader: FillLeader<String>, job: &FillJob, error: FillError, fwd_status: StatusCode) {
    if let Some((stored, _)) = &job.revalidate {
        if http_cache::stale_if_error_allowed(stored, SystemTime::now()) {
            let kind = CacheStatusKind::Forward {
                fwd: Forward::Stale,
                fwd_status: Some(fwd_status),
                stored: false,
                collapsed: false,
            };
            return publish_stored(leader, stored, kind, Some("stale-if-error"));
        }
    }
    leader.fail(error);
}

/// The leader's work: fetch from origin, decide storage, stream to the waiters, store.
pub(crate) async fn run_fill(shared: Arc<Shared>, leader: FillLeader<String>, job: FillJob) {
    let token = shared.store.begin_fill();
    let mut headers = job.headers.clone();
    if let Some((_, conditional)) = &job.revalidate {
        headers.extend(conditional.clone());
    }
    let (req_parts, ()) =
        origin_request(Method::GET, job.uri.clone(), job.headers.clone(), empty()).map(|_| ()).into_parts();
    let resp = match shared.send(&job.origin, origin_request(Method::GET, job.uri.clone(), headers, empty())).await {
        Ok(resp) => resp,
        Err(e) => {
            let status = e.status();
            return stale_or_fail(leader, &job, e, status);
        }
    };
    let now = SystemTime::now();
    let status = resp.status();
    if let Some((stored, _)) = &job.revalidate {
        if status == StatusCode::NOT_MODIFIED {
            let (parts, _) = resp.into_parts();
            let Some(merged) = http_cache::merge_304(stored, &req_parts, &parts, now) else {
                // The 304 names another representation than the stored one: fetch it whole.
                let job = FillJob { revalidate: None, ..job };
                return Box::pin(run_fill(shared, leader, job)).await;
            };
            let kind =
                CacheStatusKind::Forward { fwd: job.fwd, fwd_status: Some(status), stored: true, collapsed: false };
            shared.store_response(token, &job.key, &job.url, &job.host, merged.clone());
            return publish_stored(leader, &merged, kind, None);
        }
        // A 5xx is answered with the stale copy when stale-if-error allows; otherwise the
        // origin's own error is relayed below (RFC 9111 §4.3.3), not replaced by a 502.
        if status.is_server_error() && http_cache::stale_if_error_allowed(stored, now) {
            return stale_or_fail(leader, &job, FillError::OriginFailed(format!("origin answered {status}")), status);
        }
    }
    let (parts, mut body) = resp.into_parts();
    let policy = shared.policy.current();
    let request_meta =
        RequestMeta { method: "GET".into(), url: job.url.clone(), headers: sdk_headers(&req_parts.headers) };
    let response_meta = ResponseMeta { status: status.as_u16(), headers: sdk_headers(&parts.headers) };
    let outcome = policy.cache_rules(&request_meta, &response_meta).await;
    shared.metrics.policy_call("cache-rules", &outcome.source);
    let decision = outcome.value;
    let verdict = http_cache::prepare_store(&req_parts, &parts, &decision, &shared.cache_cfg, now);
    let (plan, detail) = match verdict {
        StoreVerdict::Store(plan) => (Some(plan), None),
        StoreVerdict::DoNotStore(reason) => (None, Some(reason)),
    };
    let ttl = plan.as_ref().map(|p| i64::try_from(p.ttl.as_secs()).unwrap_or(i64::MAX));
    let kind =
        CacheStatusKind::Forward { fwd: job.fwd, fwd_status: Some(status), stored: plan.is_some(), collapsed: false };
    let mut out_headers = parts.headers.clone();
    http_cache::strip_hop_by_hop(&mut out_headers);
    leader.publish_head(FillHead { status, headers: with_statuses(out_headers, statuses(kind, detail, ttl)) });

    let max_object = shared.store.config().max_object_bytes;
    // Sized from Content-Length when it is stated (and storable): growing from empty doubles the
    // allocation, and a frozen buffer keeps its spare capacity for as long as it is cached.
    let stated = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut buf = match stated.filter(|&n| plan.is_some() && n <= max_object) {
        Some(n) => BytesMut::with_capacity(n as usize),
        None => BytesMut::new(),
    };
    let mut keep = plan.is_some();
    loop {
        match tokio::time::timeout(job.origin.read_timeout(), body.frame()).await {
            Err(_) => return leader.fail(FillError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return leader.fail(FillError::OriginFailed(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if keep {
                        if (buf.len() + data.len()) as u64 > max_object {
                            keep = false;
                            buf = BytesMut::new();
                        } else {
                            buf.extend_from_slice(&data);
                        }
                    }
                    leader.publish_chunk(data);
                }
            }
        }
    }
    if let Some(plan) = plan.filter(|_| keep) {
        shared.store_response(token, &job.key, &job.url, &job.host, plan.into_stored(exact(buf)));
    }
    leader.finish();
}

/// The body as it is cached: without spare capacity (a chunked body, or one shorter than its
/// Content-Length, would otherwise keep up to twice its size allocated for as long as it is
/// stored, beyond what the store's byte bound counts).
fn exact(buf: BytesMut) -> Bytes {
    if buf.capacity() == buf.len() {
        buf.freeze()
    } else {
        Bytes::copy_from_slice(&buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_body_keeps_no_spare_capacity() {
        let mut grown = BytesMut::new();
        for _ in 0..5 {
            grown.extend_from_slice(&[7u8; 3000]);
        }
        assert!(grown.capacity() > grown.len(), "growing from empty over-allocates");
        let body = exact(grown);
        assert_eq!(body.len(), 15_000);
        assert_eq!(body, Bytes::from(vec![7u8; 15_000]));
        // `Bytes` does not expose its allocation: a copy of exactly `len` is what `exact` promises
        // for a buffer with spare room, and a presized buffer is frozen without a copy.
        let mut presized = BytesMut::with_capacity(4);
        presized.extend_from_slice(b"abcd");
        let ptr = presized.as_ptr();
        assert_eq!(exact(presized).as_ptr(), ptr, "an exactly sized buffer is not copied");
    }
}
