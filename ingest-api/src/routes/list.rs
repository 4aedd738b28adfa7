//! Listing and searching: `GET /Users`, `GET /Groups` with `filter`, `sortBy`, `sortOrder`,
//! `startIndex`, `count`, `cursor`, `attributes`, `excludedAttributes`; `POST /Users/.search`,
//! `POST /Groups/.search` and `POST /.search` (Users then Groups) with a SearchRequest body.
//!
//! Answers are ListResponses with integer `totalResults`, `startIndex` and `itemsPerPage` and a
//! `Resources` array that is present even when empty (Entra's Test Connection, E10). With
//! cursor paging (RFC 9865) the answer carries `nextCursor` while more pages follow and omits
//! `totalResults` and `startIndex`.

use super::Endpoint;
use crate::body::read_json;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::render::{MEMBERS_TRUNCATED_HEADER, Renderer, scim_response};
use crate::search::params::{ListQuery, QueryParams};
use crate::search::{Page, Search};
use crate::state::ApiState;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderName;
use actix_web::{HttpRequest, HttpResponse, web};
use scimflow_core::ResourceKind;
use scimflow_core::projection::Projection;
use serde_json::{Value, json};

/// The ListResponse message URN (RFC 7644 §3.4.2).
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

pub async fn list(
    request: HttpRequest,
    state: web::Data<ApiState>,
    Endpoint(kind): Endpoint,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let params = QueryParams::parse(request.query_string())?;
    let query = ListQuery::from_params(&params, &state.config)?;
    answer(&state, &context, &[kind], &query).await
}

pub async fn search(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
    Endpoint(kind): Endpoint,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let (body, _) =
        read_json(&request, payload, state.config.max_body_bytes, state.config.max_json_depth).await?;
    let query = ListQuery::from_search_request(&body, &state.config)?;
    answer(&state, &context, &[kind], &query).await
}

/// `POST /.search`: Users and Groups together (Users first, each in id order).
pub async fn search_root(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let (body, _) =
        read_json(&request, payload, state.config.max_body_bytes, state.config.max_json_depth).await?;
    let query = ListQuery::from_search_request(&body, &state.config)?;
    answer(&state, &context, &[ResourceKind::User, ResourceKind::Group], &query).await
}

/// Runs a query and renders its page.
pub async fn answer(
    state: &ApiState,
    context: &RequestContext,
    kinds: &[ResourceKind],
    query: &ListQuery,
) -> ApiResult<HttpResponse> {
    let projections = kinds
        .iter()
        .map(|&kind| {
            let (attributes, excluded) = (query.attributes.as_deref(), query.excluded_attributes.as_deref());
            Ok((kind, Projection::parse(attributes, excluded, &state.registry, kind)?))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let search = Search::prepare(state, context.tenant_id(), kinds, query.filter.as_deref())?;
    let page = search.run(query).await?;
    let mut renderer = Renderer::new(state, context);
    let mut resources = Vec::with_capacity(page.hits.len());
    for hit in &page.hits {
        let projection = projections
            .iter()
            .find(|(kind, _)| *kind == hit.kind)
            .map(|(_, projection)| projection)
            .cloned()
            .unwrap_or_default();
        resources.push(renderer.resource(hit.kind, &hit.stored, &projection).await?);
    }
    tracing::info!(
        kinds = ?kinds,
        filter = query.filter.as_deref().unwrap_or(""),
        total = page.total,
        returned = resources.len(),
        "ResourcesListed"
    );
    let mut response = scim_response(StatusCode::OK);
    if renderer.members_truncated() {
        response.insert_header((HeaderName::from_static(MEMBERS_TRUNCATED_HEADER), "true"));
    }
    Ok(response.body(list_response(&page, resources).to_string()))
}

/// The ListResponse body of a page.
pub fn list_response(page: &Page, resources: Vec<Value>) -> Value {
    let mut body = json!({"schemas": [LIST_RESPONSE_SCHEMA]});
    if let Some(total) = page.total {
        body["totalResults"] = json!(total);
    }
    body["itemsPerPage"] = json!(resources.len());
    if let Some(start_index) = page.start_index {
        body["startIndex"] = json!(start_index);
    }
    if let Some(next_cursor) = &page.next_cursor {
        body["nextCursor"] = json!(next_cursor);
    }
    body["Resources"] = Value::Array(resources);
    body
}
