//! Rendering stored resources into responses: `meta.location` as an absolute URL, the readOnly
//! `groups` of a User and the `members` of a Group (both read from membership rows, never stored
//! in the resource), the `attributes`/`excludedAttributes` projection, and the `ETag` header.
//!
//! Members and groups are fetched only when the projection returns them, so
//! `GET /Groups/{id}?excludedAttributes=members` (E11) costs one row read whatever the size of
//! the group.
//!
//! # Large groups
//! One response renders at most [`ApiConfig::member_page_cap`](crate::ApiConfig) members (a
//! single group, or all groups of a list page together). When a group has more, its `members`
//! stops there and the response carries `X-Scimflow-Members-Truncated: true`; the full
//! membership is read page by page from `GET /Groups/{id}/members?cursor=&count=` (RFC 9865
//! cursors, see [`crate::routes::members`]). IdPs do not read large memberships back (they
//! PATCH deltas), so the cap protects the service without breaking provisioning.

use crate::context::RequestContext;
use crate::error::{ApiResult, SCIM_CONTENT_TYPE};
use crate::state::{ApiState, TenantStore};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpResponse, HttpResponseBuilder};
use scimflow_core::ResourceKind;
use scimflow_core::projection::Projection;
use scimflow_core::state::{Member, StoredResource};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Set to `true` when a response lists only part of a group's members.
pub const MEMBERS_TRUNCATED_HEADER: &str = "x-scimflow-members-truncated";
/// The unknown member ids a membership change skipped (Okta O11: skipped, not fatal).
pub const SKIPPED_MEMBERS_HEADER: &str = "x-scimflow-skipped-members";

/// Renders resources of one request; keeps the member budget and a cache of group names.
pub struct Renderer<'a> {
    state: &'a ApiState,
    store: TenantStore<'a>,
    base_url: &'a str,
    member_budget: usize,
    members_truncated: bool,
    group_names: HashMap<String, Option<String>>,
}

impl<'a> Renderer<'a> {
    pub fn new(state: &'a ApiState, context: &'a RequestContext) -> Self {
        Renderer {
            state,
            store: state.store(context.tenant_id()),
            base_url: &context.base_url,
            member_budget: state.config.member_page_cap,
            members_truncated: false,
            group_names: HashMap::new(),
        }
    }

    /// Whether some rendered group lists only part of its members.
    pub fn members_truncated(&self) -> bool {
        self.members_truncated
    }

    /// The absolute URL of a resource.
    pub fn location(&self, kind: ResourceKind, id: &str) -> String {
        format!("{}{}/{id}", self.base_url, kind.endpoint())
    }

    /// The response body of a stored resource under `projection`.
    pub async fn resource(
        &mut self,
        kind: ResourceKind,
        stored: &StoredResource,
        projection: &Projection,
    ) -> ApiResult<Value> {
        let mut resource = stored.resource.clone();
        let id = resource.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        set_meta(&mut resource, &self.location(kind, &id), &stored.etag());
        let registry = self.state.registry.as_ref();
        match kind {
            ResourceKind::User if projection.includes(registry, kind, "groups") => {
                let groups = self.user_groups(&id).await?;
                insert_before_meta(&mut resource, "groups", groups);
            }
            ResourceKind::Group if projection.includes(registry, kind, "members") => {
                let members = self.group_members(&id).await?;
                insert_before_meta(&mut resource, "members", members);
            }
            _ => {}
        }
        Ok(projection.render(registry, kind, &resource))
    }

    /// Renders the resource an accepted write returned. The write is done whatever happens
    /// here: if the memberships cannot be read now, the resource is answered without them
    /// rather than turning a success into an error the client would retry.
    pub async fn after_write(
        &mut self,
        kind: ResourceKind,
        stored: &StoredResource,
        projection: &Projection,
    ) -> Value {
        match self.resource(kind, stored, projection).await {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(error = %error, "RenderMembershipsAfterWriteError");
                let mut resource = stored.resource.clone();
                let id = resource.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                set_meta(&mut resource, &self.location(kind, &id), &stored.etag());
                projection.render(&self.state.registry, kind, &resource)
            }
        }
    }

    /// `groups` of a User: direct memberships with the group's `displayName`.
    async fn user_groups(&mut self, user_id: &str) -> ApiResult<Vec<Value>> {
        let mut groups = Vec::new();
        for group_id in self.store.groups_of(user_id).await? {
            let display = self.group_name(&group_id).await?;
            let mut element = Map::new();
            element.insert("value".into(), Value::String(group_id.clone()));
            element.insert("$ref".into(), Value::String(self.location(ResourceKind::Group, &group_id)));
            if let Some(display) = display {
                element.insert("display".into(), Value::String(display));
            }
            element.insert("type".into(), Value::String("direct".into()));
            groups.push(Value::Object(element));
        }
        Ok(groups)
    }

    async fn group_name(&mut self, group_id: &str) -> ApiResult<Option<String>> {
        if let Some(name) = self.group_names.get(group_id) {
            return Ok(name.clone());
        }
        let name =
            self.store.resource(ResourceKind::Group, group_id).await?.and_then(|group| {
                group.resource.get("displayName").and_then(Value::as_str).map(str::to_owned)
            });
        self.group_names.insert(group_id.to_owned(), name.clone());
        Ok(name)
    }

    /// `members` of a Group, paged from the store up to the remaining member budget.
    async fn group_members(&mut self, group_id: &str) -> ApiResult<Vec<Value>> {
        let page_size = self.state.config.scan_batch_size.max(1);
        let mut members = Vec::new();
        let mut after: Option<String> = None;
        loop {
            if self.member_budget == 0 {
                // Only truncated if there is at least one more member.
                let more = self.store.members_page(group_id, after.as_deref(), 1).await?;
                if !more.is_empty() {
                    self.members_truncated = true;
                    tracing::info!(group_id, rendered = members.len(), "GroupMembersTruncated");
                }
                break;
            }
            let limit = page_size.min(self.member_budget);
            let page = self.store.members_page(group_id, after.as_deref(), limit).await?;
            let complete = page.len() < limit;
            self.member_budget -= page.len();
            after = page.last().map(|member| member.value.clone());
            members.extend(page.iter().map(|member| member_json(self.base_url, member)));
            if complete {
                break;
            }
        }
        Ok(members)
    }
}

/// One rendered member: `{value, display?, type, $ref}` with an absolute `$ref`.
pub fn member_json(base_url: &str, member: &Member) -> Value {
    let mut element = Map::new();
    element.insert("value".into(), Value::String(member.value.clone()));
    if let Some(display) = &member.display {
        element.insert("display".into(), Value::String(display.clone()));
    }
    element.insert("type".into(), Value::String(member.kind.name().to_owned()));
    element.insert(
        "$ref".into(),
        Value::String(format!("{base_url}{}/{}", member.kind.endpoint(), member.value)),
    );
    Value::Object(element)
}

/// Sets `meta.location` and `meta.version` (creating `meta` if needed).
fn set_meta(resource: &mut Value, location: &str, etag: &str) {
    let Some(object) = resource.as_object_mut() else { return };
    let meta = object.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert("location".into(), Value::String(location.to_owned()));
        meta.insert("version".into(), Value::String(etag.to_owned()));
    }
}

/// Inserts a non-empty multi-valued attribute before `meta`, so `meta` stays last as in the
/// RFC's examples. Empty lists are omitted (RFC 7643 §2.5: unassigned).
fn insert_before_meta(resource: &mut Value, key: &str, values: Vec<Value>) {
    let Some(object) = resource.as_object_mut() else { return };
    if values.is_empty() {
        return;
    }
    let meta = object.shift_remove("meta");
    object.insert(key.to_owned(), Value::Array(values));
    if let Some(meta) = meta {
        object.insert("meta".to_owned(), meta);
    }
}

/// A response builder with `Content-Type: application/scim+json`.
pub fn scim_response(status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE));
    builder
}

/// A JSON body response with the SCIM content type.
pub fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    scim_response(status).body(body.to_string())
}

/// The answer carrying one resource: `ETag`, `Location` (creates), the truncation header.
pub struct ResourceResponse {
    pub status: StatusCode,
    pub body: Value,
    pub etag: String,
    pub location: Option<String>,
    pub members_truncated: bool,
    pub skipped_members: Vec<String>,
}

impl ResourceResponse {
    pub fn into_response(self) -> HttpResponse {
        let mut builder = scim_response(self.status);
        builder.insert_header((header::ETAG, self.etag));
        if let Some(location) = self.location {
            builder.insert_header((header::LOCATION, location));
        }
        if self.members_truncated {
            builder.insert_header((HeaderName::from_static(MEMBERS_TRUNCATED_HEADER), "true"));
        }
        if let Some(value) = skipped_members_header(&self.skipped_members) {
            builder.insert_header((HeaderName::from_static(SKIPPED_MEMBERS_HEADER), value));
        }
        builder.body(self.body.to_string())
    }
}

/// The skipped member ids as a header value (at most 20 ids, then `...`).
pub fn skipped_members_header(skipped: &[String]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let shown: Vec<&str> = skipped.iter().take(20).map(String::as_str).collect();
    let mut value = shown.join(",");
    if skipped.len() > shown.len() {
        value.push_str(",...");
    }
    // Ids come from the client; keep the header valid whatever they contain.
    value.retain(|c| c.is_ascii_graphic());
    Some(value)
}
