//! Per-tenant limit overrides may name a tenant by name (`acme`) or by id. The limiter keys by
//! tenant id (the token says which tenant a request is), so names are turned into ids when the
//! server starts, from the tenant directory.

use scimflow_ingest_api::limits::LimitsConfig;
use scimflow_store::tenants::TenantDirectory;

/// Rekeys `limits.tenants` by tenant id. A key that names no tenant yet is kept as written
/// (it applies if it is the id of a tenant created later) and logged: a tenant created later
/// under that name gets its override at the next start.
pub fn resolve_tenant_names(tenants: &TenantDirectory, limits: &mut LimitsConfig) -> anyhow::Result<()> {
    let configured = std::mem::take(&mut limits.tenants);
    for (name_or_id, tenant_limits) in configured {
        match tenants.find(&name_or_id)? {
            Some(tenant) => {
                limits.tenants.insert(tenant.id, tenant_limits);
            }
            None => {
                tracing::warn!(tenant = %name_or_id, "TenantLimitsOverrideUnmatched");
                limits.tenants.entry(name_or_id).or_insert(tenant_limits);
            }
        }
    }
    Ok(())
}
