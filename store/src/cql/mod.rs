//! The CQL store: the folded state in ScyllaDB (production) or Apache Cassandra (its test
//! stand-in), behind the same ports as the embedded store. Only CQL both accept is used: no
//! `USING TIMEOUT`, CDC, tablets options, SAI, materialized views or secondary indexes, and no
//! lightweight transactions or logged batches.
//!
//! The data model, its size math and the crash-safety argument are in `docs/data-model.md`.
//! In short:
//! - every table is partitioned so that no partition grows with a tenant or a group without
//!   bound: resources and memberships are spread over fixed hash buckets, and id-ordered pages
//!   merge the buckets ([`reader`]);
//! - a commit is not atomic in CQL, so it first stores the whole batch as an *intent* in
//!   `pending_batches`, then writes the rows, then advances `log_positions` and drops the intent;
//!   after a crash the intent is replayed before anything new is folded ([`writer`]);
//! - every row write carries an explicit timestamp derived from the batch (`USING TIMESTAMP`),
//!   so the writes of a batch can run concurrently and a replay writes exactly the same cells.
//!
//! ## Layout
//! - [`config`]: contact points, keyspace, replication, consistency, from `SCIMFLOW_CQL_*`.
//! - [`schema`]: the versioned, idempotent migrations that create the keyspace and tables.
//! - [`statements`]: every statement, prepared once.
//! - [`intent`]: the encoding of a pending batch.
//! - [`view`]: the fold's synchronous, cached view of one tenant.
//! - [`writer`]: [`crate::StoreWriter`]: commit in steps, recovery of an interrupted batch.
//! - [`reader`]: [`crate::StoreReader`]: point reads and bucket-merged pages.
//! - [`maintenance`]: [`crate::StoreMaintenance`]: a tenant's rows read back, repairs.

pub mod config;
pub mod intent;
pub mod maintenance;
pub mod reader;
pub mod schema;
pub mod statements;
pub mod view;
pub mod writer;

pub use config::{CqlConfig, Replication};
pub use schema::{Layout, migrate};
pub use writer::CrashPoint;

use crate::port::{StoreError, StoreResult};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use statements::Statements;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::runtime::Handle;

/// The CQL store. Cheap to clone; all clones share one driver session.
#[derive(Clone)]
pub struct CqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    statements: Statements,
    layout: Layout,
    config: CqlConfig,
    /// The runtime the driver runs on. The synchronous [`crate::StoreWriter`] methods block on
    /// it; they must be called from a blocking thread (`spawn_blocking`), never from an async task
    /// (on a current-thread runtime that panics rather than deadlocking).
    handle: Handle,
}

impl CqlStore {
    /// Connects, runs the migrations (idempotent: a no-op when the schema is current) and
    /// prepares every statement. Must be called within a Tokio runtime, which the store keeps
    /// using for the synchronous writer methods.
    pub async fn connect(config: CqlConfig) -> StoreResult<Self> {
        config::validate_keyspace(&config.keyspace).map_err(StoreError::Unavailable)?;
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &config.local_dc {
            policy = policy.prefer_datacenter(dc.clone()).permit_dc_failover(false);
        }
        let profile = ExecutionProfile::builder()
            .consistency(config.consistency)
            .load_balancing_policy(policy.build())
            .build()
            .into_handle();
        let session = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .default_execution_profile_handle(profile)
            .build()
            .await
            .map_err(|error| unavailable(&format!("cannot connect to {}", config.nodes.join(",")), error))?;
        let layout = migrate(&session, &config).await?;
        if (layout.resource_buckets, layout.member_buckets)
            != (config.resource_buckets, config.member_buckets)
        {
            // Not an error: the keyspace's layout is the only one its rows can be read with.
            tracing::warn!(
                keyspace = %config.keyspace,
                configured = ?(config.resource_buckets, config.member_buckets),
                in_force = ?(layout.resource_buckets, layout.member_buckets),
                "CqlBucketConfigIgnored"
            );
        }
        let statements = Statements::prepare(&session, &config.keyspace).await?;
        tracing::info!(
            keyspace = %config.keyspace,
            resource_buckets = layout.resource_buckets,
            member_buckets = layout.member_buckets,
            "CqlStoreConnected"
        );
        Ok(CqlStore {
            inner: Arc::new(Inner { session, statements, layout, config, handle: Handle::current() }),
        })
    }

    /// [`Self::connect`] with [`CqlConfig::from_env`]; `Ok(None)` when `SCIMFLOW_CQL_NODES` is
    /// unset (the CQL store is not configured).
    pub async fn connect_from_env() -> StoreResult<Option<Self>> {
        match CqlConfig::from_env()? {
            Some(config) => Self::connect(config).await.map(Some),
            None => Ok(None),
        }
    }

    /// The driver session (for administration and tests, e.g. dropping a test keyspace).
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    pub fn keyspace(&self) -> &str {
        &self.inner.config.keyspace
    }

    /// The bucket counts in force (read from the keyspace, not from the configuration).
    pub fn layout(&self) -> Layout {
        self.inner.layout
    }

    /// Runs `future` to completion from synchronous code (see [`Inner::handle`]).
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        tokio::task::block_in_place(|| self.inner.handle.block_on(future))
    }
}

pub(crate) fn unavailable(context: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{context}: {error}"))
}

/// The bucket of `id` among `buckets`: FNV-1a (64 bit) of its UTF-8 bytes, modulo `buckets`.
/// Stored rows depend on it, so it must never change.
pub fn bucket_of(id: &str, buckets: u32) -> i32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(buckets.max(1))) as i32
}

/// Microseconds since the epoch, the unit of CQL write timestamps.
pub(crate) fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_micros() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        // Pinned values: changing the hash would orphan every stored row.
        assert_eq!(bucket_of("", 64), (0xcbf2_9ce4_8422_2325u64 % 64) as i32);
        assert_eq!(bucket_of("a", 1), 0);
        assert_eq!(bucket_of("a", 64), 12); // FNV-1a("a") = 0xaf63dc4c8601ec8c
        let mut counts = [0usize; 16];
        for i in 0..16_000 {
            counts[bucket_of(&format!("2819c223-7f76-453a-919d-{i:012}"), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|count| (800..1200).contains(count)), "{counts:?}");
    }
}
