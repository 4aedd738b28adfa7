//! The four SCIM writes as functions of parsed input, shared by the resource endpoints and
//! `/Bulk`: validate the body with core (400 on anything core rejects), then submit one command
//! through [`crate::write`]. Nothing here reads the store.

use crate::body::audit_bytes;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::state::ApiState;
use crate::write::{WriteRequest, submit};
use scimflow_core::ResourceKind;
use scimflow_core::command::Action;
use scimflow_core::patch::parse_patch_request;
use scimflow_core::resource::normalize_resource;
use scimflow_log::outcome::Accepted;
use serde_json::Value;

/// An accepted write and the id it applies to (new for a create).
#[derive(Debug, Clone)]
pub struct Written {
    pub kind: ResourceKind,
    pub id: String,
    pub accepted: Accepted,
}

/// Where a write came from, for the audit trail.
#[derive(Debug, Clone)]
pub struct Origin {
    pub method: String,
    pub path: String,
}

impl Origin {
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Origin { method: method.into(), path: path.into() }
    }
}

/// POST: a new resource with a new id.
pub async fn create(
    state: &ApiState,
    context: &RequestContext,
    kind: ResourceKind,
    body: &Value,
    origin: Origin,
) -> ApiResult<Written> {
    let resource = normalize_resource(&state.registry, kind, body)?;
    let id = uuid::Uuid::new_v4().to_string();
    write(state, context, kind, id, Action::Create(resource), None, body, origin).await
}

/// PUT: replaces the resource `id`.
pub async fn replace(
    state: &ApiState,
    context: &RequestContext,
    kind: ResourceKind,
    id: &str,
    body: &Value,
    if_match: Option<String>,
    origin: Origin,
) -> ApiResult<Written> {
    let resource = normalize_resource(&state.registry, kind, body)?;
    write(state, context, kind, id.to_owned(), Action::Replace(resource), if_match, body, origin).await
}

/// PATCH: applies a PatchOp request to the resource `id`.
pub async fn patch(
    state: &ApiState,
    context: &RequestContext,
    kind: ResourceKind,
    id: &str,
    body: &Value,
    if_match: Option<String>,
    origin: Origin,
) -> ApiResult<Written> {
    let operations = parse_patch_request(body)?;
    write(state, context, kind, id.to_owned(), Action::Patch(operations), if_match, body, origin).await
}

/// DELETE: removes the resource `id` (and its memberships).
pub async fn delete(
    state: &ApiState,
    context: &RequestContext,
    kind: ResourceKind,
    id: &str,
    if_match: Option<String>,
    origin: Origin,
) -> ApiResult<Written> {
    write(state, context, kind, id.to_owned(), Action::Delete, if_match, &Value::Null, origin).await
}

#[allow(clippy::too_many_arguments)]
async fn write(
    state: &ApiState,
    context: &RequestContext,
    kind: ResourceKind,
    id: String,
    action: Action,
    if_match: Option<String>,
    body: &Value,
    origin: Origin,
) -> ApiResult<Written> {
    let raw_body = if body.is_null() { Vec::new() } else { audit_bytes(body) };
    let request = WriteRequest {
        kind,
        resource_id: id.clone(),
        action,
        if_match,
        raw_method: origin.method,
        raw_path: origin.path,
        raw_body,
    };
    let accepted = submit(state, context, request).await?;
    Ok(Written { kind, id, accepted })
}
