//! [`ApiRuntime`]: the shared mutable parts of the HTTP layer (metrics, the per-tenant limiter,
//! the log health tracker, extra readiness probes).
//!
//! It lives in [`ApiConfig::runtime`](crate::ApiConfig::runtime) behind an `Arc` so that every
//! clone of an [`ApiState`](crate::ApiState) (one per actix worker, one per test request) shares
//! one set of buckets and counters, without changing how `ApiState` is built. It takes no part
//! in config equality: two configs with the same settings are equal whatever their runtime.

use crate::limits::TenantLimiter;
use crate::metrics::ApiMetrics;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A readiness check the binary adds (e.g. a Kafka metadata request): `Ok` when ready, else why
/// not. It is called on each `/readyz` under [`ApiConfig::readiness_timeout`](crate::ApiConfig).
pub type ReadinessProbe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Shared runtime state; cheap to clone.
#[derive(Clone, Default)]
pub struct ApiRuntime {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    metrics: ApiMetrics,
    limiter: TenantLimiter,
    log_health: LogHealth,
    probes: Mutex<Vec<(String, ReadinessProbe)>>,
}

impl ApiRuntime {
    pub fn new() -> Self {
        ApiRuntime::default()
    }

    pub fn metrics(&self) -> &ApiMetrics {
        &self.inner.metrics
    }

    pub fn limiter(&self) -> &TenantLimiter {
        &self.inner.limiter
    }

    pub fn log_health(&self) -> &LogHealth {
        &self.inner.log_health
    }

    /// Adds a named readiness check to `/readyz` (besides `store` and `log`).
    pub fn add_readiness_probe(&self, name: impl Into<String>, probe: ReadinessProbe) {
        self.inner.probes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((name.into(), probe));
    }

    pub(crate) fn readiness_probes(&self) -> Vec<(String, ReadinessProbe)> {
        self.inner.probes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl PartialEq for ApiRuntime {
    /// Always equal: runtime state is not a setting (see the module docs).
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ApiRuntime {}

impl fmt::Debug for ApiRuntime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ApiRuntime")
            .field("tracked_tenants", &self.inner.limiter.tracked_tenants())
            .finish_non_exhaustive()
    }
}

/// What the API knows about the log without a probe of its own: the `CommandLog` port has no
/// health call, and appending a probe record would pollute the log. So the log counts as
/// unreachable from a failed append until a later append succeeds, or until
/// [`ApiConfig::log_failure_window`](crate::ApiConfig::log_failure_window) has passed without
/// a new failure (then traffic is let in again to find out: the first write that fails marks
/// it down again).
#[derive(Default)]
pub struct LogHealth {
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    last_success: Option<Instant>,
    last_failure: Option<Instant>,
}

impl LogHealth {
    pub fn record_success(&self) {
        self.lock().last_success = Some(Instant::now());
    }

    pub fn record_failure(&self) {
        self.lock().last_failure = Some(Instant::now());
    }

    /// `Ok` when the log counts as reachable, else the age of the unanswered failure.
    pub fn check(&self, window: Duration) -> Result<(), String> {
        let state = self.lock();
        match state.last_failure {
            None => Ok(()),
            Some(failure) if state.last_success.is_some_and(|success| success >= failure) => Ok(()),
            Some(failure) if failure.elapsed() >= window => Ok(()),
            Some(failure) => Err(format!(
                "the last append failed {} ms ago and none has succeeded since",
                failure.elapsed().as_millis()
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_down_from_a_failure_until_a_success_or_the_window() {
        let health = LogHealth::default();
        assert!(health.check(Duration::from_secs(10)).is_ok());
        health.record_failure();
        assert!(health.check(Duration::from_secs(10)).is_err());
        assert!(health.check(Duration::ZERO).is_ok());
        health.record_success();
        assert!(health.check(Duration::from_secs(10)).is_ok());
    }
}
