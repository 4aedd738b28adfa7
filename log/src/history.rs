//! The change history of one User or Group, and a tenant's state as of an instant, both read
//! from the command log ([`crate::scan`]). Shared by `scimflow history` and the API's history
//! endpoints.
//!
//! The tenant's commands are folded again in log order (the projector's decide/apply), so each
//! entry knows its outcome (accepted with which changes, or rejected with which SCIM error) even
//! though the log stores only requests. An entry is listed when the command targets the resource
//! or one of its accepted changes touches it: for a User, the group membership changes naming it
//! (including groups cleared or deleted while it was a member). Each entry keeps the audit data
//! the command carries: actor (the client's User-Agent, i.e. which IdP), request id, method,
//! path and raw body (passwords scrubbed at ingest).
//!
//! Cost: a read folds the tenant's whole command history (one partition of the log), so it takes
//! time proportional to the tenant's log, and memory proportional to its state. Meant for audit
//! and support, not for hot paths.

use crate::port::{LogError, LogReader};
use crate::scan::{LogPosition, Until, fold_log};
use scimflow_core::SchemaRegistry;
use scimflow_core::change::{Change, ChangeBody};
use scimflow_core::command::Command;
use scimflow_core::decide::{Decision, format_timestamp};
use scimflow_core::memory::MemoryState;
use scimflow_core::schema::ResourceKind;
use scimflow_core::state::{Member, StateView};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One command that touched the resource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub partition: u32,
    pub offset: u64,
    /// RFC 3339, the command's ingest time.
    pub issued_at: String,
    #[serde(skip)]
    pub issued_at_ms: i64,
    pub event_id: String,
    /// The client that sent it (its User-Agent): which IdP.
    pub actor: String,
    pub request_id: String,
    pub method: String,
    pub path: String,
    /// `accepted 201`, `rejected 409 uniqueness: ...`.
    pub outcome: String,
    /// What the accepted command did to this resource.
    pub effects: Vec<String>,
    /// The request body as received (passwords scrubbed).
    pub raw_body: String,
}

/// Every command of `tenant` that touched `(kind, id)`, oldest first.
pub fn history(
    log: &dyn LogReader,
    registry: &SchemaRegistry,
    tenant: &str,
    kind: ResourceKind,
    id: &str,
) -> Result<Vec<HistoryEntry>, LogError> {
    let mut entries = Vec::new();
    fold_log(log, registry, Some(tenant), &Until::End, |position, command, decision, before| {
        let targets = command.kind == kind && command.resource_id == id;
        let effects = match decision {
            Ok(accepted) => {
                accepted.changes.iter().filter_map(|change| effect(change, kind, id, before)).collect()
            }
            Err(_) => Vec::new(),
        };
        if targets || !effects.is_empty() {
            entries.push(entry(position, command, decision, effects));
        }
    })?;
    Ok(entries)
}

fn entry(
    position: LogPosition,
    command: &Command,
    decision: &Decision,
    effects: Vec<String>,
) -> HistoryEntry {
    let outcome = match decision {
        Ok(accepted) if accepted.skipped_members.is_empty() => format!("accepted {}", accepted.status),
        Ok(accepted) => format!(
            "accepted {} (skipped unknown members: {})",
            accepted.status,
            accepted.skipped_members.join(", ")
        ),
        Err(error) => format!("rejected {error}"),
    };
    HistoryEntry {
        partition: position.partition,
        offset: position.offset,
        issued_at: format_timestamp(command.issued_at_ms),
        issued_at_ms: command.issued_at_ms,
        event_id: command.event_id.clone(),
        actor: command.metadata.actor.clone(),
        request_id: command.metadata.causation_id.clone(),
        method: command.metadata.raw_method.clone(),
        path: command.metadata.raw_path.clone(),
        outcome,
        effects,
        raw_body: String::from_utf8_lossy(&command.metadata.raw_body).into_owned(),
    }
}

/// What `change` did to the resource `(kind, id)`, if anything.
fn effect(change: &Change, kind: ResourceKind, id: &str, before: &MemoryState) -> Option<String> {
    let own = change.kind == kind && change.resource_id == id;
    let group = &change.resource_id;
    match &change.body {
        ChangeBody::Upserted { created: true, .. } if own => {
            Some(format!("created at version {}", change.version))
        }
        ChangeBody::Upserted { .. } if own => Some(format!("updated to version {}", change.version)),
        ChangeBody::Deleted if own => Some(format!("deleted (was version {})", change.version - 1)),
        ChangeBody::MembersAdded(members) if own => Some(format!(
            "members added: {} (version {})",
            members.iter().map(|member| member.value.as_str()).collect::<Vec<_>>().join(", "),
            change.version
        )),
        ChangeBody::MembersRemoved(values) if own => {
            Some(format!("members removed: {} (version {})", values.join(", "), change.version))
        }
        ChangeBody::MembersCleared if own => {
            Some(format!("all members removed (version {})", change.version))
        }
        ChangeBody::MembersAdded(members) if members.iter().any(|member| member.value == id) => {
            Some(format!("added to group {group}"))
        }
        ChangeBody::MembersRemoved(values) if values.iter().any(|value| value == id) => {
            Some(format!("removed from group {group}"))
        }
        ChangeBody::MembersCleared if before.is_member(group, id) => {
            Some(format!("removed from group {group} (cleared)"))
        }
        _ => None,
    }
}

/// `tenant`'s state folded from the longest log prefix issued at or before `unix_ms`, and the
/// offset each partition's prefix ends before.
pub fn state_at(
    log: &dyn LogReader,
    registry: &SchemaRegistry,
    tenant: &str,
    unix_ms: i64,
) -> Result<(MemoryState, BTreeMap<u32, u64>), LogError> {
    let mut folded = fold_log(log, registry, Some(tenant), &Until::Instant(unix_ms), |_, _, _, _| {})?;
    Ok((folded.states.remove(tenant).unwrap_or_default(), folded.stopped_at))
}

/// An RFC 3339 instant as Unix milliseconds (`None` if it is not one).
pub fn parse_instant(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|instant| instant.timestamp_millis())
}

/// A membership as SCIM renders it in a group's `members`.
pub fn member_json(member: &Member) -> Value {
    let mut row = json!({"value": member.value, "type": member.kind.name()});
    if let Some(display) = &member.display {
        row["display"] = Value::String(display.clone());
    }
    row
}

/// The resource as `state` holds it; a Group with `members` set to the members whose ids come
/// after `members_after`, at most `members_page` of them.
pub fn resource_json(
    state: &MemoryState,
    kind: ResourceKind,
    id: &str,
    members_after: Option<&str>,
    members_page: usize,
) -> Option<Value> {
    let stored = state.resource(kind, id)?;
    let mut resource = stored.resource;
    if kind == ResourceKind::Group {
        let after = members_after.unwrap_or("");
        let members: Vec<Value> = state
            .members
            .get(id)
            .into_iter()
            .flat_map(|members| members.values())
            .filter(|member| member.value.as_str() > after)
            .take(members_page.max(1))
            .map(member_json)
            .collect();
        if let Some(object) = resource.as_object_mut() {
            object.insert("members".into(), Value::Array(members));
        }
    }
    Some(resource)
}
