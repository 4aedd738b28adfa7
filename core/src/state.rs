//! The state the fold reads and the row mutations it writes.
//!
//! The fold never sees a whole tenant or a whole group: it asks a [`StateView`] for exactly the
//! rows a command touches (one resource, a few index keys, specific memberships, the groups of one
//! member) and answers with [`Mutation`]s, which a store turns into row writes. A view is always
//! scoped to one tenant, so a command can only ever read and write its own tenant's rows.

use crate::index::IndexName;
use crate::schema::ResourceKind;
use serde_json::Value;

/// A stored resource: canonical JSON (groups without `members`, users without `groups`) and
/// its version, which `meta.version` renders as `W/"<version>"`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub resource: Value,
    pub version: u64,
}

impl StoredResource {
    pub fn etag(&self) -> String {
        etag(self.version)
    }
}

pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// One membership row: a member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    pub value: String,
    pub kind: ResourceKind,
    /// Display text as the client sent it, if it did.
    pub display: Option<String>,
}

/// Point reads the fold needs, scoped to one tenant. Implementations answer from their rows;
/// none of these calls may load a whole group's membership.
pub trait StateView {
    fn resource(&self, kind: ResourceKind, id: &str) -> Option<StoredResource>;
    /// Ids of the resources whose `index` holds `key` (already folded with [`IndexName::key`]).
    fn index_lookup(&self, kind: ResourceKind, index: IndexName, key: &str) -> Vec<String>;
    fn is_member(&self, group_id: &str, member_id: &str) -> bool;
    /// Groups that directly contain `member_id` (the reverse membership index).
    fn groups_of(&self, member_id: &str) -> Vec<String>;
}

/// A row write. Stores apply a command's mutations atomically, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    PutResource {
        kind: ResourceKind,
        id: String,
        stored: StoredResource,
    },
    DeleteResource {
        kind: ResourceKind,
        id: String,
    },
    PutIndex {
        kind: ResourceKind,
        index: IndexName,
        key: String,
        id: String,
    },
    DeleteIndex {
        kind: ResourceKind,
        index: IndexName,
        key: String,
        id: String,
    },
    AddMember {
        group_id: String,
        member: Member,
    },
    RemoveMember {
        group_id: String,
        member_id: String,
    },
    /// Removes every membership of the group (and the matching reverse-index rows). The only
    /// mutation whose cost grows with the group; it comes from PUT/`replace members`/DELETE,
    /// whose meaning is "forget all members".
    ClearMembers {
        group_id: String,
    },
}
