//! Deterministic digests of a tenant's folded state, so two copies of a projection (the live
//! store and a re-fold of the log, or two stores side by side) can be compared cheaply and, when
//! they differ, the differing resources named.
//!
//! A [`TenantDigest`] is fed rows **in key order** (the order a [`MemoryState`]'s maps and the
//! stores' range scans already yield), one section at a time: resources, index entries,
//! memberships, the reverse membership index. Every field is length-prefixed, so no two different
//! row sequences hash alike by concatenation. Resource JSON is hashed in a canonical form (object
//! keys sorted recursively): key order carries no meaning in SCIM, and a store may not keep it.
//!
//! Per-resource digests ([`resource_digest`]) let a comparison report which rows differ without
//! keeping both states' JSON side by side.

use crate::index::IndexName;
use crate::memory::MemoryState;
use crate::schema::ResourceKind;
use crate::state::{Member, StoredResource};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;

/// A SHA-256 digest, printed as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum(pub [u8; 32]);

impl Checksum {
    /// The first 12 hex digits: enough to eyeball in a report.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_owned()
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

/// The digests of one tenant's state, per section and overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantChecksum {
    pub resources: Checksum,
    pub index: Checksum,
    pub memberships: Checksum,
    pub member_of: Checksum,
    /// Over the four section digests: equal iff every section is equal.
    pub total: Checksum,
    pub users: u64,
    pub groups: u64,
    pub membership_rows: u64,
}

fn kind_tag(kind: ResourceKind) -> u8 {
    match kind {
        ResourceKind::User => b'U',
        ResourceKind::Group => b'G',
    }
}

fn put_bytes(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// Writes `value` as JSON with object keys in sorted order (arrays keep their order: in SCIM
/// an array's order is data the client sees).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (position, key) in keys.into_iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The digest of one resource row: kind, id, version and canonical JSON.
pub fn resource_digest(kind: ResourceKind, id: &str, stored: &StoredResource) -> Checksum {
    let mut hasher = Sha256::new();
    hasher.update([kind_tag(kind)]);
    put_bytes(&mut hasher, id.as_bytes());
    hasher.update(stored.version.to_be_bytes());
    put_bytes(&mut hasher, canonical_json(&stored.resource).as_bytes());
    Checksum(hasher.finalize().into())
}

/// Streams one tenant's rows into per-section digests. Feed each section in key order.
pub struct TenantDigest {
    resources: Sha256,
    index: Sha256,
    memberships: Sha256,
    member_of: Sha256,
    users: u64,
    groups: u64,
    membership_rows: u64,
}

impl Default for TenantDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl TenantDigest {
    pub fn new() -> Self {
        TenantDigest {
            resources: Sha256::new(),
            index: Sha256::new(),
            memberships: Sha256::new(),
            member_of: Sha256::new(),
            users: 0,
            groups: 0,
            membership_rows: 0,
        }
    }

    /// Adds a resource row (in `(kind, id)` order) and returns its own digest.
    pub fn add_resource(&mut self, kind: ResourceKind, id: &str, stored: &StoredResource) -> Checksum {
        let digest = resource_digest(kind, id, stored);
        self.resources.update(digest.0);
        match kind {
            ResourceKind::User => self.users += 1,
            ResourceKind::Group => self.groups += 1,
        }
        digest
    }

    /// Adds an index entry (in `(kind, index, key, id)` order).
    pub fn add_index(&mut self, kind: ResourceKind, index: IndexName, key: &str, id: &str) {
        self.index.update([kind_tag(kind)]);
        put_bytes(&mut self.index, index.as_str().as_bytes());
        put_bytes(&mut self.index, key.as_bytes());
        put_bytes(&mut self.index, id.as_bytes());
    }

    /// Adds a membership row (in `(group, member)` order).
    pub fn add_member(&mut self, group_id: &str, member: &Member) {
        put_bytes(&mut self.memberships, group_id.as_bytes());
        put_bytes(&mut self.memberships, member.value.as_bytes());
        self.memberships.update([kind_tag(member.kind)]);
        match &member.display {
            Some(display) => {
                self.memberships.update([1]);
                put_bytes(&mut self.memberships, display.as_bytes());
            }
            None => self.memberships.update([0]),
        }
        self.membership_rows += 1;
    }

    /// Adds a reverse-index row (in `(member, group)` order).
    pub fn add_member_of(&mut self, member_id: &str, group_id: &str) {
        put_bytes(&mut self.member_of, member_id.as_bytes());
        put_bytes(&mut self.member_of, group_id.as_bytes());
    }

    pub fn finish(self) -> TenantChecksum {
        let resources = Checksum(self.resources.finalize().into());
        let index = Checksum(self.index.finalize().into());
        let memberships = Checksum(self.memberships.finalize().into());
        let member_of = Checksum(self.member_of.finalize().into());
        let mut total = Sha256::new();
        for section in [resources, index, memberships, member_of] {
            total.update(section.0);
        }
        TenantChecksum {
            resources,
            index,
            memberships,
            member_of,
            total: Checksum(total.finalize().into()),
            users: self.users,
            groups: self.groups,
            membership_rows: self.membership_rows,
        }
    }
}

/// The checksum of a whole in-memory state (its maps iterate in key order).
pub fn state_checksum(state: &MemoryState) -> TenantChecksum {
    let mut digest = TenantDigest::new();
    for ((kind, id), stored) in &state.resources {
        digest.add_resource(*kind, id, stored);
    }
    for ((kind, index, key), ids) in &state.index {
        for id in ids {
            digest.add_index(*kind, *index, key, id);
        }
    }
    for (group_id, members) in &state.members {
        for member in members.values() {
            digest.add_member(group_id, member);
        }
    }
    for (member_id, groups) in &state.member_of {
        for group_id in groups {
            digest.add_member_of(member_id, group_id);
        }
    }
    digest.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Mutation;
    use serde_json::json;

    fn state(user_json: Value, version: u64) -> MemoryState {
        let mut state = MemoryState::default();
        state.apply_all(&[
            Mutation::PutResource {
                kind: ResourceKind::User,
                id: "u1".into(),
                stored: StoredResource { resource: user_json, version },
            },
            Mutation::AddMember {
                group_id: "g1".into(),
                member: Member { value: "u1".into(), kind: ResourceKind::User, display: None },
            },
        ]);
        state
    }

    #[test]
    fn key_order_does_not_matter_but_values_and_versions_do() {
        let a = state_checksum(&state(json!({"a": 1, "b": {"x": 1, "y": [2, 1]}}), 1));
        let b = state_checksum(&state(json!({"b": {"y": [2, 1], "x": 1}, "a": 1}), 1));
        assert_eq!(a, b);
        let newer = state_checksum(&state(json!({"a": 1, "b": {"x": 1, "y": [2, 1]}}), 2));
        assert_ne!(a.total, newer.total);
        assert_eq!(a.memberships, newer.memberships);
        let reordered_array = state_checksum(&state(json!({"a": 1, "b": {"x": 1, "y": [1, 2]}}), 1));
        assert_ne!(a.resources, reordered_array.resources);
        assert_eq!((a.users, a.groups, a.membership_rows), (1, 0, 1));
    }

    #[test]
    fn fields_are_length_prefixed() {
        let mut one = TenantDigest::new();
        one.add_member_of("ab", "c");
        let mut two = TenantDigest::new();
        two.add_member_of("a", "bc");
        assert_ne!(one.finish().member_of, two.finish().member_of);
    }

    #[test]
    fn canonical_json_sorts_nested_keys_and_escapes() {
        assert_eq!(
            canonical_json(&json!({"b": "\"", "a": [{"d": 1, "c": null}]})),
            r#"{"a":[{"c":null,"d":1}],"b":"\""}"#
        );
    }
}
