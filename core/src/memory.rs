//! An in-memory state of one tenant: the reference implementation of [`StateView`] and of
//! applying [`Mutation`]s. Stores are tested against it, and property tests fold into it.

use crate::index::IndexName;
use crate::schema::ResourceKind;
use crate::state::{Member, Mutation, StateView, StoredResource};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryState {
    pub resources: BTreeMap<(ResourceKind, String), StoredResource>,
    pub index: BTreeMap<(ResourceKind, IndexName, String), BTreeSet<String>>,
    /// group -> member -> row
    pub members: BTreeMap<String, BTreeMap<String, Member>>,
    /// member -> groups
    pub member_of: BTreeMap<String, BTreeSet<String>>,
}

impl MemoryState {
    pub fn apply_all(&mut self, mutations: &[Mutation]) {
        for mutation in mutations {
            self.apply(mutation);
        }
    }

    pub fn apply(&mut self, mutation: &Mutation) {
        match mutation {
            Mutation::PutResource { kind, id, stored } => {
                self.resources.insert((*kind, id.clone()), stored.clone());
            }
            Mutation::DeleteResource { kind, id } => {
                self.resources.remove(&(*kind, id.clone()));
            }
            Mutation::PutIndex { kind, index, key, id } => {
                self.index.entry((*kind, *index, key.clone())).or_default().insert(id.clone());
            }
            Mutation::DeleteIndex { kind, index, key, id } => {
                let slot = (*kind, *index, key.clone());
                if let Some(ids) = self.index.get_mut(&slot) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.index.remove(&slot);
                    }
                }
            }
            Mutation::AddMember { group_id, member } => {
                self.members
                    .entry(group_id.clone())
                    .or_default()
                    .insert(member.value.clone(), member.clone());
                self.member_of.entry(member.value.clone()).or_default().insert(group_id.clone());
            }
            Mutation::RemoveMember { group_id, member_id } => {
                self.remove_membership(group_id, member_id);
            }
            Mutation::ClearMembers { group_id } => {
                let members = self.members.remove(group_id).unwrap_or_default();
                for member_id in members.keys() {
                    self.unlink_reverse(group_id, member_id);
                }
            }
        }
    }

    fn remove_membership(&mut self, group_id: &str, member_id: &str) {
        if let Some(members) = self.members.get_mut(group_id) {
            members.remove(member_id);
            if members.is_empty() {
                self.members.remove(group_id);
            }
        }
        self.unlink_reverse(group_id, member_id);
    }

    fn unlink_reverse(&mut self, group_id: &str, member_id: &str) {
        if let Some(groups) = self.member_of.get_mut(member_id) {
            groups.remove(group_id);
            if groups.is_empty() {
                self.member_of.remove(member_id);
            }
        }
    }

    /// Members of a group in id order (tests and verification only).
    pub fn members_of(&self, group_id: &str) -> Vec<Member> {
        self.members.get(group_id).map(|members| members.values().cloned().collect()).unwrap_or_default()
    }
}

impl StateView for MemoryState {
    fn resource(&self, kind: ResourceKind, id: &str) -> Option<StoredResource> {
        self.resources.get(&(kind, id.to_owned())).cloned()
    }

    fn index_lookup(&self, kind: ResourceKind, index: IndexName, key: &str) -> Vec<String> {
        self.index
            .get(&(kind, index, key.to_owned()))
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        self.members.get(group_id).is_some_and(|members| members.contains_key(member_id))
    }

    fn groups_of(&self, member_id: &str) -> Vec<String> {
        self.member_of.get(member_id).map(|groups| groups.iter().cloned().collect()).unwrap_or_default()
    }
}
