//! Delivery counters as plain atomics, read through [`Metrics::snapshot`] (a Prometheus
//! exporter can map the snapshot later without touching the hot path).
//!
//! Lag is measured from the change's `occurred_at` (the command's ingest time, a few
//! milliseconds before the API answers) to the moment its delivery was acknowledged, into
//! power-of-two millisecond buckets, so p50/p99 are known to within a factor of two.
//! [`exporter`](crate::exporter) serves them in the Prometheus format.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket `i` holds lags in `[2^(i-1), 2^i)` ms (bucket 0: under 1 ms); the last is open-ended.
const LAG_BUCKETS: usize = 24;

#[derive(Debug, Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub dead_lettered: AtomicU64,
    lag_buckets: [AtomicU64; LAG_BUCKETS],
    lag_max_ms: AtomicU64,
    lag_sum_ms: AtomicU64,
}

impl Counters {
    pub fn delivered_with_lag(&self, lag_ms: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let bucket = (u64::BITS - lag_ms.leading_zeros()) as usize;
        self.lag_buckets[bucket.min(LAG_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.lag_max_ms.fetch_max(lag_ms, Ordering::Relaxed);
        self.lag_sum_ms.fetch_add(lag_ms, Ordering::Relaxed);
    }

    fn lag_histogram(&self) -> LagHistogram {
        LagHistogram {
            buckets: self.lag_buckets.iter().map(|bucket| bucket.load(Ordering::Relaxed)).collect(),
            sum_ms: self.lag_sum_ms.load(Ordering::Relaxed),
        }
    }

    fn snapshot(&self) -> DeliverySnapshot {
        let buckets: Vec<u64> = self.lag_buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        DeliverySnapshot {
            delivered: self.delivered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            lag_p50_ms: percentile(&buckets, 0.50),
            lag_p99_ms: percentile(&buckets, 0.99),
            lag_max_ms: self.lag_max_ms.load(Ordering::Relaxed),
        }
    }
}

/// Upper bound of the bucket holding the `q` quantile.
fn percentile(buckets: &[u64], q: f64) -> u64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (index, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return 1u64 << index;
        }
    }
    u64::MAX
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// Change records read from the source (before filtering).
    pub read: AtomicU64,
    /// Records that were not a `ChangeEnvelope` (skipped).
    pub unreadable: AtomicU64,
    /// Records produced to the state topics.
    pub state_records: AtomicU64,
    products: std::sync::Mutex<BTreeMap<String, Arc<Counters>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliverySnapshot {
    pub delivered: u64,
    pub retries: u64,
    pub dead_lettered: u64,
    pub lag_p50_ms: u64,
    pub lag_p99_ms: u64,
    pub lag_max_ms: u64,
}

/// The raw lag buckets of one product (bucket `i` counts lags in `[2^(i-1), 2^i)` ms, the last
/// is open-ended) and the sum of all lags, for the Prometheus exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagHistogram {
    pub buckets: Vec<u64>,
    pub sum_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricsSnapshot {
    pub read: u64,
    pub unreadable: u64,
    pub state_records: u64,
    pub products: BTreeMap<String, DeliverySnapshot>,
}

impl Metrics {
    /// The counters of one product, created on first use.
    pub fn product(&self, product: &str) -> Arc<Counters> {
        let mut products = self.products.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        products.entry(product.to_owned()).or_default().clone()
    }

    /// Per product, its lag buckets (see [`LagHistogram`]).
    pub fn lag_histograms(&self) -> BTreeMap<String, LagHistogram> {
        let products = self.products.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        products.iter().map(|(name, counters)| (name.clone(), counters.lag_histogram())).collect()
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let products = self.products.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        MetricsSnapshot {
            read: self.read.load(Ordering::Relaxed),
            unreadable: self.unreadable.load(Ordering::Relaxed),
            state_records: self.state_records.load(Ordering::Relaxed),
            products: products.iter().map(|(name, counters)| (name.clone(), counters.snapshot())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_percentiles_are_the_upper_bounds_of_their_buckets() {
        let counters = Counters::default();
        for _ in 0..98 {
            counters.delivered_with_lag(3);
        }
        counters.delivered_with_lag(100);
        counters.delivered_with_lag(1000);
        let snapshot = counters.snapshot();
        assert_eq!((snapshot.delivered, snapshot.lag_p50_ms, snapshot.lag_p99_ms), (100, 4, 128));
        assert_eq!(snapshot.lag_max_ms, 1000);
    }
}
