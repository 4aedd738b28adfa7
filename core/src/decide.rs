//! `decide(view, command)`: the pure decision of what a command does, or why it is rejected.
//!
//! Decisions read only the rows the command names (the target resource, the unique index keys it
//! would take, the memberships it adds or removes, the groups of a deleted member). Membership is
//! handled as deltas, so a PATCH adding one member to a million-member group costs the same as
//! adding it to an empty one.

use crate::change::{Change, ChangeBody};
use crate::command::{Action, Command};
use crate::error::{ScimError, ScimResult};
use crate::index::{IndexName, index_entries};
use crate::patch::{MembershipChange, apply_patch};
use crate::resource::{MemberRef, replace_resource, split_members};
use crate::schema::{ResourceKind, SchemaRegistry};
use crate::state::{Member, StateView, StoredResource, etag};
use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

/// What an accepted command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// 201 for a create, 200 for replace/patch, 204 for delete.
    pub status: u16,
    /// The resulting resource (groups without members); `None` after a delete.
    pub resource: Option<StoredResource>,
    pub changes: Vec<Change>,
    /// Member ids a membership change named but that do not exist in the tenant: skipped, not
    /// fatal, because IdPs treat a 400 on a membership PATCH as permanent (Okta O11).
    pub skipped_members: Vec<String>,
}

pub type Decision = Result<Accepted, ScimError>;

/// RFC 3339 UTC with milliseconds, from the command's ingest time.
pub fn format_timestamp(unix_ms: i64) -> String {
    DateTime::from_timestamp_millis(unix_ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn decide<V: StateView + ?Sized>(registry: &SchemaRegistry, view: &V, command: &Command) -> Decision {
    match &command.action {
        Action::Create(resource) => decide_create(view, command, resource.clone()),
        Action::Replace(replacement) => decide_replace(registry, view, command, replacement),
        Action::Patch(operations) => {
            let current = existing(view, command)?;
            let patched = apply_patch(registry, command.kind, &current.resource, operations)?;
            decide_update(view, command, current, patched.resource, patched.membership)
        }
        Action::Delete => decide_delete(view, command),
    }
}

fn existing<V: StateView + ?Sized>(view: &V, command: &Command) -> ScimResult<StoredResource> {
    let current = view.resource(command.kind, &command.resource_id).ok_or_else(|| {
        ScimError::not_found(format!("{} {} not found", command.kind.name(), command.resource_id))
    })?;
    check_if_match(command.if_match.as_deref(), &current)?;
    Ok(current)
}

/// `If-Match` (RFC 7232 §3.1 with weak comparison, as SCIM ETags are weak): `*` or any listed
/// tag equal to the current version.
fn check_if_match(if_match: Option<&str>, current: &StoredResource) -> ScimResult<()> {
    let Some(header) = if_match else { return Ok(()) };
    let current_tag = opaque_tag(&current.etag()).to_owned();
    let matched = header.split(',').map(str::trim).any(|tag| tag == "*" || opaque_tag(tag) == current_tag);
    if matched {
        Ok(())
    } else {
        Err(ScimError::precondition_failed(format!(
            "If-Match {header} does not match the current version {}; GET the resource and retry with its ETag",
            current.etag()
        )))
    }
}

fn opaque_tag(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Fails with 409 `uniqueness` if another resource holds a unique key `resource` would take.
fn check_uniqueness<V: StateView + ?Sized>(
    view: &V,
    kind: ResourceKind,
    id: &str,
    resource: &Value,
) -> ScimResult<()> {
    for (index, key) in index_entries(kind, resource) {
        if !index.is_unique() {
            continue;
        }
        let holders = view.index_lookup(kind, index, &key);
        if holders.iter().any(|holder| holder != id) {
            let value = match index {
                IndexName::UserName => resource.get("userName"),
                IndexName::DisplayName => resource.get("displayName"),
                _ => resource.get("externalId"),
            };
            return Err(ScimError::uniqueness(format!(
                "{} {} is already taken by another {} in this tenant",
                index.as_str(),
                value.cloned().unwrap_or(Value::Null),
                kind.name()
            )));
        }
    }
    Ok(())
}

fn stamp_meta(resource: &mut Value, kind: ResourceKind, created_ms: Option<i64>, now_ms: i64, version: u64) {
    let Some(object) = resource.as_object_mut() else { return };
    let created = match created_ms {
        Some(ms) => Value::String(format_timestamp(ms)),
        None => object
            .get("meta")
            .and_then(|meta| meta.get("created"))
            .cloned()
            .unwrap_or_else(|| Value::String(format_timestamp(now_ms))),
    };
    object.insert(
        "meta".into(),
        json!({
            "resourceType": kind.name(),
            "created": created,
            "lastModified": format_timestamp(now_ms),
            "version": etag(version),
        }),
    );
}

fn decide_create<V: StateView + ?Sized>(view: &V, command: &Command, mut resource: Value) -> Decision {
    let kind = command.kind;
    let id = command.resource_id.as_str();
    if view.resource(kind, id).is_some() {
        return Err(ScimError::uniqueness(format!("{} id {id} already exists", kind.name())));
    }
    let requested_members = match kind {
        ResourceKind::Group => split_members(&mut resource),
        ResourceKind::User => Vec::new(),
    };
    if let Some(object) = resource.as_object_mut() {
        // `id` leads the document, as in the RFC's examples.
        let mut ordered = serde_json::Map::new();
        if let Some(schemas) = object.remove("schemas") {
            ordered.insert("schemas".into(), schemas);
        }
        ordered.insert("id".into(), Value::String(id.to_owned()));
        ordered.extend(std::mem::take(object));
        *object = ordered;
    }
    check_uniqueness(view, kind, id, &resource)?;
    stamp_meta(&mut resource, kind, Some(command.issued_at_ms), command.issued_at_ms, 1);
    let mut changes = vec![Change {
        kind,
        resource_id: id.to_owned(),
        version: 1,
        occurred_at_ms: command.issued_at_ms,
        body: ChangeBody::Upserted { resource: resource.clone(), created: true },
    }];
    let mut skipped = Vec::new();
    if !requested_members.is_empty() {
        let mut planner = MembershipPlanner::new(view, id);
        planner.add(&requested_members)?;
        skipped = planner.skipped.clone();
        push_membership_changes(&mut changes, planner.finish(), kind, id, 1, command.issued_at_ms);
    }
    Ok(Accepted {
        status: 201,
        resource: Some(StoredResource { resource, version: 1 }),
        changes,
        skipped_members: skipped,
    })
}

fn decide_replace<V: StateView + ?Sized>(
    registry: &SchemaRegistry,
    view: &V,
    command: &Command,
    replacement: &Value,
) -> Decision {
    let current = existing(view, command)?;
    let mut replacement = replacement.clone();
    // A PUT that names `members` replaces them; one that omits them leaves the memberships alone
    // rather than silently emptying a group of any size (RFC 7644 §3.5.1 lets the provider
    // treat omitted attributes as "not asserted").
    let mut membership = Vec::new();
    if command.kind == ResourceKind::Group {
        let asserted = replacement.get("members").is_some();
        let members = split_members(&mut replacement);
        if asserted {
            membership.push(MembershipChange::Clear);
            if !members.is_empty() {
                membership.push(MembershipChange::Add(members));
            }
        }
    }
    let replaced = replace_resource(registry, command.kind, &current.resource, &replacement)?;
    decide_update(view, command, current, replaced, membership)
}

/// Shared by PUT and PATCH: uniqueness of the new attributes, membership deltas, one version bump.
fn decide_update<V: StateView + ?Sized>(
    view: &V,
    command: &Command,
    current: StoredResource,
    mut resource: Value,
    membership: Vec<MembershipChange>,
) -> Decision {
    let kind = command.kind;
    let id = command.resource_id.as_str();
    if kind == ResourceKind::User && !membership.is_empty() {
        return Err(ScimError::mutability("User.groups is read-only; change membership through the Group"));
    }
    check_uniqueness(view, kind, id, &resource)?;
    let mut planner = MembershipPlanner::new(view, id);
    for change in &membership {
        match change {
            MembershipChange::Add(members) => planner.add(members)?,
            MembershipChange::Remove(values) => planner.remove(values),
            MembershipChange::Clear => planner.clear(),
        }
    }
    let skipped = planner.skipped.clone();
    let deltas = planner.finish();
    let attributes_changed = without_meta(&resource) != without_meta(&current.resource);
    if !attributes_changed && deltas.is_empty() {
        return Ok(Accepted {
            status: 200,
            resource: Some(current),
            changes: Vec::new(),
            skipped_members: skipped,
        });
    }
    let version = current.version + 1;
    stamp_meta(&mut resource, kind, None, command.issued_at_ms, version);
    if let Some(meta) = resource.get_mut("meta") {
        meta["created"] =
            current.resource.get("meta").and_then(|m| m.get("created")).cloned().unwrap_or(Value::Null);
    }
    let mut changes = Vec::new();
    if attributes_changed {
        changes.push(Change {
            kind,
            resource_id: id.to_owned(),
            version,
            occurred_at_ms: command.issued_at_ms,
            body: ChangeBody::Upserted { resource: resource.clone(), created: false },
        });
    }
    push_membership_changes(&mut changes, deltas, kind, id, version, command.issued_at_ms);
    Ok(Accepted {
        status: 200,
        resource: Some(StoredResource { resource, version }),
        changes,
        skipped_members: skipped,
    })
}

fn decide_delete<V: StateView + ?Sized>(view: &V, command: &Command) -> Decision {
    let current = existing(view, command)?;
    let kind = command.kind;
    let id = command.resource_id.as_str();
    let mut changes = Vec::new();
    // Leave every group that holds the resource, found through the reverse index: the cost is
    // the number of groups this member is in, never the size of those groups.
    for group_id in view.groups_of(id) {
        let Some(group) = view.resource(ResourceKind::Group, &group_id) else { continue };
        changes.push(Change {
            kind: ResourceKind::Group,
            resource_id: group_id,
            version: group.version + 1,
            occurred_at_ms: command.issued_at_ms,
            body: ChangeBody::MembersRemoved(vec![id.to_owned()]),
        });
    }
    if kind == ResourceKind::Group {
        changes.push(Change {
            kind,
            resource_id: id.to_owned(),
            version: current.version + 1,
            occurred_at_ms: command.issued_at_ms,
            body: ChangeBody::MembersCleared,
        });
    }
    changes.push(Change {
        kind,
        resource_id: id.to_owned(),
        version: current.version + 1,
        occurred_at_ms: command.issued_at_ms,
        body: ChangeBody::Deleted,
    });
    Ok(Accepted { status: 204, resource: None, changes, skipped_members: Vec::new() })
}

fn without_meta(resource: &Value) -> Value {
    let mut copy = resource.clone();
    if let Some(object) = copy.as_object_mut() {
        object.remove("meta");
    }
    copy
}

/// One effective membership delta, in order.
#[derive(Debug, Clone, PartialEq)]
enum Delta {
    Clear,
    Add(Vec<Member>),
    Remove(Vec<String>),
}

fn push_membership_changes(
    changes: &mut Vec<Change>,
    deltas: Vec<Delta>,
    kind: ResourceKind,
    id: &str,
    version: u64,
    at_ms: i64,
) {
    for delta in deltas {
        let body = match delta {
            Delta::Clear => ChangeBody::MembersCleared,
            Delta::Add(members) => ChangeBody::MembersAdded(members),
            Delta::Remove(values) => ChangeBody::MembersRemoved(values),
        };
        changes.push(Change { kind, resource_id: id.to_owned(), version, occurred_at_ms: at_ms, body });
    }
}

/// Turns requested membership changes into effective deltas: adds of current members and
/// removes of non-members are dropped (add is a union, remove is idempotent: Entra E5, E3),
/// unknown member ids are skipped and reported (Okta O11). Reads only the named memberships.
struct MembershipPlanner<'v, V: StateView + ?Sized> {
    view: &'v V,
    group_id: String,
    /// Membership decided within this command: member -> is member.
    local: BTreeMap<String, bool>,
    cleared: bool,
    deltas: Vec<Delta>,
    skipped: Vec<String>,
}

impl<'v, V: StateView + ?Sized> MembershipPlanner<'v, V> {
    fn new(view: &'v V, group_id: &str) -> Self {
        MembershipPlanner {
            view,
            group_id: group_id.to_owned(),
            local: BTreeMap::new(),
            cleared: false,
            deltas: Vec::new(),
            skipped: Vec::new(),
        }
    }

    fn is_member(&self, member_id: &str) -> bool {
        match self.local.get(member_id) {
            Some(local) => *local,
            None if self.cleared => false,
            None => self.view.is_member(&self.group_id, member_id),
        }
    }

    fn add(&mut self, requested: &[MemberRef]) -> ScimResult<()> {
        let mut added = Vec::new();
        let mut seen = HashSet::new();
        for member in requested {
            if member.value == self.group_id {
                return Err(ScimError::invalid_value(format!(
                    "group {} cannot be a member of itself",
                    self.group_id
                )));
            }
            if !seen.insert(member.value.as_str()) || self.is_member(&member.value) {
                continue;
            }
            let kind = if self.view.resource(ResourceKind::User, &member.value).is_some() {
                ResourceKind::User
            } else if self.view.resource(ResourceKind::Group, &member.value).is_some() {
                ResourceKind::Group
            } else {
                self.skipped.push(member.value.clone());
                continue;
            };
            if let Some(declared) = member.member_type.as_deref()
                && ResourceKind::parse(declared) != Some(kind)
            {
                return Err(ScimError::invalid_value(format!(
                    "member {} is a {}, not a {declared}",
                    member.value,
                    kind.name()
                )));
            }
            self.local.insert(member.value.clone(), true);
            added.push(Member { value: member.value.clone(), kind, display: member.display.clone() });
        }
        if !added.is_empty() {
            self.deltas.push(Delta::Add(added));
        }
        Ok(())
    }

    fn remove(&mut self, values: &[String]) {
        let mut removed = Vec::new();
        for value in values {
            if self.is_member(value) {
                self.local.insert(value.clone(), false);
                removed.push(value.clone());
            }
        }
        if !removed.is_empty() {
            self.deltas.push(Delta::Remove(removed));
        }
    }

    fn clear(&mut self) {
        self.local.clear();
        self.cleared = true;
        self.deltas.push(Delta::Clear);
    }

    fn finish(self) -> Vec<Delta> {
        self.deltas
    }
}
