//! Request bodies: content type, size and nesting limits, JSON syntax, and the audit copy of a
//! body with secrets scrubbed.
//!
//! Limits are enforced while reading, before any parsing: a body over the limit is 413 as soon
//! as its `Content-Length` (or the bytes read so far) exceed it; nesting deeper than the limit
//! is 400 before `serde_json` recurses into it.

use crate::error::{ApiError, ApiResult};
use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::{Bytes, Payload};
use scimflow_core::ScimError;
use serde_json::Value;

/// Accepts `application/scim+json`, `application/json`, any `+json` type and a missing
/// content type (Okta sends `application/json`, O2); anything else is 415.
pub fn check_content_type(request: &HttpRequest) -> ApiResult<()> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else { return Ok(()) };
    let Ok(text) = value.to_str() else {
        return Err(ApiError::unsupported_media_type("the Content-Type header is not readable text"));
    };
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let accepted = essence.is_empty()
        || essence == "application/json"
        || essence == "application/scim+json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if accepted {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "Content-Type {essence} is not supported; send application/scim+json or application/json"
        )))
    }
}

/// Reads the whole body, at most `limit` bytes.
pub async fn read_limited(request: &HttpRequest, payload: Payload, limit: usize) -> ApiResult<Bytes> {
    let too_large =
        || ApiError::payload_too_large(format!("the request body is larger than the limit of {limit} bytes"));
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            Err(ScimError::invalid_syntax(format!("the request body could not be read: {error}")).into())
        }
        Err(_) => Err(too_large()),
    }
}

/// Parses a JSON object body: 400 `invalidSyntax` for malformed JSON, a non-object, or nesting
/// deeper than `max_depth`.
pub fn parse_json_object(bytes: &[u8], max_depth: usize) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::invalid_syntax("the request needs a JSON body").into());
    }
    let depth = json_depth(bytes);
    if depth > max_depth {
        return Err(ScimError::invalid_syntax(format!(
            "the JSON body nests {depth} levels deep; at most {max_depth} are accepted"
        ))
        .into());
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| ScimError::invalid_syntax(format!("the request body is not valid JSON: {error}")))?;
    if !value.is_object() {
        return Err(ScimError::invalid_syntax("the request body must be a JSON object").into());
    }
    Ok(value)
}

/// Reads and parses a JSON object body with the given limits.
pub async fn read_json(
    request: &HttpRequest,
    payload: Payload,
    limit: usize,
    max_depth: usize,
) -> ApiResult<(Value, Bytes)> {
    check_content_type(request)?;
    let bytes = read_limited(request, payload, limit).await?;
    let value = parse_json_object(&bytes, max_depth)?;
    Ok((value, bytes))
}

/// The deepest nesting of arrays and objects in `bytes`, ignoring brackets inside strings. Runs
/// in one pass without recursion, so it is safe on hostile input.
pub fn json_depth(bytes: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The placeholder that replaces secret values in the audit copy of a request.
pub const REDACTED: &str = "[redacted]";

/// A copy of a request body for the audit trail, with every `password` value (at any depth,
/// also URN-qualified, and the `value` of PATCH operations whose `path` names `password`)
/// replaced by [`REDACTED`]. scimflow never stores passwords; neither may the log.
pub fn scrub_secrets(body: &Value) -> Value {
    let mut copy = body.clone();
    scrub_in_place(&mut copy);
    copy
}

fn is_secret_name(name: &str) -> bool {
    let last = name.rsplit(':').next().unwrap_or(name);
    last.eq_ignore_ascii_case("password")
}

/// Whether a PATCH `path` addresses `password` (`password`, `urn:...:User:password`).
fn is_secret_path(path: &str) -> bool {
    let without_filter = path.split('[').next().unwrap_or(path);
    let last_segment = without_filter.rsplit(':').next().unwrap_or(without_filter);
    let attribute = last_segment.split('.').next().unwrap_or(last_segment);
    attribute.eq_ignore_ascii_case("password")
}

fn scrub_in_place(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let op_targets_secret = object
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case("path"))
                .and_then(|(_, path)| path.as_str())
                .is_some_and(is_secret_path);
            for (key, child) in object.iter_mut() {
                let secret = is_secret_name(key) || (op_targets_secret && key.eq_ignore_ascii_case("value"));
                if secret && !child.is_null() {
                    *child = Value::String(REDACTED.to_owned());
                } else {
                    scrub_in_place(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_in_place),
        _ => {}
    }
}

/// The audit bytes of a request body: the scrubbed JSON.
pub fn audit_bytes(body: &Value) -> Vec<u8> {
    serde_json::to_vec(&scrub_secrets(body)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a":[{"b":"[[[{{{"}]}"#), 3);
        assert_eq!(json_depth(br#"{"a":"\"{"}"#), 1);
        assert_eq!(json_depth(b"1"), 0);
    }

    #[test]
    fn deep_and_malformed_bodies_are_invalid_syntax() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let error = parse_json_object(deep.as_bytes(), 32).unwrap_err();
        assert_eq!(error.to_json()["scimType"], "invalidSyntax");
        let error = parse_json_object(b"{\"a\":", 32).unwrap_err();
        assert_eq!(error.to_json()["scimType"], "invalidSyntax");
        let error = parse_json_object(b"[1]", 32).unwrap_err();
        assert_eq!(error.status(), 400);
    }

    #[test]
    fn passwords_are_scrubbed_everywhere() {
        let body = json!({
            "userName": "a",
            "password": "hunter2",
            "urn:x:Ext": {"Password": "p"},
            "Operations": [
                {"op": "replace", "path": "password", "value": "s3cret"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:password", "value": "urnpw"},
                {"op": "replace", "value": {"password": "t0p"}},
                {"op": "replace", "path": "active", "value": true}
            ]
        });
        let scrubbed = scrub_secrets(&body);
        let text = scrubbed.to_string();
        for secret in ["hunter2", "\"p\"", "s3cret", "t0p", "urnpw"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert_eq!(scrubbed["Operations"][3]["value"], true);
        assert_eq!(scrubbed["userName"], "a");
    }
}
