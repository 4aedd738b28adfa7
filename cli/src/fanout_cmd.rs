//! `scimflow fanout`: fanout over the Kafka changes topic, with its metrics server.

use crate::metrics_server::{MetricsServer, kafka_check};
use scimflow_fanout::Fanout;
use scimflow_fanout::config::FanoutConfig;
use scimflow_fanout::source::KafkaChangeSource;
use scimflow_log::kafka::KafkaConfig;

/// A started fanout and the server of its `/metrics`, `/healthz` and `/readyz`.
pub struct FanoutProcess {
    pub fanout: Fanout,
    pub metrics: MetricsServer,
}

/// Starts fanout on `kafka`'s changes topic as consumer group `group`, and its metrics server
/// on `metrics_listen`. Readiness: `log`, a metadata request for the changes topic.
pub async fn start(
    config: FanoutConfig,
    kafka: &KafkaConfig,
    group: &str,
    metrics_listen: &str,
) -> anyhow::Result<FanoutProcess> {
    let source = KafkaChangeSource::new(kafka, group)?;
    let fanout = Fanout::start(config, Some(kafka), Box::new(source)).await?;
    let registry = prometheus::Registry::new();
    registry.register(Box::new(fanout.prometheus_collector()))?;
    let log_check = kafka_check(kafka, &kafka.topics().changes)?;
    let metrics = MetricsServer::start(metrics_listen, registry, vec![("log".to_owned(), log_check)])?;
    Ok(FanoutProcess { fanout, metrics })
}
