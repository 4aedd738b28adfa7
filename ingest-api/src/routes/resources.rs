//! `/Users` and `/Groups`: POST (201 + `Location` + `ETag`), GET one (`If-None-Match` -> 304),
//! PUT (200), PATCH (200 with body for Users; 204 for Groups unless configured or the request
//! names `attributes`/`excludedAttributes`, RFC 7644 §3.5.2, E12), DELETE (204).
//!
//! `If-Match` on PUT/PATCH/DELETE travels in the command; the fold answers 412 on a mismatch.

use super::{Endpoint, if_match, if_none_match_matches, raw_path};
use crate::body::read_json;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::operations::{self, Origin, Written};
use crate::render::{Renderer, ResourceResponse, SKIPPED_MEMBERS_HEADER, skipped_members_header};
use crate::search::params::QueryParams;
use crate::state::ApiState;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, HttpResponse, web};
use scimflow_core::ResourceKind;
use scimflow_core::projection::Projection;

/// The projection a request asks for (`attributes` / `excludedAttributes`).
pub fn projection(state: &ApiState, kind: ResourceKind, params: &QueryParams) -> ApiResult<Projection> {
    let (attributes, excluded) = params.projection();
    Ok(Projection::parse(attributes, excluded, &state.registry, kind)?)
}

pub async fn create(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
    Endpoint(kind): Endpoint,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let params = QueryParams::parse(request.query_string())?;
    let projection = projection(&state, kind, &params)?;
    let (body, _) =
        read_json(&request, payload, state.config.max_body_bytes, state.config.max_json_depth).await?;
    let origin = Origin::new("POST", raw_path(&request));
    let written = operations::create(&state, &context, kind, &body, origin).await?;
    Ok(respond(&state, &context, written, &projection, StatusCode::CREATED).await)
}

pub async fn get(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
    Endpoint(kind): Endpoint,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let params = QueryParams::parse(request.query_string())?;
    let projection = projection(&state, kind, &params)?;
    let stored = state.store(context.tenant_id()).existing(kind, &id).await?;
    let etag = stored.etag();
    if if_none_match_matches(request.headers(), &etag) {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    let mut renderer = Renderer::new(&state, &context);
    let body = renderer.resource(kind, &stored, &projection).await?;
    Ok(ResourceResponse {
        status: StatusCode::OK,
        body,
        etag,
        location: None,
        members_truncated: renderer.members_truncated(),
        skipped_members: Vec::new(),
    }
    .into_response())
}

pub async fn replace(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<ApiState>,
    Endpoint(kind): Endpoint,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let params = QueryParams::parse(request.query_string())?;
    let projection = projection(&state, kind, &params)?;
    let (body, _) =
        read_json(&request, payload, state.config.max_body_bytes, state.config.max_json_depth).await?;
    let origin = Origin::new("PUT", raw_path(&request));
    let written =
        operations::replace(&state, &context, kind, &id, &body, if_match(request.headers()), origin).await?;
    Ok(respond(&state, &context, written, &projection, StatusCode::OK).await)
}

pub async fn patch(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<ApiState>,
    Endpoint(kind): Endpoint,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let params = QueryParams::parse(request.query_string())?;
    let projection = projection(&state, kind, &params)?;
    let (body, _) =
        read_json(&request, payload, state.config.max_body_bytes, state.config.max_json_depth).await?;
    let origin = Origin::new("PATCH", raw_path(&request));
    let written =
        operations::patch(&state, &context, kind, &id, &body, if_match(request.headers()), origin).await?;
    let (attributes, excluded) = params.projection();
    let wants_body = kind == ResourceKind::User
        || state.config.group_patch_returns_body
        || attributes.is_some()
        || excluded.is_some();
    if wants_body {
        return Ok(respond(&state, &context, written, &projection, StatusCode::OK).await);
    }
    let mut response = HttpResponse::NoContent();
    if let Some(stored) = &written.accepted.resource {
        response.insert_header((header::ETAG, stored.etag()));
    }
    if let Some(value) = skipped_members_header(&written.accepted.skipped_members) {
        response.insert_header((HeaderName::from_static(SKIPPED_MEMBERS_HEADER), value));
    }
    Ok(response.finish())
}

pub async fn delete(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
    Endpoint(kind): Endpoint,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let origin = Origin::new("DELETE", raw_path(&request));
    operations::delete(&state, &context, kind, &id, if_match(request.headers()), origin).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The answer to an accepted write that returns the resource.
async fn respond(
    state: &ApiState,
    context: &RequestContext,
    written: Written,
    projection: &Projection,
    status: StatusCode,
) -> HttpResponse {
    let Some(stored) = &written.accepted.resource else {
        return HttpResponse::NoContent().finish();
    };
    let mut renderer = Renderer::new(state, context);
    let body = renderer.after_write(written.kind, stored, projection).await;
    let location = (status == StatusCode::CREATED).then(|| renderer.location(written.kind, &written.id));
    ResourceResponse {
        status,
        body,
        etag: stored.etag(),
        location,
        members_truncated: renderer.members_truncated(),
        skipped_members: written.accepted.skipped_members.clone(),
    }
    .into_response()
}
