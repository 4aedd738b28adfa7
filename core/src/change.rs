//! Applied changes: what a successful command did, as published for fanout and folded by
//! [`crate::apply`]. Rejected commands produce none.

use crate::command::{kind_from_proto, kind_to_proto};
use crate::error::{ScimError, ScimResult};
use crate::schema::ResourceKind;
use crate::state::Member;
use scimflow_proto as pb;
use serde_json::Value;

pub const CHANGE_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub enum ChangeBody {
    /// The resource's full resulting state (groups without members).
    Upserted {
        resource: Value,
        created: bool,
    },
    Deleted,
    MembersAdded(Vec<Member>),
    MembersRemoved(Vec<String>),
    MembersCleared,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: ResourceKind,
    pub resource_id: String,
    /// The resource version after the command (one bump per command and resource).
    pub version: u64,
    pub occurred_at_ms: i64,
    pub body: ChangeBody,
}

impl Change {
    /// The protobuf envelope; `change_id` is `<command event id>/<index>`, stable across
    /// redeliveries and replays so consumers can deduplicate.
    pub fn to_proto(
        &self,
        tenant_id: &str,
        command_event_id: &str,
        index: usize,
        correlation_id: &str,
    ) -> pb::ChangeEnvelope {
        let change = match &self.body {
            ChangeBody::Upserted { resource, created } => {
                pb::change_envelope::Change::Upserted(pb::ResourceUpserted {
                    resource_json: resource.to_string(),
                    created: *created,
                })
            }
            ChangeBody::Deleted => pb::change_envelope::Change::Deleted(pb::ResourceDeleted {}),
            ChangeBody::MembersAdded(members) => {
                pb::change_envelope::Change::MembersAdded(pb::MembersAdded {
                    members: members
                        .iter()
                        .map(|member| pb::Member {
                            value: member.value.clone(),
                            r#type: kind_to_proto(member.kind) as i32,
                            display: member.display.clone().unwrap_or_default(),
                        })
                        .collect(),
                })
            }
            ChangeBody::MembersRemoved(values) => {
                pb::change_envelope::Change::MembersRemoved(pb::MembersRemoved { values: values.clone() })
            }
            ChangeBody::MembersCleared => pb::change_envelope::Change::MembersCleared(pb::MembersCleared {}),
        };
        pb::ChangeEnvelope {
            schema_version: CHANGE_SCHEMA_VERSION,
            change_id: format!("{command_event_id}/{index}"),
            command_event_id: command_event_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            resource_type: kind_to_proto(self.kind) as i32,
            resource_id: self.resource_id.clone(),
            resource_version: self.version,
            occurred_at_unix_ms: self.occurred_at_ms,
            correlation_id: correlation_id.to_owned(),
            // Set by the projector from its span; the domain knows nothing of tracing.
            traceparent: String::new(),
            change: Some(change),
        }
    }

    pub fn from_proto(envelope: &pb::ChangeEnvelope) -> ScimResult<Change> {
        let body = match &envelope.change {
            Some(pb::change_envelope::Change::Upserted(upserted)) => ChangeBody::Upserted {
                resource: serde_json::from_str(&upserted.resource_json).map_err(|error| {
                    ScimError::invalid_syntax(format!("change carries invalid JSON: {error}"))
                })?,
                created: upserted.created,
            },
            Some(pb::change_envelope::Change::Deleted(_)) => ChangeBody::Deleted,
            Some(pb::change_envelope::Change::MembersAdded(added)) => ChangeBody::MembersAdded(
                added
                    .members
                    .iter()
                    .map(|member| {
                        Ok(Member {
                            value: member.value.clone(),
                            kind: kind_from_proto(member.r#type)?,
                            display: (!member.display.is_empty()).then(|| member.display.clone()),
                        })
                    })
                    .collect::<ScimResult<_>>()?,
            ),
            Some(pb::change_envelope::Change::MembersRemoved(removed)) => {
                ChangeBody::MembersRemoved(removed.values.clone())
            }
            Some(pb::change_envelope::Change::MembersCleared(_)) => ChangeBody::MembersCleared,
            None => return Err(ScimError::invalid_syntax("change without a known kind")),
        };
        Ok(Change {
            kind: kind_from_proto(envelope.resource_type)?,
            resource_id: envelope.resource_id.clone(),
            version: envelope.resource_version,
            occurred_at_ms: envelope.occurred_at_unix_ms,
            body,
        })
    }
}
