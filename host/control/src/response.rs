//! How an [`Error`] becomes an HTTP answer (status, `{"error": "…"}`, `WWW-Authenticate` on 401,
//! `Retry-After` and `RateLimit-*` on 429), the rate-limit headers successful submissions carry
//! too, and [`Checked`]: any axum extractor whose rejection becomes an [`Error`], so that a bad
//! query string, path or body answers with the same JSON error body as every other refusal.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::RateState;
use crate::Error;

/// Where the operations, their parameters, content types and limits are described.
const SEE: &str = "see this operation in /v1/openapi.json";

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
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
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

/// The extractor `E` with its rejection turned into an [`Error`]: `Checked<Query<T>>`,
/// `Checked<Path<T>>`, `Checked<Bytes>`. axum's own rejections answer `text/plain`; through this
/// one wrapper every one of them answers `{"error": …}` with the status axum chose (400, 413,
/// 415), saying what was wrong and where the operation is described.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checked<E>(pub E);

impl<S, E> FromRequestParts<S> for Checked<E>
where
    S: Send + Sync,
    E: FromRequestParts<S>,
    Error: From<E::Rejection>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Ok(Checked(E::from_request_parts(parts, state).await?))
    }
}

impl<S, E> FromRequest<S> for Checked<E>
where
    S: Send + Sync,
    E: FromRequest<S>,
    Error: From<E::Rejection>,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        Ok(Checked(E::from_request(req, state).await?))
    }
}

/// The one translation of an axum rejection: its status (400, 413, 415, …) kept, its text
/// (`what` names the part of the request; `detail` is the innermost error when it has one, which
/// names the offending field) in the JSON error body.
fn rejected(status: StatusCode, what: &str, body_text: String, detail: Option<String>) -> Error {
    let detail = detail.unwrap_or(body_text);
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            Error::TooLarge(format!("{what} is larger than this operation accepts ({detail}); {SEE} for its limit"))
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            Error::UnsupportedMediaType(format!("{what}: {detail}; {SEE} for the content types it reads"))
        }
        s if s.is_client_error() => Error::Invalid(format!("{what} is not valid: {detail}; {SEE}")),
        _ => Error::Internal(format!("{what}: {detail}")),
    }
}

/// `From<rejection> for Error` through [`rejected`], for each axum rejection the handlers meet.
macro_rules! rejections {
    ($($rejection:ty => $what:literal),* $(,)?) => {
        $(
            impl From<$rejection> for Error {
                fn from(r: $rejection) -> Error {
                    let detail = std::error::Error::source(&r).map(|e| e.to_string());
                    rejected(r.status(), $what, r.body_text(), detail)
                }
            }
        )*
    };
}

rejections! {
    QueryRejection => "the query string",
    PathRejection => "the path",
    BytesRejection => "the request body",
    JsonRejection => "the JSON body",
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Query;

    #[derive(Debug, serde::Deserialize)]
    struct Q {
        #[allow(dead_code)]
        soft: bool,
    }

    #[tokio::test]
    async fn a_query_rejection_becomes_a_400_naming_the_field() {
        let (mut parts, _) = axum::http::Request::builder().uri("/x?soft=-1").body(()).unwrap().into_parts();
        let e = Checked::<Query<Q>>::from_request_parts(&mut parts, &()).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(text.starts_with("the query string is not valid: soft: "), "{text}");
        assert!(text.contains("/v1/openapi.json"), "{text}");
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn statuses_keep_their_kind() {
        assert!(matches!(rejected(StatusCode::PAYLOAD_TOO_LARGE, "b", "x".into(), None), Error::TooLarge(_)));
        let e = rejected(StatusCode::UNSUPPORTED_MEDIA_TYPE, "b", "x".into(), None);
        assert!(matches!(e, Error::UnsupportedMediaType(_)));
        assert!(matches!(rejected(StatusCode::UNPROCESSABLE_ENTITY, "b", "x".into(), None), Error::Invalid(_)));
        assert!(matches!(rejected(StatusCode::INTERNAL_SERVER_ERROR, "b", "x".into(), None), Error::Internal(_)));
    }
}
