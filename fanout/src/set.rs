//! Security Event Tokens (RFC 8417) carrying SCIM events (RFC 9967), signed with HS256.
//!
//! One change is one SET: `jti` is the change id (stable across redeliveries, so a receiver
//! deduplicates on it), `txn` the command's event id (shared by all changes of one request).
//! How changes map to events:
//!
//! | change | event | payload |
//! |---|---|---|
//! | upsert, created | `prov:create:full` | `version`, `data` = the resource |
//! | upsert, changed | `prov:put:full` | `version`, `data` = the full resulting resource (replace semantics, whatever the request was) |
//! | deleted | `prov:delete` | `version` |
//! | members added / removed / cleared | `prov:patch:full` on the group | `version`, `data` = a `PatchOp` (`add members`, `remove members[value eq "…"]`, `remove members`) |
//!
//! `activate`/`deactivate` are not emitted: a change carries the resulting state, not the
//! previous one, so fanout cannot tell a transition; the `active` attribute is in `data`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use scimflow_proto as pb;
use scimflow_proto::change_envelope::Change;
use serde_json::{Value, json};
use sha2::Sha256;

pub const EVENT_CREATE_FULL: &str = "urn:ietf:params:scim:event:prov:create:full";
pub const EVENT_PUT_FULL: &str = "urn:ietf:params:scim:event:prov:put:full";
pub const EVENT_PATCH_FULL: &str = "urn:ietf:params:scim:event:prov:patch:full";
pub const EVENT_DELETE: &str = "urn:ietf:params:scim:event:prov:delete";
const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Who signs and for whom.
#[derive(Debug, Clone)]
pub struct SetSigner {
    pub issuer: String,
    pub audience: String,
    pub key_id: Option<String>,
    pub secret: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SetError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("signature does not verify")]
    BadSignature,
    #[error("unexpected header: {0}")]
    Header(String),
    #[error("claims are not JSON: {0}")]
    Claims(String),
}

/// The SET claims of one change (unsigned), or `None` for a change kind this version does not
/// know (newer schema): it is skipped rather than sent as something it is not.
pub fn claims(envelope: &pb::ChangeEnvelope, issuer: &str, audience: &str, now_unix_s: i64) -> Option<Value> {
    let endpoint = match pb::ResourceType::try_from(envelope.resource_type) {
        Ok(pb::ResourceType::Group) => "Groups",
        _ => "Users",
    };
    let version = format!("W/\"{}\"", envelope.resource_version);
    let mut sub_id = json!({"format": "scim", "uri": format!("/{endpoint}/{}", envelope.resource_id)});
    let (uri, payload) = match envelope.change.as_ref()? {
        Change::Upserted(upserted) => {
            let data: Value = serde_json::from_str(&upserted.resource_json).unwrap_or(Value::Null);
            if let Some(external_id) = data.get("externalId") {
                sub_id["externalId"] = external_id.clone();
            }
            let uri = if upserted.created { EVENT_CREATE_FULL } else { EVENT_PUT_FULL };
            (uri, json!({"version": version, "data": data}))
        }
        Change::Deleted(_) => (EVENT_DELETE, json!({"version": version})),
        Change::MembersAdded(added) => {
            let members: Vec<Value> = added
                .members
                .iter()
                .map(|member| {
                    let mut value = json!({"value": member.value});
                    if !member.display.is_empty() {
                        value["display"] = json!(member.display);
                    }
                    if let Ok(pb::ResourceType::Group) = pb::ResourceType::try_from(member.r#type) {
                        value["type"] = json!("Group");
                    } else {
                        value["type"] = json!("User");
                    }
                    value
                })
                .collect();
            (
                EVENT_PATCH_FULL,
                patch(&version, vec![json!({"op": "add", "path": "members", "value": members})]),
            )
        }
        Change::MembersRemoved(removed) => {
            let operations = removed
                .values
                .iter()
                .map(|value| {
                    let quoted = serde_json::to_string(value).unwrap_or_default();
                    json!({"op": "remove", "path": format!("members[value eq {quoted}]")})
                })
                .collect();
            (EVENT_PATCH_FULL, patch(&version, operations))
        }
        Change::MembersCleared(_) => {
            (EVENT_PATCH_FULL, patch(&version, vec![json!({"op": "remove", "path": "members"})]))
        }
    };
    Some(json!({
        "iss": issuer,
        "iat": now_unix_s,
        "jti": envelope.change_id,
        "aud": audience,
        "txn": envelope.command_event_id,
        "toe": envelope.occurred_at_unix_ms / 1000,
        "sub_id": sub_id,
        "tenant": envelope.tenant_id,
        "events": { uri: payload },
    }))
}

fn patch(version: &str, operations: Vec<Value>) -> Value {
    json!({"version": version, "data": {"schemas": [PATCH_OP_SCHEMA], "Operations": operations}})
}

impl SetSigner {
    /// The compact JWS (`header.claims.signature`) of `claims`, `typ` = `secevent+jwt`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = json!({"alg": "HS256", "typ": "secevent+jwt"});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = mac(&self.secret, signing_input.as_bytes()).finalize().into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The signed SET of one change (see [`claims`]).
    pub fn encode(&self, envelope: &pb::ChangeEnvelope, now_unix_s: i64) -> Option<String> {
        claims(envelope, &self.issuer, &self.audience, now_unix_s).map(|claims| self.sign(&claims))
    }
}

fn mac(secret: &[u8], input: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(input);
    mac
}

/// Verifies an HS256 SET and returns its claims; what a receiver does first. The comparison is
/// constant-time (`verify_slice`), and only `alg: HS256` is accepted so a token cannot choose
/// a weaker algorithm (`none`).
pub fn verify(token: &str, secret: &[u8]) -> Result<Value, SetError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SetError::Malformed);
    };
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|_| SetError::Malformed)?)
            .map_err(|_| SetError::Malformed)?;
    if header.get("alg") != Some(&json!("HS256")) {
        return Err(SetError::Header(format!("alg {}", header["alg"])));
    }
    if header.get("typ") != Some(&json!("secevent+jwt")) {
        return Err(SetError::Header(format!("typ {}", header["typ"])));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| SetError::Malformed)?;
    let signing_input_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    mac(secret, &token.as_bytes()[..signing_input_len])
        .verify_slice(&signature)
        .map_err(|_| SetError::BadSignature)?;
    let claims = URL_SAFE_NO_PAD.decode(claims).map_err(|_| SetError::Malformed)?;
    serde_json::from_slice(&claims).map_err(|error| SetError::Claims(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> SetSigner {
        SetSigner {
            issuer: "https://scim.example".into(),
            audience: "https://chat.example/events".into(),
            key_id: Some("k1".into()),
            secret: b"top secret".to_vec(),
        }
    }

    fn envelope(change: Change) -> pb::ChangeEnvelope {
        pb::ChangeEnvelope {
            schema_version: 1,
            change_id: "cmd-1/0".into(),
            command_event_id: "cmd-1".into(),
            tenant_id: "acme".into(),
            resource_type: pb::ResourceType::User as i32,
            resource_id: "u1".into(),
            resource_version: 3,
            occurred_at_unix_ms: 1_700_000_000_123,
            correlation_id: String::new(),
            traceparent: String::new(),
            change: Some(change),
        }
    }

    #[test]
    fn a_created_user_becomes_a_signed_create_full_event_that_verifies() {
        let upsert = Change::Upserted(pb::ResourceUpserted {
            resource_json: r#"{"id":"u1","externalId":"ext","userName":"alice"}"#.into(),
            created: true,
        });
        let token = signer().encode(&envelope(upsert), 1_700_000_001).unwrap();
        let claims = verify(&token, b"top secret").unwrap();
        assert_eq!(claims["jti"], "cmd-1/0");
        assert_eq!(claims["txn"], "cmd-1");
        assert_eq!(claims["aud"], "https://chat.example/events");
        assert_eq!(claims["iat"], 1_700_000_001);
        assert_eq!(claims["sub_id"], json!({"format": "scim", "uri": "/Users/u1", "externalId": "ext"}));
        assert_eq!(claims["events"][EVENT_CREATE_FULL]["data"]["userName"], "alice");
        assert_eq!(claims["events"][EVENT_CREATE_FULL]["version"], "W/\"3\"");
    }

    #[test]
    fn a_set_signed_with_another_key_or_tampered_with_is_refused() {
        let token = signer().encode(&envelope(Change::Deleted(pb::ResourceDeleted {})), 0).unwrap();
        assert_eq!(verify(&token, b"other"), Err(SetError::BadSignature));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"jti":"x"}"#);
        parts[1] = &forged;
        assert_eq!(verify(&parts.join("."), b"top secret"), Err(SetError::BadSignature));
    }

    #[test]
    fn an_unsigned_set_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"secevent+jwt"}"#);
        let claims = URL_SAFE_NO_PAD.encode("{}");
        assert!(matches!(verify(&format!("{header}.{claims}."), b"k"), Err(SetError::Header(_))));
    }

    #[test]
    fn membership_changes_become_patch_operations_on_the_group() {
        let mut removed =
            envelope(Change::MembersRemoved(pb::MembersRemoved { values: vec!["u\"2".into()] }));
        removed.resource_type = pb::ResourceType::Group as i32;
        let claims = claims(&removed, "i", "a", 0).unwrap();
        assert_eq!(claims["sub_id"]["uri"], "/Groups/u1");
        assert_eq!(
            claims["events"][EVENT_PATCH_FULL]["data"]["Operations"],
            json!([{"op": "remove", "path": "members[value eq \"u\\\"2\"]"}])
        );
    }

    #[test]
    fn an_update_is_a_put_full_event_with_the_resulting_state() {
        let upsert = Change::Upserted(pb::ResourceUpserted {
            resource_json: r#"{"active":false}"#.into(),
            created: false,
        });
        let claims = claims(&envelope(upsert), "i", "a", 0).unwrap();
        assert_eq!(claims["events"][EVENT_PUT_FULL]["data"], json!({"active": false}));
    }
}
