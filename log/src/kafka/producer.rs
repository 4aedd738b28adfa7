//! [`KafkaLog`]: the commands topic behind the [`CommandLog`] port.
//!
//! `append` returns `Ok` only with the partition and offset of a broker acknowledgement under
//! `acks=all` (every in-sync replica has the record, at least `min.insync.replicas`). Anything
//! else within the produce deadline (broker down, slow, not enough replicas, local queue full)
//! is [`LogError::Unavailable`], and the API answers 503 with `Retry-After`.
//!
//! Ordering: the key is the tenant id and the partitioner is `murmur2_random` (the Java
//! client's), so a tenant's commands always land in the same partition; idempotence with at most
//! 5 requests in flight keeps them in append order there even across retries.

use super::config::{KafkaConfig, KafkaSetupError, millis};
use super::context::TracingContext;
use super::metrics::{LogMetrics, ProduceResult};
use crate::port::{Appended, CommandLog, LogError};
use async_trait::async_trait;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::sync::RwLock;
use std::time::Instant;

/// The Kafka command log. Cheap to share behind an `Arc`; appends run concurrently and are
/// batched by librdkafka (`linger.ms`).
///
/// # Examples
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use scimflow_log::CommandLog;
/// use scimflow_log::kafka::{KafkaConfig, KafkaLog, ensure_topics};
/// let config = KafkaConfig::from_env()?;
/// ensure_topics(&config).await?;
/// let log = KafkaLog::new(&config)?;
/// let appended = log.append("tenant-1", b"...".to_vec(), vec![]).await?;
/// println!("durable at {}:{}", appended.partition, appended.offset);
/// # Ok(()) }
/// ```
pub struct KafkaLog {
    /// Replaced after a fatal producer error (e.g. an idempotence sequence gap): a fatal
    /// librdkafka producer refuses every later message, so keeping it would turn one broker
    /// incident into a permanent outage.
    producer: RwLock<FutureProducer<TracingContext>>,
    config: KafkaConfig,
    topic: String,
    metrics: LogMetrics,
}

impl KafkaLog {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaSetupError> {
        config.validate()?;
        Ok(KafkaLog {
            producer: RwLock::new(create_producer(config)?),
            config: config.clone(),
            topic: config.topics().commands,
            metrics: LogMetrics::default(),
        })
    }

    /// Reports produce latency into `metrics` (registered by the caller) from now on.
    pub fn with_metrics(mut self, metrics: LogMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn producer(&self) -> FutureProducer<TracingContext> {
        self.producer.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn replace_if_fatal(&self, failed: &FutureProducer<TracingContext>) {
        let Some((code, reason)) = failed.client().fatal_error() else { return };
        let mut current = self.producer.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Another append may have replaced it already.
        if current.client().native_ptr() != failed.client().native_ptr() {
            return;
        }
        match create_producer(&self.config) {
            Ok(fresh) => {
                tracing::error!(code = %code, reason = %reason, "CommandProducerRecreated");
                *current = fresh;
            }
            Err(error) => tracing::error!(code = %code, error = %error, "CommandProducerRecreateFailed"),
        }
    }
}

fn create_producer(config: &KafkaConfig) -> Result<FutureProducer<TracingContext>, KafkaSetupError> {
    let deadline = millis(config.produce_deadline);
    let producer = config
        .client_config(&[
            // A little batching under load costs ~2 ms of latency and saves many requests.
            ("linger.ms", "2"),
            ("compression.type", "lz4"),
        ])
        // Invariants: durable before acknowledged, in order, never duplicated by retries.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        // Same mapping as the Java client, and it must never change: it decides which partition
        // (and so which ordered stream) a tenant's commands belong to.
        .set("partitioner", "murmur2_random")
        // librdkafka stops retrying a message after this, so a failed append is reported
        // within the deadline instead of being delivered minutes later.
        .set("message.timeout.ms", &deadline)
        .create_with_context(TracingContext { client: "command-producer" })?;
    Ok(producer)
}

fn unavailable(error: &KafkaError) -> LogError {
    LogError::Unavailable(format!("kafka did not acknowledge the command: {error}"))
}

#[async_trait]
impl CommandLog for KafkaLog {
    async fn append(
        &self,
        tenant_id: &str,
        payload: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Result<Appended, LogError> {
        let started = Instant::now();
        let deadline = self.config.produce_deadline;
        let mut kafka_headers = OwnedHeaders::new_with_capacity(headers.len());
        for (key, value) in &headers {
            kafka_headers = kafka_headers.insert(Header { key, value: Some(value.as_bytes()) });
        }
        let record = FutureRecord::to(&self.topic).key(tenant_id).payload(&payload).headers(kafka_headers);
        let producer = self.producer();
        // `message.timeout.ms` normally answers first; this bounds the wait for a full local
        // queue and librdkafka's timeout scan (which runs about once a second).
        let delivery = tokio::time::timeout(deadline, producer.send(record, Timeout::After(deadline))).await;
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        let result = match &delivery {
            Ok(Ok(_)) => ProduceResult::Acked,
            Ok(Err(_)) => ProduceResult::Failed,
            Err(_) => ProduceResult::Timeout,
        };
        self.metrics.observe_produce(&self.topic, result, elapsed);
        match delivery {
            Ok(Ok(delivered)) => {
                tracing::debug!(
                    tenant_id,
                    partition = delivered.partition,
                    offset = delivered.offset,
                    elapsed_ms,
                    "CommandsProduced"
                );
                Ok(Appended { partition: delivered.partition as u32, offset: delivered.offset as u64 })
            }
            Ok(Err((error, _message))) => {
                tracing::warn!(tenant_id, error = %error, elapsed_ms, "CommandProduceFailed");
                self.replace_if_fatal(&producer);
                Err(unavailable(&error))
            }
            Err(_elapsed) => {
                tracing::warn!(tenant_id, elapsed_ms, "CommandProduceTimedOut");
                Err(LogError::Unavailable(format!(
                    "kafka did not acknowledge the command within {deadline:?}"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use std::time::Duration;

    #[tokio::test]
    async fn appends_to_a_mock_cluster_report_increasing_offsets_per_tenant() {
        let cluster = MockCluster::new(1).unwrap();
        let mut config = KafkaConfig::new(cluster.bootstrap_servers());
        config.topic_prefix = "unit.".into();
        cluster.create_topic("unit.commands", 3, 1).unwrap();
        let log = KafkaLog::new(&config).unwrap();
        let mut last: Option<Appended> = None;
        for index in 0..5 {
            let appended = log.append("acme", format!("c{index}").into_bytes(), vec![]).await.unwrap();
            if let Some(previous) = last {
                assert_eq!(appended.partition, previous.partition, "one tenant, one partition");
                assert!(appended.offset > previous.offset);
            }
            last = Some(appended);
        }
    }

    #[tokio::test]
    async fn a_down_broker_makes_appends_unavailable_within_the_deadline() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("unit.commands", 1, 1).unwrap();
        let mut config = KafkaConfig::new(cluster.bootstrap_servers());
        config.topic_prefix = "unit.".into();
        config.produce_deadline = Duration::from_millis(1500);
        let log = KafkaLog::new(&config).unwrap();
        log.append("acme", b"warm-up".to_vec(), vec![]).await.unwrap();
        cluster.broker_down(1).unwrap();
        let started = Instant::now();
        let result = log.append("acme", b"lost".to_vec(), vec![]).await;
        assert!(matches!(result, Err(LogError::Unavailable(_))), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1500) + Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
}
