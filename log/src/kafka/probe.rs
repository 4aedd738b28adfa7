//! [`KafkaProbe`]: an active readiness check of the Kafka log, for `/readyz`.
//!
//! A metadata request for one topic answers only when a broker is reachable and the topic
//! exists, and it writes nothing (a probe record would pollute the log). The probe keeps one
//! client, so a check is one request on an open connection rather than a new client per call.

use super::config::{KafkaConfig, KafkaSetupError};
use super::context::TracingContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct KafkaProbe {
    client: Arc<BaseConsumer<TracingContext>>,
    topic: String,
}

impl KafkaProbe {
    /// A probe of `topic`; creating it does not connect yet.
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<Self, KafkaSetupError> {
        // A consumer without a group: it only asks for metadata, never joins or fetches.
        let client: BaseConsumer<TracingContext> =
            config.client_config(&[]).create_with_context(TracingContext { client: "readiness-probe" })?;
        Ok(KafkaProbe { client: Arc::new(client), topic: topic.to_owned() })
    }

    /// `Ok` when a broker answers a metadata request for the topic within `timeout` and names
    /// at least one partition of it; otherwise the reason. Give a caller's own deadline some
    /// room above `timeout`, or it may cut the probe off before the probe can say why.
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        let (client, topic) = (self.client.clone(), self.topic.clone());
        let answer = tokio::task::spawn_blocking(move || {
            let metadata = client
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|error| format!("kafka did not answer a metadata request: {error}"))?;
            let described = metadata.topics().iter().find(|described| described.name() == topic);
            match described {
                Some(described) if described.error().is_none() && !described.partitions().is_empty() => {
                    Ok(())
                }
                Some(described) => Err(format!("topic {topic} is not available: {:?}", described.error())),
                None => Err(format!("topic {topic} is unknown to the broker")),
            }
        })
        .await;
        answer.unwrap_or_else(|join| Err(format!("the probe failed: {join}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;

    #[tokio::test]
    async fn a_reachable_broker_with_the_topic_is_ready_and_a_down_one_is_not() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("probe.commands", 2, 1).unwrap();
        let config = KafkaConfig::new(cluster.bootstrap_servers());
        let probe = KafkaProbe::new(&config, "probe.commands").unwrap();
        assert_eq!(probe.check(Duration::from_secs(5)).await, Ok(()));
        cluster.broker_down(1).unwrap();
        let down = probe.check(Duration::from_millis(500)).await;
        assert!(down.is_err(), "{down:?}");
    }

    #[tokio::test]
    async fn an_unreachable_address_is_not_ready() {
        let config = KafkaConfig::new("127.0.0.1:1");
        let probe = KafkaProbe::new(&config, "probe.commands").unwrap();
        let result = probe.check(Duration::from_millis(500)).await;
        assert!(result.unwrap_err().contains("metadata"));
    }
}
