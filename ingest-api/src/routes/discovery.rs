//! Discovery (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`, each with
//! absolute `meta.location`s; and `/Me`, which scimflow does not serve (501): its tokens
//! identify a tenant, not a user.
//!
//! `/ServiceProviderConfig` states exactly what this API does and the limits it enforces
//! (taken from [`ApiConfig`](crate::ApiConfig)), so a client can plan its requests:
//! `changePassword` is false because passwords are never stored.

use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::render::json_response;
use crate::routes::list::LIST_RESPONSE_SCHEMA;
use crate::state::ApiState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use scimflow_core::ResourceKind;
use serde_json::{Value, json};

pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

pub async fn service_provider_config(
    state: web::Data<ApiState>,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    Ok(json_response(StatusCode::OK, &service_provider_config_json(&state, &context.base_url)))
}

/// The ServiceProviderConfig document (RFC 7643 §5, pagination from RFC 9865).
pub fn service_provider_config_json(state: &ApiState, base_url: &str) -> Value {
    let config = &state.config;
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": config.bulk_max_operations,
            "maxPayloadSize": config.bulk_max_payload_bytes,
        },
        "filter": {"supported": true, "maxResults": config.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": config.default_page_size.min(config.max_results),
            "maxPageSize": config.max_results,
            // Cursors are positions in id order, not server-side state: they never expire, so
            // any value is a true lower bound; a day is what clients need to finish a walk.
            "cursorTimeout": 86_400,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with the tenant's bearer token (Authorization: Bearer <token>)",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig"),
        },
    })
}

pub async fn resource_types(state: web::Data<ApiState>, context: RequestContext) -> ApiResult<HttpResponse> {
    let resources: Vec<Value> = state
        .registry
        .resource_types()
        .iter()
        .map(|resource_type| absolute_location(resource_type.to_json(), &context.base_url))
        .collect();
    Ok(json_response(StatusCode::OK, &discovery_list(resources)))
}

pub async fn resource_type(
    path: web::Path<String>,
    state: web::Data<ApiState>,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let kind = ResourceKind::parse(&name).ok_or_else(|| {
        ApiError::not_found(format!("no resource type {name:?}; this server serves User and Group"))
    })?;
    let body = absolute_location(state.registry.resource_type(kind).to_json(), &context.base_url);
    Ok(json_response(StatusCode::OK, &body))
}

pub async fn schemas(state: web::Data<ApiState>, context: RequestContext) -> ApiResult<HttpResponse> {
    let resources: Vec<Value> = state
        .registry
        .schemas()
        .iter()
        .map(|schema| absolute_location(schema.to_json(), &context.base_url))
        .collect();
    Ok(json_response(StatusCode::OK, &discovery_list(resources)))
}

pub async fn schema(
    path: web::Path<String>,
    state: web::Data<ApiState>,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let schema = state
        .registry
        .schema(&id)
        .ok_or_else(|| ApiError::not_found(format!("no schema {id:?}; GET /Schemas lists them")))?;
    Ok(json_response(StatusCode::OK, &absolute_location(schema.to_json(), &context.base_url)))
}

/// `/Me` (RFC 7644 §3.11) is optional; scimflow tokens identify a tenant, not a user.
pub async fn me(_context: RequestContext) -> ApiResult<HttpResponse> {
    Err(ApiError::not_implemented("/Me is not supported: scimflow tokens identify a tenant, not a user"))
}

fn discovery_list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

/// Prefixes the registry's relative `meta.location` with the base URL.
fn absolute_location(mut document: Value, base_url: &str) -> Value {
    if let Some(location) = document.pointer_mut("/meta/location")
        && let Some(relative) = location.as_str()
        && relative.starts_with('/')
    {
        *location = Value::String(format!("{base_url}{relative}"));
    }
    document
}
