//! A [`StateView`] over another view plus the mutations folded so far but not yet stored.
//!
//! The projector folds a batch of commands before one store write; each command must see the
//! effect of the ones before it. The overlay answers reads from its pending mutations first and
//! falls back to the base view, so folding a batch equals folding its commands one by one.

use crate::index::IndexName;
use crate::schema::ResourceKind;
use crate::state::{Mutation, StateView, StoredResource};
use std::collections::{BTreeSet, HashMap, HashSet};

type IndexSlot = (ResourceKind, IndexName, String);

#[derive(Default)]
struct IndexDelta {
    added: BTreeSet<String>,
    removed: BTreeSet<String>,
}

pub struct Overlay<'base, V: StateView + ?Sized> {
    base: &'base V,
    resources: HashMap<(ResourceKind, String), Option<StoredResource>>,
    index: HashMap<IndexSlot, IndexDelta>,
    /// Explicit membership state set by this overlay: (group, member) -> is member.
    memberships: HashMap<(String, String), bool>,
    /// Groups cleared by this overlay: base memberships of these no longer count.
    cleared: HashSet<String>,
    /// member -> groups it was added to in this overlay (for `groups_of`).
    added_to: HashMap<String, BTreeSet<String>>,
    pending: Vec<Mutation>,
}

impl<'base, V: StateView + ?Sized> Overlay<'base, V> {
    pub fn new(base: &'base V) -> Self {
        Overlay {
            base,
            resources: HashMap::new(),
            index: HashMap::new(),
            memberships: HashMap::new(),
            cleared: HashSet::new(),
            added_to: HashMap::new(),
            pending: Vec::new(),
        }
    }

    pub fn pending(&self) -> &[Mutation] {
        &self.pending
    }

    pub fn into_pending(self) -> Vec<Mutation> {
        self.pending
    }

    /// Number of mutations recorded so far.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn push(&mut self, mutation: Mutation) {
        match &mutation {
            Mutation::PutResource { kind, id, stored } => {
                self.resources.insert((*kind, id.clone()), Some(stored.clone()));
            }
            Mutation::DeleteResource { kind, id } => {
                self.resources.insert((*kind, id.clone()), None);
            }
            Mutation::PutIndex { kind, index, key, id } => {
                let delta = self.index.entry((*kind, *index, key.clone())).or_default();
                delta.removed.remove(id);
                delta.added.insert(id.clone());
            }
            Mutation::DeleteIndex { kind, index, key, id } => {
                let delta = self.index.entry((*kind, *index, key.clone())).or_default();
                delta.added.remove(id);
                delta.removed.insert(id.clone());
            }
            Mutation::AddMember { group_id, member } => {
                self.memberships.insert((group_id.clone(), member.value.clone()), true);
                self.added_to.entry(member.value.clone()).or_default().insert(group_id.clone());
            }
            Mutation::RemoveMember { group_id, member_id } => {
                self.memberships.insert((group_id.clone(), member_id.clone()), false);
                if let Some(groups) = self.added_to.get_mut(member_id) {
                    groups.remove(group_id);
                }
            }
            Mutation::ClearMembers { group_id } => {
                self.cleared.insert(group_id.clone());
                self.memberships.retain(|(group, _), _| group != group_id);
                for groups in self.added_to.values_mut() {
                    groups.remove(group_id);
                }
            }
        }
        self.pending.push(mutation);
    }
}

impl<V: StateView + ?Sized> StateView for Overlay<'_, V> {
    fn resource(&self, kind: ResourceKind, id: &str) -> Option<StoredResource> {
        match self.resources.get(&(kind, id.to_owned())) {
            Some(local) => local.clone(),
            None => self.base.resource(kind, id),
        }
    }

    fn index_lookup(&self, kind: ResourceKind, index: IndexName, key: &str) -> Vec<String> {
        let mut ids: BTreeSet<String> = self.base.index_lookup(kind, index, key).into_iter().collect();
        if let Some(delta) = self.index.get(&(kind, index, key.to_owned())) {
            ids.retain(|id| !delta.removed.contains(id));
            ids.extend(delta.added.iter().cloned());
        }
        ids.into_iter().collect()
    }

    fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        match self.memberships.get(&(group_id.to_owned(), member_id.to_owned())) {
            Some(local) => *local,
            None if self.cleared.contains(group_id) => false,
            None => self.base.is_member(group_id, member_id),
        }
    }

    fn groups_of(&self, member_id: &str) -> Vec<String> {
        let mut groups: BTreeSet<String> = self
            .base
            .groups_of(member_id)
            .into_iter()
            .filter(|group| self.is_member(group, member_id))
            .collect();
        if let Some(added) = self.added_to.get(member_id) {
            groups.extend(added.iter().cloned());
        }
        groups.into_iter().collect()
    }
}
