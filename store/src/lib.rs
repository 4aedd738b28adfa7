//! # scimflow-store
//!
//! The projection store: the folded state of every tenant as rows (resources, lookup indexes,
//! one row per group membership and its reverse), written only by the projector and read by the
//! API. The log stays the source of truth; a store can always be rebuilt by replaying it.
//!
//! ## Layout
//! - [`port`]: the [`StoreWriter`] (projector side) and [`StoreReader`] (API side) traits.
//! - [`position`]: how far a log partition is folded (a watermark and the tenants ahead of it).
//! - [`embedded`]: the default adapter on redb, a proven embedded transactional database.
//! - [`cql`]: the production adapter on ScyllaDB (tested on Apache Cassandra), same data model.
//! - [`metered`]: [`MeteredStore`](metered::MeteredStore), any adapter with its calls timed for `/metrics`.
//! - [`tenants`]: tenants and their bearer tokens (stored as SHA-256 hashes only).
//! - [`admins`]: the operator's admin tokens, distinct from every tenant's (hashes only).
//! - [`audit`]: reading a tenant's rows back in bounded pages through [`StoreReader`], for
//!   [`StoreMaintenance`] on stores that cannot scan a tenant in one go.

pub mod admins;
pub mod audit;
pub mod cql;
pub mod embedded;
pub mod metered;
pub mod port;
pub mod position;
pub mod tenants;

pub use port::{
    ChangeRecord, StoreError, StoreMaintenance, StoreReader, StoreResult, StoreWriter, TenantCommit,
    TenantView,
};
pub use position::PartitionPosition;
