//! [`ApiConfig`]: the limits and switches of the HTTP layer, with defaults that suit the IdPs
//! in `scim/idp-quirks.md`. Every limit here is also what `/ServiceProviderConfig` advertises,
//! so clients can see the rules they are held to.

use crate::limits::LimitsConfig;
use crate::runtime::ApiRuntime;
use std::collections::HashMap;
use std::time::Duration;

/// Limits and behaviour switches of the SCIM API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Where the SCIM endpoints are mounted, without a trailing slash (default `/scim/v2`).
    pub base_path: String,
    /// Largest request body accepted on every endpoint but `/Bulk`; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a body. SCIM documents nest three or four levels; the
    /// limit keeps hostile input from costing stack or time before it is rejected with 400.
    pub max_json_depth: usize,
    /// Largest filter accepted, as counted by `scimflow_core::filter::complexity`; larger
    /// filters get 400 `invalidFilter`.
    pub max_filter_complexity: usize,
    /// Most resources one list page returns (`filter.maxResults`, `pagination.maxPageSize`).
    /// A larger `count` is clamped, as RFC 7644 §3.4.2.4 allows.
    pub max_results: usize,
    /// Page size when the client sends no `count`.
    pub default_page_size: usize,
    /// Most matches a sorted query may have: `sortBy` needs all matches in memory. Above it the
    /// request gets 400 `tooMany` asking for a narrower filter.
    pub max_sort_matches: usize,
    /// Most operations in one `/Bulk` request (`bulk.maxOperations`); more gets 413.
    pub bulk_max_operations: usize,
    /// Largest `/Bulk` body in bytes (`bulk.maxPayloadSize`); larger gets 413.
    pub bulk_max_payload_bytes: usize,
    /// Most members rendered into one response (a Group GET, or all groups of a list page
    /// together). Beyond it the response carries `X-Scimflow-Members-Truncated: true` and the
    /// rest is read with `GET /Groups/{id}/members?cursor=..`.
    pub member_page_cap: usize,
    /// Group PATCH answers 200 with the group instead of 204 (E12: 204 is what Entra ID
    /// recommends; a PATCH naming `attributes`/`excludedAttributes` always gets 200 + body).
    pub group_patch_returns_body: bool,
    /// Seconds sent in `Retry-After` with a 503 (log or store unavailable, outcome late).
    pub retry_after: Duration,
    /// Resources read per store call while scanning for a filter without an index.
    pub scan_batch_size: usize,
    /// Per-tenant rate and concurrency limits (429 + `Retry-After` beyond them). None by
    /// default; a server sets [`LimitsConfig::recommended`] or its own.
    pub limits: LimitsConfig,
    /// `tenant_class` metric label by tenant id; tenants not named get
    /// [`default_tenant_class`](Self::default_tenant_class). Keeps metric cardinality bounded:
    /// the tenant id itself is never a label unless mapped to a class of its own here.
    pub tenant_classes: HashMap<String, String>,
    /// `tenant_class` of tenants not in [`tenant_classes`](Self::tenant_classes) (`standard`).
    pub default_tenant_class: String,
    /// How long `/readyz` waits for the store (and each extra probe) before calling it down.
    pub readiness_timeout: Duration,
    /// How long a failed append keeps the log "unreachable" for `/readyz` when no later append
    /// succeeded (see [`LogHealth`](crate::runtime::LogHealth)).
    pub log_failure_window: Duration,
    /// How long a stopping server waits for in-flight requests before closing them.
    pub shutdown_timeout: Duration,
    /// Shared runtime state (metrics, limiter buckets, log health); ignored by `==`.
    pub runtime: ApiRuntime,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            base_path: "/scim/v2".to_owned(),
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            max_filter_complexity: 200,
            max_results: 1000,
            default_page_size: 100,
            max_sort_matches: 10_000,
            bulk_max_operations: 1000,
            bulk_max_payload_bytes: 4 * 1024 * 1024,
            member_page_cap: 10_000,
            group_patch_returns_body: false,
            retry_after: Duration::from_secs(5),
            scan_batch_size: 500,
            limits: LimitsConfig::default(),
            tenant_classes: HashMap::new(),
            default_tenant_class: "standard".to_owned(),
            readiness_timeout: Duration::from_secs(2),
            log_failure_window: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            runtime: ApiRuntime::default(),
        }
    }
}

impl ApiConfig {
    /// The base path with exactly one leading and no trailing slash (`""` when mounted at `/`).
    pub fn normalized_base_path(&self) -> String {
        let trimmed = self.base_path.trim_matches('/');
        if trimmed.is_empty() { String::new() } else { format!("/{trimmed}") }
    }

    /// `Retry-After` in whole seconds, at least one.
    pub fn retry_after_seconds(&self) -> u64 {
        self.retry_after.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_path_is_normalized() {
        let mut config = ApiConfig::default();
        assert_eq!(config.normalized_base_path(), "/scim/v2");
        config.base_path = "scim/v2/".into();
        assert_eq!(config.normalized_base_path(), "/scim/v2");
        config.base_path = "/".into();
        assert_eq!(config.normalized_base_path(), "");
    }
}
