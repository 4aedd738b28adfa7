//! Prometheus metrics of the Kafka log adapter.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `scimflow_log_produce_duration_seconds` | histogram | `topic`, `result` (`acked`, `failed`, `timeout`) |
//!
//! `topic` is a configured topic name (bounded by the configuration). The metrics are created
//! unregistered ([`LogMetrics::default`]); [`LogMetrics::register`] puts them on the registry a
//! process serves at `/metrics`.

use prometheus::{HistogramOpts, HistogramVec, Registry};
use std::time::Duration;

/// Produce latency buckets in seconds: a lingered, acked produce takes a few ms; the top
/// buckets catch appends that ran into the produce deadline.
const PRODUCE_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How a produce ended, as the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProduceResult {
    /// The broker acknowledged the record (`acks=all`).
    Acked,
    /// librdkafka reported a delivery error.
    Failed,
    /// No answer within the produce deadline.
    Timeout,
}

impl ProduceResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ProduceResult::Acked => "acked",
            ProduceResult::Failed => "failed",
            ProduceResult::Timeout => "timeout",
        }
    }
}

#[derive(Clone)]
pub struct LogMetrics {
    /// Time from handing a record to the producer to its delivery report.
    pub produce_duration: HistogramVec,
}

impl std::fmt::Debug for LogMetrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LogMetrics")
    }
}

impl Default for LogMetrics {
    fn default() -> Self {
        let produce_duration = HistogramVec::new(
            HistogramOpts::new(
                "scimflow_log_produce_duration_seconds",
                "Time from producing a record to the broker's acknowledgement (or failure), by topic",
            )
            .buckets(PRODUCE_BUCKETS.to_vec()),
            &["topic", "result"],
        )
        .expect("valid metric");
        LogMetrics { produce_duration }
    }
}

impl LogMetrics {
    /// New metrics, registered on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = LogMetrics::default();
        registry.register(Box::new(metrics.produce_duration.clone()))?;
        Ok(metrics)
    }

    pub fn observe_produce(&self, topic: &str, result: ProduceResult, elapsed: Duration) {
        self.produce_duration.with_label_values(&[topic, result.as_str()]).observe(elapsed.as_secs_f64());
    }
}
