//! The admin listener: `POST /purge` (a purge task as JSON), `GET /metrics` (Prometheus).
//! Keep it on loopback or a private network: it has no authentication of its own.

use std::fmt::Write as _;

use bytes::Bytes;
use edgepurge_edge_cache::{PurgeMode, ScopeKind};
use edgepurge_sdk::Task;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::origin::{ProxyBody, Shared};
use crate::proxy::{full, text};

/// Largest accepted `POST /purge` body.
const MAX_TASK_BYTES: usize = 1 << 20;

fn json(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The admin listener: `POST /purge`, `GET /metrics`.
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<ProxyBody> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/purge") => {
            let body = match Limited::new(req.into_body(), MAX_TASK_BYTES).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("cannot read the task: {e}")),
            };
            let task: Task = match serde_json::from_slice(&body) {
                Ok(task) => task,
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid task JSON: {e}")),
            };
            match shared.purger.apply(&task).await {
                Ok(report) => json(StatusCode::OK, serde_json::to_string(&report).unwrap_or_default()),
                Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        (&Method::GET, "/metrics") => {
            let mut resp = text(StatusCode::OK, metrics(shared));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            resp
        }
        (_, path) => text(StatusCode::NOT_FOUND, format!("no admin endpoint {path}: use POST /purge or GET /metrics")),
    }
}

/// The Prometheus text exposition of the store and fill counters.
fn metrics(shared: &Shared) -> String {
    let store = shared.store.stats();
    let fills = shared.fills.stats();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    metric("edgepurge_cache_entries", "gauge", "Objects stored.", store.entries);
    metric("edgepurge_cache_bytes", "gauge", "Bytes stored (weighed).", store.bytes);
    metric("edgepurge_cache_hits_total", "counter", "Store lookups that found an object.", store.hits);
    metric("edgepurge_cache_misses_total", "counter", "Store lookups that found nothing.", store.misses);
    metric("edgepurge_cache_evictions_total", "counter", "Objects evicted for space.", store.evictions);
    metric("edgepurge_cache_expirations_total", "counter", "Objects expired.", store.expirations);
    metric("edgepurge_fills_total", "counter", "Origin fills started.", fills.fills_started);
    metric("edgepurge_fill_waiters_total", "counter", "Requests collapsed onto a fill.", fills.followers_joined);
    metric("edgepurge_busy_total", "counter", "Requests answered busy (S4.1).", fills.busy);
    metric("edgepurge_fill_failures_total", "counter", "Fills that failed.", fills.leader_failures);
    metric("edgepurge_fills_in_flight", "gauge", "Fills in progress.", shared.fills.in_flight() as u64);
    let _ = writeln!(out, "# HELP edgepurge_purges_total Purges applied, by scope and mode.");
    let _ = writeln!(out, "# TYPE edgepurge_purges_total counter");
    for kind in ScopeKind::ALL {
        for mode in [PurgeMode::Hard, PurgeMode::Soft] {
            let value = store.purges.get(kind, mode);
            let _ =
                writeln!(out, "edgepurge_purges_total{{scope=\"{}\",mode=\"{}\"}} {value}", kind.name(), mode.name());
        }
    }
    out
}
