//! Tenant isolation under load: a per-tenant token bucket (requests per second + burst) and a
//! per-tenant cap on concurrent requests, so one noisy tenant cannot take the API from the
//! others.
//!
//! - The limits of a tenant are [`LimitsConfig::default_limits`] unless
//!   [`LimitsConfig::tenants`] names it. A zero rate or zero concurrency disables that limit.
//! - `LimitsConfig::default()` limits nothing, so embedding the API (tests, benchmarks) keeps
//!   its behaviour; a server should start from [`LimitsConfig::recommended`] (50 req/s,
//!   burst 100, 64 concurrent per tenant) and override per tenant.
//! - The check runs after authentication (the tenant comes from the bearer token), before the
//!   handler; a rejected request never reaches the log or the store and is answered
//!   `429 Too Many Requests` with `Retry-After` (see [`Rejection`]).
//! - The limiter is a fixed number of shards, each a `std::sync::Mutex<HashMap>` held for a few
//!   arithmetic operations, so tenants rarely contend and no async lock is needed.
//! - It cannot grow without bound: idle tenants are evicted once their bucket is full again
//!   (so eviction is invisible to them), and a shard over its share of
//!   [`LimitsConfig::max_tracked_tenants`] drops its longest-idle tenants without requests in
//!   flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The limits of one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// Sustained requests per second (the bucket's refill rate); 0 disables the rate limit.
    pub requests_per_second: u32,
    /// Requests that may be sent at once above the rate (the bucket's size; at least 1).
    pub burst: u32,
    /// Requests of the tenant being served at the same time; 0 disables the limit.
    pub max_concurrent: u32,
}

impl TenantLimits {
    /// 50 req/s, burst 100, 64 concurrent: twice what Entra ID sends per tenant (25 req/s
    /// sustained), with room for an Okta import burst.
    pub fn recommended() -> Self {
        TenantLimits { requests_per_second: 50, burst: 100, max_concurrent: 64 }
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        TenantLimits { requests_per_second: 0, burst: 0, max_concurrent: 0 }
    }
}

/// Per-tenant limits: a default and overrides by tenant id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Limits of every tenant not named in [`tenants`](Self::tenants).
    pub default_limits: TenantLimits,
    /// Overrides by tenant id.
    pub tenants: HashMap<String, TenantLimits>,
    /// Most tenants whose buckets are kept; beyond it the longest-idle are forgotten.
    pub max_tracked_tenants: usize,
    /// A tenant idle this long (and with a full bucket) is forgotten.
    pub idle_eviction: Duration,
}

impl Default for LimitsConfig {
    /// No limits (see the module docs); [`recommended`](Self::recommended) for a server.
    fn default() -> Self {
        LimitsConfig {
            default_limits: TenantLimits::unlimited(),
            tenants: HashMap::new(),
            max_tracked_tenants: 100_000,
            idle_eviction: Duration::from_secs(300),
        }
    }
}

impl LimitsConfig {
    /// [`TenantLimits::recommended`] for every tenant.
    pub fn recommended() -> Self {
        LimitsConfig { default_limits: TenantLimits::recommended(), ..LimitsConfig::default() }
    }

    /// The limits that apply to `tenant_id`.
    pub fn limits_of(&self, tenant_id: &str) -> TenantLimits {
        self.tenants.get(tenant_id).copied().unwrap_or(self.default_limits)
    }
}

/// Which limit rejected a request (the `reason` label of `scimflow_api_rate_limited_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReason {
    /// The token bucket was empty.
    Rate,
    /// The tenant already had `max_concurrent` requests in flight.
    Concurrency,
}

impl LimitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitReason::Rate => "rate",
            LimitReason::Concurrency => "concurrency",
        }
    }
}

/// A rejected request: why, and the whole seconds to send in `Retry-After` (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub reason: LimitReason,
    pub retry_after_secs: u64,
}

const SHARDS: usize = 16;
/// Every this many acquisitions a shard sweeps its idle tenants, so memory follows the active
/// tenant set even when no shard reaches its cap.
const SWEEP_EVERY: u64 = 4096;

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
    in_flight: u32,
    last_seen: Instant,
}

impl Bucket {
    fn refill(&mut self, limits: TenantLimits, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        let capacity = f64::from(limits.burst.max(1));
        self.tokens = (self.tokens + elapsed * f64::from(limits.requests_per_second)).min(capacity);
        self.refilled_at = now;
    }

    /// Whether forgetting the bucket changes nothing: no request in flight, idle long enough,
    /// and full again (a new bucket starts full).
    fn evictable(&self, limits: TenantLimits, now: Instant, idle: Duration) -> bool {
        if self.in_flight > 0 || now.saturating_duration_since(self.last_seen) < idle {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens + elapsed * f64::from(limits.requests_per_second) >= f64::from(limits.burst.max(1))
    }
}

#[derive(Default)]
struct Shard {
    buckets: HashMap<String, Bucket>,
    acquisitions: u64,
}

/// The per-tenant limiter; cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct TenantLimiter {
    shards: Arc<[Mutex<Shard>; SHARDS]>,
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding the lock leaves plain counters behind: still usable.
    shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn shard_of(tenant_id: &str) -> usize {
    // FNV-1a: stable, fast, and good enough to spread tenant ids over 16 shards.
    let hash = tenant_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % SHARDS as u64) as usize
}

impl TenantLimiter {
    pub fn new() -> Self {
        TenantLimiter::default()
    }

    /// Admits one request of `tenant_id` now, or says why not. The returned [`Permit`] holds
    /// the tenant's concurrency slot until it is dropped (when the response is ready).
    pub fn acquire(&self, tenant_id: &str, config: &LimitsConfig) -> Result<Permit, Rejection> {
        self.acquire_at(tenant_id, config, Instant::now())
    }

    fn acquire_at(&self, tenant_id: &str, config: &LimitsConfig, now: Instant) -> Result<Permit, Rejection> {
        let limits = config.limits_of(tenant_id);
        let index = shard_of(tenant_id);
        let mut shard = lock(&self.shards[index]);
        shard.acquisitions += 1;
        let per_shard_cap = config.max_tracked_tenants.div_ceil(SHARDS).max(1);
        if shard.acquisitions.is_multiple_of(SWEEP_EVERY)
            || (shard.buckets.len() >= per_shard_cap && !shard.buckets.contains_key(tenant_id))
        {
            sweep(&mut shard, config, now, per_shard_cap);
        }
        let bucket = shard.buckets.entry(tenant_id.to_owned()).or_insert_with(|| Bucket {
            tokens: f64::from(limits.burst.max(1)),
            refilled_at: now,
            in_flight: 0,
            last_seen: now,
        });
        bucket.last_seen = now;
        // Concurrency first: a request turned away for concurrency keeps its token.
        if limits.max_concurrent > 0 && bucket.in_flight >= limits.max_concurrent {
            return Err(Rejection { reason: LimitReason::Concurrency, retry_after_secs: 1 });
        }
        if limits.requests_per_second > 0 {
            bucket.refill(limits, now);
            if bucket.tokens < 1.0 {
                let wait = (1.0 - bucket.tokens) / f64::from(limits.requests_per_second);
                let retry_after_secs = (wait.ceil() as u64).max(1);
                return Err(Rejection { reason: LimitReason::Rate, retry_after_secs });
            }
            bucket.tokens -= 1.0;
        }
        bucket.in_flight += 1;
        Ok(Permit { limiter: self.clone(), tenant_id: tenant_id.to_owned(), shard: index })
    }

    /// Tenants currently tracked (for tests and the eviction guarantee).
    pub fn tracked_tenants(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).buckets.len()).sum()
    }

    /// Requests of `tenant_id` holding a permit now.
    pub fn in_flight(&self, tenant_id: &str) -> u32 {
        lock(&self.shards[shard_of(tenant_id)]).buckets.get(tenant_id).map_or(0, |bucket| bucket.in_flight)
    }
}

/// Drops idle full buckets; if the shard is still at its cap, the longest-idle buckets without
/// requests in flight too (they lose at most their burst allowance, never a slot in use).
fn sweep(shard: &mut Shard, config: &LimitsConfig, now: Instant, cap: usize) {
    shard.buckets.retain(|tenant_id, bucket| {
        !bucket.evictable(config.limits_of(tenant_id), now, config.idle_eviction)
    });
    if shard.buckets.len() < cap {
        return;
    }
    let mut idle: Vec<(Instant, String)> = shard
        .buckets
        .iter()
        .filter(|(_, bucket)| bucket.in_flight == 0)
        .map(|(tenant_id, bucket)| (bucket.last_seen, tenant_id.clone()))
        .collect();
    idle.sort();
    let excess = shard.buckets.len() + 1 - cap;
    for (_, tenant_id) in idle.into_iter().take(excess) {
        shard.buckets.remove(&tenant_id);
    }
}

/// A tenant's concurrency slot, released on drop.
pub struct Permit {
    limiter: TenantLimiter,
    tenant_id: String,
    shard: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut shard = lock(&self.limiter.shards[self.shard]);
        if let Some(bucket) = shard.buckets.get_mut(&self.tenant_id) {
            bucket.in_flight = bucket.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: u32, burst: u32, concurrent: u32) -> LimitsConfig {
        LimitsConfig {
            default_limits: TenantLimits { requests_per_second: rate, burst, max_concurrent: concurrent },
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let limiter = TenantLimiter::new();
        let config = config(10, 5, 0);
        let start = Instant::now();
        for _ in 0..5 {
            drop(limiter.acquire_at("a", &config, start).unwrap());
        }
        let rejection = limiter.acquire_at("a", &config, start).err().unwrap();
        assert_eq!(rejection, Rejection { reason: LimitReason::Rate, retry_after_secs: 1 });
        // Another tenant has its own bucket.
        assert!(limiter.acquire_at("b", &config, start).is_ok());
        // 100 ms at 10/s is one token.
        assert!(limiter.acquire_at("a", &config, start + Duration::from_millis(100)).is_ok());
        assert!(limiter.acquire_at("a", &config, start + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn retry_after_covers_a_slow_rate() {
        let limiter = TenantLimiter::new();
        let mut config = config(1, 1, 0);
        config
            .tenants
            .insert("slow".into(), TenantLimits { requests_per_second: 1, burst: 1, max_concurrent: 0 });
        let start = Instant::now();
        drop(limiter.acquire_at("slow", &config, start).unwrap());
        let rejection = limiter.acquire_at("slow", &config, start).err().unwrap();
        assert_eq!(rejection.retry_after_secs, 1);
    }

    #[test]
    fn concurrency_slots_are_released_on_drop_and_keep_tokens() {
        let limiter = TenantLimiter::new();
        let config = config(0, 0, 2);
        let first = limiter.acquire("a", &config).unwrap();
        let _second = limiter.acquire("a", &config).unwrap();
        assert_eq!(limiter.acquire("a", &config).err().unwrap().reason, LimitReason::Concurrency);
        assert_eq!(limiter.in_flight("a"), 2);
        drop(first);
        assert!(limiter.acquire("a", &config).is_ok());
    }

    #[test]
    fn idle_tenants_are_evicted_and_the_map_stays_bounded() {
        let limiter = TenantLimiter::new();
        let mut config = config(100, 1, 0);
        config.max_tracked_tenants = 64;
        config.idle_eviction = Duration::from_secs(1);
        let start = Instant::now();
        for tenant in 0..1000 {
            let now = start + Duration::from_millis(tenant);
            drop(limiter.acquire_at(&format!("tenant-{tenant}"), &config, now).unwrap());
        }
        assert!(limiter.tracked_tenants() <= 64, "tracked {}", limiter.tracked_tenants());
    }

    #[test]
    fn in_flight_tenants_are_never_evicted() {
        let limiter = TenantLimiter::new();
        let mut config = config(0, 0, 1);
        config.max_tracked_tenants = 16;
        let held = limiter.acquire("busy", &config).unwrap();
        for tenant in 0..500 {
            drop(limiter.acquire(&format!("t{tenant}"), &config).unwrap());
        }
        assert_eq!(limiter.in_flight("busy"), 1);
        assert!(limiter.acquire("busy", &config).is_err());
        drop(held);
    }
}
