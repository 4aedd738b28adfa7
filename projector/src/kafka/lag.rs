//! [`LagMonitor`]: the projector group's consumer lag per command partition, for `/metrics`.
//!
//! Lag is the log end offset (high watermark) minus the group's committed offset. The projector
//! commits offsets only inside its transactions, together with the changes of the commands
//! below them, so the lag counts commands not yet folded *and* published: what fanout has yet
//! to see. The monitor is a separate client that never joins the group (it only asks for the
//! group's offsets), so it sees every partition whichever member owns it and does not disturb
//! the fold loop; every projector process reports the same numbers (aggregate with `max`).

use super::KafkaProjectorConfig;
use crate::metrics::ProjectorMetrics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use scimflow_log::kafka::KafkaSetupError;
use scimflow_log::kafka::context::TracingContext;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct LagMonitor {
    client: BaseConsumer<TracingContext>,
    topic: String,
    metrics: ProjectorMetrics,
}

impl LagMonitor {
    /// A monitor of `config`'s group on its commands topic; creating it does not connect yet.
    pub fn new(config: &KafkaProjectorConfig, metrics: ProjectorMetrics) -> Result<Self, KafkaSetupError> {
        let client: BaseConsumer<TracingContext> = config
            .kafka
            .client_config(&[])
            // Only used to read the group's offsets: never subscribes, so it never joins.
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            // read_committed would make the offset fetch wait for a member's open transaction
            // (KIP-447); the last committed offsets are what lag is measured against anyway.
            .set("isolation.level", "read_uncommitted")
            .create_with_context(TracingContext { client: "lag-monitor" })?;
        Ok(LagMonitor { client, topic: config.kafka.topics().commands, metrics })
    }

    /// Reads every partition's end and committed offset and updates the gauges (blocking).
    pub fn refresh(&self, timeout: Duration) -> Result<(), KafkaError> {
        let metadata = self.client.fetch_metadata(Some(&self.topic), timeout)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|topic| topic.name() == self.topic)
            .flat_map(|topic| topic.partitions().iter().map(|partition| partition.id()))
            .collect();
        if partitions.is_empty() {
            return Err(KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition));
        }
        let mut wanted = TopicPartitionList::with_capacity(partitions.len());
        for partition in &partitions {
            wanted.add_partition(&self.topic, *partition);
        }
        let committed = self.client.committed_offsets(wanted, timeout)?;
        for partition in partitions {
            let (low, high) = self.client.fetch_watermarks(&self.topic, partition, timeout)?;
            let committed_offset =
                committed.find_partition(&self.topic, partition).and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
            self.metrics.partition_position(partition as u32, low, high, committed_offset);
        }
        Ok(())
    }

    /// Refreshes every `interval` on a blocking thread until `stop` turns true (or its sender
    /// is dropped). A failed refresh leaves the last values and is logged.
    pub fn spawn(self, interval: Duration, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let monitor = Arc::new(self);
        tokio::spawn(async move {
            loop {
                let worker = monitor.clone();
                let refreshed =
                    tokio::task::spawn_blocking(move || worker.refresh(interval.max(Duration::from_secs(1))))
                        .await;
                match refreshed {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(error = %error, topic = %monitor.topic, "ConsumerLagUnknown")
                    }
                    Err(join) => tracing::warn!(error = %join, "ConsumerLagUnknown"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    changed = stop.wait_for(|stopping| *stopping) => {
                        let _ = changed;
                        return;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use scimflow_log::kafka::KafkaConfig;

    #[test]
    fn without_committed_offsets_every_record_is_lag() {
        let cluster = MockCluster::new(1).unwrap();
        let mut kafka = KafkaConfig::new(cluster.bootstrap_servers());
        kafka.topic_prefix = "lag.".into();
        cluster.create_topic("lag.commands", 2, 1).unwrap();
        let producer: ThreadedProducer<DefaultProducerContext> = kafka.client_config(&[]).create().unwrap();
        for index in 0..5 {
            let payload = format!("c{index}");
            producer.send(BaseRecord::<(), _>::to("lag.commands").partition(1).payload(&payload)).unwrap();
        }
        producer.flush(Duration::from_secs(5)).unwrap();
        let metrics = ProjectorMetrics::default();
        let monitor = LagMonitor::new(&KafkaProjectorConfig::new(kafka), metrics.clone()).unwrap();
        monitor.refresh(Duration::from_secs(5)).unwrap();
        assert_eq!(metrics.log_end_offset.with_label_values(&["1"]).get(), 5);
        assert_eq!(metrics.consumer_lag.with_label_values(&["1"]).get(), 5);
        assert_eq!(metrics.consumer_lag.with_label_values(&["0"]).get(), 0);
    }
}
