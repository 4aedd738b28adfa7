//! The fold's [`StateView`] of one tenant on CQL: synchronous point reads that block on the
//! driver, with a per-view cache.
//!
//! The fold runs on a blocking thread (the projector uses `spawn_blocking`), so each read blocks
//! that thread on the store's runtime (`CqlStore::block_on`); calling it from an async task
//! would stall (or, on a current-thread runtime, panic). A view lives for one batch of one
//! tenant, and the projector is the partition's only writer, so the rows it reads cannot change
//! under it: caching every answer is safe, and the fold asks for the same rows repeatedly
//! (uniqueness checks, then the resource, then its memberships). A failed read is not cached,
//! answers a default, and is reported through [`TenantView::failure`] so the batch is retried.
//!
//! One read at a time would make a batch cost a round trip per row: a PATCH adding 1,000 members
//! reads 1,000 membership rows and 1,000 users. [`TenantView::warm`] avoids that: the batch is
//! first folded against a [`Probe`] that answers from the cache and notes every miss; the misses
//! are fetched concurrently, and the probe runs again (answers steer further reads: an existing
//! group leads to its members' rows) until nothing is missing or [`MAX_WARM_ROUNDS`] is reached.
//! The real fold then reads from memory. The probe's answers never decide anything.

use super::CqlStore;
use crate::port::{StoreError, StoreResult, TenantView};
use futures_util::StreamExt;
use scimflow_core::ResourceKind;
use scimflow_core::index::IndexName;
use scimflow_core::state::{StateView, StoredResource};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Probe rounds per batch; a fold needs about three (resource, then memberships, then members'
/// kinds), and whatever is still missing after the last is read one by one by the real fold.
const MAX_WARM_ROUNDS: usize = 4;
/// Reads in flight while warming.
const WARM_CONCURRENCY: usize = 64;

/// A row the fold may read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Read {
    Resource(ResourceKind, String),
    Index(ResourceKind, IndexName, String),
    Membership(String, String),
    GroupsOf(String),
}

/// What a read answered.
enum Answer {
    Resource(Option<StoredResource>),
    Ids(Vec<String>),
    Membership(bool),
}

pub struct CqlView<'s> {
    store: &'s CqlStore,
    tenant: String,
    failure: RefCell<Option<StoreError>>,
    resources: RefCell<HashMap<(ResourceKind, String), Option<StoredResource>>>,
    index: RefCell<HashMap<(ResourceKind, IndexName, String), Vec<String>>>,
    memberships: RefCell<HashMap<(String, String), bool>>,
    groups: RefCell<HashMap<String, Vec<String>>>,
}

impl<'s> CqlView<'s> {
    pub fn new(store: &'s CqlStore, tenant: &str) -> Self {
        CqlView {
            store,
            tenant: tenant.to_owned(),
            failure: RefCell::new(None),
            resources: RefCell::default(),
            index: RefCell::default(),
            memberships: RefCell::default(),
            groups: RefCell::default(),
        }
    }

    /// Answers from `cache`, or reads with `read` (blocking) and caches a successful answer.
    fn cached<K: Eq + Hash, T: Clone + Default>(
        &self,
        cache: &RefCell<HashMap<K, T>>,
        key: K,
        read: impl std::future::Future<Output = StoreResult<T>>,
    ) -> T {
        if let Some(hit) = cache.borrow().get(&key) {
            return hit.clone();
        }
        match self.store.block_on(read) {
            Ok(value) => {
                cache.borrow_mut().insert(key, value.clone());
                value
            }
            Err(error) => {
                self.failure.borrow_mut().get_or_insert(error);
                T::default()
            }
        }
    }
}

impl CqlView<'_> {
    fn cached_answer(&self, read: &Read) -> Option<Answer> {
        match read {
            Read::Resource(kind, id) => {
                self.resources.borrow().get(&(*kind, id.clone())).cloned().map(Answer::Resource)
            }
            Read::Index(kind, index, key) => {
                self.index.borrow().get(&(*kind, *index, key.clone())).cloned().map(Answer::Ids)
            }
            Read::Membership(group, member) => self
                .memberships
                .borrow()
                .get(&(group.clone(), member.clone()))
                .copied()
                .map(Answer::Membership),
            Read::GroupsOf(member) => self.groups.borrow().get(member).cloned().map(Answer::Ids),
        }
    }

    async fn fetch(&self, read: &Read) -> StoreResult<Answer> {
        let tenant = &self.tenant;
        Ok(match read {
            Read::Resource(kind, id) => Answer::Resource(self.store.read_resource(tenant, *kind, id).await?),
            Read::Index(kind, index, key) => {
                Answer::Ids(self.store.read_index(tenant, *kind, *index, key).await?)
            }
            Read::Membership(group, member) => {
                Answer::Membership(self.store.read_is_member(tenant, group, member).await?)
            }
            Read::GroupsOf(member) => Answer::Ids(self.store.read_groups_of(tenant, member).await?),
        })
    }

    /// Fetches `reads` concurrently into the cache. A failed read stays uncached: the real fold
    /// reads it again and reports the failure.
    fn fetch_all(&self, reads: Vec<Read>) {
        let fetched: Vec<(Read, StoreResult<Answer>)> = self.store.block_on(
            futures_util::stream::iter(reads)
                .map(|read| async move {
                    let answer = self.fetch(&read).await;
                    (read, answer)
                })
                .buffer_unordered(WARM_CONCURRENCY)
                .collect(),
        );
        for (read, answer) in fetched {
            match (read, answer) {
                (Read::Resource(kind, id), Ok(Answer::Resource(found))) => {
                    self.resources.borrow_mut().insert((kind, id), found);
                }
                (Read::Index(kind, index, key), Ok(Answer::Ids(ids))) => {
                    self.index.borrow_mut().insert((kind, index, key), ids);
                }
                (Read::Membership(group, member), Ok(Answer::Membership(is_member))) => {
                    self.memberships.borrow_mut().insert((group, member), is_member);
                }
                (Read::GroupsOf(member), Ok(Answer::Ids(groups))) => {
                    self.groups.borrow_mut().insert(member, groups);
                }
                _ => {}
            }
        }
    }
}

/// Answers from the view's cache and notes what it does not have (see the module docs).
struct Probe<'v, 's> {
    view: &'v CqlView<'s>,
    misses: RefCell<(Vec<Read>, HashSet<Read>)>,
}

impl Probe<'_, '_> {
    fn answer(&self, read: Read) -> Option<Answer> {
        let answer = self.view.cached_answer(&read);
        if answer.is_none() {
            let (order, seen) = &mut *self.misses.borrow_mut();
            if seen.insert(read.clone()) {
                order.push(read);
            }
        }
        answer
    }
}

impl StateView for Probe<'_, '_> {
    fn resource(&self, kind: ResourceKind, id: &str) -> Option<StoredResource> {
        match self.answer(Read::Resource(kind, id.to_owned())) {
            Some(Answer::Resource(found)) => found,
            _ => None,
        }
    }

    fn index_lookup(&self, kind: ResourceKind, index: IndexName, key: &str) -> Vec<String> {
        match self.answer(Read::Index(kind, index, key.to_owned())) {
            Some(Answer::Ids(ids)) => ids,
            _ => Vec::new(),
        }
    }

    fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        matches!(
            self.answer(Read::Membership(group_id.to_owned(), member_id.to_owned())),
            Some(Answer::Membership(true))
        )
    }

    fn groups_of(&self, member_id: &str) -> Vec<String> {
        match self.answer(Read::GroupsOf(member_id.to_owned())) {
            Some(Answer::Ids(groups)) => groups,
            _ => Vec::new(),
        }
    }
}

impl StateView for CqlView<'_> {
    fn resource(&self, kind: ResourceKind, id: &str) -> Option<StoredResource> {
        let read = self.store.read_resource(&self.tenant, kind, id);
        self.cached(&self.resources, (kind, id.to_owned()), read)
    }

    fn index_lookup(&self, kind: ResourceKind, index: IndexName, key: &str) -> Vec<String> {
        let read = self.store.read_index(&self.tenant, kind, index, key);
        self.cached(&self.index, (kind, index, key.to_owned()), read)
    }

    fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        let read = self.store.read_is_member(&self.tenant, group_id, member_id);
        self.cached(&self.memberships, (group_id.to_owned(), member_id.to_owned()), read)
    }

    fn groups_of(&self, member_id: &str) -> Vec<String> {
        let read = self.store.read_groups_of(&self.tenant, member_id);
        self.cached(&self.groups, member_id.to_owned(), read)
    }
}

impl TenantView for CqlView<'_> {
    fn failure(&self) -> Option<StoreError> {
        self.failure.borrow_mut().take()
    }

    fn warm(&self, fold: &mut dyn FnMut(&dyn StateView)) {
        for _ in 0..MAX_WARM_ROUNDS {
            let probe = Probe { view: self, misses: RefCell::default() };
            fold(&probe);
            let (misses, _) = probe.misses.into_inner();
            if misses.is_empty() {
                return;
            }
            self.fetch_all(misses);
        }
    }
}
