//! Per-request context: the request id, the trace (correlation) id, the actor and the absolute
//! base URL, plus the middleware that opens one tracing span per request.
//!
//! - Request id: `X-Request-Id` if the client sent a sane one, else a new UUID; echoed in the
//!   response and carried in the command as `causation_id`.
//! - Correlation id: the trace id of a W3C `traceparent` header, else a new one; carried in the
//!   command so the projector and fanout log under the same trace.
//! - Base URL: scheme and host of the request (honouring `Forwarded`/`X-Forwarded-*` as actix
//!   does) plus the configured base path; `meta.location` and `$ref`s are built from it.

use crate::auth::{AuthenticatedTenant, authenticate};
use crate::error::ApiError;
use crate::state::ApiState;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use scimflow_log::trace_context;
use std::future::{Ready, ready};
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id chosen by [`trace_request`], kept in the request extensions.
#[derive(Debug, Clone)]
struct RequestId(String);

/// The trace id chosen by [`trace_request`] (the request span's), kept in the request
/// extensions.
#[derive(Debug, Clone)]
struct TraceId(String);

/// Everything a handler needs to know about who asks and how to answer.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub tenant: AuthenticatedTenant,
    pub request_id: String,
    pub correlation_id: String,
    /// `User-Agent`, recorded as the actor of a write.
    pub actor: String,
    /// `scheme://host/base/path`, without a trailing slash.
    pub base_url: String,
}

impl RequestContext {
    pub fn tenant_id(&self) -> &str {
        self.tenant.id()
    }

    /// The absolute URL of a resource.
    pub fn location(&self, endpoint: &str, id: &str) -> String {
        format!("{}{endpoint}/{id}", self.base_url)
    }
}

impl FromRequest for RequestContext {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(build_context(request))
    }
}

fn build_context(request: &HttpRequest) -> Result<RequestContext, ApiError> {
    let state = request
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::unavailable("the API state is not configured", 1))?;
    let tenant = authenticate(request, state)?;
    let request_id = match request.extensions().get::<RequestId>() {
        Some(RequestId(id)) => id.clone(),
        None => request_id_from(request.headers()),
    };
    let correlation_id = match request.extensions().get::<TraceId>() {
        Some(TraceId(id)) => id.clone(),
        None => trace_id_from(request.headers()).unwrap_or_else(new_trace_id),
    };
    let actor = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect();
    let base_url = base_url(request, &state.config.normalized_base_path());
    Ok(RequestContext { tenant, request_id, correlation_id, actor, base_url })
}

/// `scheme://host` of the request plus `base_path`.
pub fn base_url(request: &HttpRequest, base_path: &str) -> String {
    let info = request.connection_info();
    format!("{}://{}{base_path}", info.scheme(), info.host())
}

/// The client's `X-Request-Id` when it is 1-128 visible ASCII characters, else a new UUID.
pub fn request_id_from(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if valid.
pub fn trace_id_from(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent_id = parts.next()?;
    let flags = parts.next()?;
    let is_hex = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = is_hex(version, 2)
        && version != "ff"
        && is_hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && is_hex(parent_id, 16)
        && is_hex(flags, 2);
    valid.then(|| trace_id.to_ascii_lowercase())
}

/// A new random W3C trace id (32 lowercase hex digits).
pub fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Middleware: one span per request (method, path, request id, trace id, tenant once
/// authenticated, status), the request id echoed as `X-Request-Id`, and one `RequestCompleted`
/// event with status and time.
///
/// With OpenTelemetry on, the span continues the caller's trace when the request carries a
/// valid W3C `traceparent` (and its `tracestate`), else it starts a new one; its trace id is the
/// request's correlation id. Without it the correlation id is the `traceparent`'s trace id or a
/// new one, as before.
pub async fn trace_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = request_id_from(request.headers());
    request.extensions_mut().insert(RequestId(request_id.clone()));
    let span = tracing::info_span!(
        "scim_request",
        otel.kind = "server",
        method = %request.method(),
        path = %request.path(),
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        tenant_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok());
    if let Some(traceparent) = header(trace_context::TRACEPARENT) {
        trace_context::continue_trace(&span, traceparent.trim(), header(trace_context::TRACESTATE));
    }
    let trace_id = trace_context::trace_id_of(&span)
        .or_else(|| trace_id_from(request.headers()))
        .unwrap_or_else(new_trace_id);
    span.record("trace_id", trace_id.as_str());
    request.extensions_mut().insert(TraceId(trace_id));
    let started = Instant::now();
    let mut response = next.call(request).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let status = response.status().as_u16();
    span.record("status", status);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, elapsed_ms, "RequestCompleted"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn trace_id_comes_from_a_valid_traceparent_only() {
        let request = TestRequest::default()
            .insert_header(("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
            .to_http_request();
        assert_eq!(trace_id_from(request.headers()).as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let request = TestRequest::default()
            .insert_header(("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"))
            .to_http_request();
        assert_eq!(trace_id_from(request.headers()), None);
        let request = TestRequest::default().insert_header(("traceparent", "garbage")).to_http_request();
        assert_eq!(trace_id_from(request.headers()), None);
        assert_eq!(new_trace_id().len(), 32);
    }

    #[test]
    fn request_id_is_taken_when_sane() {
        let request = TestRequest::default().insert_header(("X-Request-Id", "abc-123")).to_http_request();
        assert_eq!(request_id_from(request.headers()), "abc-123");
        let request = TestRequest::default().insert_header(("X-Request-Id", "has space")).to_http_request();
        assert_ne!(request_id_from(request.headers()), "has space");
    }
}
