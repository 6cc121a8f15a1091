//! The origin side of the proxy: the shared state, the origin client, and the collapsed-fill
//! task run by a fill's leader (fetch, `cache-rules`, store, stream to every waiter).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use edgepurge_edge_cache::{CacheStore, EntryMeta, FillToken, StoreConfig, Variant};
use edgepurge_sdk::{Header, RequestMeta, ResponseMeta};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;

use crate::config::{EdgeConfig, OriginConfig};
use crate::fill::{FillConfig, FillError, FillHead, FillLeader, FillMap};
use crate::http_cache::{
    self, CacheConfig, CacheStatusKind, Forward, StoreVerdict, StoredResponse, RFC_CACHEABLE_STATUSES,
};
use crate::metrics::{EdgeMetrics, OriginOutcome};
use crate::origin_client::OriginClients;
use crate::policy_slot::PolicySlot;
use crate::purge::PurgeExecutor;

/// Boxed error of the bodies the proxy relays.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request or response body relayed by the proxy.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Internal head headers carrying the `Cache-Status` a fill's waiters answer with: the first for
/// the request that started the fill, the second for collapsed ones. Removed before sending.
pub(crate) const STATUS_OWN: &str = "x-edgepurge-internal-status";
pub(crate) const STATUS_COLLAPSED: &str = "x-edgepurge-internal-status-collapsed";

/// Everything the proxy and the admin listener share.
pub(crate) struct Shared {
    pub config: EdgeConfig,
    pub cache_cfg: CacheConfig,
    pub store: Arc<CacheStore<StoredResponse>>,
    pub fills: FillMap<String>,
    pub policy: PolicySlot,
    pub purger: PurgeExecutor<StoredResponse>,
    pub metrics: Arc<EdgeMetrics>,
    /// The control consumer's status, when `[control]` is configured (for `GET /control`).
    pub control: std::sync::OnceLock<Arc<crate::consumer::Status>>,
    /// The origin clients (http and https), one per trust set.
    client: OriginClients,
}

impl Shared {
    pub fn new(config: EdgeConfig, policy: PolicySlot) -> anyhow::Result<Arc<Shared>> {
        let mib = |m: u64| m.saturating_mul(1 << 20);
        let store_cfg =
            StoreConfig::new(mib(config.cache.capacity_mib)).with_max_object_bytes(mib(config.cache.max_object_mib));
        let store = CacheStore::new(store_cfg, |v: &StoredResponse| u64::from(v.weight()))
            .map_err(|e| anyhow::anyhow!("cache store: {e}"))?;
        let store = Arc::new(store);
        let fills = FillMap::new(FillConfig {
            max_waiters: config.collapse.max_waiters,
            wait_timeout: Duration::from_millis(config.collapse.wait_timeout_ms),
            ..FillConfig::default()
        });
        let cache_cfg = CacheConfig {
            honor_origin: config.cache.honor_origin,
            default_ttl: config.cache.default_ttl_secs.map(Duration::from_secs),
            honor_client_cache_control: config.cache.honor_client_cache_control,
            cacheable_statuses: RFC_CACHEABLE_STATUSES.to_vec(),
        };
        let client = OriginClients::new(&config)?;
        let metrics = Arc::new(EdgeMetrics::default());
        let purger = PurgeExecutor::new(Arc::clone(&store), policy.clone(), Arc::clone(&metrics))
            .with_query_mode(config.cache.query_mode);
        let control = std::sync::OnceLock::new();
        Ok(Arc::new(Shared { config, cache_cfg, store, fills, policy, purger, metrics, control, client }))
    }

    /// Sends `req` to `origin`, waiting at most its read timeout for the response head.
    pub async fn send(&self, origin: &OriginConfig, req: Request<ProxyBody>) -> Result<Response<Incoming>, FillError> {
        let started = Instant::now();
        let result = self.send_timed(origin, req).await;
        let outcome = match &result {
            Ok(_) => OriginOutcome::Ok,
            Err(FillError::Timeout) => OriginOutcome::Timeout,
            Err(_) => OriginOutcome::Error,
        };
        self.metrics.origin(outcome, started.elapsed());
        if let Err(e) = &result {
            tracing::warn!(origin = %origin.url, error = %e, "origin request failed");
        }
        result
    }

    async fn send_timed(
        &self,
        origin: &OriginConfig,
        req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, FillError> {
        match tokio::time::timeout(origin.read_timeout(), self.client.for_origin(origin).request(req)).await {
            Err(_) => Err(FillError::Timeout),
            Ok(Err(e)) => {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg = format!("{msg}: {s}");
                    source = s.source();
                }
                Err(FillError::OriginFailed(msg))
            }
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Stores a filled response under its key and `Vary` variant (and, for a varying response,
    /// also as the key's base entry, which tells lookups which headers the key varies on).
    pub fn store_response(&self, token: FillToken, key: &str, url: &str, host: &str, stored: StoredResponse) {
        let meta =
            EntryMeta::new(url, host).with_tags(stored.tags.clone()).with_keep_for(stored.keep_for(SystemTime::now()));
        let varies = stored.headers.contains_key(header::VARY);
        let pairs = stored.vary.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let variant = if varies { Variant::of_varying(pairs) } else { Variant::none() };
        if varies {
            let _ = self.store.insert_filled(token, key, &Variant::none(), meta.clone(), stored.clone());
        }
        if let Err(e) = self.store.insert_filled(token, key, &variant, meta, stored) {
            tracing::debug!(key, error = %e, "response not stored");
        }
    }
}

/// An empty body.
pub(crate) fn empty() -> ProxyBody {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync()
}

/// The origin URI for a request path.
pub(crate) fn origin_uri(origin: &OriginConfig, path_and_query: &str) -> String {
    format!("{}{}", origin.url.trim_end_matches('/'), path_and_query)
}

/// A request to the origin.
pub(crate) fn origin_request(method: Method, uri: &str, headers: HeaderMap, body: ProxyBody) -> Request<ProxyBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri.parse().unwrap_or_default();
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
    pub uri: String,
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
    let (req_parts, ()) = origin_request(Method::GET, &job.uri, job.headers.clone(), empty()).map(|_| ()).into_parts();
    let resp = match shared.send(&job.origin, origin_request(Method::GET, &job.uri, headers, empty())).await {
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
