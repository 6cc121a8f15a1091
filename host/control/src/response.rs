//! How an [`Error`] becomes an HTTP answer (status, `{"error": "…"}`, `WWW-Authenticate` on 401,
//! `Retry-After` and `RateLimit-*` on 429), and the rate-limit headers successful submissions
//! carry too.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::RateState;
use crate::Error;

/// Sets `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` from `rate`.
pub fn rate_headers(headers: &mut HeaderMap, rate: &RateState) {
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
        let mut response = (status, Json(edgepurge_api::ErrorBody { error: self.to_string() })).into_response();
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
