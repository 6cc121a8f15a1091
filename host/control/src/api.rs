//! The HTTP routes of the purge API and how errors become responses.
//!
//! | route | auth | answers |
//! |---|---|---|
//! | `POST /v1/purges` | token, rate-limited | 202 `{id, tasks, queued_at}`; 400, 401, 403, 415, 429, 503 |
//! | `GET /v1/purges/{id}` | token (its own batches; admin: all) | 200 progress; 401, 404 |
//! | `GET /v1/policy`, `PUT /v1/policy` | token; PUT: admin | 200 the policy; 400, 401, 403 |
//! | `DELETE /v1/edges/{name}` | admin | 200; 401, 403, 404 |
//! | `GET /v1/purges/{id}/events` | as above | Server-Sent Events: `progress` on every change until done |
//! | `GET /v1/queues` | token | 200 per-queue depth and pending bytes |
//! | `GET /v1/records?url=…` (or `prefix=`, `tag=`, `host=`; `after=`, `limit=`) | token (its hosts; tags: admin) | 200 entries with per-edge state, `next`; 400, 403 |
//! | `GET /v1/edges` | token | 200 per edge: watermark and lag per queue, last report |
//! | `GET /v1/openapi.json` | none | the OpenAPI 3.1 document of these routes |
//! | `GET /metrics` | none | Prometheus text: submissions by outcome, tasks accepted, queue depth and bytes |
//! | `GET /healthz` | none | 200 while the process serves |
//! | `GET /readyz` | none | 200 when the store answers, else 503 |
//!
//! Errors are `{"error": "…"}` naming the offending item. Only submissions take from the rate
//! limit, so polling a batch's status never stops a customer from purging.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use edgepurge_control_store::{ApiToken, BatchId, ControlStore, NewBatch, TokenHash};
use edgepurge_policy_runtime::LoadedPolicy;
use edgepurge_policy_runtime::{PolicyLoadError, PolicySection, PolicySlot, PolicyStatus};
use edgepurge_sdk::cycle::speed_estimate;
use edgepurge_sdk::defaults::DEFAULT_SPEED_FLOOR;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{RateLimiter, RateState};
use crate::config::{ControlConfig, LimitsSection};
use crate::fold::{fold_targets, FoldSettings};
use crate::health::{Clock, QueueMonitor, QueueView};
use crate::metrics::Metrics;
use crate::queue_server::{PublishedPolicy, QueueHub};
use crate::tasks::{read_bulk, BulkFormat, PurgeRequest, TaskBuilder};
use crate::{rfc3339, select, Error};

/// What every handler shares.
pub struct AppState<S> {
    /// The store (queues, records, tokens).
    pub store: S,
    /// The policy whose `select-queue` picks queues; replaced by `PUT /v1/policy`.
    pub policy: PolicySlot,
    /// The configured `[policy]` section (its `config` applies to uploaded policies too).
    pub policy_section: PolicySection,
    /// Per-token rate limit of submissions.
    pub limiter: RateLimiter,
    /// Validation limits.
    pub limits: LimitsSection,
    /// S0.3's pacing interval `d`, passed to `select-queue`.
    pub pacing_ms: u32,
    /// Counters for `GET /metrics`.
    pub metrics: Metrics,
    /// S2.3 folding of repeated purges.
    pub fold: FoldSettings,
    /// Queue health (S0.2) and the clock batches are stamped with.
    pub monitor: QueueMonitor,
    /// What the queue server's streams share with the API: the "appended" signal, the policy
    /// sent to edges, the connected edges (`Default::default()` when there is no queue server).
    pub queue: QueueHub,
}

impl<S> AppState<S> {
    /// The state `config` describes, selecting queues with `policy`; `clock` stamps batches and
    /// judges queue health. No policy is published to edges yet
    /// ([`QueueHub::publish_policy`]).
    pub fn new(store: S, policy: LoadedPolicy, config: &ControlConfig, clock: Clock) -> Self {
        AppState {
            store,
            policy: PolicySlot::new(policy),
            policy_section: config.policy.clone(),
            limiter: RateLimiter::new(config.rate_limit.burst, config.rate_limit.per_second),
            limits: config.limits,
            pacing_ms: config.pacing_ms,
            metrics: Default::default(),
            fold: config.fold(),
            monitor: config.monitor(clock),
            queue: QueueHub::default(),
        }
    }

    /// Re-reads the `[policy]` section (its file, or the built-in defaults), installs it for
    /// queue selection and sends it to every connected edge (a component only: the built-in
    /// defaults have none, so edges keep what they run). For SIGHUP.
    pub async fn reload_policy(&self) -> Result<PolicyStatus, PolicyLoadError> {
        let (status, bytes) = self.policy.reload_component(&self.policy_section).await?;
        let published = bytes.map(|b| PublishedPolicy::new(status.name.clone(), status.version.clone(), b.into()));
        self.queue.publish_policy(published);
        tracing::info!(policy = %status.name, version = %status.version, source = %status.source, "policy reloaded");
        Ok(status)
    }
}

/// The API's routes over `state`.
pub fn router<S: ControlStore + 'static>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route("/v1/purges", post(submit::<S>))
        .route("/v1/purges/{id}", get(status::<S>))
        .route("/v1/purges/{id}/events", get(crate::events::events::<S>))
        .route("/v1/queues", get(queues::<S>))
        .route("/v1/records", get(crate::views::records::<S>))
        .route("/v1/edges", get(crate::views::edges::<S>))
        .route("/v1/edges/{name}", delete(crate::admin::decommission::<S>))
        .route(
            "/v1/policy",
            get(crate::admin::policy::<S>)
                .put(crate::admin::replace_policy::<S>)
                // A policy component may be up to the runtime's 8 MiB, above axum's default limit.
                .layer(DefaultBodyLimit::max(edgepurge_policy_runtime::Limits::default().max_component_bytes)),
        )
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready::<S>))
        .route("/metrics", get(crate::metrics::metrics::<S>))
        .with_state(state)
}

/// The token a request presents (`Authorization: Bearer …`), looked up by hash.
pub(crate) async fn authenticate<S: ControlStore>(store: &S, headers: &HeaderMap) -> Result<ApiToken, Error> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Error::Unauthorized("missing `Authorization: Bearer <token>` header".into()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Unauthorized("the Authorization header must be `Bearer <token>`".into()))?;
    store.find_token(TokenHash::of(token)).await?.ok_or_else(|| Error::Unauthorized("unknown or revoked token".into()))
}

/// Query parameters of `POST /v1/purges` (bulk bodies carry only URLs, so `soft` comes here).
#[derive(Debug, Default, Deserialize)]
struct SubmitQuery {
    #[serde(default)]
    soft: bool,
}

/// The `202` body.
#[derive(Debug, Serialize)]
struct Accepted {
    id: BatchId,
    tasks: u64,
    /// How many of them were folded into earlier, still undelivered tasks (S2.3) instead of
    /// queued; `GET /v1/records` shows which task carries each.
    folded: u64,
    queued_at: String,
    /// True when an `Idempotency-Key` matched an earlier batch and nothing new was queued.
    replayed: bool,
}

async fn submit<S: ControlStore>(
    State(state): State<Arc<AppState<S>>>,
    Query(query): Query<SubmitQuery>,
    request: Request,
) -> Response {
    let mut rate = None;
    match submit_inner(&state, query, request, &mut rate).await {
        Ok((mut response, replayed, tasks)) => {
            if let Some(rate) = rate {
                rate_headers(response.headers_mut(), &rate);
            }
            state.metrics.submission(response.status(), replayed, tasks);
            response
        }
        Err(e) => {
            let mut response = e.into_response();
            // A request refused after the rate check still took from the bucket: say what is left.
            if let Some(rate) = rate {
                rate_headers(response.headers_mut(), &rate);
            }
            state.metrics.submission(response.status(), false, 0);
            response
        }
    }
}

async fn submit_inner<S: ControlStore>(
    state: &AppState<S>,
    query: SubmitQuery,
    request: Request,
    rate: &mut Option<RateState>,
) -> Result<(Response, bool, u64), Error> {
    let token = authenticate(&state.store, request.headers()).await?;
    let checked = state.limiter.check(&token.name, Instant::now());
    if !checked.allowed {
        return Err(Error::RateLimited(checked));
    }
    *rate = Some(checked);
    let idempotency_key = match request.headers().get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 255 => Some(k.to_owned()),
            _ => return Err(Error::Invalid("Idempotency-Key must be 1–255 visible ASCII characters".into())),
        },
    };
    let format = body_format(request.headers())?;
    let body = request.into_body();
    let mut builder;
    match format {
        None => {
            let bytes = read_json_body(body, state.limits.max_json_bytes).await?;
            let req: PurgeRequest = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid(format!("the JSON body is not a purge request: {e}")))?;
            builder = TaskBuilder::new(&token, state.limits, req.soft || query.soft);
            builder.add_request(&req)?;
        }
        Some(format) => {
            builder = TaskBuilder::new(&token, state.limits, query.soft);
            read_bulk(body.into_data_stream(), format, state.limits.max_bulk_bytes, &mut builder).await?;
        }
    }
    let tasks = builder.finish()?;
    let queues = select::queue_states(&state.monitor.observe(&state.store).await?, state.pacing_ms);
    let now = state.monitor.now();
    let folds = fold_targets(&state.store, state.fold, &tasks, now).await?;
    let placed = select::place(&state.policy.current(), tasks, &folds, queues, now).await;
    let batch = NewBatch { token_name: token.name.clone(), accepted_at: now, idempotency_key };
    // The 202 goes out only after this returns: the batch is committed and fsynced.
    let appended = state.store.append(batch, placed).await?;
    if appended.created {
        // Wakes the queue streams: they push the new tasks to their edges now.
        state.queue.notify_appended();
    }
    let b = &appended.batch;
    let folded = b.spans.iter().map(|s| s.folded).sum();
    let body = Accepted {
        id: b.id,
        tasks: b.task_count,
        folded,
        queued_at: rfc3339(b.accepted_at),
        replayed: !appended.created,
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/purges/{}", b.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok((response, !appended.created, b.task_count))
}

/// `None` for JSON (also when no Content-Type is given), else the bulk format.
fn body_format(headers: &HeaderMap) -> Result<Option<BulkFormat>, Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(None) };
    let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(None),
        "application/x-ndjson" => Ok(Some(BulkFormat::NdJson)),
        "text/plain" => Ok(Some(BulkFormat::Text)),
        other => Err(Error::UnsupportedMediaType(format!(
            "Content-Type `{other}` is not accepted: use application/json, application/x-ndjson or text/plain"
        ))),
    }
}

async fn read_json_body(body: Body, max: usize) -> Result<bytes::Bytes, Error> {
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::Invalid(format!(
            "the JSON body is larger than {max} bytes (max-json-bytes); send large batches as application/x-ndjson \
             or text/plain"
        ))),
        Err(e) => Err(Error::Invalid(format!("the request body could not be read: {e}"))),
    }
}

async fn status<S: ControlStore>(
    State(state): State<Arc<AppState<S>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let token = authenticate(&state.store, &headers).await?;
    let (mut view, done) = progress_view(&state.store, &token, &id).await?;
    // ETA: the batch is applied everywhere once the slowest queue it uses has drained what is
    // ahead of it, at that queue's expected wait (S0.3, as `GET /v1/queues` reports it).
    if !done {
        let used: Vec<u64> =
            view["queues"].as_array().into_iter().flatten().filter_map(|q| q["queue"].as_u64()).collect();
        let views = state.monitor.observe(&state.store).await?;
        let eta_ms = views
            .iter()
            .filter(|v| used.contains(&u64::from(v.queue)))
            .filter_map(|v| expected_wait_ms(v, state.pacing_ms))
            .max();
        if let Some(eta_ms) = eta_ms {
            view["eta_ms"] = json!(eta_ms);
            view["eta"] = json!(rfc3339(crate::now_ms().saturating_add(eta_ms)));
        }
    }
    Ok(Json(view).into_response())
}

/// The expected wait of a queue in milliseconds (S0.3 as the built-in policy computes it:
/// pending bytes over the speed estimate, plus the pacing interval per pending task).
fn expected_wait_ms(v: &QueueView, pacing_ms: u32) -> Option<u64> {
    let speed = speed_estimate(&v.speed.samples, v.speed.peak_bytes_per_sec, DEFAULT_SPEED_FLOOR);
    v.stats.map(|s| (s.pending.bytes as f64 * 1000.0 / speed) as u64 + s.pending.tasks * u64::from(pacing_ms))
}

/// The status document of batch `id` as `token` may see it, and whether the batch is done.
pub(crate) async fn progress_view<S: ControlStore>(
    store: &S,
    token: &ApiToken,
    id: &str,
) -> Result<(serde_json::Value, bool), Error> {
    let not_found = || Error::NotFound(format!("no purge batch `{id}`"));
    let batch_id: BatchId = id.parse().map_err(|_| not_found())?;
    let progress = store.progress(batch_id).await?.ok_or_else(not_found)?;
    // Another tenant's batch is reported as missing, not forbidden: ids are sequential and a 403
    // would confirm that a batch exists.
    if progress.batch.token_name != token.name && !token.admin {
        return Err(not_found());
    }
    let applied: u64 = progress.edges.iter().map(|e| e.applied).sum();
    let failed: u64 = progress.edges.iter().map(|e| e.failed).sum();
    let state_name = if progress.done && failed > 0 {
        "partially-failed"
    } else if progress.done {
        "done"
    } else if applied == 0 {
        "queued"
    } else {
        "in-progress"
    };
    let edges: Vec<_> = progress
        .edges
        .iter()
        .map(|e| {
            let percent = if e.total == 0 { 100.0 } else { e.applied as f64 * 100.0 / e.total as f64 };
            json!({"edge": e.edge, "applied": e.applied, "total": e.total, "lag": e.total - e.applied, "failed": e.failed, "percent": percent})
        })
        .collect();
    let b = &progress.batch;
    let spans: Vec<_> = b
        .spans
        .iter()
        .map(|s| json!({"queue": s.queue, "first": s.first, "last": s.last, "tasks": s.own + s.folded}))
        .collect();
    let failures: Vec<_> = progress
        .failures
        .iter()
        .map(|f| {
            json!({"edge": f.edge, "queue": f.task.queue, "offset": f.task.offset, "kind": f.kind.name(),
                   "target": f.target, "reason": f.reason, "at": rfc3339(f.at)})
        })
        .collect();
    let view = json!({
        "id": b.id,
        "state": state_name,
        "tasks": b.task_count,
        "percent": progress.percent(),
        "failed": failed,
        "queued_at": rfc3339(b.accepted_at),
        "queued_at_ms": b.accepted_at,
        "token": b.token_name,
        "idempotency_key": b.idempotency_key,
        "edges": edges,
        // The first reports only (`Progress::FAILURE_SAMPLE`); `edges[].failed` counts them all.
        "failures": failures,
        "queues": spans,
    });
    Ok((view, progress.done))
}

async fn queues<S: ControlStore>(State(state): State<Arc<AppState<S>>>, headers: HeaderMap) -> Result<Response, Error> {
    authenticate(&state.store, &headers).await?;
    let views = state.monitor.observe(&state.store).await?;
    let queues: Vec<_> = views
        .iter()
        .map(|v| {
            // S0.3 as the built-in policy computes it (a policy may weigh things differently).
            let speed = speed_estimate(&v.speed.samples, v.speed.peak_bytes_per_sec, DEFAULT_SPEED_FLOOR);
            let wait_ms = expected_wait_ms(v, state.pacing_ms);
            json!({
                "queue": v.queue,
                "healthy": v.healthy,
                "speed_bytes_per_sec": speed as u64,
                "expected_wait_ms": wait_ms,
                "peak_bytes_per_sec": v.speed.peak_bytes_per_sec,
                "slot": v.speed.slot,
                "slot_samples": v.speed.samples.len(),
                "problem": v.problem,
                "depth": v.stats.map(|s| s.pending.tasks),
                "pending_bytes": v.stats.map(|s| s.pending.bytes),
                "delivered": v.stats.map(|s| s.delivered),
                "first_offset": v.stats.map(|s| s.info.first),
                "next_offset": v.stats.map(|s| s.info.next),
            })
        })
        .collect();
    Ok(Json(json!({ "queues": queues })).into_response())
}

/// The OpenAPI document (`host/control/openapi.json`, checked against the routes by a test).
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../openapi.json")).into_response()
}

async fn ready<S: ControlStore>(State(state): State<Arc<AppState<S>>>) -> Response {
    match state.store.queue_info().await {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not ready", "error": e.to_string()})))
            .into_response(),
    }
}

fn rate_headers(headers: &mut HeaderMap, rate: &RateState) {
    headers.insert("ratelimit-limit", rate.limit.into());
    headers.insert("ratelimit-remaining", rate.remaining.into());
    headers.insert("ratelimit-reset", rate.reset_secs.into());
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed on the control side");
        }
        let mut response = (status, Json(json!({"error": self.to_string()}))).into_response();
        let headers = response.headers_mut();
        match &self {
            Error::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"edgepurge\""));
            }
            Error::RateLimited(rate) => {
                rate_headers(headers, rate);
                headers.insert(header::RETRY_AFTER, rate.retry_after_secs.into());
            }
            _ => {}
        }
        response
    }
}
