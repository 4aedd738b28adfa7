//! [`ApiState`]: what every handler shares (schemas, the write path, the store reader, the
//! tenant authenticator, the limits), and [`TenantStore`], the store reader scoped to the
//! authenticated tenant.
//!
//! Handlers never call the [`StoreReader`] directly: they read through a [`TenantStore`], which
//! holds the tenant id taken from the bearer token, so no read can name another tenant, and
//! every store failure becomes the same 503 + `Retry-After`.

use crate::config::ApiConfig;
use crate::error::{ApiError, ApiResult};
use scimflow_core::index::IndexName;
use scimflow_core::state::{Member, StoredResource};
use scimflow_core::{ResourceKind, SchemaRegistry};
use scimflow_log::{LogReader, WritePath};
use scimflow_store::StoreReader;
use scimflow_store::admins::AdminAuthenticator;
use scimflow_store::port::StoreError;
use scimflow_store::tenants::TenantAuthenticator;
use std::sync::Arc;

/// Everything the API needs; cheap to clone (all shared parts are behind `Arc`s).
#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<SchemaRegistry>,
    /// Append a command and wait for the projector's outcome.
    pub write: WritePath,
    /// Reads of the folded state (the projector's store).
    pub reader: Arc<dyn StoreReader>,
    /// Bearer token -> tenant id.
    pub auth: Arc<dyn TenantAuthenticator>,
    pub config: ApiConfig,
    /// The command log and the admin credentials, for the history endpoints; `None` answers 501.
    pub audit: Option<AuditAccess>,
}

/// What the history endpoints read: the command log (the source of truth, folded again per
/// request) and the admin tokens of `/admin`.
#[derive(Clone)]
pub struct AuditAccess {
    pub log: Arc<dyn LogReader>,
    pub admins: Arc<dyn AdminAuthenticator>,
}

impl ApiState {
    pub fn new(
        registry: Arc<SchemaRegistry>,
        write: WritePath,
        reader: Arc<dyn StoreReader>,
        auth: Arc<dyn TenantAuthenticator>,
        config: ApiConfig,
    ) -> Self {
        ApiState { registry, write, reader, auth, config, audit: None }
    }

    /// Serves the history endpoints from `audit`.
    pub fn with_audit(mut self, audit: AuditAccess) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The store reader of one tenant.
    pub fn store<'a>(&'a self, tenant_id: &'a str) -> TenantStore<'a> {
        TenantStore {
            reader: self.reader.as_ref(),
            tenant_id,
            retry_after_secs: self.config.retry_after_seconds(),
        }
    }
}

/// A [`StoreReader`] bound to one tenant, answering [`ApiError`]s.
#[derive(Clone, Copy)]
pub struct TenantStore<'a> {
    reader: &'a dyn StoreReader,
    tenant_id: &'a str,
    retry_after_secs: u64,
}

impl<'a> TenantStore<'a> {
    pub fn tenant_id(&self) -> &'a str {
        self.tenant_id
    }

    fn unavailable(&self, error: StoreError) -> ApiError {
        tracing::warn!(tenant_id = self.tenant_id, error = %error, "StoreReadError");
        ApiError::unavailable(error, self.retry_after_secs)
    }

    pub async fn resource(&self, kind: ResourceKind, id: &str) -> ApiResult<Option<StoredResource>> {
        self.reader.resource(self.tenant_id, kind, id).await.map_err(|error| self.unavailable(error))
    }

    /// The resource, or 404 naming what was not found.
    pub async fn existing(&self, kind: ResourceKind, id: &str) -> ApiResult<StoredResource> {
        self.resource(kind, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{} {id} not found", kind.name())))
    }

    pub async fn index_lookup(
        &self,
        kind: ResourceKind,
        index: IndexName,
        key: &str,
    ) -> ApiResult<Vec<String>> {
        self.reader
            .index_lookup(self.tenant_id, kind, index, key)
            .await
            .map_err(|error| self.unavailable(error))
    }

    pub async fn groups_of(&self, member_id: &str) -> ApiResult<Vec<String>> {
        self.reader.groups_of(self.tenant_id, member_id).await.map_err(|error| self.unavailable(error))
    }

    pub async fn members_page(
        &self,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> ApiResult<Vec<Member>> {
        self.reader
            .members_page(self.tenant_id, group_id, after, limit)
            .await
            .map_err(|error| self.unavailable(error))
    }

    /// The number of resources of `kind`, when the store keeps it (see
    /// [`StoreReader::resource_count`]).
    pub async fn resource_count(&self, kind: ResourceKind) -> ApiResult<Option<u64>> {
        self.reader.resource_count(self.tenant_id, kind).await.map_err(|error| self.unavailable(error))
    }

    pub async fn resources_page(
        &self,
        kind: ResourceKind,
        after: Option<&str>,
        limit: usize,
    ) -> ApiResult<Vec<(String, StoredResource)>> {
        self.reader
            .resources_page(self.tenant_id, kind, after, limit)
            .await
            .map_err(|error| self.unavailable(error))
    }
}
