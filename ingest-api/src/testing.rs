//! An in-memory stand-in for the log, the projector and the store, to test the HTTP layer
//! without the real pipeline (the end-to-end tests run the embedded one).
//!
//! [`MemoryPipeline`] is a [`CommandLog`] that folds each appended command at once with core's
//! [`BatchFold`] into a per-tenant [`MemoryState`] and delivers the outcome to the hub, and a
//! [`StoreReader`] over the same states, so an answer is built exactly as in production: from
//! the projector's outcome, then reads. Faults can be switched on to test the 503 paths.
//!
//! # Examples
//! ```
//! use scimflow_ingest_api::{ApiConfig, testing::MemoryPipeline};
//! let pipeline = MemoryPipeline::new();
//! let state = pipeline.api_state(&[("token-a", "tenant-a")], ApiConfig::default());
//! # let _ = state;
//! ```

use crate::config::ApiConfig;
use crate::state::ApiState;
use async_trait::async_trait;
use scimflow_core::command::Command;
use scimflow_core::fold::BatchFold;
use scimflow_core::index::IndexName;
use scimflow_core::memory::MemoryState;
use scimflow_core::state::{Member, StateView, StoredResource};
use scimflow_core::{ResourceKind, SchemaRegistry};
use scimflow_log::WritePath;
use scimflow_log::outcome::{Accepted, Outcome, OutcomeHub};
use scimflow_log::port::{Appended, CommandLog, LogError};
use scimflow_store::StoreReader;
use scimflow_store::port::{StoreError, StoreResult};
use scimflow_store::tenants::TenantAuthenticator;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Log, projector and store in memory, folding synchronously with core.
pub struct MemoryPipeline {
    registry: Arc<SchemaRegistry>,
    hub: Arc<OutcomeHub>,
    tenants: Mutex<HashMap<String, MemoryState>>,
    commands: Mutex<Vec<Command>>,
    next_offset: AtomicU64,
    log_down: AtomicBool,
    store_down: AtomicBool,
    drop_outcomes: AtomicBool,
    members_page_reads: AtomicUsize,
    resources_page_reads: AtomicUsize,
    counts_known: AtomicBool,
}

impl Default for MemoryPipeline {
    fn default() -> Self {
        MemoryPipeline {
            registry: Arc::new(SchemaRegistry::standard()),
            hub: Arc::new(OutcomeHub::new()),
            tenants: Mutex::new(HashMap::new()),
            commands: Mutex::new(Vec::new()),
            next_offset: AtomicU64::new(0),
            log_down: AtomicBool::new(false),
            store_down: AtomicBool::new(false),
            drop_outcomes: AtomicBool::new(false),
            members_page_reads: AtomicUsize::new(0),
            resources_page_reads: AtomicUsize::new(0),
            counts_known: AtomicBool::new(true),
        }
    }
}

impl MemoryPipeline {
    pub fn new() -> Arc<MemoryPipeline> {
        Arc::new(MemoryPipeline::default())
    }

    pub fn registry(&self) -> Arc<SchemaRegistry> {
        self.registry.clone()
    }

    /// An [`ApiState`] over this pipeline, with static `(token, tenant id)` pairs. Outcomes
    /// that do not arrive (see [`drop_outcomes`](Self::drop_outcomes)) time out after 200 ms.
    pub fn api_state(self: &Arc<Self>, tokens: &[(&str, &str)], config: ApiConfig) -> ApiState {
        let write = WritePath::new(self.clone(), self.hub.clone(), Duration::from_millis(200));
        ApiState::new(self.registry.clone(), write, self.clone(), Arc::new(StaticTokens::new(tokens)), config)
    }

    /// Appends fail with [`LogError::Unavailable`] while set.
    pub fn set_log_down(&self, down: bool) {
        self.log_down.store(down, Ordering::SeqCst);
    }

    /// Store reads fail with [`StoreError::Unavailable`] while set.
    pub fn set_store_down(&self, down: bool) {
        self.store_down.store(down, Ordering::SeqCst);
    }

    /// Commands are folded but their outcomes are not delivered while set (outcome timeouts).
    pub fn drop_outcomes(&self, drop: bool) {
        self.drop_outcomes.store(drop, Ordering::SeqCst);
    }

    /// How many `members_page` reads the API made so far: lets tests prove that excluded or
    /// index-served memberships are never paged (E11, cost independent of group size).
    pub fn members_page_reads(&self) -> usize {
        self.members_page_reads.load(Ordering::SeqCst)
    }

    /// How many `resources_page` reads (scan batches) the API made so far.
    pub fn resources_page_reads(&self) -> usize {
        self.resources_page_reads.load(Ordering::SeqCst)
    }

    /// Whether [`StoreReader::resource_count`] answers (the default) or leaves counting to
    /// the API, like a store without counters.
    pub fn set_counts_known(&self, known: bool) {
        self.counts_known.store(known, Ordering::SeqCst);
    }

    /// Every command appended so far, decoded from the log payload, in log order.
    pub fn commands(&self) -> Vec<Command> {
        lock(&self.commands).clone()
    }

    /// A copy of one tenant's state.
    pub fn tenant_state(&self, tenant_id: &str) -> MemoryState {
        lock(&self.tenants).get(tenant_id).cloned().unwrap_or_default()
    }

    /// Folds one command into its tenant's state, as the projector would.
    fn fold(&self, tenant_id: &str, command: &Command) -> Outcome {
        let mut tenants = lock(&self.tenants);
        let state = tenants.entry(tenant_id.to_owned()).or_default();
        let (decision, mutations) = {
            let mut fold = BatchFold::new(&self.registry, &*state);
            let decision = fold.fold(command);
            (decision, fold.into_mutations())
        };
        state.apply_all(&mutations);
        Outcome {
            event_id: command.event_id.clone(),
            result: decision.map(|accepted| Accepted {
                status: accepted.status,
                resource: accepted.resource,
                skipped_members: accepted.skipped_members,
            }),
        }
    }

    fn read<T>(&self, tenant_id: &str, read: impl FnOnce(&MemoryState) -> T) -> StoreResult<T> {
        if self.store_down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the test store is switched off".into()));
        }
        let tenants = lock(&self.tenants);
        let empty = MemoryState::default();
        Ok(read(tenants.get(tenant_id).unwrap_or(&empty)))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl CommandLog for MemoryPipeline {
    async fn append(
        &self,
        tenant_id: &str,
        payload: Vec<u8>,
        _headers: Vec<(String, String)>,
    ) -> Result<Appended, LogError> {
        if self.log_down.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("the test log is switched off".into()));
        }
        let offset = self.next_offset.fetch_add(1, Ordering::SeqCst);
        // Decode what was appended, as the projector does: the test sees the real envelope.
        let command = match Command::decode(&payload) {
            Ok(command) => command,
            Err(_) => return Ok(Appended { partition: 0, offset }),
        };
        lock(&self.commands).push(command.clone());
        let outcome = self.fold(tenant_id, &command);
        if !self.drop_outcomes.load(Ordering::SeqCst) {
            self.hub.deliver(outcome);
        }
        Ok(Appended { partition: 0, offset })
    }
}

#[async_trait]
impl StoreReader for MemoryPipeline {
    async fn resource(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<StoredResource>> {
        self.read(tenant_id, |state| state.resource(kind, id))
    }

    async fn index_lookup(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        index: IndexName,
        key: &str,
    ) -> StoreResult<Vec<String>> {
        self.read(tenant_id, |state| state.index_lookup(kind, index, key))
    }

    async fn groups_of(&self, tenant_id: &str, member_id: &str) -> StoreResult<Vec<String>> {
        self.read(tenant_id, |state| state.groups_of(member_id))
    }

    async fn members_page(
        &self,
        tenant_id: &str,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Member>> {
        self.members_page_reads.fetch_add(1, Ordering::SeqCst);
        self.read(tenant_id, |state| {
            let Some(members) = state.members.get(group_id) else { return Vec::new() };
            let start =
                after.map_or(std::ops::Bound::Unbounded, |after| std::ops::Bound::Excluded(after.to_owned()));
            members
                .range((start, std::ops::Bound::Unbounded))
                .take(limit)
                .map(|(_, member)| member.clone())
                .collect()
        })
    }

    async fn resources_page(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoredResource)>> {
        self.resources_page_reads.fetch_add(1, Ordering::SeqCst);
        self.read(tenant_id, |state| {
            let start = match after {
                Some(after) => std::ops::Bound::Excluded((kind, after.to_owned())),
                None => std::ops::Bound::Included((kind, String::new())),
            };
            state
                .resources
                .range((start, std::ops::Bound::Unbounded))
                .take_while(|((resource_kind, _), _)| *resource_kind == kind)
                .take(limit)
                .map(|((_, id), stored)| (id.clone(), stored.clone()))
                .collect()
        })
    }

    async fn resource_count(&self, tenant_id: &str, kind: ResourceKind) -> StoreResult<Option<u64>> {
        if !self.counts_known.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.read(tenant_id, |state| {
            Some(state.resources.keys().filter(|(resource_kind, _)| *resource_kind == kind).count() as u64)
        })
    }
}

/// Fixed bearer tokens, for tests.
pub struct StaticTokens(HashMap<String, String>);

impl StaticTokens {
    pub fn new(tokens: &[(&str, &str)]) -> Self {
        StaticTokens(
            tokens.iter().map(|(token, tenant)| ((*token).to_owned(), (*tenant).to_owned())).collect(),
        )
    }
}

impl TenantAuthenticator for StaticTokens {
    fn authenticate(&self, token: &str) -> Option<String> {
        self.0.get(token).cloned()
    }
}
