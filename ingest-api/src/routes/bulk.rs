//! `POST /Bulk` (RFC 7644 §3.7): many writes in one request, each run as its own command
//! through the same functions as the single-resource endpoints, one after the other.
//!
//! - Limits: more than `bulk.maxOperations` operations or a body over `bulk.maxPayloadSize`
//!   is 413, before anything is written.
//! - `bulkId` references (`"bulkId:q1"`) in paths and in data (member values too) are replaced
//!   by the id the POST with that `bulkId` got. An operation that references a POST placed later
//!   in the request waits for it; references to an undefined or failed POST, and circular
//!   references, fail that operation with 409.
//! - `failOnErrors: n` stops after the n-th failed operation; operations not attempted are left
//!   out of the response. Operations already applied stay applied (there is no rollback: each
//!   one is a durable command).
//! - The response lists the attempted operations in request order with `status` as a string,
//!   `location` and `version` for successes, and the SCIM error as `response` for failures.

use super::raw_path;
use crate::body::read_json;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::operations::{self, Origin, Written};
use crate::render::json_response;
use crate::state::ApiState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use scimflow_core::error::ScimType;
use scimflow_core::{ResourceKind, ScimError};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
const BULK_ID_PREFIX: &str = "bulkId:";

pub async fn bulk(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
    context: RequestContext,
) -> ApiResult<HttpResponse> {
    let config = &state.config;
    let (body, _) =
        read_json(&request, payload, config.bulk_max_payload_bytes, config.max_json_depth).await?;
    let bulk_request = BulkRequest::parse(&body, config.bulk_max_operations)?;
    tracing::info!(operations = bulk_request.operations.len(), fail_on_errors = bulk_request.fail_on_errors, path = %raw_path(&request), "BulkStarted");
    let results = execute(&state, &context, &bulk_request).await;
    let body = json!({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": results});
    Ok(json_response(StatusCode::OK, &body))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn parse(text: &str) -> Option<Method> {
        match text.to_ascii_uppercase().as_str() {
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One operation as sent; invalid shapes are kept as errors to report in place.
#[derive(Debug, Clone)]
struct Operation {
    method_text: String,
    method: Option<Method>,
    bulk_id: Option<String>,
    version: Option<String>,
    path: String,
    data: Option<Value>,
}

#[derive(Debug)]
struct BulkRequest {
    fail_on_errors: Option<usize>,
    operations: Vec<Operation>,
}

impl BulkRequest {
    fn parse(body: &Value, max_operations: usize) -> ApiResult<BulkRequest> {
        let schemas_ok = member(body, "schemas").and_then(Value::as_array).is_some_and(|uris| {
            uris.iter()
                .any(|uri| uri.as_str().is_some_and(|uri| uri.eq_ignore_ascii_case(BULK_REQUEST_SCHEMA)))
        });
        if !schemas_ok {
            return Err(ScimError::invalid_syntax(format!(
                "a bulk request needs \"schemas\": [\"{BULK_REQUEST_SCHEMA}\"]"
            ))
            .into());
        }
        let Some(Value::Array(items)) = member(body, "Operations") else {
            return Err(ScimError::invalid_syntax("a bulk request needs an \"Operations\" array").into());
        };
        if items.len() > max_operations {
            return Err(ApiError::payload_too_large(format!(
                "the bulk request has {} operations; at most {max_operations} are accepted (bulk.maxOperations)",
                items.len()
            )));
        }
        let fail_on_errors = match member(body, "failOnErrors") {
            None | Some(Value::Null) => None,
            Some(Value::Number(number)) => match number.as_u64() {
                Some(count) if count >= 1 => Some(usize::try_from(count).unwrap_or(usize::MAX)),
                _ => return Err(ScimError::invalid_value("failOnErrors must be a positive integer").into()),
            },
            Some(_) => return Err(ScimError::invalid_value("failOnErrors must be a positive integer").into()),
        };
        let operations = items.iter().map(Operation::parse).collect();
        Ok(BulkRequest { fail_on_errors, operations })
    }
}

impl Operation {
    fn parse(item: &Value) -> Operation {
        let text = |name: &str| member(item, name).and_then(Value::as_str).map(str::to_owned);
        let method_text = text("method").unwrap_or_default();
        Operation {
            method: Method::parse(&method_text),
            method_text,
            bulk_id: text("bulkId"),
            version: text("version"),
            path: text("path").unwrap_or_default(),
            data: member(item, "data").filter(|data| !data.is_null()).cloned(),
        }
    }

    /// Every `bulkId` this operation references in its path and data.
    fn references(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for segment in self.path.split('/') {
            if let Some(bulk_id) = segment.strip_prefix(BULK_ID_PREFIX) {
                found.insert(bulk_id.to_owned());
            }
        }
        if let Some(data) = &self.data {
            collect_references(data, &mut found);
        }
        found
    }
}

fn collect_references(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            if let Some(bulk_id) = text.strip_prefix(BULK_ID_PREFIX) {
                found.insert(bulk_id.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, found)),
        Value::Object(fields) => fields.values().for_each(|child| collect_references(child, found)),
        _ => {}
    }
}

fn substitute(value: &mut Value, resolved: &HashMap<String, String>) {
    match value {
        Value::String(text) => {
            if let Some(id) = text.strip_prefix(BULK_ID_PREFIX).and_then(|bulk_id| resolved.get(bulk_id)) {
                *text = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| substitute(item, resolved)),
        Value::Object(fields) => fields.values_mut().for_each(|child| substitute(child, resolved)),
        _ => {}
    }
}

fn substitute_path(path: &str, resolved: &HashMap<String, String>) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix(BULK_ID_PREFIX).and_then(|bulk_id| resolved.get(bulk_id)) {
            Some(id) => id.as_str(),
            None => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Runs the operations; returns the response entries of the attempted ones, in request order.
async fn execute(state: &ApiState, context: &RequestContext, request: &BulkRequest) -> Vec<Value> {
    let operations = &request.operations;
    let mut results: Vec<Option<Value>> = vec![None; operations.len()];
    let mut resolved: HashMap<String, String> = HashMap::new();
    let mut pending: Vec<usize> = (0..operations.len()).collect();
    let mut errors = 0usize;
    let budget_left = |errors: usize| request.fail_on_errors.is_none_or(|limit| errors < limit);
    while !pending.is_empty() && budget_left(errors) {
        let mut progressed = false;
        let mut still_pending = Vec::new();
        for (position, &index) in pending.iter().enumerate() {
            if !budget_left(errors) {
                still_pending.extend_from_slice(&pending[position..]);
                break;
            }
            let operation = &operations[index];
            let waiting_on: Vec<String> = operation
                .references()
                .into_iter()
                .filter(|bulk_id| !resolved.contains_key(bulk_id))
                .collect();
            let defined_later = |bulk_id: &String| {
                pending.iter().any(|&other| {
                    other != index
                        && results[other].is_none()
                        && operations[other].method == Some(Method::Post)
                        && operations[other].bulk_id.as_ref() == Some(bulk_id)
                })
            };
            let outcome = if waiting_on.is_empty() {
                run(state, context, operation, &resolved).await
            } else if waiting_on.iter().all(defined_later) {
                still_pending.push(index);
                continue;
            } else {
                let missing: Vec<&String> = waiting_on.iter().filter(|id| !defined_later(id)).collect();
                Err(conflict(format!(
                    "bulkId {missing:?} is not defined by a successful POST in this request"
                )))
            };
            progressed = true;
            if outcome.is_err() {
                errors += 1;
            }
            if let (Ok(written), Some(bulk_id), Some(Method::Post)) =
                (&outcome, &operation.bulk_id, operation.method)
            {
                resolved.insert(bulk_id.clone(), written.id.clone());
            }
            results[index] = Some(response_entry(state, context, operation, &resolved, outcome));
        }
        pending = still_pending;
        if !progressed {
            // Everything left waits on another pending operation: a cycle.
            for &index in &pending {
                if !budget_left(errors) {
                    break;
                }
                errors += 1;
                let error = conflict("circular bulkId references cannot be resolved".to_owned());
                results[index] =
                    Some(response_entry(state, context, &operations[index], &resolved, Err(error)));
            }
            break;
        }
    }
    tracing::info!(attempted = results.iter().flatten().count(), errors, "BulkFinished");
    results.into_iter().flatten().collect()
}

fn conflict(detail: String) -> ApiError {
    ApiError::Scim(ScimError { status: 409, scim_type: Some(ScimType::InvalidValue), detail })
}

/// Runs one operation after its references are resolved.
async fn run(
    state: &ApiState,
    context: &RequestContext,
    operation: &Operation,
    resolved: &HashMap<String, String>,
) -> ApiResult<Written> {
    let method = operation.method.ok_or_else(|| {
        ApiError::from(ScimError::invalid_syntax(format!(
            "method must be POST, PUT, PATCH or DELETE, got {:?}",
            operation.method_text
        )))
    })?;
    let path = substitute_path(&operation.path, resolved);
    let (kind, id) = parse_path(&path, &state.config.normalized_base_path())?;
    let mut data = operation.data.clone();
    if let Some(data) = &mut data {
        substitute(data, resolved);
    }
    let data = || {
        data.as_ref().ok_or_else(|| {
            ApiError::from(ScimError::invalid_syntax(format!("a bulk {} needs \"data\"", method.as_str())))
        })
    };
    let origin = Origin::new(method.as_str(), format!("{}{path}", state.config.normalized_base_path()));
    let version = operation.version.clone();
    match (method, id) {
        (Method::Post, None) => {
            if operation.bulk_id.is_none() {
                return Err(ScimError::invalid_syntax("a bulk POST needs a bulkId").into());
            }
            operations::create(state, context, kind, data()?, origin).await
        }
        (Method::Put, Some(id)) => {
            operations::replace(state, context, kind, &id, data()?, version, origin).await
        }
        (Method::Patch, Some(id)) => {
            operations::patch(state, context, kind, &id, data()?, version, origin).await
        }
        (Method::Delete, Some(id)) => operations::delete(state, context, kind, &id, version, origin).await,
        (Method::Post, Some(_)) => {
            Err(ScimError::invalid_path("a bulk POST path names a resource type, e.g. /Users").into())
        }
        (_, None) => Err(ScimError::invalid_path(format!(
            "a bulk {} path names one resource, e.g. /Users/<id>",
            method.as_str()
        ))
        .into()),
    }
}

/// `/Users`, `/Groups/<id>` (optionally under the base path) into a kind and an optional id.
fn parse_path(path: &str, base_path: &str) -> ApiResult<(ResourceKind, Option<String>)> {
    let relative = path.split('?').next().unwrap_or(path);
    let relative = if !base_path.is_empty() && relative.starts_with(base_path) {
        &relative[base_path.len()..]
    } else {
        relative
    };
    let mut segments = relative.trim_matches('/').split('/');
    let kind = match segments.next() {
        Some(segment) if segment.eq_ignore_ascii_case("Users") => ResourceKind::User,
        Some(segment) if segment.eq_ignore_ascii_case("Groups") => ResourceKind::Group,
        _ => {
            return Err(ScimError::invalid_path(format!(
                "bulk path {path:?} names neither /Users nor /Groups"
            ))
            .into());
        }
    };
    let id = segments.next().filter(|id| !id.is_empty()).map(str::to_owned);
    if segments.next().is_some() {
        return Err(ScimError::invalid_path(format!("bulk path {path:?} has too many segments")).into());
    }
    Ok((kind, id))
}

/// The BulkResponse entry of one attempted operation.
fn response_entry(
    state: &ApiState,
    context: &RequestContext,
    operation: &Operation,
    resolved: &HashMap<String, String>,
    outcome: ApiResult<Written>,
) -> Value {
    let mut entry = Map::new();
    let method = operation.method.map(Method::as_str).unwrap_or(operation.method_text.as_str());
    entry.insert("method".into(), Value::String(method.to_owned()));
    if let Some(bulk_id) = &operation.bulk_id {
        entry.insert("bulkId".into(), Value::String(bulk_id.clone()));
    }
    match outcome {
        Ok(written) => {
            entry.insert(
                "location".into(),
                Value::String(context.location(written.kind.endpoint(), &written.id)),
            );
            if let Some(stored) = &written.accepted.resource {
                entry.insert("version".into(), Value::String(stored.etag()));
            }
            let status = if operation.method == Some(Method::Post) { 201 } else { written.accepted.status };
            entry.insert("status".into(), Value::String(status.to_string()));
        }
        Err(error) => {
            let path = substitute_path(&operation.path, resolved);
            if let Ok((kind, Some(id))) = parse_path(&path, &state.config.normalized_base_path()) {
                entry.insert("location".into(), Value::String(context.location(kind.endpoint(), &id)));
            }
            entry.insert("status".into(), Value::String(error.status().to_string()));
            entry.insert("response".into(), error.to_json());
        }
    }
    Value::Object(entry)
}

fn member<'v>(body: &'v Value, name: &str) -> Option<&'v Value> {
    body.as_object()?.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_with_and_without_base_path() {
        assert_eq!(parse_path("/Users", "/scim/v2").unwrap(), (ResourceKind::User, None));
        assert_eq!(
            parse_path("/scim/v2/Groups/g1", "/scim/v2").unwrap(),
            (ResourceKind::Group, Some("g1".into()))
        );
        assert!(parse_path("/Schemas", "/scim/v2").is_err());
        assert!(parse_path("/Users/a/b", "/scim/v2").is_err());
    }

    #[test]
    fn references_are_found_and_substituted() {
        let operation = Operation::parse(&json!({"method": "PATCH", "path": "/Groups/bulkId:g",
            "data": {"Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:u"}]}]}}));
        let found: Vec<String> = operation.references().into_iter().collect();
        assert_eq!(found, vec!["g".to_owned(), "u".to_owned()]);
        let resolved: HashMap<String, String> =
            [("g".to_owned(), "G1".to_owned()), ("u".to_owned(), "U1".to_owned())].into();
        assert_eq!(substitute_path(&operation.path, &resolved), "/Groups/G1");
        let mut data = operation.data.clone().unwrap();
        substitute(&mut data, &resolved);
        assert_eq!(data["Operations"][0]["value"][0]["value"], "U1");
    }
}
