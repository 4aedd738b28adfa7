//! [`StoreMaintenance`] on CQL: `scimflow verify [--repair]` against a keyspace.
//!
//! A tenant's rows are read back in bounded pages through the reader ([`crate::audit`]); the
//! store keeps no resource counts (`totalResults` is counted by the API), so there are none to
//! compare.
//!
//! A repair writes its rows like a batch does ([`super::writer`]), at one timestamp per
//! mutation, above every partition's last used timestamp and the wall clock: it overwrites the
//! drifted cells, and the next batch of any partition (whose base is also above the wall clock)
//! still overwrites the repair. It does not touch `log_positions` or the change feed.

use super::writer::plan;
use super::{CqlStore, now_micros, unavailable};
use crate::audit::read_tenant_rows;
use crate::port::{StoreMaintenance, StoreResult, TenantCommit};
use futures_util::StreamExt;
use scimflow_core::memory::MemoryState;
use scimflow_core::state::Mutation;
use std::collections::BTreeSet;

impl CqlStore {
    /// The highest write timestamp any partition has used (0 for a new keyspace).
    async fn last_used_timestamp(&self) -> StoreResult<i64> {
        let query = format!("SELECT last_timestamp FROM {}.log_positions", self.keyspace());
        let mut rows = self
            .session()
            .query_iter(query, ())
            .await
            .map_err(|error| unavailable("read log positions", error))?
            .rows_stream::<(Option<i64>,)>()
            .map_err(|error| unavailable("read log positions", error))?;
        let mut last = 0;
        while let Some(row) = rows.next().await {
            let (timestamp,) = row.map_err(|error| unavailable("read log positions", error))?;
            last = last.max(timestamp.unwrap_or_default());
        }
        Ok(last)
    }

    async fn tenants_with_resources(&self) -> StoreResult<Vec<String>> {
        // Partition keys only, paged by the driver: one row per (tenant, kind, bucket).
        let query = format!("SELECT DISTINCT tenant, kind, bucket FROM {}.resources", self.keyspace());
        let mut rows = self
            .session()
            .query_iter(query, ())
            .await
            .map_err(|error| unavailable("list tenants", error))?
            .rows_stream::<(String, String, i32)>()
            .map_err(|error| unavailable("list tenants", error))?;
        let mut tenants = BTreeSet::new();
        while let Some(row) = rows.next().await {
            tenants.insert(row.map_err(|error| unavailable("list tenants", error))?.0);
        }
        Ok(tenants.into_iter().collect())
    }

    async fn repair_rows(&self, tenant: &str, mutations: &[Mutation]) -> StoreResult<()> {
        let base = now_micros().max(self.last_used_timestamp().await? + 1);
        let tenants = [TenantCommit { tenant_id: tenant.to_owned(), mutations: mutations.to_vec() }];
        // A repair never clears a group (it names each membership), so the plan is rows only.
        let plan = plan(0, 0, base, &tenants, &[]);
        self.run_writes(plan.rows.iter().map(|(timestamp, write)| (*timestamp, write))).await
    }
}

impl StoreMaintenance for CqlStore {
    fn stored_tenants(&self) -> StoreResult<Vec<String>> {
        self.block_on(self.tenants_with_resources())
    }

    fn tenant_rows(
        &self,
        tenant: &str,
        expected: &MemoryState,
    ) -> StoreResult<(MemoryState, Option<[u64; 2]>)> {
        let state = self.block_on(read_tenant_rows(self, tenant, expected))?;
        Ok((state, None))
    }

    fn repair(&self, tenant: &str, mutations: &[Mutation], _counts: [u64; 2]) -> StoreResult<()> {
        self.block_on(self.repair_rows(tenant, mutations))
    }
}
