//! The observability and isolation layer around every SCIM request, and the operational
//! endpoints outside the SCIM base path.
//!
//! [`observe_request`] (a middleware on the SCIM scope) authenticates the request once (the
//! handlers reuse the tenant from the request extensions), applies the tenant's rate and
//! concurrency limits (429 + `Retry-After` beyond them, see [`limits`](crate::limits)), and
//! records the request in the [`metrics`](crate::metrics) whatever its outcome, 429s included.
//! A request without a valid token passes through untouched to get its 401 from the handler
//! (it is counted under `tenant_class="unauthenticated"`; there is no tenant to limit).
//!
//! Operational endpoints, no token needed (they reveal no tenant data):
//! - `GET /healthz`: 200 while the process serves HTTP (liveness).
//! - `GET /readyz`: 200 when the store answers a point read within
//!   [`ApiConfig::readiness_timeout`](crate::ApiConfig::readiness_timeout), the log counts as
//!   reachable (see [`LogHealth`](crate::runtime::LogHealth)) and every added probe passes;
//!   503 otherwise. The body names each check.
//! - `GET /metrics`: Prometheus text format.

use crate::auth::{AuthenticatedTenant, bearer_token};
use crate::error::ApiError;
use crate::metrics::{UNAUTHENTICATED_CLASS, route_label, tenant_class};
use crate::state::ApiState;
use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use prometheus::IntGauge;
use scimflow_core::ResourceKind;
use serde_json::{Map, Value, json};
use std::time::Instant;

/// Tenant id of the readiness point read; no tenant can be named like this (ids are UUIDs).
const PROBE_TENANT: &str = "__scimflow_readiness_probe";

/// Decrements the in-flight gauge even when the request future is dropped (client gone).
struct InFlight(IntGauge);

impl InFlight {
    fn enter(gauge: IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The `method` label: the methods SCIM uses, anything else as `OTHER` (bounded cardinality).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The middleware: authenticate, limit, serve, measure (see the module docs).
pub async fn observe_request(
    state: ApiState,
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let started = Instant::now();
    let config = &state.config;
    let metrics = config.runtime.metrics();
    let method = method_label(request.method());
    let route = route_label(request.match_pattern().as_deref(), &config.normalized_base_path());
    // No logging here on a bad token: the handler's extractor answers and logs the 401.
    let tenant = bearer_token(request.request())
        .ok()
        .and_then(|token| state.auth.authenticate(token))
        .map(AuthenticatedTenant);
    let class = tenant.as_ref().map_or(UNAUTHENTICATED_CLASS, |tenant| tenant_class(config, tenant.id()));
    let permit = match &tenant {
        Some(tenant) => match config.runtime.limiter().acquire(tenant.id(), &config.limits) {
            Ok(permit) => Some(permit),
            Err(rejection) => {
                metrics.rate_limited.with_label_values(&[class, rejection.reason.as_str()]).inc();
                tracing::info!(
                    tenant_id = tenant.id(),
                    reason = rejection.reason.as_str(),
                    retry_after_secs = rejection.retry_after_secs,
                    "RequestRateLimited"
                );
                let response = ApiError::TooManyRequests {
                    reason: rejection.reason.as_str(),
                    retry_after_secs: rejection.retry_after_secs,
                }
                .error_response();
                metrics.observe_request(&route, method, 429, class, started.elapsed().as_secs_f64());
                return Ok(request.into_response(response).map_into_right_body());
            }
        },
        None => None,
    };
    if let Some(tenant) = tenant {
        request.extensions_mut().insert(tenant);
    }
    let in_flight = InFlight::enter(metrics.in_flight.with_label_values(&[class]));
    let result = next.call(request).await;
    drop(in_flight);
    drop(permit);
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    metrics.observe_request(&route, method, status, class, started.elapsed().as_secs_f64());
    result.map(ServiceResponse::map_into_left_body)
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ok"}"#)
}

/// `GET /readyz`: 200 when every dependency answers, else 503; the body names each check.
pub async fn readyz(state: ApiState) -> HttpResponse {
    let config = &state.config;
    let timeout = config.readiness_timeout;
    let mut checks: Vec<(String, Result<(), String>)> = Vec::new();
    let store = state.reader.resource(PROBE_TENANT, ResourceKind::User, "readiness-probe");
    let store = match tokio::time::timeout(timeout, store).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    };
    checks.push(("store".to_owned(), store));
    checks.push(("log".to_owned(), config.runtime.log_health().check(config.log_failure_window)));
    for (name, probe) in config.runtime.readiness_probes() {
        let result = match tokio::time::timeout(timeout, probe()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        checks.push((name, result));
    }
    let ready = checks.iter().all(|(_, result)| result.is_ok());
    let mut body = Map::new();
    for (name, result) in &checks {
        config.runtime.metrics().ready.with_label_values(&[name]).set(i64::from(result.is_ok()));
        let value = match result {
            Ok(()) => Value::String("ok".into()),
            Err(error) => Value::String(error.clone()),
        };
        body.insert(name.clone(), value);
    }
    if !ready {
        let checks = Value::Object(body.clone()).to_string();
        tracing::warn!(checks = %checks, "NotReady");
    }
    let body = json!({"status": if ready { "ready" } else { "unavailable" }, "checks": body});
    let mut response = if ready { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    response.content_type("application/json").body(body.to_string())
}

/// `GET /metrics`: every registered metric in the Prometheus text format.
pub async fn metrics(state: ApiState) -> HttpResponse {
    HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(state.config.runtime.metrics().render())
}
