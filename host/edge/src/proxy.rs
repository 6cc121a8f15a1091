//! The proxy listener's HTTP side: route by `Host`, normalise the URL, send GET and HEAD through
//! the cache (`cache_path`), pass other methods through and invalidate on success, and the
//! conventional `PURGE` method from `admin-networks`. With `control.on-buffer-failure =
//! "stop-serving"` and an unreadable receive buffer, every request is answered `503`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use edgepurge_purge_model::cache_url;
use edgepurge_sdk::{Task, TaskKind};
use edgepurge_url::NormalizedUrl;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;

use crate::cache_path::{cacheable, forward_headers, origin_error, relay, CACHE_STATUS};
use crate::config::{EdgeConfig, OriginConfig};
use crate::http_cache::{self, CacheStatusKind, Forward};
use crate::origin::origin_request;
use crate::response::{json, text, to_json, BoxError, ProxyBody};
use crate::state::Shared;
use crate::{metrics, request_id};

/// The header naming the busy resource on a `503` (answered by the cache path).
pub use crate::cache_path::BUSY_HEADER;

/// The host without its port (lower-case).
fn host_name(authority: &str) -> String {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.to_ascii_lowercase()
}

/// Answers one client request, with a request id, a log line and metrics.
/// `peer` is the client's address (the `PURGE` method is allowed only from `admin-networks`).
pub(crate) async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
    let id = request_id::request_id(req.headers());
    req.headers_mut().insert(request_id::REQUEST_ID_HEADER, id.clone());
    let span = tracing::debug_span!("request", id = %String::from_utf8_lossy(id.as_bytes()));
    let started = Instant::now();
    // The access line is debug-level: copy what it needs only when it will be written.
    let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| (req.method().clone(), req.uri().clone()));
    let mut resp = answer(Arc::clone(&shared), req, peer).instrument(span.clone()).await;
    let outcome = metrics::outcome_of(resp.headers().get(CACHE_STATUS).map(HeaderValue::as_bytes));
    shared.metrics.request(outcome, resp.status());
    if let Some((method, uri)) = logged {
        span.in_scope(|| {
            tracing::debug!(%method, %uri, %peer, status = resp.status().as_u16(), cache = outcome,
                micros = started.elapsed().as_micros() as u64, "answered");
        });
    }
    resp.headers_mut().insert(request_id::REQUEST_ID_HEADER, id);
    resp
}

async fn answer(shared: Arc<Shared>, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
    if shared.control.get().is_some_and(|status| status.serving_blocked()) {
        return consumer_unhealthy();
    }
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return text(StatusCode::BAD_REQUEST, "more than one Host header"); // RFC 9112 §3.2
    }
    let authority = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    let Some(authority) = authority.filter(|a| !a.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "missing Host header");
    };
    if req.method().as_str() == "PURGE" {
        return purge_method(&shared, &req, &authority, peer).await;
    }
    let host = host_name(&authority);
    let Some(origin) = shared.config.origin_for(&host) else {
        return text(StatusCode::NOT_FOUND, EdgeConfig::no_origin(&host));
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = match cache_url(&format!("http://{authority}{path}")) {
        Ok(url) => url,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid request URL: {e}")),
    };
    let uri = match origin.url.join(path) {
        Ok(uri) => uri,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid request URL for origin {}: {e}", origin.url)),
    };
    if req.method() == Method::GET || req.method() == Method::HEAD {
        cacheable(&shared, req.into_parts().0, origin, uri, url).await
    } else {
        pass_through(&shared, req, origin, uri, &url).await
    }
}

/// What a client is told to wait while the purge consumer is unhealthy, in seconds.
const UNHEALTHY_RETRY_AFTER: &str = "10";

/// The answer to every request while `control.on-buffer-failure = "stop-serving"` holds the
/// proxy: the receive buffer is unreadable, so purges cannot be applied and anything cached may
/// be stale (the cause is in the edge's log and `GET /control`, not told to clients).
fn consumer_unhealthy() -> Response<ProxyBody> {
    let mut resp = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "this edge's purge consumer is unhealthy (its receive buffer cannot be read), so it serves nothing until \
         purges can be applied again; retry later or use another edge",
    );
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(UNHEALTHY_RETRY_AFTER));
    resp
}

/// The header that makes a `PURGE` soft (kept but stale) instead of hard.
pub const SOFT_PURGE_HEADER: &str = "edgepurge-soft";

/// The conventional `PURGE` method for one URL (every variant), from `admin-networks` only.
async fn purge_method(
    shared: &Shared,
    req: &Request<Incoming>,
    authority: &str,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    if !shared.config.is_admin_peer(peer.ip()) {
        let mut resp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("PURGE is allowed only from admin-networks; {} is not in them", peer.ip()),
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
        return resp;
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let soft = req.headers().get(SOFT_PURGE_HEADER).is_some_and(|v| matches!(v.as_bytes(), b"1" | b"true"));
    let task = Task { kind: TaskKind::Url, target: format!("http://{authority}{path}"), soft, ..Task::default() };
    match shared.purger.apply(&task).await {
        Ok(report) => json(StatusCode::OK, to_json(&report)),
        Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// Methods other than GET and HEAD: straight to the origin; a success invalidates (RFC 9111 §4.4).
async fn pass_through(
    shared: &Shared,
    req: Request<Incoming>,
    origin: &OriginConfig,
    uri: http::Uri,
    url: &NormalizedUrl,
) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let body = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
    let out = origin_request(parts.method.clone(), uri, forward_headers(&parts.headers, false), body);
    match shared.send(origin, out).await {
        Err(e) => origin_error(origin, &e, Forward::Method),
        Ok(resp) => {
            for target in http_cache::invalidation_targets(&parts.method, resp.status(), url.as_str(), resp.headers()) {
                if let Ok(target) = cache_url(&target) {
                    shared.purger.invalidate_url(&target).await;
                }
            }
            relay(resp, CacheStatusKind::forward(Forward::Method), None)
        }
    }
}
