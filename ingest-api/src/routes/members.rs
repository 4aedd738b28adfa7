//! `GET /Groups/{id}/members?cursor=&count=`: the membership of a group, one page at a time, for
//! groups larger than a GET renders ([`ApiConfig::member_page_cap`](crate::ApiConfig)).
//!
//! The answer is a ListResponse whose `Resources` are member objects
//! (`{value, display?, type, $ref}`) in member-id order, with an RFC 9865 `nextCursor` while
//! more follow. `count` defaults to the default page size and is clamped to `max_results`;
//! `cursor` may be absent or empty for the first page. A page costs one range read, whatever
//! the size of the group.

use super::Endpoint;
use super::list::LIST_RESPONSE_SCHEMA;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::render::{json_response, member_json};
use crate::search::cursor::Position;
use crate::search::params::{ListQuery, Paging, QueryParams};
use crate::state::ApiState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use scimflow_core::ResourceKind;
use serde_json::{Value, json};

pub async fn members(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
    Endpoint(kind): Endpoint,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let group_id = path.into_inner();
    if kind != ResourceKind::Group {
        return Err(ApiError::not_found(
            "only Groups have members; a User's groups are in its `groups` attribute",
        ));
    }
    let params = QueryParams::parse(request.query_string())?;
    let query = ListQuery::from_params(&params, &state.config)?;
    let after = match &query.paging {
        Paging::Cursor(cursor) if !cursor.is_empty() => {
            let position = Position::decode(cursor)?;
            if position.kind.is_some() {
                return Err(ApiError::invalid_cursor("this cursor pages resources, not members"));
            }
            Some(position.id)
        }
        _ => None,
    };
    let store = state.store(context.tenant_id());
    store.existing(ResourceKind::Group, &group_id).await?;
    let mut page = store.members_page(&group_id, after.as_deref(), query.count.saturating_add(1)).await?;
    let more = page.len() > query.count;
    page.truncate(query.count);
    let resources: Vec<Value> = page.iter().map(|member| member_json(&context.base_url, member)).collect();
    let mut body = json!({"schemas": [LIST_RESPONSE_SCHEMA], "itemsPerPage": resources.len()});
    if more && let Some(last) = page.last() {
        body["nextCursor"] = json!(Position { kind: None, id: last.value.clone() }.encode());
    }
    body["Resources"] = Value::Array(resources);
    Ok(json_response(StatusCode::OK, &body))
}
