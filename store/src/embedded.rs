//! The embedded store on redb (an ACID, crash-safe embedded database): one file holding every
//! tenant's rows, with the same shape the CQL store uses.
//!
//! Tables (keys are tuples, so related rows sort together and a page is a range read):
//! - `resources (tenant, kind, id) -> version ‖ json`
//! - `lookup_index (tenant, kind, index, key, id) -> ()`
//! - `memberships (tenant, group, member) -> kind ‖ display`: one row per membership
//! - `member_of (tenant, member, group) -> ()`: the reverse index
//! - `resource_counts (tenant, kind) -> count`, kept with every put/delete so list pages can
//!   answer `totalResults` without a scan
//! - `log_positions (partition) -> next offset` and `tenants_ahead (partition) -> JSON`: the
//!   partition's [`PartitionPosition`], committed with the rows it covers
//! - `changes (partition, feed key, index) -> ChangeEnvelope`: the applied-change feed for fanout
//!
//! Store commits may skip the fsync ([`redb::Durability::None`]) between periodic durable
//! checkpoints: the command log is the durable source of truth, and a crash only rolls the store
//! back to a checkpoint whose log position is committed with it, from where the projector
//! re-folds deterministically.

use crate::port::{
    ChangeRecord, StoreError, StoreMaintenance, StoreReader, StoreResult, StoreWriter, TenantCommit,
    TenantView,
};
use crate::position::PartitionPosition;
use async_trait::async_trait;
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use scimflow_core::ResourceKind;
use scimflow_core::index::IndexName;
use scimflow_core::state::{Member, Mutation, StateView, StoredResource};
use std::cell::RefCell;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type ResourceKey<'a> = (&'a str, u8, &'a str);
type IndexKey<'a> = (&'a str, u8, u8, &'a str, &'a str);
type PairKey<'a> = (&'a str, &'a str, &'a str);

const RESOURCES: TableDefinition<ResourceKey, &[u8]> = TableDefinition::new("resources");
const INDEX: TableDefinition<IndexKey, ()> = TableDefinition::new("lookup_index");
const MEMBERSHIPS: TableDefinition<PairKey, &[u8]> = TableDefinition::new("memberships");
const MEMBER_OF: TableDefinition<PairKey, ()> = TableDefinition::new("member_of");
const POSITIONS: TableDefinition<u32, u64> = TableDefinition::new("log_positions");
const COUNTS: TableDefinition<(&str, u8), u64> = TableDefinition::new("resource_counts");
const CHANGES: TableDefinition<(u32, u64, u32), &[u8]> = TableDefinition::new("changes");
/// The tenants folded past the partition's watermark ([`PartitionPosition::tenants_ahead`]).
const TENANTS_AHEAD: TableDefinition<u32, &[u8]> = TableDefinition::new("tenants_ahead");

/// redb's page cache for the store. Bounded so memory stays flat however large tenants and
/// groups grow; hot rows (recent resources, index keys) stay cached, cold ones are read from
/// the OS page cache.
pub const STORE_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// How long store commits may go without an fsync (see the module docs).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn kind_code(kind: ResourceKind) -> u8 {
    match kind {
        ResourceKind::User => 1,
        ResourceKind::Group => 2,
    }
}

fn kind_from_code(code: u8) -> StoreResult<ResourceKind> {
    match code {
        1 => Ok(ResourceKind::User),
        2 => Ok(ResourceKind::Group),
        other => Err(StoreError::Corrupt(format!("unknown resource kind code {other}"))),
    }
}

fn index_code(index: IndexName) -> u8 {
    match index {
        IndexName::UserName => 1,
        IndexName::ExternalId => 2,
        IndexName::DisplayName => 3,
        IndexName::EmailValue => 4,
    }
}

fn index_from_code(code: u8) -> StoreResult<IndexName> {
    [IndexName::UserName, IndexName::ExternalId, IndexName::DisplayName, IndexName::EmailValue]
        .into_iter()
        .find(|index| index_code(*index) == code)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown index code {code}")))
}

fn encode_resource(stored: &StoredResource) -> Vec<u8> {
    let mut bytes = stored.version.to_be_bytes().to_vec();
    // Serialising a serde_json::Value cannot fail.
    bytes.extend(serde_json::to_vec(&stored.resource).unwrap_or_default());
    bytes
}

fn decode_resource(bytes: &[u8]) -> StoreResult<StoredResource> {
    if bytes.len() < 8 {
        return Err(StoreError::Corrupt("resource row shorter than its version".into()));
    }
    let (version, json) = bytes.split_at(8);
    let version = u64::from_be_bytes(version.try_into().unwrap_or_default());
    let resource = serde_json::from_slice(json)
        .map_err(|error| StoreError::Corrupt(format!("resource row: {error}")))?;
    Ok(StoredResource { resource, version })
}

fn encode_member(member: &Member) -> Vec<u8> {
    let mut bytes = vec![kind_code(member.kind)];
    if let Some(display) = &member.display {
        bytes.extend(display.as_bytes());
    }
    bytes
}

fn decode_member(member_id: &str, bytes: &[u8]) -> StoreResult<Member> {
    let (code, display) =
        bytes.split_first().ok_or_else(|| StoreError::Corrupt("empty membership row".into()))?;
    Ok(Member {
        value: member_id.to_owned(),
        kind: kind_from_code(*code)?,
        display: (!display.is_empty()).then(|| String::from_utf8_lossy(display).into_owned()),
    })
}

/// The embedded store. Cheap to clone; all clones share the database.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    last_checkpoint: Arc<Mutex<Instant>>,
}

impl EmbeddedStore {
    /// Opens or creates the store file at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let db = Database::builder().set_cache_size(STORE_CACHE_BYTES).create(path).map_err(|error| {
            StoreError::Unavailable(format!("cannot open store {}: {error}", path.display()))
        })?;
        Self::from_database(Arc::new(db))
    }

    pub fn from_database(db: Arc<Database>) -> StoreResult<Self> {
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(RESOURCES).map_err(unavailable)?;
        txn.open_table(INDEX).map_err(unavailable)?;
        txn.open_table(MEMBERSHIPS).map_err(unavailable)?;
        txn.open_table(MEMBER_OF).map_err(unavailable)?;
        txn.open_table(POSITIONS).map_err(unavailable)?;
        txn.open_table(TENANTS_AHEAD).map_err(unavailable)?;
        txn.open_table(CHANGES).map_err(unavailable)?;
        txn.open_table(COUNTS).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        Ok(EmbeddedStore { db, last_checkpoint: Arc::new(Mutex::new(Instant::now())) })
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    fn read(&self) -> StoreResult<ReadTransaction> {
        self.db.begin_read().map_err(unavailable)
    }

    /// Forces everything committed so far to disk (used at shutdown).
    pub fn checkpoint(&self) -> StoreResult<()> {
        let mut txn = self.db.begin_write().map_err(unavailable)?;
        txn.set_durability(Durability::Immediate).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        *self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Ok(())
    }

    fn apply_mutation(txn: &WriteTransaction, tenant: &str, mutation: &Mutation) -> Result<(), redb::Error> {
        match mutation {
            Mutation::PutResource { kind, id, stored } => {
                let mut table = txn.open_table(RESOURCES)?;
                let previous = table
                    .insert((tenant, kind_code(*kind), id.as_str()), encode_resource(stored).as_slice())?;
                if previous.is_none() {
                    drop(previous);
                    Self::adjust_count(txn, tenant, *kind, 1)?;
                }
            }
            Mutation::DeleteResource { kind, id } => {
                let mut table = txn.open_table(RESOURCES)?;
                let previous = table.remove((tenant, kind_code(*kind), id.as_str()))?;
                if previous.is_some() {
                    drop(previous);
                    Self::adjust_count(txn, tenant, *kind, -1)?;
                }
            }
            Mutation::PutIndex { kind, index, key, id } => {
                let mut table = txn.open_table(INDEX)?;
                table
                    .insert((tenant, kind_code(*kind), index_code(*index), key.as_str(), id.as_str()), ())?;
            }
            Mutation::DeleteIndex { kind, index, key, id } => {
                let mut table = txn.open_table(INDEX)?;
                table.remove((tenant, kind_code(*kind), index_code(*index), key.as_str(), id.as_str()))?;
            }
            Mutation::AddMember { group_id, member } => {
                let mut memberships = txn.open_table(MEMBERSHIPS)?;
                memberships.insert(
                    (tenant, group_id.as_str(), member.value.as_str()),
                    encode_member(member).as_slice(),
                )?;
                let mut member_of = txn.open_table(MEMBER_OF)?;
                member_of.insert((tenant, member.value.as_str(), group_id.as_str()), ())?;
            }
            Mutation::RemoveMember { group_id, member_id } => {
                let mut memberships = txn.open_table(MEMBERSHIPS)?;
                memberships.remove((tenant, group_id.as_str(), member_id.as_str()))?;
                let mut member_of = txn.open_table(MEMBER_OF)?;
                member_of.remove((tenant, member_id.as_str(), group_id.as_str()))?;
            }
            Mutation::ClearMembers { group_id } => {
                let mut memberships = txn.open_table(MEMBERSHIPS)?;
                let mut member_of = txn.open_table(MEMBER_OF)?;
                let mut member_ids = Vec::new();
                for entry in memberships.range((tenant, group_id.as_str(), "")..)? {
                    let (key, _) = entry?;
                    let (row_tenant, row_group, member) = key.value();
                    if row_tenant != tenant || row_group != group_id {
                        break;
                    }
                    member_ids.push(member.to_owned());
                }
                for member_id in &member_ids {
                    memberships.remove((tenant, group_id.as_str(), member_id.as_str()))?;
                    member_of.remove((tenant, member_id.as_str(), group_id.as_str()))?;
                }
            }
        }
        Ok(())
    }

    fn adjust_count(
        txn: &WriteTransaction,
        tenant: &str,
        kind: ResourceKind,
        delta: i64,
    ) -> Result<(), redb::Error> {
        let mut counts = txn.open_table(COUNTS)?;
        let key = (tenant, kind_code(kind));
        let current = counts.get(key)?.map(|count| count.value()).unwrap_or(0);
        counts.insert(key, current.saturating_add_signed(delta))?;
        Ok(())
    }

    // --- operator tools (`scimflow verify`): whole-tenant reads and repair writes ---

    /// Every row of every tenant (or only `only`), as in-memory states keyed by tenant, with the
    /// stored per-kind resource counts. Loads everything: for verification, not for serving.
    #[allow(clippy::type_complexity)]
    pub fn dump_tenants(
        &self,
        only: Option<&str>,
    ) -> StoreResult<std::collections::BTreeMap<String, (scimflow_core::memory::MemoryState, [u64; 2])>> {
        use scimflow_core::memory::MemoryState;
        let txn = self.read()?;
        let mut tenants: std::collections::BTreeMap<String, (MemoryState, [u64; 2])> = Default::default();
        let wanted = |tenant: &str| only.is_none_or(|only| only == tenant);
        let resources = txn.open_table(RESOURCES).map_err(unavailable)?;
        for entry in resources.iter().map_err(unavailable)? {
            let (key, value) = entry.map_err(unavailable)?;
            let (tenant, kind, id) = key.value();
            if wanted(tenant) {
                let stored = decode_resource(value.value())?;
                let state = &mut tenants.entry(tenant.to_owned()).or_default().0;
                state.resources.insert((kind_from_code(kind)?, id.to_owned()), stored);
            }
        }
        let index = txn.open_table(INDEX).map_err(unavailable)?;
        for entry in index.iter().map_err(unavailable)? {
            let (key, _) = entry.map_err(unavailable)?;
            let (tenant, kind, index, value, id) = key.value();
            if wanted(tenant) {
                let index = index_from_code(index)?;
                let state = &mut tenants.entry(tenant.to_owned()).or_default().0;
                let slot = (kind_from_code(kind)?, index, value.to_owned());
                state.index.entry(slot).or_default().insert(id.to_owned());
            }
        }
        let memberships = txn.open_table(MEMBERSHIPS).map_err(unavailable)?;
        for entry in memberships.iter().map_err(unavailable)? {
            let (key, value) = entry.map_err(unavailable)?;
            let (tenant, group, member) = key.value();
            if wanted(tenant) {
                let member = decode_member(member, value.value())?;
                let state = &mut tenants.entry(tenant.to_owned()).or_default().0;
                state.members.entry(group.to_owned()).or_default().insert(member.value.clone(), member);
            }
        }
        let member_of = txn.open_table(MEMBER_OF).map_err(unavailable)?;
        for entry in member_of.iter().map_err(unavailable)? {
            let (key, _) = entry.map_err(unavailable)?;
            let (tenant, member, group) = key.value();
            if wanted(tenant) {
                let state = &mut tenants.entry(tenant.to_owned()).or_default().0;
                state.member_of.entry(member.to_owned()).or_default().insert(group.to_owned());
            }
        }
        let counts = txn.open_table(COUNTS).map_err(unavailable)?;
        for entry in counts.iter().map_err(unavailable)? {
            let (key, count) = entry.map_err(unavailable)?;
            let (tenant, kind) = key.value();
            if wanted(tenant) {
                let slot = usize::from(kind_from_code(kind)? == ResourceKind::Group);
                tenants.entry(tenant.to_owned()).or_default().1[slot] = count.value();
            }
        }
        Ok(tenants)
    }

    /// Applies `mutations` to one tenant's rows and sets its resource counts to `counts`
    /// (`[users, groups]`), durably, **without** moving any log position or touching the change
    /// feed: a repair makes rows agree with the log, it folds nothing new.
    pub fn repair(&self, tenant: &str, mutations: &[Mutation], counts: [u64; 2]) -> StoreResult<()> {
        let mut txn = self.db.begin_write().map_err(unavailable)?;
        txn.set_durability(Durability::Immediate).map_err(unavailable)?;
        let write = || -> Result<(), redb::Error> {
            for mutation in mutations {
                Self::apply_mutation(&txn, tenant, mutation)?;
            }
            let mut table = txn.open_table(COUNTS)?;
            table.insert((tenant, kind_code(ResourceKind::User)), counts[0])?;
            table.insert((tenant, kind_code(ResourceKind::Group)), counts[1])?;
            Ok(())
        };
        write().map_err(unavailable)?;
        txn.commit().map_err(unavailable)
    }

    // --- synchronous reads shared by the fold view and the async reader ---

    fn read_resource(
        txn: &ReadTransaction,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<StoredResource>> {
        let table = txn.open_table(RESOURCES).map_err(unavailable)?;
        let row = table.get((tenant, kind_code(kind), id)).map_err(unavailable)?;
        row.map(|bytes| decode_resource(bytes.value())).transpose()
    }

    fn read_index(
        txn: &ReadTransaction,
        tenant: &str,
        kind: ResourceKind,
        index: IndexName,
        key: &str,
    ) -> StoreResult<Vec<String>> {
        let table = txn.open_table(INDEX).map_err(unavailable)?;
        let (kind, index) = (kind_code(kind), index_code(index));
        let mut ids = Vec::new();
        for entry in table.range((tenant, kind, index, key, "")..).map_err(unavailable)? {
            let (row, _) = entry.map_err(unavailable)?;
            let (row_tenant, row_kind, row_index, row_key, id) = row.value();
            if (row_tenant, row_kind, row_index, row_key) != (tenant, kind, index, key) {
                break;
            }
            ids.push(id.to_owned());
        }
        Ok(ids)
    }

    fn read_groups_of(txn: &ReadTransaction, tenant: &str, member_id: &str) -> StoreResult<Vec<String>> {
        let table = txn.open_table(MEMBER_OF).map_err(unavailable)?;
        let mut groups = Vec::new();
        for entry in table.range((tenant, member_id, "")..).map_err(unavailable)? {
            let (row, _) = entry.map_err(unavailable)?;
            let (row_tenant, row_member, group) = row.value();
            if (row_tenant, row_member) != (tenant, member_id) {
                break;
            }
            groups.push(group.to_owned());
        }
        Ok(groups)
    }

    fn read_members_page(
        txn: &ReadTransaction,
        tenant: &str,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Member>> {
        let table = txn.open_table(MEMBERSHIPS).map_err(unavailable)?;
        let start = match after {
            Some(after) => Bound::Excluded((tenant, group_id, after)),
            None => Bound::Included((tenant, group_id, "")),
        };
        let mut members = Vec::new();
        for entry in table.range::<PairKey>((start, Bound::Unbounded)).map_err(unavailable)? {
            if members.len() >= limit {
                break;
            }
            let (row, value) = entry.map_err(unavailable)?;
            let (row_tenant, row_group, member_id) = row.value();
            if (row_tenant, row_group) != (tenant, group_id) {
                break;
            }
            members.push(decode_member(member_id, value.value())?);
        }
        Ok(members)
    }

    fn read_resources_page(
        txn: &ReadTransaction,
        tenant: &str,
        kind: ResourceKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoredResource)>> {
        let table = txn.open_table(RESOURCES).map_err(unavailable)?;
        let code = kind_code(kind);
        let start = match after {
            Some(after) => Bound::Excluded((tenant, code, after)),
            None => Bound::Included((tenant, code, "")),
        };
        let mut page = Vec::new();
        for entry in table.range::<ResourceKey>((start, Bound::Unbounded)).map_err(unavailable)? {
            if page.len() >= limit {
                break;
            }
            let (row, value) = entry.map_err(unavailable)?;
            let (row_tenant, row_kind, id) = row.value();
            if (row_tenant, row_kind) != (tenant, code) {
                break;
            }
            page.push((id.to_owned(), decode_resource(value.value())?));
        }
        Ok(page)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&ReadTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let txn = store.read()?;
            read(&txn)
        })
        .await
        .map_err(unavailable)?
    }
}

/// One tenant's rows as of a read transaction, for the fold.
struct EmbeddedView {
    txn: ReadTransaction,
    tenant: String,
    failure: RefCell<Option<StoreError>>,
}

impl EmbeddedView {
    fn record<T: Default>(&self, result: StoreResult<T>) -> T {
        match result {
            Ok(value) => value,
            Err(error) => {
                self.failure.borrow_mut().get_or_insert(error);
                T::default()
            }
        }
    }
}

impl StateView for EmbeddedView {
    fn resource(&self, kind: ResourceKind, id: &str) -> Option<StoredResource> {
        self.record(EmbeddedStore::read_resource(&self.txn, &self.tenant, kind, id))
    }
    fn index_lookup(&self, kind: ResourceKind, index: IndexName, key: &str) -> Vec<String> {
        self.record(EmbeddedStore::read_index(&self.txn, &self.tenant, kind, index, key))
    }
    fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        let lookup = || -> StoreResult<bool> {
            let table: ReadOnlyTable<PairKey, &[u8]> =
                self.txn.open_table(MEMBERSHIPS).map_err(unavailable)?;
            Ok(table.get((self.tenant.as_str(), group_id, member_id)).map_err(unavailable)?.is_some())
        };
        self.record(lookup())
    }
    fn groups_of(&self, member_id: &str) -> Vec<String> {
        self.record(EmbeddedStore::read_groups_of(&self.txn, &self.tenant, member_id))
    }
}

impl TenantView for EmbeddedView {
    fn failure(&self) -> Option<StoreError> {
        self.failure.borrow_mut().take()
    }
}

impl StoreWriter for EmbeddedStore {
    fn tenant_view(&self, tenant_id: &str) -> StoreResult<Box<dyn TenantView + '_>> {
        Ok(Box::new(EmbeddedView {
            txn: self.read()?,
            tenant: tenant_id.to_owned(),
            failure: RefCell::new(None),
        }))
    }

    fn position(&self, partition: u32) -> StoreResult<PartitionPosition> {
        let txn = self.read()?;
        let positions = txn.open_table(POSITIONS).map_err(unavailable)?;
        let next_offset =
            positions.get(partition).map_err(unavailable)?.map(|offset| offset.value()).unwrap_or(0);
        let ahead = txn.open_table(TENANTS_AHEAD).map_err(unavailable)?;
        let tenants_ahead = match ahead.get(partition).map_err(unavailable)? {
            Some(bytes) => {
                PartitionPosition::decode_tenants_ahead(bytes.value()).map_err(StoreError::Corrupt)?
            }
            None => Default::default(),
        };
        Ok(PartitionPosition { next_offset, tenants_ahead })
    }

    fn changes_between(&self, partition: u32, from: u64, to: u64) -> StoreResult<Vec<ChangeRecord>> {
        let txn = self.read()?;
        let table = txn.open_table(CHANGES).map_err(unavailable)?;
        let mut changes = Vec::new();
        for entry in table.range((partition, from, 0)..(partition, to, 0)).map_err(unavailable)? {
            let (key, envelope) = entry.map_err(unavailable)?;
            let (_, offset, index) = key.value();
            changes.push(ChangeRecord { offset, index, envelope: envelope.value().to_vec() });
        }
        Ok(changes)
    }

    fn commit(
        &self,
        partition: u32,
        position: &PartitionPosition,
        tenants: &[TenantCommit],
        changes: &[ChangeRecord],
    ) -> StoreResult<()> {
        let mut txn = self.db.begin_write().map_err(unavailable)?;
        if !changes.is_empty() {
            let positions = txn.open_table(POSITIONS).map_err(unavailable)?;
            let current =
                positions.get(partition).map_err(unavailable)?.map(|offset| offset.value()).unwrap_or(0);
            drop(positions);
            if position.next_offset <= current {
                return Err(StoreError::Corrupt(format!(
                    "partition {partition}: a commit with changes must raise the watermark ({current} -> {})",
                    position.next_offset
                )));
            }
        }
        let mut last_checkpoint = self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        let durable = last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL;
        let durability = if durable { Durability::Immediate } else { Durability::None };
        txn.set_durability(durability).map_err(unavailable)?;
        let write = || -> Result<(), redb::Error> {
            for tenant in tenants {
                for mutation in &tenant.mutations {
                    Self::apply_mutation(&txn, &tenant.tenant_id, mutation)?;
                }
            }
            let mut feed = txn.open_table(CHANGES)?;
            for (index, change) in changes.iter().enumerate() {
                feed.insert((partition, position.feed_key(), index as u32), change.envelope.as_slice())?;
            }
            drop(feed);
            txn.open_table(POSITIONS)?.insert(partition, position.next_offset)?;
            let ahead = position.encode_tenants_ahead();
            let mut tenants_ahead = txn.open_table(TENANTS_AHEAD)?;
            if ahead.is_empty() {
                tenants_ahead.remove(partition)?;
            } else {
                tenants_ahead.insert(partition, ahead.as_slice())?;
            }
            Ok(())
        };
        write().map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        if durable {
            *last_checkpoint = Instant::now();
        }
        Ok(())
    }
}

/// The embedded store reads a tenant's rows with range scans of one file: exact, including
/// index entries under any key.
impl StoreMaintenance for EmbeddedStore {
    fn stored_tenants(&self) -> StoreResult<Vec<String>> {
        let txn = self.read()?;
        let mut tenants = std::collections::BTreeSet::new();
        // Every tenant that ever stored a resource has a count row (kept at zero when emptied).
        let counts = txn.open_table(COUNTS).map_err(unavailable)?;
        for entry in counts.iter().map_err(unavailable)? {
            let (key, _) = entry.map_err(unavailable)?;
            tenants.insert(key.value().0.to_owned());
        }
        Ok(tenants.into_iter().collect())
    }

    fn tenant_rows(
        &self,
        tenant: &str,
        _expected: &scimflow_core::memory::MemoryState,
    ) -> StoreResult<(scimflow_core::memory::MemoryState, Option<[u64; 2]>)> {
        let (state, counts) = self.dump_tenants(Some(tenant))?.remove(tenant).unwrap_or_default();
        Ok((state, Some(counts)))
    }

    fn repair(&self, tenant: &str, mutations: &[Mutation], counts: [u64; 2]) -> StoreResult<()> {
        EmbeddedStore::repair(self, tenant, mutations, counts)
    }

    fn flush(&self) -> StoreResult<()> {
        self.checkpoint()
    }
}

#[async_trait]
impl StoreReader for EmbeddedStore {
    async fn resource(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<StoredResource>> {
        let (tenant, id) = (tenant_id.to_owned(), id.to_owned());
        self.blocking(move |txn| Self::read_resource(txn, &tenant, kind, &id)).await
    }

    async fn index_lookup(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        index: IndexName,
        key: &str,
    ) -> StoreResult<Vec<String>> {
        let (tenant, key) = (tenant_id.to_owned(), key.to_owned());
        self.blocking(move |txn| Self::read_index(txn, &tenant, kind, index, &key)).await
    }

    async fn groups_of(&self, tenant_id: &str, member_id: &str) -> StoreResult<Vec<String>> {
        let (tenant, member) = (tenant_id.to_owned(), member_id.to_owned());
        self.blocking(move |txn| Self::read_groups_of(txn, &tenant, &member)).await
    }

    async fn members_page(
        &self,
        tenant_id: &str,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Member>> {
        let (tenant, group, after) = (tenant_id.to_owned(), group_id.to_owned(), after.map(str::to_owned));
        self.blocking(move |txn| Self::read_members_page(txn, &tenant, &group, after.as_deref(), limit)).await
    }

    async fn resource_count(&self, tenant_id: &str, kind: ResourceKind) -> StoreResult<Option<u64>> {
        let tenant = tenant_id.to_owned();
        self.blocking(move |txn| {
            let counts = txn.open_table(COUNTS).map_err(unavailable)?;
            let count = counts.get((tenant.as_str(), kind_code(kind))).map_err(unavailable)?;
            Ok(Some(count.map(|count| count.value()).unwrap_or(0)))
        })
        .await
    }

    async fn resources_page(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoredResource)>> {
        let (tenant, after) = (tenant_id.to_owned(), after.map(str::to_owned));
        self.blocking(move |txn| Self::read_resources_page(txn, &tenant, kind, after.as_deref(), limit)).await
    }
}
