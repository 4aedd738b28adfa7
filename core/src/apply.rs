//! `apply(view, change)`: the row mutations that make a store reflect one applied change.
//!
//! Pure and deterministic: the same change against the same rows always yields the same
//! mutations. Index rows are diffed against the previous version of the resource, and a
//! membership delta rewrites only the group row (for its version) and the named membership rows.

use crate::change::{Change, ChangeBody};
use crate::decide::format_timestamp;
use crate::index::index_entries;
use crate::schema::ResourceKind;
use crate::state::{Mutation, StateView, StoredResource, etag};
use serde_json::Value;

pub fn apply<V: StateView + ?Sized>(view: &V, change: &Change) -> Vec<Mutation> {
    let kind = change.kind;
    let id = change.resource_id.as_str();
    let previous = view.resource(kind, id);
    let mut mutations = Vec::new();
    match &change.body {
        ChangeBody::Upserted { resource, .. } => {
            let old_entries =
                previous.as_ref().map(|stored| index_entries(kind, &stored.resource)).unwrap_or_default();
            let new_entries = index_entries(kind, resource);
            for (index, key) in old_entries.difference(&new_entries) {
                mutations.push(Mutation::DeleteIndex {
                    kind,
                    index: *index,
                    key: key.clone(),
                    id: id.to_owned(),
                });
            }
            for (index, key) in new_entries.difference(&old_entries) {
                mutations.push(Mutation::PutIndex {
                    kind,
                    index: *index,
                    key: key.clone(),
                    id: id.to_owned(),
                });
            }
            mutations.push(Mutation::PutResource {
                kind,
                id: id.to_owned(),
                stored: StoredResource { resource: resource.clone(), version: change.version },
            });
        }
        ChangeBody::Deleted => {
            if let Some(stored) = &previous {
                for (index, key) in index_entries(kind, &stored.resource) {
                    mutations.push(Mutation::DeleteIndex { kind, index, key, id: id.to_owned() });
                }
            }
            mutations.push(Mutation::DeleteResource { kind, id: id.to_owned() });
        }
        ChangeBody::MembersAdded(members) => {
            for member in members {
                mutations.push(Mutation::AddMember { group_id: id.to_owned(), member: member.clone() });
            }
            mutations.extend(bump_version(kind, id, previous, change));
        }
        ChangeBody::MembersRemoved(values) => {
            for value in values {
                mutations.push(Mutation::RemoveMember { group_id: id.to_owned(), member_id: value.clone() });
            }
            mutations.extend(bump_version(kind, id, previous, change));
        }
        ChangeBody::MembersCleared => {
            mutations.push(Mutation::ClearMembers { group_id: id.to_owned() });
            mutations.extend(bump_version(kind, id, previous, change));
        }
    }
    mutations
}

/// Rewrites a group's `meta.version` and `meta.lastModified` after a membership delta, unless
/// the row already carries this version (an `Upserted` of the same command wrote it).
fn bump_version(
    kind: ResourceKind,
    id: &str,
    previous: Option<StoredResource>,
    change: &Change,
) -> Option<Mutation> {
    let mut stored = previous?;
    if stored.version >= change.version {
        return None;
    }
    stored.version = change.version;
    if let Some(meta) = stored.resource.get_mut("meta").and_then(Value::as_object_mut) {
        meta.insert("version".into(), Value::String(etag(change.version)));
        meta.insert("lastModified".into(), Value::String(format_timestamp(change.occurred_at_ms)));
    }
    Some(Mutation::PutResource { kind, id: id.to_owned(), stored })
}
