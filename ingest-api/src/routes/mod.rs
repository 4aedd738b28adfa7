//! HTTP handlers, thin: extract, call the functions that do the work, answer.
//!
//! - [`resources`]: `/Users`, `/Groups` create, read, replace, patch, delete.
//! - [`list`]: list, filter, sort and page; `/.search` at the root and per type.
//! - [`members`]: `GET /Groups/{id}/members`, the cursor-paged membership of large groups.
//! - [`bulk`]: the `/Bulk` endpoint.
//! - [`history`]: history and point-in-time reads from the command log, for a tenant and for
//!   the operator (`/admin`).
//! - [`discovery`]: `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`, and `/Me` (501).

pub mod bulk;
pub mod discovery;
pub mod history;
pub mod list;
pub mod members;
pub mod resources;

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use scimflow_core::ResourceKind;
use std::future::{Ready, ready};

/// The resource type of the endpoint a request was routed to (`/Users` or `/Groups`), set as
/// app data on each type's scope so one set of handlers serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint(pub ResourceKind);

impl FromRequest for Endpoint {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let kind = request.app_data::<ResourceKind>().copied();
        ready(kind.map(Endpoint).ok_or_else(|| ApiError::not_found("no such endpoint")))
    }
}

/// `If-Match`, as sent.
pub fn if_match(headers: &HeaderMap) -> Option<String> {
    header_text(headers, header::IF_MATCH)
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Whether `If-None-Match` matches `etag` (weak comparison, lists and `*` allowed).
pub fn if_none_match_matches(headers: &HeaderMap, etag: &str) -> bool {
    let Some(value) = header_text(headers, header::IF_NONE_MATCH) else { return false };
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").trim_matches('"').to_owned();
    let current = opaque(etag);
    value.split(',').any(|tag| tag.trim() == "*" || opaque(tag) == current)
}

/// Path and query of the request, as recorded in the audit trail.
pub fn raw_path(request: &HttpRequest) -> String {
    request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| request.path().to_owned())
}

/// 404 for paths under the base path that name no endpoint.
pub async fn unknown_endpoint(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no SCIM endpoint at {}", request.path())))
}

/// 405 for a known endpoint and an unsupported method.
pub async fn method_not_allowed(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed(format!("{} is not supported on {}", request.method(), request.path())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let request = TestRequest::default().insert_header(("If-None-Match", "\"3\"")).to_http_request();
        assert!(if_none_match_matches(request.headers(), "W/\"3\""));
        let request =
            TestRequest::default().insert_header(("If-None-Match", "W/\"1\", W/\"2\"")).to_http_request();
        assert!(!if_none_match_matches(request.headers(), "W/\"3\""));
        let request = TestRequest::default().insert_header(("If-None-Match", "*")).to_http_request();
        assert!(if_none_match_matches(request.headers(), "W/\"3\""));
    }
}
