//! Bearer authentication: `Authorization: Bearer <token>` resolves to the tenant that holds the
//! token, through [`TenantAuthenticator`](scimflow_store::tenants::TenantAuthenticator).
//!
//! The tenant of a request comes from its token and nothing else: not from the URL, a header or
//! the body. A missing or unknown token is 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3).
//!
//! Every endpoint requires a token, discovery included (`/ServiceProviderConfig`,
//! `/ResourceTypes`, `/Schemas`). RFC 7644 §4 allows serving those unauthenticated, but IdPs and
//! test suites send the token anyway, and requiring it everywhere keeps one rule and keeps
//! tenant-specific schemas private.

use crate::error::ApiError;
use crate::state::ApiState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use std::future::{Ready, ready};

/// The id of the tenant whose token authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedTenant(pub String);

impl AuthenticatedTenant {
    pub fn id(&self) -> &str {
        &self.0
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched case-insensitively).
pub fn bearer_token(request: &HttpRequest) -> Result<&str, ApiError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or(ApiError::MissingToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::MissingToken);
    }
    Ok(token)
}

/// Authenticates a request: its tenant id, or 401. A tenant already authenticated by the
/// limits middleware (kept in the request extensions) is reused, so a token is looked up once.
pub fn authenticate(request: &HttpRequest, state: &ApiState) -> Result<AuthenticatedTenant, ApiError> {
    if let Some(tenant) = request.extensions().get::<AuthenticatedTenant>() {
        tracing::Span::current().record("tenant_id", tenant.id());
        return Ok(tenant.clone());
    }
    let token = bearer_token(request)?;
    let tenant_id = state.auth.authenticate(token).ok_or_else(|| {
        tracing::info!("AuthenticationRejected");
        ApiError::InvalidToken
    })?;
    tracing::Span::current().record("tenant_id", tenant_id.as_str());
    Ok(AuthenticatedTenant(tenant_id))
}

impl FromRequest for AuthenticatedTenant {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let result = match request.app_data::<web::Data<ApiState>>() {
            Some(state) => authenticate(request, state),
            None => Err(ApiError::unavailable("the API state is not configured", 1)),
        };
        ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let request = TestRequest::default().insert_header(("Authorization", "bearer abc")).to_http_request();
        assert_eq!(bearer_token(&request).unwrap(), "abc");
        let request = TestRequest::default().insert_header(("Authorization", "Basic abc")).to_http_request();
        assert!(matches!(bearer_token(&request), Err(ApiError::MissingToken)));
        let request = TestRequest::default().insert_header(("Authorization", "Bearer  ")).to_http_request();
        assert!(matches!(bearer_token(&request), Err(ApiError::MissingToken)));
        let request = TestRequest::default().to_http_request();
        assert!(matches!(bearer_token(&request), Err(ApiError::MissingToken)));
    }
}
