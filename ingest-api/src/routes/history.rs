//! History and point-in-time reads, from the command log ([`scimflow_log::history`]).
//!
//! Two audiences, two credentials:
//! - a **tenant** reads its own history with its own token, under the SCIM base path:
//!   `GET /Users/{id}/history`, `GET /Users/{id}?at=T`, `GET /Groups/{id}/members?at=T`. The
//!   tenant comes from the token, so no path can name another tenant;
//! - the **operator** reads any tenant's with an admin token (`scimflow admin token create`):
//!   `GET /admin/tenants/{tenant}/{Users|Groups}/{id}/history`, `.../{id}?at=T`,
//!   `.../Groups/{id}/members?at=T&startIndex=1&count=100`. A tenant token there is 403, an
//!   unknown one 401; an admin token is no tenant token anywhere else (401).
//!
//! Each history entry says who (the client's User-Agent: which IdP) changed what, when, with
//! which outcome and effects, and keeps the raw request (passwords scrubbed at ingest).
//! A read folds the tenant's log again on a blocking thread: it costs time proportional to the
//! tenant's history, which suits audit and support, not hot paths. A resource read `?at=T`
//! leaves a Group's `members` out; its members at `T` are paged by `members?at=T`.

use crate::auth::{AuthenticatedTenant, bearer_token};
use crate::error::{ApiError, ApiResult};
use crate::render::json_response;
use crate::routes::Endpoint;
use crate::state::{ApiState, AuditAccess};
use actix_web::guard::{Guard, GuardContext};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use scimflow_core::ResourceKind;
use scimflow_core::error::ScimError;
use scimflow_log::history::{history, member_json, parse_instant, resource_json, state_at};
use serde_json::{Value, json};

const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Members per page of `members?at=` unless `count` says otherwise, and the most it may say.
const DEFAULT_COUNT: usize = 100;
const MAX_COUNT: usize = 1000;

/// Matches requests with an `at` query parameter: they go to the point-in-time handlers.
pub struct AtQuery;

impl Guard for AtQuery {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        query_param(ctx.head().uri.query().unwrap_or(""), "at").is_some()
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    web::Query::<Vec<(String, String)>>::from_query(query)
        .ok()?
        .0
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

fn forbidden(detail: impl Into<String>) -> ApiError {
    ApiError::Scim(ScimError::with_status(403, detail))
}

fn audit(state: &ApiState) -> ApiResult<AuditAccess> {
    state.audit.clone().ok_or_else(|| {
        ApiError::not_implemented(
            "history is not served by this instance (it has no access to the command log)",
        )
    })
}

/// The operator behind an admin token, or 401 (unknown token) / 403 (a tenant's token).
fn authenticate_admin(request: &HttpRequest, state: &ApiState) -> ApiResult<String> {
    let token = bearer_token(request)?;
    let audit = audit(state)?;
    if let Some(name) = audit.admins.authenticate_admin(token) {
        return Ok(name);
    }
    if state.auth.authenticate(token).is_some() {
        tracing::info!("AdminAccessDenied");
        return Err(forbidden(
            "a tenant token cannot use /admin; a tenant reads its own history at <base>/Users/{id}/history",
        ));
    }
    Err(ApiError::InvalidToken)
}

fn instant(request: &HttpRequest) -> ApiResult<i64> {
    let text = query_param(request.query_string(), "at").ok_or_else(|| {
        ApiError::bad_request(ScimError::invalid_value("`at` (an RFC 3339 instant) is required"))
    })?;
    parse_instant(&text).ok_or_else(|| {
        ApiError::bad_request(ScimError::invalid_value(format!(
            "`at` must be an RFC 3339 instant such as 2026-11-29T23:15:00Z, not {text:?}"
        )))
    })
}

fn number(request: &HttpRequest, name: &str, default: usize) -> ApiResult<usize> {
    match query_param(request.query_string(), name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ApiError::bad_request(ScimError::invalid_value(format!(
                "`{name}` must be a non-negative integer"
            )))
        }),
    }
}

/// Runs a log fold on a blocking thread; a log that cannot be read is 503.
async fn fold<T: Send + 'static>(
    state: &ApiState,
    work: impl FnOnce(&AuditAccess) -> Result<T, scimflow_log::LogError> + Send + 'static,
) -> ApiResult<T> {
    let audit = audit(state)?;
    let retry = state.config.retry_after_seconds();
    web::block(move || work(&audit)).await.map_err(|error| ApiError::unavailable(error, retry))?.map_err(
        |error| {
            tracing::warn!(error = %error, "HistoryLogReadFailed");
            ApiError::unavailable(error, retry)
        },
    )
}

async fn history_response(
    state: &ApiState,
    tenant: String,
    kind: ResourceKind,
    id: String,
) -> ApiResult<HttpResponse> {
    let registry = state.registry.clone();
    let (tenant_for_fold, id_for_fold) = (tenant.clone(), id.clone());
    let entries =
        fold(state, move |audit| history(&*audit.log, &registry, &tenant_for_fold, kind, &id_for_fold))
            .await?;
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("no command of this tenant touches {} {id}", kind.name())));
    }
    let body = json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": entries.len(),
        "startIndex": 1,
        "itemsPerPage": entries.len(),
        "Resources": entries,
    });
    Ok(json_response(StatusCode::OK, &body))
}

async fn resource_at_response(
    request: &HttpRequest,
    state: &ApiState,
    tenant: String,
    kind: ResourceKind,
    id: String,
) -> ApiResult<HttpResponse> {
    let at = instant(request)?;
    let registry = state.registry.clone();
    let (tenant_for_fold, id_for_fold) = (tenant.clone(), id.clone());
    let resource = fold(state, move |audit| {
        let (state, _) = state_at(&*audit.log, &registry, &tenant_for_fold, at)?;
        Ok(resource_json(&state, kind, &id_for_fold, None, 1).map(|mut resource| {
            if let Some(object) = resource.as_object_mut() {
                object.shift_remove("members");
            }
            resource
        }))
    })
    .await?;
    match resource {
        Some(resource) => Ok(json_response(StatusCode::OK, &resource)),
        None => Err(ApiError::not_found(format!("{} {id} did not exist at that instant", kind.name()))),
    }
}

async fn members_at_response(
    request: &HttpRequest,
    state: &ApiState,
    tenant: String,
    group_id: String,
) -> ApiResult<HttpResponse> {
    let at = instant(request)?;
    let start_index = number(request, "startIndex", 1)?.max(1);
    let count = number(request, "count", DEFAULT_COUNT)?.min(MAX_COUNT);
    let registry = state.registry.clone();
    let id = group_id.clone();
    let page = fold(state, move |audit| {
        let (state, _) = state_at(&*audit.log, &registry, &tenant, at)?;
        if !state.resources.contains_key(&(ResourceKind::Group, id.clone())) {
            return Ok(None);
        }
        let members = state.members.get(&id);
        let total = members.map_or(0, |members| members.len());
        let page: Vec<Value> = members
            .into_iter()
            .flat_map(|members| members.values())
            .skip(start_index - 1)
            .take(count)
            .map(member_json)
            .collect();
        Ok(Some((total, page)))
    })
    .await?;
    let Some((total, page)) = page else {
        return Err(ApiError::not_found(format!("Group {group_id} did not exist at that instant")));
    };
    let body = json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": page.len(),
        "Resources": page,
    });
    Ok(json_response(StatusCode::OK, &body))
}

// --- the tenant's own history, under the SCIM base path ---

/// `GET /{Users|Groups}/{id}/history`.
pub async fn tenant_history(
    tenant: AuthenticatedTenant,
    Endpoint(kind): Endpoint,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> ApiResult<HttpResponse> {
    history_response(&state, tenant.0, kind, path.into_inner()).await
}

/// `GET /{Users|Groups}/{id}?at=T`.
pub async fn tenant_resource_at(
    request: HttpRequest,
    tenant: AuthenticatedTenant,
    Endpoint(kind): Endpoint,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> ApiResult<HttpResponse> {
    resource_at_response(&request, &state, tenant.0, kind, path.into_inner()).await
}

/// `GET /Groups/{id}/members?at=T&startIndex&count`.
pub async fn tenant_members_at(
    request: HttpRequest,
    tenant: AuthenticatedTenant,
    Endpoint(kind): Endpoint,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> ApiResult<HttpResponse> {
    if kind != ResourceKind::Group {
        return Err(ApiError::not_found("only Groups have members"));
    }
    members_at_response(&request, &state, tenant.0, path.into_inner()).await
}

// --- the operator's view of any tenant, under /admin ---

fn admin_kind(endpoint: &str) -> ApiResult<ResourceKind> {
    match endpoint {
        "Users" => Ok(ResourceKind::User),
        "Groups" => Ok(ResourceKind::Group),
        other => Err(ApiError::not_found(format!("no resource type {other:?}; use Users or Groups"))),
    }
}

/// `GET /admin/tenants/{tenant}/{Users|Groups}/{id}/history`.
pub async fn admin_history(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<ApiState>,
) -> ApiResult<HttpResponse> {
    let admin = authenticate_admin(&request, &state)?;
    let (tenant, endpoint, id) = path.into_inner();
    tracing::info!(admin = %admin, tenant_id = %tenant, resource_id = %id, "AdminHistoryRead");
    history_response(&state, tenant, admin_kind(&endpoint)?, id).await
}

/// `GET /admin/tenants/{tenant}/{Users|Groups}/{id}?at=T`.
pub async fn admin_resource_at(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<ApiState>,
) -> ApiResult<HttpResponse> {
    let admin = authenticate_admin(&request, &state)?;
    let (tenant, endpoint, id) = path.into_inner();
    tracing::info!(admin = %admin, tenant_id = %tenant, resource_id = %id, "AdminPointInTimeRead");
    resource_at_response(&request, &state, tenant, admin_kind(&endpoint)?, id).await
}

/// `GET /admin/tenants/{tenant}/Groups/{id}/members?at=T&startIndex&count`.
pub async fn admin_members_at(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<ApiState>,
) -> ApiResult<HttpResponse> {
    let admin = authenticate_admin(&request, &state)?;
    let (tenant, group_id) = path.into_inner();
    tracing::info!(admin = %admin, tenant_id = %tenant, resource_id = %group_id, "AdminPointInTimeRead");
    members_at_response(&request, &state, tenant, group_id).await
}

/// Any other `/admin` path: authenticated like the rest (so it tells nothing to strangers),
/// then 404.
pub async fn admin_unknown(request: HttpRequest, state: web::Data<ApiState>) -> ApiResult<HttpResponse> {
    authenticate_admin(&request, &state)?;
    Err(ApiError::not_found(format!("no admin endpoint at {}", request.path())))
}

/// The `/admin` scope.
pub fn admin_scope(state: web::Data<ApiState>) -> actix_web::Scope {
    web::scope("/admin")
        .app_data(state)
        .service(
            web::resource("/tenants/{tenant}/Groups/{id}/members").route(web::get().to(admin_members_at)),
        )
        .service(
            web::resource("/tenants/{tenant}/{endpoint}/{id}/history").route(web::get().to(admin_history)),
        )
        .service(web::resource("/tenants/{tenant}/{endpoint}/{id}").route(web::get().to(admin_resource_at)))
        .default_service(web::to(admin_unknown))
}
