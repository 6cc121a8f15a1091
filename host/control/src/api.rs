//! The router of the purge API, and its submit, status and queue handlers (errors become
//! responses in [`crate::response`]).
//!
//! | route | auth | answers |
//! |---|---|---|
//! | `POST /v1/purges` | token, rate-limited | 202 `{id, tasks, folded, queued_at, replayed}`; 400, 401, 403, 413, 415, 429, 503 |
//! | `GET /v1/purges/{id}` | token (its own batches; admin: all) | 200 progress; 400, 401, 404, 503 |
//! | `GET /v1/purges/{id}/events` | as above | Server-Sent Events: `progress` on every change until done; 400, 401, 404, 503 |
//! | `GET /v1/queues` | token | 200 per-queue depth and pending bytes; 401, 503 |
//! | `GET /v1/records?url=…` (or `prefix=`, `tag=`, `host=`; `after=`, `limit=`) | token (its hosts; tags: admin) | 200 entries with per-edge state, `next`; 400, 401, 403, 503 |
//! | `GET /v1/edges` | token | 200 per edge: watermark and lag per queue, last report; 401, 503 |
//! | `DELETE /v1/edges/{name}` | admin | 200; 400, 401, 403, 404, 503 |
//! | `GET /v1/policy`, `PUT /v1/policy` | token; PUT: admin | 200 the policy; 401, 503; PUT: 400, 403, 413 |
//! | `GET /v1/openapi.json` | none | the OpenAPI 3.1 document of these routes |
//! | `GET /metrics` | none | Prometheus text: submissions by outcome, tasks accepted, queue depth and bytes |
//! | `GET /healthz` | none | 200 while the process serves |
//! | `GET /readyz` | none | 200 when the store reads and takes a write ([`WriteProbe`](crate::state::WriteProbe)), else 503 |
//!
//! Every refusal is `{"error": "…"}` (`application/json`) naming the offending item and what to
//! do: the handlers' own errors, axum's extractor rejections (through
//! [`Checked`](crate::response::Checked)), an unknown path (404) and a method the path does not
//! serve (405, with `Allow`). `host/control/tests/e2e/contract.rs` sends requests generated from
//! openapi.json and checks every answer against it. Only submissions take from the rate limit, so
//! polling a batch's status never stops a customer from purging.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use edgepurge_api::{
    Accepted, BatchStatus, Decommissioned, Document, EdgeList, Liveness, QueueList, QueueState, Readiness, ReadyState,
    RecordPage,
};
use edgepurge_control_store::{ControlStore, NewBatch};
use edgepurge_sdk::cycle::speed_estimate;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::auth::RateState;
use crate::authenticated::Authenticated;
use crate::fold::fold_targets;
use crate::response::{rate_headers, Checked};
use crate::select::expected_wait_ms;
use crate::state::AppState;
use crate::tasks::{read_bulk, BulkFormat, PurgeRequest, TaskBuilder};
use crate::{rfc3339, select, Error};

/// One route of the API: where it is, the handler, and the document its success answers with.
///
/// [`routes`] is the one list of them: [`router`] is built from it, and a test checks it against
/// the OpenAPI document (every route there, with its answer's schema).
pub struct Route<S> {
    /// The path as the router matches it (`{id}` for a parameter), as in openapi.json's `paths`.
    pub path: &'static str,
    /// The HTTP method.
    pub method: Method,
    /// The document a success answers with (as JSON, or as each event's data for an event
    /// stream); `None` for answers that are not one of `edgepurge-api`'s documents.
    pub answers: Option<Answers>,
    handler: MethodRouter<Arc<AppState<S>>>,
}

/// A [`Document`] as the OpenAPI check handles it, without its type: its schema's name, an
/// example as JSON, and whether some JSON reads as it.
#[derive(Clone, Copy)]
pub struct Answers {
    /// Its schema's name under the OpenAPI document's `components.schemas`.
    pub schema: &'static str,
    /// [`Document::example`] as JSON: every field at every depth.
    pub example: fn() -> serde_json::Value,
    /// Whether the JSON given reads as the document (e.g. with a field set to `null`).
    pub reads: fn(serde_json::Value) -> bool,
}

impl Answers {
    /// The entry of document `D`.
    pub fn of<D: Document>() -> Self {
        Answers {
            schema: D::SCHEMA,
            example: || serde_json::to_value(D::example()).expect("documents serialise to JSON"),
            reads: |json| serde_json::from_value::<D>(json).is_ok(),
        }
    }
}

impl<S: ControlStore + 'static> Route<S> {
    /// `method path` served by `handler`.
    fn new<H, T>(method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState<S>>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("the route table uses standard methods");
        Route { path, method, answers: None, handler: on(filter, handler) }
    }

    /// Says that a success answers with document `D`.
    fn answers<D: Document>(mut self) -> Self {
        self.answers = Some(Answers::of::<D>());
        self
    }
}

/// Every route of the API, in the order of the table in the module docs.
pub fn routes<S: ControlStore + 'static>() -> Vec<Route<S>> {
    // A policy component may be up to the runtime's 8 MiB, above axum's default body limit.
    let policy_limit = DefaultBodyLimit::max(edgepurge_policy_runtime::Limits::default().max_component_bytes);
    let mut replace_policy = Route::new(Method::PUT, "/v1/policy", crate::admin::replace_policy::<S>);
    replace_policy.handler = replace_policy.handler.layer(policy_limit);
    vec![
        Route::new(Method::POST, "/v1/purges", submit::<S>).answers::<Accepted>(),
        Route::new(Method::GET, "/v1/purges/{id}", status::<S>).answers::<BatchStatus>(),
        Route::new(Method::GET, "/v1/purges/{id}/events", events::<S>).answers::<BatchStatus>(),
        Route::new(Method::GET, "/v1/queues", queues::<S>).answers::<QueueList>(),
        Route::new(Method::GET, "/v1/records", crate::views::records::<S>).answers::<RecordPage>(),
        Route::new(Method::GET, "/v1/edges", crate::views::edges::<S>).answers::<EdgeList>(),
        Route::new(Method::DELETE, "/v1/edges/{name}", crate::admin::decommission::<S>).answers::<Decommissioned>(),
        Route::new(Method::GET, "/v1/policy", crate::admin::policy::<S>),
        replace_policy,
        Route::new(Method::GET, "/v1/openapi.json", openapi),
        Route::new(Method::GET, "/healthz", || async { Json(Liveness::ok()) }).answers::<Liveness>(),
        Route::new(Method::GET, "/readyz", ready::<S>).answers::<Readiness>(),
        Route::new(Method::GET, "/metrics", crate::metrics::metrics::<S>),
    ]
}

/// The API's routes ([`routes`]) over `state`; any other path answers 404 and any other method
/// 405, both with the JSON error body.
pub fn router<S: ControlStore + 'static>(state: Arc<AppState<S>>) -> Router {
    // Routes on one path with different methods merge into one method router.
    let router = routes::<S>().into_iter().fold(Router::new(), |router, r| router.route(r.path, r.handler));
    // After every route: the 405 fallback is set on the routes that exist when it is called.
    router.fallback(no_route).method_not_allowed_fallback(no_method).with_state(state)
}

/// Any path the router does not serve.
async fn no_route(method: Method, uri: Uri) -> Error {
    Error::NotFound(format!("no route {method} {}: the API's routes are listed in /v1/openapi.json", uri.path()))
}

/// A method a served path does not serve (axum adds the `Allow` header to this answer).
async fn no_method(method: Method, uri: Uri) -> Error {
    Error::MethodNotAllowed(format!(
        "{} does not serve {method}: use one of the methods in the Allow header (see /v1/openapi.json)",
        uri.path()
    ))
}

/// Query parameters of `POST /v1/purges` (bulk bodies carry only URLs, so `soft` comes here).
/// Unknown ones are refused: a misspelt `soft` would otherwise purge hard.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitQuery {
    #[serde(default)]
    soft: bool,
}

async fn submit<S: ControlStore>(
    State(state): State<Arc<AppState<S>>>,
    // `Result`s, so that a refused token or query is counted below like every other refusal (and
    // the token is checked first).
    query: Result<Query<SubmitQuery>, QueryRejection>,
    token: Result<Authenticated, Error>,
    request: Request,
) -> Response {
    let mut rate = None;
    match submit_inner(&state, query, token, request, &mut rate).await {
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
    query: Result<Query<SubmitQuery>, QueryRejection>,
    token: Result<Authenticated, Error>,
    request: Request,
    rate: &mut Option<RateState>,
) -> Result<(Response, bool, u64), Error> {
    // The token first, then its rate limit: an unknown token takes from no bucket.
    let Authenticated(token) = token?;
    let checked = state.limiter.check(&token.name, Instant::now());
    if !checked.allowed {
        return Err(Error::RateLimited(checked));
    }
    *rate = Some(checked);
    let Query(query) = query?;
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
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::TooLarge(format!(
            "the JSON body is larger than {max} bytes (max-json-bytes); send large batches as application/x-ndjson \
             or text/plain"
        ))),
        Err(e) => Err(Error::Invalid(format!("the request body could not be read: {e}"))),
    }
}

async fn status<S: ControlStore>(
    State(state): State<Arc<AppState<S>>>,
    Authenticated(token): Authenticated,
    Checked(Path(id)): Checked<Path<String>>,
) -> Result<Response, Error> {
    let mut doc = crate::progress::batch_status(&state, &token, &id).await?;
    // ETA: the batch is applied everywhere once the slowest queue it uses has drained what is
    // ahead of it, at that queue's expected wait (S0.3, as `GET /v1/queues` reports it); none
    // while an edge that has not applied it is disconnected.
    if !doc.state.is_done() && crate::progress::eta_estimable(&doc) {
        let used: Vec<u32> = doc.queues.iter().map(|q| q.queue).collect();
        let views = state.monitor.observe(&state.store).await?;
        let eta_ms = views
            .iter()
            .filter(|v| used.contains(&v.queue))
            .filter_map(|v| expected_wait_ms(v, state.pacing_ms, state.speed_floor))
            .max();
        if let Some(eta_ms) = eta_ms {
            doc.eta_ms = Some(eta_ms);
            doc.eta = Some(rfc3339(crate::now_ms().saturating_add(eta_ms)));
        }
    }
    Ok(Json(doc).into_response())
}

/// `GET /v1/purges/{id}/events` ([`crate::events`]) with its path checked here, so a path that
/// is not UTF-8 answers the JSON error body too.
async fn events<S: ControlStore + 'static>(
    state: State<Arc<AppState<S>>>,
    token: Authenticated,
    Checked(id): Checked<Path<String>>,
) -> Result<Response, Error> {
    crate::events::events(state, id, token).await
}

async fn queues<S: ControlStore>(State(state): State<Arc<AppState<S>>>, _: Authenticated) -> Result<Response, Error> {
    let views = state.monitor.observe(&state.store).await?;
    let queues = views
        .iter()
        .map(|v| {
            // S0.3 as the built-in policy computes it (a policy may weigh things differently).
            let speed = speed_estimate(&v.speed.samples, v.speed.peak_bytes_per_sec, state.speed_floor);
            let wait_ms = expected_wait_ms(v, state.pacing_ms, state.speed_floor);
            QueueState {
                queue: v.queue,
                healthy: v.healthy,
                speed_bytes_per_sec: speed as u64,
                expected_wait_ms: wait_ms,
                peak_bytes_per_sec: v.speed.peak_bytes_per_sec,
                slot: v.speed.slot,
                slot_samples: v.speed.samples.len() as u64,
                problem: v.problem.clone(),
                depth: v.stats.map(|s| s.pending.tasks),
                pending_bytes: v.stats.map(|s| s.pending.bytes),
                delivered: v.stats.map(|s| s.delivered),
                first_offset: v.stats.map(|s| s.info.first),
                next_offset: v.stats.map(|s| s.info.next),
            }
        })
        .collect();
    Ok(Json(QueueList { queues }).into_response())
}

/// The OpenAPI document (`host/control/openapi.json`, checked against [`routes`] and the
/// documents' fields by a test).
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../openapi.json")).into_response()
}

/// `GET /readyz`: the store answers a read, and takes a write ([`WriteProbe`](crate::state::WriteProbe): a real,
/// committed write, at most one a second).
async fn ready<S: ControlStore + 'static>(State(state): State<Arc<AppState<S>>>) -> Response {
    let read = state.store.queue_info().await.map(|_| ()).map_err(|e| format!("the store cannot be read: {e}"));
    let probed = match read {
        Ok(()) => {
            let store = state.clone();
            let probe = move || async move {
                let probed = store.store.probe_write().await.map_err(|e| format!("the store cannot be written: {e}"));
                // Logged per probe (at most one a second), not per request.
                if let Err(e) = &probed {
                    tracing::warn!(error = %e, "not ready");
                }
                probed
            };
            state.write_probe.check(probe).await
        }
        Err(e) => Err(e),
    };
    match probed {
        Ok(()) => Json(Readiness { status: ReadyState::Ready, error: None }).into_response(),
        Err(e) => {
            let body = Readiness { status: ReadyState::NotReady, error: Some(e) };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}
