//! [`MeteredStore`]: any store adapter, with the latency of every port call recorded.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `scimflow_store_operation_duration_seconds` | histogram | `side` (`writer`, `reader`), `operation`, `result` (`ok`, `error`) |
//!
//! `operation` is the port method (`commit`, `position`, `next_offset`, `tenant_view`, `changes_between`;
//! the fold's reads through a tenant view as `view_resource`, `view_index_lookup`,
//! `view_is_member`, `view_groups_of`; the API's `resource`, `index_lookup`, `groups_of`,
//! `members_page`, `resources_page`, `resource_count`): a fixed set, so the series stay few.
//! A view read has no error result (the view remembers failures, see [`TenantView`]), so it is
//! always `ok`.
//!
//! Decorating the ports keeps the adapters free of metrics and measures every adapter alike.

use crate::port::{ChangeRecord, StoreReader, StoreResult, StoreWriter, TenantCommit, TenantView};
use crate::position::PartitionPosition;
use async_trait::async_trait;
use prometheus::{HistogramOpts, HistogramVec, Registry};
use scimflow_core::ResourceKind;
use scimflow_core::index::IndexName;
use scimflow_core::state::{Member, StateView, StoredResource};
use std::time::Instant;

/// Buckets in seconds: an embedded read takes microseconds, a CQL round trip a millisecond or
/// more, a large commit up to seconds.
const STORE_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Clone)]
pub struct StoreMetrics {
    pub operation_duration: HistogramVec,
}

impl std::fmt::Debug for StoreMetrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("StoreMetrics")
    }
}

impl Default for StoreMetrics {
    fn default() -> Self {
        let operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "scimflow_store_operation_duration_seconds",
                "Time of one store port call, by side (writer: projector, reader: API) and operation",
            )
            .buckets(STORE_BUCKETS.to_vec()),
            &["side", "operation", "result"],
        )
        .expect("valid metric");
        StoreMetrics { operation_duration }
    }
}

impl StoreMetrics {
    /// New metrics, registered on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = StoreMetrics::default();
        registry.register(Box::new(metrics.operation_duration.clone()))?;
        Ok(metrics)
    }

    fn observe<T>(&self, side: &str, operation: &str, started: Instant, result: &StoreResult<T>) {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.operation_duration
            .with_label_values(&[side, operation, outcome])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// A store adapter whose port calls are timed into [`StoreMetrics`].
///
/// # Examples
/// ```no_run
/// # fn example(store: scimflow_store::embedded::EmbeddedStore) {
/// use scimflow_store::metered::{MeteredStore, StoreMetrics};
/// let registry = prometheus::Registry::new();
/// let metrics = StoreMetrics::register(&registry).expect("registered once");
/// let store = std::sync::Arc::new(MeteredStore::new(store, metrics));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MeteredStore<S> {
    inner: S,
    metrics: StoreMetrics,
}

impl<S> MeteredStore<S> {
    pub fn new(inner: S, metrics: StoreMetrics) -> Self {
        MeteredStore { inner, metrics }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

const WRITER: &str = "writer";
const READER: &str = "reader";

impl<S: StoreWriter> StoreWriter for MeteredStore<S> {
    fn tenant_view(&self, tenant_id: &str) -> StoreResult<Box<dyn TenantView + '_>> {
        let started = Instant::now();
        let result = self.inner.tenant_view(tenant_id);
        self.metrics.observe(WRITER, "tenant_view", started, &result);
        let view = result?;
        Ok(Box::new(MeteredView { inner: view, metrics: &self.metrics }))
    }

    fn position(&self, partition: u32) -> StoreResult<PartitionPosition> {
        let started = Instant::now();
        let result = self.inner.position(partition);
        self.metrics.observe(WRITER, "position", started, &result);
        result
    }

    fn next_offset(&self, partition: u32) -> StoreResult<u64> {
        let started = Instant::now();
        let result = self.inner.next_offset(partition);
        self.metrics.observe(WRITER, "next_offset", started, &result);
        result
    }

    fn commit(
        &self,
        partition: u32,
        position: &PartitionPosition,
        tenants: &[TenantCommit],
        changes: &[ChangeRecord],
    ) -> StoreResult<()> {
        let started = Instant::now();
        let result = self.inner.commit(partition, position, tenants, changes);
        self.metrics.observe(WRITER, "commit", started, &result);
        result
    }

    fn changes_between(&self, partition: u32, from: u64, to: u64) -> StoreResult<Vec<ChangeRecord>> {
        let started = Instant::now();
        let result = self.inner.changes_between(partition, from, to);
        self.metrics.observe(WRITER, "changes_between", started, &result);
        result
    }
}

/// A tenant view whose reads (the fold's store reads) are timed.
struct MeteredView<'a> {
    inner: Box<dyn TenantView + 'a>,
    metrics: &'a StoreMetrics,
}

impl MeteredView<'_> {
    fn timed<T>(&self, operation: &str, read: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let value = read();
        self.metrics
            .operation_duration
            .with_label_values(&[WRITER, operation, "ok"])
            .observe(started.elapsed().as_secs_f64());
        value
    }
}

impl StateView for MeteredView<'_> {
    fn resource(&self, kind: ResourceKind, id: &str) -> Option<StoredResource> {
        self.timed("view_resource", || self.inner.resource(kind, id))
    }

    fn index_lookup(&self, kind: ResourceKind, index: IndexName, key: &str) -> Vec<String> {
        self.timed("view_index_lookup", || self.inner.index_lookup(kind, index, key))
    }

    fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        self.timed("view_is_member", || self.inner.is_member(group_id, member_id))
    }

    fn groups_of(&self, member_id: &str) -> Vec<String> {
        self.timed("view_groups_of", || self.inner.groups_of(member_id))
    }
}

impl TenantView for MeteredView<'_> {
    fn failure(&self) -> Option<crate::StoreError> {
        self.inner.failure()
    }
}

#[async_trait]
impl<S: StoreReader> StoreReader for MeteredStore<S> {
    async fn resource(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<StoredResource>> {
        let started = Instant::now();
        let result = self.inner.resource(tenant_id, kind, id).await;
        self.metrics.observe(READER, "resource", started, &result);
        result
    }

    async fn index_lookup(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        index: IndexName,
        key: &str,
    ) -> StoreResult<Vec<String>> {
        let started = Instant::now();
        let result = self.inner.index_lookup(tenant_id, kind, index, key).await;
        self.metrics.observe(READER, "index_lookup", started, &result);
        result
    }

    async fn groups_of(&self, tenant_id: &str, member_id: &str) -> StoreResult<Vec<String>> {
        let started = Instant::now();
        let result = self.inner.groups_of(tenant_id, member_id).await;
        self.metrics.observe(READER, "groups_of", started, &result);
        result
    }

    async fn members_page(
        &self,
        tenant_id: &str,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Member>> {
        let started = Instant::now();
        let result = self.inner.members_page(tenant_id, group_id, after, limit).await;
        self.metrics.observe(READER, "members_page", started, &result);
        result
    }

    async fn resources_page(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoredResource)>> {
        let started = Instant::now();
        let result = self.inner.resources_page(tenant_id, kind, after, limit).await;
        self.metrics.observe(READER, "resources_page", started, &result);
        result
    }

    async fn resource_count(&self, tenant_id: &str, kind: ResourceKind) -> StoreResult<Option<u64>> {
        let started = Instant::now();
        let result = self.inner.resource_count(tenant_id, kind).await;
        self.metrics.observe(READER, "resource_count", started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedStore;

    fn count(registry: &Registry, side: &str, operation: &str) -> u64 {
        registry
            .gather()
            .iter()
            .filter(|family| family.name() == "scimflow_store_operation_duration_seconds")
            .flat_map(|family| family.get_metric().iter())
            .filter(|metric| {
                let labels: Vec<(&str, &str)> =
                    metric.get_label().iter().map(|label| (label.name(), label.value())).collect();
                labels.contains(&("side", side)) && labels.contains(&("operation", operation))
            })
            .map(|metric| metric.get_histogram().get_sample_count())
            .sum()
    }

    #[tokio::test]
    async fn every_port_call_is_timed_under_its_operation() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let store = MeteredStore::new(
            EmbeddedStore::open(&dir.path().join("store.redb")).unwrap(),
            StoreMetrics::register(&registry).unwrap(),
        );
        assert_eq!(store.next_offset(0).unwrap(), 0);
        store.commit(0, &PartitionPosition::at(3), &[], &[]).unwrap();
        assert_eq!(store.next_offset(0).unwrap(), 3);
        let view = store.tenant_view("acme").unwrap();
        assert!(view.resource(ResourceKind::User, "nobody").is_none());
        drop(view);
        assert!(store.resource("acme", ResourceKind::User, "nobody").await.unwrap().is_none());
        assert_eq!(count(&registry, "writer", "next_offset"), 2);
        assert_eq!(count(&registry, "writer", "commit"), 1);
        assert_eq!(count(&registry, "writer", "tenant_view"), 1);
        assert_eq!(count(&registry, "writer", "view_resource"), 1);
        assert_eq!(count(&registry, "reader", "resource"), 1);
    }
}
