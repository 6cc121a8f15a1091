//! The authenticated token as an axum extractor: a handler that takes [`Authenticated`] runs only
//! for a request whose `Authorization: Bearer …` names a known token; any other gets the 401 of
//! [`Error::Unauthorized`] (with `WWW-Authenticate`) before the handler starts.
//!
//! `POST /v1/purges` takes `Result<Authenticated, Error>` instead, so that a refused submission is
//! still counted in the metrics and the token is checked before the rate limit.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use edgepurge_control_store::{ApiToken, TokenHash, TokenStore};

use crate::state::AppState;
use crate::Error;

/// The token the request presented, looked up by its hash.
#[derive(Debug, Clone)]
pub struct Authenticated(pub ApiToken);

impl<S: TokenStore + Send + Sync> FromRequestParts<Arc<AppState<S>>> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState<S>>) -> Result<Self, Error> {
        authenticate(&state.store, &parts.headers).await.map(Authenticated)
    }
}

/// The token `headers` present (`Authorization: Bearer …`), looked up by hash in `store`.
async fn authenticate<S: TokenStore>(store: &S, headers: &HeaderMap) -> Result<ApiToken, Error> {
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
