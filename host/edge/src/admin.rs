//! The admin listener: `POST /purge` (a purge or warm task as JSON), `GET /policy` (what is
//! serving), `PUT /policy` (install an uploaded component), `POST /policy/reload` (re-read the
//! configured file), `GET /control` (the control consumer's nodes and watermarks), `GET /metrics`
//! (Prometheus).
//! Keep it on loopback or a private network: it has no authentication of its own.

use std::fmt::Write as _;
use std::sync::Arc;

use edgepurge_edge_cache::{PurgeMode, ScopeKind};
use edgepurge_sdk::Task;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::operations::{apply_task, TaskError};
use crate::response::{json, text, to_json, ProxyBody};
use crate::state::Shared;

/// Largest accepted `POST /purge` body.
const MAX_TASK_BYTES: usize = 1 << 20;

/// The admin listener: `POST /purge`, `GET /metrics`.
pub(crate) async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<ProxyBody> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/purge") => {
            let body = match Limited::new(req.into_body(), MAX_TASK_BYTES).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("cannot read the task: {e}")),
            };
            let task: Task = match serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)) {
                Ok(task) => task,
                Err(e) if e.path().iter().next().is_none() => {
                    return text(StatusCode::BAD_REQUEST, format!("invalid task JSON: {}", e.inner()));
                }
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid task JSON at `{}`: {}", e.path(), e.inner())),
            };
            match apply_task(shared, &task).await {
                Ok(applied) => json(StatusCode::OK, applied.to_json().to_string()),
                Err(TaskError::Invalid(e)) => text(StatusCode::BAD_REQUEST, e),
                Err(TaskError::Warm(e)) => text(StatusCode::BAD_GATEWAY, e),
            }
        }
        (&Method::GET, "/policy") => json(StatusCode::OK, to_json(&shared.policy.status())),
        (&Method::PUT, "/policy") => {
            let limit = edgepurge_policy_runtime::Limits::default().max_component_bytes;
            let body = match Limited::new(req.into_body(), limit).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    let message = format!("cannot read the policy (at most {limit} bytes): {e}");
                    return text(StatusCode::PAYLOAD_TOO_LARGE, message);
                }
            };
            match shared.policy.upload(&body, &shared.config.policy).await {
                Ok(status) => json(StatusCode::OK, to_json(&status)),
                Err(e) => text(StatusCode::UNPROCESSABLE_ENTITY, format!("{e}; the previous policy keeps serving")),
            }
        }
        (&Method::POST, "/policy/reload") => match shared.policy.reload(&shared.config.policy).await {
            Ok(status) => json(StatusCode::OK, to_json(&status)),
            Err(e) => text(StatusCode::UNPROCESSABLE_ENTITY, format!("{e}; the previous policy keeps serving")),
        },
        (&Method::GET, "/control") => match shared.control.get() {
            Some(status) => json(StatusCode::OK, status.report().await.to_string()),
            None => json(StatusCode::OK, serde_json::json!({ "enabled": false }).to_string()),
        },
        (&Method::GET, "/metrics") => {
            let mut resp = text(StatusCode::OK, metrics(shared));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            resp
        }
        (method, path) => text(
            StatusCode::NOT_FOUND,
            format!("no admin endpoint {method} {path}: use POST /purge, GET|PUT /policy, POST /policy/reload, GET /control or GET /metrics"),
        ),
    }
}

/// The Prometheus text exposition of the store and fill counters.
fn metrics(shared: &Shared) -> String {
    let store = shared.store.stats();
    let fills = shared.fills.stats();
    let mut out = String::new();
    crate::metrics::write_store_gauges(&mut out, store.entries, store.bytes);
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    metric("edgepurge_cache_hits_total", "counter", "Store lookups that found an object.", store.hits);
    metric("edgepurge_cache_misses_total", "counter", "Store lookups that found nothing.", store.misses);
    metric("edgepurge_cache_evictions_total", "counter", "Objects evicted for space.", store.evictions);
    metric("edgepurge_cache_expirations_total", "counter", "Objects expired.", store.expirations);
    metric("edgepurge_fills_total", "counter", "Origin fills started.", fills.fills_started);
    metric("edgepurge_fill_waiters_total", "counter", "Requests collapsed onto a fill.", fills.followers_joined);
    metric("edgepurge_busy_total", "counter", "Requests answered busy (S4.1).", fills.busy);
    metric("edgepurge_fill_failures_total", "counter", "Fills that failed.", fills.leader_failures);
    metric("edgepurge_fills_in_flight", "gauge", "Fills in progress.", shared.fills.in_flight() as u64);
    shared.metrics.write(&mut out);
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
