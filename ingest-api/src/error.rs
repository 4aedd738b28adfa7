//! [`ApiError`]: every way a request can fail, rendered as an RFC 7644 §3.12 error body with
//! `Content-Type: application/scim+json`.
//!
//! Decided SCIM failures (400/404/409/412 ...) come from core as [`ScimError`] and keep their
//! status and `scimType`. Authentication failures add `WWW-Authenticate: Bearer` (RFC 6750 §3).
//! Infrastructure failures (log or store unavailable, outcome late) become 503 with
//! `Retry-After`, because IdPs retry those and quarantine jobs that see too many hard errors
//! (Entra E20).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use scimflow_core::error::{ERROR_SCHEMA, ScimError};
use serde_json::{Value, json};
use std::fmt;

/// The media type of every SCIM response (RFC 7644 §8.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A decided SCIM failure (bad request, not found, conflict, precondition ...).
    #[error(transparent)]
    Scim(#[from] ScimError),
    /// No usable `Authorization: Bearer` header.
    #[error("missing bearer token")]
    MissingToken,
    /// A bearer token that no tenant holds (unknown, rotated or revoked).
    #[error("invalid bearer token")]
    InvalidToken,
    /// A failure RFC 9865 names with a `scimType` core does not model (`invalidCursor`).
    #[error("{status} {scim_type}: {detail}")]
    Extended { status: u16, scim_type: &'static str, detail: String },
    /// The log or the store cannot serve the request now; the client should retry.
    #[error("service unavailable: {reason}")]
    Unavailable { reason: String, retry_after_secs: u64 },
    /// The tenant is over its rate or concurrency limit (429 + `Retry-After`). RFC 7644 has no
    /// `scimType` for it, so the body carries the status and a detail only.
    #[error("too many requests ({reason}); retry after {retry_after_secs} s")]
    TooManyRequests { reason: &'static str, retry_after_secs: u64 },
}

impl ApiError {
    pub fn bad_request(error: ScimError) -> Self {
        ApiError::Scim(error)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::Scim(ScimError::not_found(detail))
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        ApiError::Scim(ScimError::with_status(413, detail))
    }

    pub fn not_implemented(detail: impl Into<String>) -> Self {
        ApiError::Scim(ScimError::with_status(501, detail))
    }

    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        ApiError::Scim(ScimError::with_status(405, detail))
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        ApiError::Scim(ScimError::with_status(415, detail))
    }

    pub fn invalid_cursor(detail: impl Into<String>) -> Self {
        ApiError::Extended { status: 400, scim_type: "invalidCursor", detail: detail.into() }
    }

    pub fn unavailable(reason: impl fmt::Display, retry_after_secs: u64) -> Self {
        ApiError::Unavailable { reason: reason.to_string(), retry_after_secs }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Scim(error) => error.status,
            ApiError::MissingToken | ApiError::InvalidToken => 401,
            ApiError::Extended { status, .. } => *status,
            ApiError::Unavailable { .. } => 503,
            ApiError::TooManyRequests { .. } => 429,
        }
    }

    /// The RFC 7644 §3.12 error body (`status` as a string).
    pub fn to_json(&self) -> Value {
        match self {
            ApiError::Scim(error) => error.to_json(),
            ApiError::MissingToken => {
                error_body(401, None, "authentication required: send `Authorization: Bearer <tenant token>`")
            }
            ApiError::InvalidToken => error_body(
                401,
                None,
                "the bearer token is not valid (unknown, rotated or revoked); ask the operator for the tenant's current token",
            ),
            ApiError::Extended { status, scim_type, detail } => error_body(*status, Some(scim_type), detail),
            ApiError::Unavailable { retry_after_secs, .. } => error_body(
                503,
                None,
                &format!("the service is temporarily unavailable; retry after {retry_after_secs} seconds"),
            ),
            ApiError::TooManyRequests { reason, retry_after_secs } => error_body(
                429,
                None,
                &match *reason {
                    "concurrency" => format!(
                        "too many concurrent requests for this tenant; retry after {retry_after_secs} seconds"
                    ),
                    _ => format!(
                        "request rate limit of this tenant exceeded; retry after {retry_after_secs} seconds"
                    ),
                },
            ),
        }
    }
}

fn error_body(status: u16, scim_type: Option<&str>, detail: &str) -> Value {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.to_string(),
        "detail": detail,
    });
    if let Some(scim_type) = scim_type {
        body["scimType"] = Value::String(scim_type.to_owned());
    }
    body
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE));
        match self {
            ApiError::MissingToken => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"scimflow\""));
            }
            ApiError::InvalidToken => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"scimflow\", error=\"invalid_token\"",
                ));
            }
            ApiError::Unavailable { retry_after_secs, .. }
            | ApiError::TooManyRequests { retry_after_secs, .. } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
            }
            ApiError::Scim(_) | ApiError::Extended { .. } => {}
        }
        response.body(self.to_json().to_string())
    }
}

/// The result type of handlers and of the functions they call.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn scim_errors_keep_status_and_scim_type() {
        let error = ApiError::from(ScimError::uniqueness("userName taken"));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = response.into_body().try_into_bytes().unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], "409");
        assert_eq!(body["scimType"], "uniqueness");
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let response = ApiError::unavailable("log down", 7).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "7");
    }

    #[test]
    fn missing_token_asks_for_bearer() {
        let response = ApiError::MissingToken.error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap().to_str().unwrap().starts_with("Bearer")
        );
    }
}
