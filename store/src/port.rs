//! The store ports. The projector writes through [`StoreWriter`] (synchronous: it runs the
//! fold on a blocking thread), the API reads through [`StoreReader`] (async). Every call is scoped
//! to one tenant, and no call returns a whole group's membership at once.

use crate::position::PartitionPosition;
use async_trait::async_trait;
use scimflow_core::ResourceKind;
use scimflow_core::index::IndexName;
use scimflow_core::memory::MemoryState;
use scimflow_core::state::{Member, Mutation, StateView, StoredResource};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A [`StateView`] that remembers a failed read. [`StateView`] is infallible so the fold stays
/// simple; a decision made after a failed read is discarded and the batch retried, never
/// committed.
pub trait TenantView: StateView {
    fn failure(&self) -> Option<StoreError>;

    /// Loads ahead what `fold` will read, so the real fold afterwards answers from memory.
    /// `fold` runs the batch's decisions against a probe view (possibly several times: an
    /// answer can lead to further reads); the probe's answers are provisional and only steer
    /// which rows to fetch. Stores whose reads are remote (CQL) fetch each round's rows
    /// concurrently instead of one round trip at a time; local stores need nothing.
    fn warm(&self, fold: &mut dyn FnMut(&dyn StateView)) {
        let _ = fold;
    }
}

/// The mutations one tenant's commands produced in a batch, plus the encoded change events to
/// keep for fanout.
#[derive(Debug, Clone, Default)]
pub struct TenantCommit {
    pub tenant_id: String,
    pub mutations: Vec<Mutation>,
}

/// One encoded `ChangeEnvelope`. From a fold: the offset of the command that produced it and
/// the change's index within the command. Read back from the change feed: its feed key, the
/// [`PartitionPosition::feed_key`] of the commit that stored it, and its index within that
/// commit; so the changes between any two positions can be re-read and re-published after a
/// crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub offset: u64,
    pub index: u32,
    pub envelope: Vec<u8>,
}

/// Projector side. A batch is committed atomically together with the log position it reaches,
/// so a batch is applied once even if the projector crashes and replays it.
pub trait StoreWriter: Send + Sync {
    /// A consistent view of one tenant's rows for the fold.
    fn tenant_view(&self, tenant_id: &str) -> StoreResult<Box<dyn TenantView + '_>>;

    /// How far `partition` is folded (offset 0, nobody ahead, when nothing was applied yet).
    fn position(&self, partition: u32) -> StoreResult<PartitionPosition>;

    /// The low watermark of `partition`: every command below it is folded.
    fn next_offset(&self, partition: u32) -> StoreResult<u64> {
        Ok(self.position(partition)?.next_offset)
    }

    /// Applies the mutations of a batch and records `position` for `partition`, atomically
    /// (or, where the database has no multi-row transactions, recoverably: a crash mid-commit is
    /// completed before anything new is folded). `changes` join the store's change feed in the
    /// same commit, under the position's [`PartitionPosition::feed_key`], in their order here.
    /// A commit with changes must raise the watermark (so feed keys only grow).
    fn commit(
        &self,
        partition: u32,
        position: &PartitionPosition,
        tenants: &[TenantCommit],
        changes: &[ChangeRecord],
    ) -> StoreResult<()>;

    /// The change feed of `partition` between two watermarks: the changes of every commit that
    /// raised the watermark from at least `from` to at most `to`, in commit order. Any `to`
    /// works as the next `from`: feed keys are offsets.
    fn changes_between(&self, partition: u32, from: u64, to: u64) -> StoreResult<Vec<ChangeRecord>>;
}

/// API side: point reads and bounded pages, always within one tenant.
#[async_trait]
pub trait StoreReader: Send + Sync {
    async fn resource(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<StoredResource>>;

    async fn index_lookup(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        index: IndexName,
        key: &str,
    ) -> StoreResult<Vec<String>>;

    /// Groups that directly contain `member_id`.
    async fn groups_of(&self, tenant_id: &str, member_id: &str) -> StoreResult<Vec<String>>;

    /// Up to `limit` members of a group with ids greater than `after`, in id order.
    async fn members_page(
        &self,
        tenant_id: &str,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Member>>;

    /// Up to `limit` resources of `kind` with ids greater than `after`, in id order.
    async fn resources_page(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoredResource)>>;

    /// How many resources of `kind` the tenant has, if the store keeps that count cheaply.
    /// `None` (the default) makes the API count by scanning; with a count, an unfiltered list
    /// page answers `totalResults` without reading past its window (O10 import paging).
    async fn resource_count(&self, tenant_id: &str, kind: ResourceKind) -> StoreResult<Option<u64>> {
        let _ = (tenant_id, kind);
        Ok(None)
    }
}

/// Operating a store against the command log (`scimflow verify [--repair]`, `scimflow replay`):
/// read a tenant's rows back, overwrite drifted ones. Synchronous like [`StoreWriter`]: call it
/// from a blocking thread.
pub trait StoreMaintenance: Send + Sync {
    /// Tenants that have rows in the store.
    fn stored_tenants(&self) -> StoreResult<Vec<String>>;

    /// Every row of `tenant` (resources, index entries, memberships, reverse index) and its
    /// per-kind resource counts `[users, groups]` where the store keeps them. `expected` (the
    /// log's view of the tenant) names rows a store may be unable to enumerate: CQL partitions
    /// index entries and reverse rows by key, so it looks up every key either side knows of.
    fn tenant_rows(
        &self,
        tenant: &str,
        expected: &MemoryState,
    ) -> StoreResult<(MemoryState, Option<[u64; 2]>)>;

    /// Applies `mutations` to one tenant's rows (and sets its resource counts, where kept),
    /// durably, without moving any log position or touching the change feed.
    fn repair(&self, tenant: &str, mutations: &[Mutation], counts: [u64; 2]) -> StoreResult<()>;

    /// Makes every commit so far durable (a replay ends with it).
    fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}
