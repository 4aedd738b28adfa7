//! `scimflow history`: the change history of one User or Group, and the resource as it was at
//! an instant, both read from the command log.
//!
//! The tenant's commands are folded again in log order (the projector's decide/apply), so each
//! entry knows its outcome (accepted with which changes, or rejected with which SCIM error) even
//! though the log stores only requests. An entry is listed when the command targets the resource
//! or one of its accepted changes touches it: for a User, the group membership changes naming it
//! (including groups cleared or deleted while it was a member). Each entry keeps the audit data
//! the command carries: actor (the client's User-Agent), request id, method, path and raw body.
//!
//! `--at T` folds the longest log prefix issued at or before `T` and prints the resource as it
//! was then (for a Group, one page of its members at that time).

use super::{Until, fold_log, open_log, parse_instant};
use scimflow_core::SchemaRegistry;
use scimflow_core::change::{Change, ChangeBody};
use scimflow_core::command::Command;
use scimflow_core::decide::{Decision, format_timestamp};
use scimflow_core::memory::MemoryState;
use scimflow_core::schema::ResourceKind;
use scimflow_core::state::StateView;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    User,
    Group,
}

impl From<KindArg> for ResourceKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::User => ResourceKind::User,
            KindArg::Group => ResourceKind::Group,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The tenant id (`scimflow tenant list` shows it).
    #[arg(long, value_name = "TENANT_ID")]
    pub tenant: String,
    /// `User` or `Group` (any case).
    #[arg(long = "type", value_enum, ignore_case = true)]
    pub kind: KindArg,
    /// The resource id.
    #[arg(long)]
    pub id: String,
    /// Print the resource as it was at this RFC 3339 instant instead of its history.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// With --at on a Group: members per page.
    #[arg(long, default_value_t = 100)]
    pub members_page: usize,
    /// With --at on a Group: start the page after this member id.
    #[arg(long, value_name = "MEMBER_ID")]
    pub members_after: Option<String>,
}

/// One command that touched the resource.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub offset: u64,
    pub issued_at_ms: i64,
    pub actor: String,
    pub request_id: String,
    pub method: String,
    pub path: String,
    /// `accepted 201`, `rejected 409 uniqueness: ...`.
    pub outcome: String,
    /// What the accepted command did to this resource.
    pub effects: Vec<String>,
    pub raw_body: String,
}

pub fn history(args: &HistoryArgs) -> anyhow::Result<Vec<HistoryEntry>> {
    let log = open_log(&args.data_dir)?;
    let registry = SchemaRegistry::standard();
    let kind = ResourceKind::from(args.kind);
    let id = args.id.as_str();
    let mut entries = Vec::new();
    fold_log(
        &log,
        &registry,
        Some(&args.tenant),
        Until::Offset(u64::MAX),
        |offset, command, decision, before| {
            let targets = command.kind == kind && command.resource_id == id;
            let effects = match decision {
                Ok(accepted) => {
                    accepted.changes.iter().filter_map(|change| effect(change, kind, id, before)).collect()
                }
                Err(_) => Vec::new(),
            };
            if targets || !effects.is_empty() {
                entries.push(entry(offset, command, decision, effects));
            }
        },
    )?;
    Ok(entries)
}

fn entry(offset: u64, command: &Command, decision: &Decision, effects: Vec<String>) -> HistoryEntry {
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
        offset,
        issued_at_ms: command.issued_at_ms,
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

pub fn print_history(args: &HistoryArgs, entries: &[HistoryEntry]) {
    if entries.is_empty() {
        println!(
            "no command in the log touches {:?} {} of tenant {} (`scimflow tenant list` shows tenant ids)",
            args.kind, args.id, args.tenant
        );
    }
    for entry in entries {
        println!(
            "{}  offset {}  {}  {} {}",
            format_timestamp(entry.issued_at_ms),
            entry.offset,
            entry.outcome,
            entry.method,
            entry.path
        );
        println!("  actor: {:?}  request: {}", entry.actor, entry.request_id);
        for effect in &entry.effects {
            println!("  {effect}");
        }
        if !entry.raw_body.is_empty() {
            println!("  body: {}", entry.raw_body);
        }
    }
}

/// The resource as of `--at`, rendered as JSON (groups with one page of `members`), or `None`
/// when it did not exist then. Also returns the log offset the state covers.
pub fn at(args: &HistoryArgs, at: &str) -> anyhow::Result<(Option<Value>, u64)> {
    let instant = parse_instant(at)?;
    let log = open_log(&args.data_dir)?;
    let registry = SchemaRegistry::standard();
    let (mut states, offset) =
        fold_log(&log, &registry, Some(&args.tenant), Until::Instant(instant), |_, _, _, _| {})?;
    let state = states.remove(&args.tenant).unwrap_or_default();
    let kind = ResourceKind::from(args.kind);
    let Some(stored) = state.resource(kind, &args.id) else { return Ok((None, offset)) };
    let mut resource = stored.resource;
    if kind == ResourceKind::Group {
        let after = args.members_after.as_deref().unwrap_or("");
        let members: Vec<Value> = state
            .members_of(&args.id)
            .into_iter()
            .filter(|member| member.value.as_str() > after)
            .take(args.members_page.max(1))
            .map(|member| {
                let mut row = json!({"value": member.value, "type": format!("{:?}", member.kind)});
                if let Some(display) = member.display {
                    row["display"] = Value::String(display);
                }
                row
            })
            .collect();
        if let Some(object) = resource.as_object_mut() {
            object.insert("members".into(), Value::Array(members));
        }
    }
    Ok((Some(resource), offset))
}

/// `scimflow history`.
pub fn command(args: HistoryArgs) -> anyhow::Result<()> {
    match &args.at {
        Some(instant) => {
            let (resource, offset) = at(&args, instant)?;
            match resource {
                Some(resource) => {
                    eprintln!("as of {instant} (log offsets before {offset})");
                    println!("{}", serde_json::to_string_pretty(&resource)?);
                }
                None => anyhow::bail!(
                    "{:?} {} did not exist in tenant {} at {instant} (log offsets before {offset}); \
                     run without --at to see its history",
                    args.kind,
                    args.id,
                    args.tenant
                ),
            }
        }
        None => print_history(&args, &history(&args)?),
    }
    Ok(())
}
