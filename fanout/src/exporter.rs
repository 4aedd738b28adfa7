//! The delivery counters of [`Metrics`] in the Prometheus format: a [`Collector`] that reads
//! the atomics at scrape time, so the hot path stays plain atomic increments.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `scimflow_fanout_records_read_total` | counter | none |
//! | `scimflow_fanout_unreadable_records_total` | counter | none |
//! | `scimflow_fanout_state_records_total` | counter | none |
//! | `scimflow_fanout_delivered_total` | counter | `product` |
//! | `scimflow_fanout_retries_total` | counter | `product` |
//! | `scimflow_fanout_dead_letters_total` | counter | `product` |
//! | `scimflow_fanout_delivery_lag_seconds` | histogram | `product` |
//!
//! `product` is a configured subscription (bounded by the config file). The lag histogram's
//! buckets are the power-of-two millisecond buckets of [`Metrics`] (1 ms, 2 ms, ... 2^22 ms),
//! in seconds.

use crate::metrics::Metrics;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Counter, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use std::sync::Arc;

const FAMILIES: &[(&str, &str, bool)] = &[
    ("scimflow_fanout_records_read_total", "Change records read from the source, before filtering", false),
    (
        "scimflow_fanout_unreadable_records_total",
        "Source records that were not a ChangeEnvelope (skipped)",
        false,
    ),
    ("scimflow_fanout_state_records_total", "Records produced to the compacted state topics", false),
    ("scimflow_fanout_delivered_total", "Changes acknowledged by a product's receiver", true),
    ("scimflow_fanout_retries_total", "Failed delivery attempts that are retried, by product", true),
    (
        "scimflow_fanout_dead_letters_total",
        "Changes dead-lettered after their last attempt, by product",
        true,
    ),
    (
        "scimflow_fanout_delivery_lag_seconds",
        "Time from the change's ingest (occurred_at) to its acknowledged delivery, by product",
        true,
    ),
];

/// Registers on a [`prometheus::Registry`] with `registry.register(Box::new(collector))`.
pub struct FanoutCollector {
    metrics: Arc<Metrics>,
    descs: Vec<Desc>,
}

impl FanoutCollector {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let descs = FAMILIES
            .iter()
            .map(|(name, help, by_product)| {
                let labels = if *by_product { vec!["product".to_owned()] } else { vec![] };
                Desc::new((*name).to_owned(), (*help).to_owned(), labels, Default::default())
                    .expect("valid metric description")
            })
            .collect();
        FanoutCollector { metrics, descs }
    }
}

fn family(index: usize, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let (name, help, _) = FAMILIES[index];
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn counter(product: Option<&str>, value: u64) -> Metric {
    let mut counter = Counter::default();
    counter.set_value(value as f64);
    let mut metric = Metric::default();
    metric.set_counter(counter);
    if let Some(product) = product {
        metric.set_label(vec![product_label(product)]);
    }
    metric
}

fn product_label(product: &str) -> LabelPair {
    let mut label = LabelPair::default();
    label.set_name("product".to_owned());
    label.set_value(product.to_owned());
    label
}

impl Collector for FanoutCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let totals = self.metrics.snapshot();
        let products = self.metrics.lag_histograms();
        let by_product = |read: fn(&crate::metrics::DeliverySnapshot) -> u64| -> Vec<Metric> {
            totals.products.iter().map(|(product, snapshot)| counter(Some(product), read(snapshot))).collect()
        };
        let lags = products
            .iter()
            .map(|(product, lag)| {
                let mut cumulative = 0;
                let buckets = lag
                    .buckets
                    .iter()
                    .enumerate()
                    // The last bucket is open-ended: it is the +Inf bucket the encoder adds.
                    .take(lag.buckets.len() - 1)
                    .map(|(index, count)| {
                        cumulative += count;
                        let mut bucket = Bucket::default();
                        bucket.set_upper_bound((1u64 << index) as f64 / 1000.0);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect();
                let mut histogram = Histogram::default();
                histogram.set_sample_count(lag.buckets.iter().sum());
                histogram.set_sample_sum(lag.sum_ms as f64 / 1000.0);
                histogram.set_bucket(buckets);
                let mut metric = Metric::default();
                metric.set_label(vec![product_label(product)]);
                metric.set_histogram(histogram);
                metric
            })
            .collect();
        vec![
            family(0, MetricType::COUNTER, vec![counter(None, totals.read)]),
            family(1, MetricType::COUNTER, vec![counter(None, totals.unreadable)]),
            family(2, MetricType::COUNTER, vec![counter(None, totals.state_records)]),
            family(3, MetricType::COUNTER, by_product(|snapshot| snapshot.delivered)),
            family(4, MetricType::COUNTER, by_product(|snapshot| snapshot.retries)),
            family(5, MetricType::COUNTER, by_product(|snapshot| snapshot.dead_lettered)),
            family(6, MetricType::HISTOGRAM, lags),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, Registry, TextEncoder};
    use std::sync::atomic::Ordering;

    #[test]
    fn the_counters_render_as_prometheus_families_with_a_lag_histogram_in_seconds() {
        let metrics = Arc::new(Metrics::default());
        metrics.read.fetch_add(4, Ordering::Relaxed);
        let crm = metrics.product("crm");
        crm.delivered_with_lag(3);
        crm.delivered_with_lag(900);
        crm.retries.fetch_add(2, Ordering::Relaxed);
        metrics.product("audit").dead_lettered.fetch_add(1, Ordering::Relaxed);
        let registry = Registry::new();
        registry.register(Box::new(FanoutCollector::new(metrics))).unwrap();
        let mut text = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("scimflow_fanout_records_read_total 4\n"), "{text}");
        assert!(text.contains("scimflow_fanout_delivered_total{product=\"crm\"} 2\n"), "{text}");
        assert!(text.contains("scimflow_fanout_retries_total{product=\"crm\"} 2\n"), "{text}");
        assert!(text.contains("scimflow_fanout_dead_letters_total{product=\"audit\"} 1\n"), "{text}");
        // 3 ms is in the bucket up to 4 ms, 900 ms in the one up to 1024 ms.
        assert!(
            text.contains("scimflow_fanout_delivery_lag_seconds_bucket{product=\"crm\",le=\"0.002\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("scimflow_fanout_delivery_lag_seconds_bucket{product=\"crm\",le=\"0.004\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("scimflow_fanout_delivery_lag_seconds_bucket{product=\"crm\",le=\"1.024\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("scimflow_fanout_delivery_lag_seconds_sum{product=\"crm\"} 0.903\n"), "{text}");
        assert!(text.contains("scimflow_fanout_delivery_lag_seconds_count{product=\"crm\"} 2\n"), "{text}");
    }
}
