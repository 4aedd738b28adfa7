//! Commands: a validated SCIM write, as it is appended to the log, and its protobuf envelope.
//!
//! Everything the fold needs to be deterministic travels in the command: the resource id of a
//! create, the ingest time used for `meta` timestamps, and the already-normalised resource JSON.
//! Audit data (raw request, actor, trace ids) rides along but never influences the fold.

use crate::error::{ScimError, ScimResult};
use crate::filter::parse_patch_path;
use crate::patch::{PatchOpKind, PatchOperation};
use crate::schema::ResourceKind;
use prost::Message;
use scimflow_proto as pb;
use serde_json::Value;

/// The envelope version this code writes. Readers accept every version up to this one.
pub const COMMAND_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST: the normalised resource (for groups, including `members`).
    Create(Value),
    /// PUT: the normalised replacement.
    Replace(Value),
    /// PATCH: parsed operations.
    Patch(Vec<PatchOperation>),
    Delete,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create(_) => "create",
            Action::Replace(_) => "replace",
            Action::Patch(_) => "patch",
            Action::Delete => "delete",
        }
    }
}

/// Audit and tracing data carried with a command; never read by the fold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandMetadata {
    pub causation_id: String,
    pub correlation_id: String,
    pub actor: String,
    /// W3C `traceparent` of the span that appended the command; empty when tracing is off.
    pub traceparent: String,
    pub raw_method: String,
    pub raw_path: String,
    pub raw_body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub event_id: String,
    pub tenant_id: String,
    pub kind: ResourceKind,
    pub resource_id: String,
    pub issued_at_ms: i64,
    /// `If-Match` precondition, as sent.
    pub if_match: Option<String>,
    pub action: Action,
    pub metadata: CommandMetadata,
}

pub fn kind_to_proto(kind: ResourceKind) -> pb::ResourceType {
    match kind {
        ResourceKind::User => pb::ResourceType::User,
        ResourceKind::Group => pb::ResourceType::Group,
    }
}

pub fn kind_from_proto(value: i32) -> ScimResult<ResourceKind> {
    match pb::ResourceType::try_from(value) {
        Ok(pb::ResourceType::User) => Ok(ResourceKind::User),
        Ok(pb::ResourceType::Group) => Ok(ResourceKind::Group),
        _ => Err(ScimError::invalid_syntax(format!("unknown resource type {value} in command"))),
    }
}

impl Command {
    pub fn to_proto(&self) -> pb::CommandEnvelope {
        let command = match &self.action {
            Action::Create(resource) => pb::command_envelope::Command::Create(pb::CreateResource {
                resource_json: resource.to_string(),
            }),
            Action::Replace(resource) => pb::command_envelope::Command::Replace(pb::ReplaceResource {
                resource_json: resource.to_string(),
            }),
            Action::Patch(operations) => pb::command_envelope::Command::Patch(pb::PatchResource {
                operations: operations.iter().map(operation_to_proto).collect(),
            }),
            Action::Delete => pb::command_envelope::Command::Delete(pb::DeleteResource {}),
        };
        pb::CommandEnvelope {
            schema_version: COMMAND_SCHEMA_VERSION,
            event_id: self.event_id.clone(),
            tenant_id: self.tenant_id.clone(),
            resource_type: kind_to_proto(self.kind) as i32,
            resource_id: self.resource_id.clone(),
            causation_id: self.metadata.causation_id.clone(),
            correlation_id: self.metadata.correlation_id.clone(),
            issued_at_unix_ms: self.issued_at_ms,
            raw_request: Some(pb::RawRequest {
                method: self.metadata.raw_method.clone(),
                path: self.metadata.raw_path.clone(),
                body: self.metadata.raw_body.clone(),
            }),
            if_match: self.if_match.clone().unwrap_or_default(),
            actor: self.metadata.actor.clone(),
            traceparent: self.metadata.traceparent.clone(),
            command: Some(command),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes a log record. A record that cannot be decoded is a poison record: the caller
    /// rejects it with this error and moves on, it never blocks the partition.
    pub fn decode(bytes: &[u8]) -> ScimResult<Command> {
        let envelope = pb::CommandEnvelope::decode(bytes)
            .map_err(|error| ScimError::invalid_syntax(format!("undecodable command: {error}")))?;
        Command::from_proto(envelope)
    }

    pub fn from_proto(envelope: pb::CommandEnvelope) -> ScimResult<Command> {
        if envelope.schema_version > COMMAND_SCHEMA_VERSION {
            return Err(ScimError::invalid_syntax(format!(
                "command schema version {} is newer than this build understands ({}); upgrade the projector",
                envelope.schema_version, COMMAND_SCHEMA_VERSION
            )));
        }
        let kind = kind_from_proto(envelope.resource_type)?;
        let action = match envelope.command {
            Some(pb::command_envelope::Command::Create(create)) => {
                Action::Create(parse_json(&create.resource_json)?)
            }
            Some(pb::command_envelope::Command::Replace(replace)) => {
                Action::Replace(parse_json(&replace.resource_json)?)
            }
            Some(pb::command_envelope::Command::Patch(patch)) => {
                Action::Patch(patch.operations.iter().map(operation_from_proto).collect::<ScimResult<_>>()?)
            }
            Some(pb::command_envelope::Command::Delete(_)) => Action::Delete,
            None => return Err(ScimError::invalid_syntax("command without a known kind")),
        };
        let raw = envelope.raw_request.unwrap_or_default();
        Ok(Command {
            event_id: envelope.event_id,
            tenant_id: envelope.tenant_id,
            kind,
            resource_id: envelope.resource_id,
            issued_at_ms: envelope.issued_at_unix_ms,
            if_match: (!envelope.if_match.is_empty()).then_some(envelope.if_match),
            action,
            metadata: CommandMetadata {
                causation_id: envelope.causation_id,
                correlation_id: envelope.correlation_id,
                actor: envelope.actor,
                traceparent: envelope.traceparent,
                raw_method: raw.method,
                raw_path: raw.path,
                raw_body: raw.body,
            },
        })
    }
}

fn parse_json(text: &str) -> ScimResult<Value> {
    serde_json::from_str(text)
        .map_err(|error| ScimError::invalid_syntax(format!("command carries invalid JSON: {error}")))
}

fn operation_to_proto(operation: &PatchOperation) -> pb::PatchOperation {
    let op = match operation.op {
        PatchOpKind::Add => pb::patch_operation::Op::Add,
        PatchOpKind::Replace => pb::patch_operation::Op::Replace,
        PatchOpKind::Remove => pb::patch_operation::Op::Remove,
    };
    pb::PatchOperation {
        op: op as i32,
        path: operation.raw_path.clone().unwrap_or_default(),
        value_json: operation.value.as_ref().map(Value::to_string).unwrap_or_default(),
    }
}

fn operation_from_proto(operation: &pb::PatchOperation) -> ScimResult<PatchOperation> {
    let op = match pb::patch_operation::Op::try_from(operation.op) {
        Ok(pb::patch_operation::Op::Add) => PatchOpKind::Add,
        Ok(pb::patch_operation::Op::Replace) => PatchOpKind::Replace,
        Ok(pb::patch_operation::Op::Remove) => PatchOpKind::Remove,
        _ => return Err(ScimError::invalid_syntax("patch operation without a known op")),
    };
    let (raw_path, path) = if operation.path.is_empty() {
        (None, None)
    } else {
        (Some(operation.path.clone()), Some(parse_patch_path(&operation.path)?))
    };
    let value = if operation.value_json.is_empty() { None } else { Some(parse_json(&operation.value_json)?) };
    Ok(PatchOperation { op, raw_path, path, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_context_survives_the_envelope() {
        let command = Command {
            event_id: "e-1".into(),
            tenant_id: "acme".into(),
            kind: ResourceKind::User,
            resource_id: "u-1".into(),
            issued_at_ms: 1,
            if_match: None,
            action: Action::Delete,
            metadata: CommandMetadata {
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
                ..CommandMetadata::default()
            },
        };
        let decoded = Command::decode(&command.encode()).unwrap();
        assert_eq!(decoded.metadata.traceparent, command.metadata.traceparent);
    }
}
