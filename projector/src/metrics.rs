//! Prometheus metrics of the projector.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `scimflow_projector_commands_folded_total` | counter | `partition` |
//! | `scimflow_projector_poison_records_total` | counter | `partition` |
//! | `scimflow_projector_batch_size` | histogram | none |
//! | `scimflow_projector_fold_failures_total` | counter | `partition` |
//! | `scimflow_projector_transaction_duration_seconds` | histogram | `result` (`committed`, `aborted`, `fatal`) |
//! | `scimflow_projector_consumer_lag` | gauge | `partition` |
//! | `scimflow_projector_log_end_offset` | gauge | `partition` |
//! | `scimflow_projector_committed_offset` | gauge | `partition` |
//! | `scimflow_projector_window_commands` | gauge | `partition` |
//! | `scimflow_projector_tenants_ahead` | gauge | `partition` |
//!
//! `partition` is a command-log partition: bounded by the topic's partition count. On Kafka the
//! last three come from the [`LagMonitor`](crate::kafka::lag::LagMonitor); the embedded loop
//! sets them itself (one partition, the store's position as the committed offset). The others
//! come from the fold loops. The metrics are created unregistered ([`ProjectorMetrics::default`]);
//! [`ProjectorMetrics::register`] puts them on the registry a process serves at `/metrics`.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use std::time::Duration;

/// Records per store commit: one command when idle, up to `max_batch` under load.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];
/// Transaction latency: a few ms on a healthy cluster, up to the call timeout when it is not.
const TRANSACTION_BUCKETS: &[f64] =
    &[0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How a transaction (changes plus consumer offsets) ended, as the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionResult {
    Committed,
    /// Aborted; the changes are republished from the committed offset.
    Aborted,
    /// The producer is unusable and the projector stops.
    Fatal,
}

impl TransactionResult {
    fn as_str(self) -> &'static str {
        match self {
            TransactionResult::Committed => "committed",
            TransactionResult::Aborted => "aborted",
            TransactionResult::Fatal => "fatal",
        }
    }
}

#[derive(Clone)]
pub struct ProjectorMetrics {
    pub commands_folded: IntCounterVec,
    pub poison_records: IntCounterVec,
    pub batch_size: Histogram,
    pub fold_failures: IntCounterVec,
    pub transaction_duration: HistogramVec,
    pub consumer_lag: IntGaugeVec,
    pub log_end_offset: IntGaugeVec,
    pub committed_offset: IntGaugeVec,
    pub window_commands: IntGaugeVec,
    pub tenants_ahead: IntGaugeVec,
}

impl std::fmt::Debug for ProjectorMetrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ProjectorMetrics")
    }
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge(name: &str, help: &str) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), &["partition"]).expect("valid metric")
}

impl Default for ProjectorMetrics {
    fn default() -> Self {
        ProjectorMetrics {
            commands_folded: counter(
                "scimflow_projector_commands_folded_total",
                "Commands decided and committed to the store (accepted or rejected), by partition",
                &["partition"],
            ),
            poison_records: counter(
                "scimflow_projector_poison_records_total",
                "Log records that were not a command: skipped (dead-lettered in the log), by partition",
                &["partition"],
            ),
            batch_size: Histogram::with_opts(
                HistogramOpts::new("scimflow_projector_batch_size", "Log records folded in one store commit")
                    .buckets(BATCH_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            fold_failures: counter(
                "scimflow_projector_fold_failures_total",
                "Folds that failed on the store and are retried with backoff, by partition",
                &["partition"],
            ),
            transaction_duration: HistogramVec::new(
                HistogramOpts::new(
                    "scimflow_projector_transaction_duration_seconds",
                    "Time to publish a round's changes and commit its offsets in one Kafka transaction",
                )
                .buckets(TRANSACTION_BUCKETS.to_vec()),
                &["result"],
            )
            .expect("valid metric"),
            consumer_lag: gauge(
                "scimflow_projector_consumer_lag",
                "Commands in the log not yet folded and published: log end offset minus committed offset",
            ),
            log_end_offset: gauge(
                "scimflow_projector_log_end_offset",
                "High watermark of a command partition",
            ),
            committed_offset: gauge(
                "scimflow_projector_committed_offset",
                "The projector group's committed offset of a command partition (changes published below it)",
            ),
            window_commands: gauge(
                "scimflow_projector_window_commands",
                "Commands read ahead of the fold and waiting in the projector's window, by partition",
            ),
            tenants_ahead: gauge(
                "scimflow_projector_tenants_ahead",
                "Tenants folded past the partition's watermark (ahead of an older backlog of another tenant)",
            ),
        }
    }
}

impl ProjectorMetrics {
    /// New metrics, registered on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = ProjectorMetrics::default();
        registry.register(Box::new(metrics.commands_folded.clone()))?;
        registry.register(Box::new(metrics.poison_records.clone()))?;
        registry.register(Box::new(metrics.batch_size.clone()))?;
        registry.register(Box::new(metrics.fold_failures.clone()))?;
        registry.register(Box::new(metrics.transaction_duration.clone()))?;
        registry.register(Box::new(metrics.consumer_lag.clone()))?;
        registry.register(Box::new(metrics.log_end_offset.clone()))?;
        registry.register(Box::new(metrics.committed_offset.clone()))?;
        registry.register(Box::new(metrics.window_commands.clone()))?;
        registry.register(Box::new(metrics.tenants_ahead.clone()))?;
        Ok(metrics)
    }

    /// One store commit of `commands` commands and `poison` undecodable records.
    pub fn batch_folded(&self, partition: u32, commands: usize, poison: usize) {
        let label = partition.to_string();
        self.commands_folded.with_label_values(&[&label]).inc_by(commands as u64);
        if poison > 0 {
            self.poison_records.with_label_values(&[&label]).inc_by(poison as u64);
        }
        if commands + poison > 0 {
            self.batch_size.observe((commands + poison) as f64);
        }
    }

    /// After a round: what is left in the partition's window, and how many tenants are folded
    /// past its watermark.
    pub fn window(&self, partition: u32, waiting: usize, tenants_ahead: usize) {
        let label = partition.to_string();
        self.window_commands.with_label_values(&[&label]).set(waiting as i64);
        self.tenants_ahead.with_label_values(&[&label]).set(tenants_ahead as i64);
    }

    pub fn fold_failed(&self, partition: u32) {
        self.fold_failures.with_label_values(&[&partition.to_string()]).inc();
    }

    pub fn transaction_ended(&self, result: TransactionResult, elapsed: Duration) {
        self.transaction_duration.with_label_values(&[result.as_str()]).observe(elapsed.as_secs_f64());
    }

    /// The position of one partition: its end, and the committed offset if the group has one
    /// (without one, everything retained counts as lag).
    pub fn partition_position(&self, partition: u32, low: i64, high: i64, committed: Option<i64>) {
        let label = partition.to_string();
        self.log_end_offset.with_label_values(&[&label]).set(high);
        let done = committed.unwrap_or(low);
        if let Some(committed) = committed {
            self.committed_offset.with_label_values(&[&label]).set(committed);
        }
        self.consumer_lag.with_label_values(&[&label]).set((high - done).max(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_end_minus_the_committed_offset_or_everything_retained() {
        let metrics = ProjectorMetrics::default();
        metrics.partition_position(0, 0, 10, Some(7));
        metrics.partition_position(1, 4, 9, None);
        metrics.partition_position(2, 0, 5, Some(5));
        assert_eq!(metrics.consumer_lag.with_label_values(&["0"]).get(), 3);
        assert_eq!(metrics.consumer_lag.with_label_values(&["1"]).get(), 5);
        assert_eq!(metrics.consumer_lag.with_label_values(&["2"]).get(), 0);
        assert_eq!(metrics.log_end_offset.with_label_values(&["1"]).get(), 9);
    }

    #[test]
    fn a_batch_counts_its_commands_and_its_size() {
        let metrics = ProjectorMetrics::default();
        metrics.batch_folded(3, 5, 1);
        metrics.batch_folded(3, 2, 0);
        assert_eq!(metrics.commands_folded.with_label_values(&["3"]).get(), 7);
        assert_eq!(metrics.poison_records.with_label_values(&["3"]).get(), 1);
        assert_eq!(metrics.batch_size.get_sample_count(), 2);
        assert_eq!(metrics.batch_size.get_sample_sum(), 8.0);
    }
}
