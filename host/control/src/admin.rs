//! Admin endpoints: `GET /v1/policy` (what selects queues), `PUT /v1/policy` (install an
//! uploaded policy component, admin only: it decides where every tenant's purges go) and
//! `DELETE /v1/edges/{name}` (decommission an edge, admin only: it stops counting for progress
//! and stops holding back trims).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use edgepurge_api::Decommissioned;
use edgepurge_control_store::{ApiToken, ControlStore};

use crate::authenticated::Authenticated;
use crate::hub::PublishedPolicy;
use crate::response::Checked;
use crate::state::AppState;
use crate::{now_ms, rfc3339, Error};

fn require_admin(token: &ApiToken, what: &str) -> Result<(), Error> {
    if token.admin {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("{what} needs an admin token (token `{}` is not one)", token.name)))
    }
}

/// `GET /v1/policy`: the policy's name, version, source and fallback count.
pub(crate) async fn policy<S: ControlStore>(
    State(state): State<Arc<AppState<S>>>,
    _: Authenticated,
) -> Result<Response, Error> {
    Ok(Json(state.policy.status()).into_response())
}

/// `PUT /v1/policy` with a component as the body: validated in full, then installed; batches
/// being placed finish with the policy they started with. A refused component leaves the
/// current policy in place (400 with the runtime's reason). An installed component is sent to
/// every edge through the queue server.
pub(crate) async fn replace_policy<S: ControlStore>(
    State(state): State<Arc<AppState<S>>>,
    Authenticated(token): Authenticated,
    // Checked: a body over the limit (8 MiB) answers 413 with the JSON error body.
    Checked(body): Checked<Bytes>,
) -> Result<Response, Error> {
    require_admin(&token, "changing the policy")?;
    let status = state
        .policy
        .upload(&body, &state.policy_section)
        .await
        .map_err(|e| Error::Invalid(format!("{e}; the current policy keeps selecting queues")))?;
    tracing::info!(policy = %status.name, version = %status.version, by = %token.name, "policy replaced");
    // Every connected edge gets it now; edges that connect later get it in their stream's start.
    state.queue.publish_policy(Some(PublishedPolicy::new(status.name.clone(), status.version.clone(), body)));
    Ok(Json(status).into_response())
}

/// `DELETE /v1/edges/{name}`: decommissions an edge.
pub(crate) async fn decommission<S: ControlStore>(
    State(state): State<Arc<AppState<S>>>,
    Authenticated(token): Authenticated,
    Checked(Path(name)): Checked<Path<String>>,
) -> Result<Response, Error> {
    require_admin(&token, "decommissioning an edge")?;
    let at = now_ms();
    match state.store.decommission_edge(&name, at).await {
        Ok(()) => Ok(Json(Decommissioned { edge: name, decommissioned_at: rfc3339(at) }).into_response()),
        Err(edgepurge_control_store::Error::UnknownEdge(_)) => Err(Error::NotFound(format!("no edge `{name}`"))),
        Err(e) => Err(e.into()),
    }
}
