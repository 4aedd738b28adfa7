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

use super::CqlStore;
use crate::port::{StoreError, StoreResult, TenantView};
use scimflow_core::ResourceKind;
use scimflow_core::index::IndexName;
use scimflow_core::state::{StateView, StoredResource};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;

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
}
