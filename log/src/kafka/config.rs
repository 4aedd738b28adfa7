//! Kafka settings: where the brokers are, how the topics are named and sized, how long a write
//! may take, and librdkafka settings passed through to every client.
//!
//! Client configs are built in three layers: our tuning defaults, then the operator's
//! passthrough settings (security, timeouts, ...), then the invariants the pipeline's guarantees
//! depend on (idempotence, `acks=all`, manual offsets, ...), so a passthrough setting can tune
//! a client but never silently weaken a guarantee.

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use std::collections::BTreeMap;
use std::time::Duration;

/// `SCIMFLOW_KAFKA_CLIENT_SECURITY_PROTOCOL=SASL_SSL` becomes `security.protocol=SASL_SSL`.
const CLIENT_SETTING_PREFIX: &str = "SCIMFLOW_KAFKA_CLIENT_";

#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("invalid kafka configuration: {0}")]
    Config(String),
    #[error("kafka client error: {0}")]
    Client(#[from] KafkaError),
    /// An existing topic does not match what the pipeline needs; `fix` says what to do.
    #[error("topic {topic}: {problem}; {fix}")]
    Topic { topic: String, problem: String, fix: String },
}

/// The three topic names derived from the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    pub commands: String,
    pub outcomes: String,
    pub changes: String,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `10.0.0.1:9092,10.0.0.2:9092`.
    pub brokers: String,
    /// Prepended to `commands`, `outcomes`, `changes`; lets several pipelines share a cluster.
    pub topic_prefix: String,
    /// Partitions of the commands (and changes) topic. A tenant's partition is
    /// `murmur2(tenant) mod partitions`, so this can never change once commands were written.
    pub command_partitions: i32,
    /// 1 for a single local broker; 3 in production (with `min_insync_replicas` 2).
    pub replication_factor: i32,
    /// `min.insync.replicas` of the commands and changes topics: with `acks=all`, a write is
    /// acknowledged only once this many replicas have it.
    pub min_insync_replicas: i32,
    /// How long `append` may take before it answers `Unavailable` (the API then says 503).
    pub produce_deadline: Duration,
    /// Outcomes only matter while a request waits for them (seconds); kept a little longer to
    /// help debugging.
    pub outcomes_retention: Duration,
    /// How far back a fanout consumer can rewind the changes topic.
    pub changes_retention: Duration,
    /// librdkafka settings applied to every client before the invariants (security, SASL, ...).
    pub client_settings: BTreeMap<String, String>,
}

impl KafkaConfig {
    pub const DEFAULT_TOPIC_PREFIX: &'static str = "scimflow.";
    pub const DEFAULT_COMMAND_PARTITIONS: i32 = 12;
    pub const DEFAULT_PRODUCE_DEADLINE: Duration = Duration::from_secs(5);
    pub const DEFAULT_OUTCOMES_RETENTION: Duration = Duration::from_secs(3600);
    pub const DEFAULT_CHANGES_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

    /// Defaults for a single local broker.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            topic_prefix: Self::DEFAULT_TOPIC_PREFIX.to_owned(),
            command_partitions: Self::DEFAULT_COMMAND_PARTITIONS,
            replication_factor: 1,
            min_insync_replicas: 1,
            produce_deadline: Self::DEFAULT_PRODUCE_DEADLINE,
            outcomes_retention: Self::DEFAULT_OUTCOMES_RETENTION,
            changes_retention: Self::DEFAULT_CHANGES_RETENTION,
            client_settings: BTreeMap::new(),
        }
    }

    /// Reads `SCIMFLOW_KAFKA_*` from the process environment (see [`KafkaConfig::from_vars`]).
    pub fn from_env() -> Result<Self, KafkaSetupError> {
        Self::from_vars(std::env::vars())
    }

    /// Builds the config from variables:
    ///
    /// | variable | default |
    /// |---|---|
    /// | `SCIMFLOW_KAFKA_BROKERS` | required |
    /// | `SCIMFLOW_KAFKA_TOPIC_PREFIX` | `scimflow.` |
    /// | `SCIMFLOW_KAFKA_COMMAND_PARTITIONS` | 12 |
    /// | `SCIMFLOW_KAFKA_REPLICATION_FACTOR` | 1 |
    /// | `SCIMFLOW_KAFKA_MIN_INSYNC_REPLICAS` | 2 when the replication factor is 3 or more, else 1 |
    /// | `SCIMFLOW_KAFKA_PRODUCE_DEADLINE_MS` | 5000 |
    /// | `SCIMFLOW_KAFKA_OUTCOMES_RETENTION_MS` | 3600000 (1 h) |
    /// | `SCIMFLOW_KAFKA_CHANGES_RETENTION_MS` | 604800000 (7 days) |
    /// | `SCIMFLOW_KAFKA_CLIENT_<KEY>` | librdkafka `key` (`_` → `.`, lowercased) |
    ///
    /// # Examples
    /// ```
    /// use scimflow_log::kafka::KafkaConfig;
    /// let config = KafkaConfig::from_vars([
    ///     ("SCIMFLOW_KAFKA_BROKERS".to_owned(), "127.0.0.1:9092".to_owned()),
    ///     ("SCIMFLOW_KAFKA_CLIENT_SECURITY_PROTOCOL".to_owned(), "SASL_SSL".to_owned()),
    /// ])
    /// .unwrap();
    /// assert_eq!(config.topics().commands, "scimflow.commands");
    /// assert_eq!(config.client_settings["security.protocol"], "SASL_SSL");
    /// ```
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, KafkaSetupError> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let brokers = vars
            .get("SCIMFLOW_KAFKA_BROKERS")
            .filter(|brokers| !brokers.trim().is_empty())
            .ok_or_else(|| KafkaSetupError::Config("SCIMFLOW_KAFKA_BROKERS is not set".into()))?;
        let mut config = KafkaConfig::new(brokers.trim());
        if let Some(prefix) = vars.get("SCIMFLOW_KAFKA_TOPIC_PREFIX") {
            config.topic_prefix = prefix.clone();
        }
        if let Some(partitions) = parse_var::<i32>(&vars, "SCIMFLOW_KAFKA_COMMAND_PARTITIONS")? {
            config.command_partitions = partitions;
        }
        if let Some(factor) = parse_var::<i32>(&vars, "SCIMFLOW_KAFKA_REPLICATION_FACTOR")? {
            config.replication_factor = factor;
        }
        config.min_insync_replicas = match parse_var::<i32>(&vars, "SCIMFLOW_KAFKA_MIN_INSYNC_REPLICAS")? {
            Some(replicas) => replicas,
            None => default_min_insync_replicas(config.replication_factor),
        };
        if let Some(ms) = parse_var::<u64>(&vars, "SCIMFLOW_KAFKA_PRODUCE_DEADLINE_MS")? {
            config.produce_deadline = Duration::from_millis(ms);
        }
        if let Some(ms) = parse_var::<u64>(&vars, "SCIMFLOW_KAFKA_OUTCOMES_RETENTION_MS")? {
            config.outcomes_retention = Duration::from_millis(ms);
        }
        if let Some(ms) = parse_var::<u64>(&vars, "SCIMFLOW_KAFKA_CHANGES_RETENTION_MS")? {
            config.changes_retention = Duration::from_millis(ms);
        }
        for (name, value) in &vars {
            if let Some(key) = name.strip_prefix(CLIENT_SETTING_PREFIX) {
                config.client_settings.insert(key.to_ascii_lowercase().replace('_', "."), value.clone());
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that would otherwise fail late or obscurely.
    pub fn validate(&self) -> Result<(), KafkaSetupError> {
        let invalid = |message: String| Err(KafkaSetupError::Config(message));
        if self.brokers.trim().is_empty() {
            return invalid("brokers must not be empty".into());
        }
        if self.command_partitions < 1 {
            return invalid(format!(
                "command partitions must be at least 1, not {}",
                self.command_partitions
            ));
        }
        if self.replication_factor < 1 {
            return invalid(format!(
                "replication factor must be at least 1, not {}",
                self.replication_factor
            ));
        }
        if self.min_insync_replicas < 1 || self.min_insync_replicas > self.replication_factor {
            return invalid(format!(
                "min.insync.replicas must be between 1 and the replication factor {}, not {}",
                self.replication_factor, self.min_insync_replicas
            ));
        }
        // librdkafka refuses message.timeout.ms below linger.ms and rounds to milliseconds.
        if self.produce_deadline < Duration::from_millis(100) {
            return invalid(format!("produce deadline {:?} is below 100 ms", self.produce_deadline));
        }
        Ok(())
    }

    pub fn topics(&self) -> TopicNames {
        TopicNames {
            commands: format!("{}commands", self.topic_prefix),
            outcomes: format!("{}outcomes", self.topic_prefix),
            changes: format!("{}changes", self.topic_prefix),
        }
    }

    /// A client config with `defaults` first, then the passthrough settings, then
    /// `bootstrap.servers`. Callers set their invariants on the result.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.client_settings {
            config.set(key, value);
        }
        config.set("bootstrap.servers", &self.brokers);
        config
    }
}

fn default_min_insync_replicas(replication_factor: i32) -> i32 {
    if replication_factor >= 3 { 2 } else { 1 }
}

fn parse_var<T: std::str::FromStr>(
    vars: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<T>, KafkaSetupError> {
    match vars.get(name) {
        None => Ok(None),
        Some(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| KafkaSetupError::Config(format!("{name}={value:?} is not a valid number"))),
    }
}

/// Whole milliseconds for librdkafka settings.
pub(crate) fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    #[test]
    fn brokers_are_required() {
        assert!(matches!(KafkaConfig::from_vars(vars(&[])), Err(KafkaSetupError::Config(_))));
    }

    #[test]
    fn defaults_name_three_topics_under_the_prefix() {
        let config = KafkaConfig::from_vars(vars(&[("SCIMFLOW_KAFKA_BROKERS", "b:9092")])).unwrap();
        assert_eq!(config.command_partitions, 12);
        assert_eq!(config.replication_factor, 1);
        assert_eq!(config.min_insync_replicas, 1);
        let topics = config.topics();
        assert_eq!(
            (topics.commands.as_str(), topics.outcomes.as_str(), topics.changes.as_str()),
            ("scimflow.commands", "scimflow.outcomes", "scimflow.changes")
        );
    }

    #[test]
    fn production_replication_defaults_to_two_in_sync_replicas() {
        let config = KafkaConfig::from_vars(vars(&[
            ("SCIMFLOW_KAFKA_BROKERS", "b:9092"),
            ("SCIMFLOW_KAFKA_REPLICATION_FACTOR", "3"),
        ]))
        .unwrap();
        assert_eq!(config.min_insync_replicas, 2);
    }

    #[test]
    fn bad_numbers_are_reported_by_name() {
        let error = KafkaConfig::from_vars(vars(&[
            ("SCIMFLOW_KAFKA_BROKERS", "b:9092"),
            ("SCIMFLOW_KAFKA_COMMAND_PARTITIONS", "twelve"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("SCIMFLOW_KAFKA_COMMAND_PARTITIONS"), "{error}");
    }

    #[test]
    fn passthrough_settings_come_before_the_brokers() {
        let config = KafkaConfig::from_vars(vars(&[
            ("SCIMFLOW_KAFKA_BROKERS", "b:9092"),
            ("SCIMFLOW_KAFKA_CLIENT_BOOTSTRAP_SERVERS", "elsewhere:9092"),
            ("SCIMFLOW_KAFKA_CLIENT_LINGER_MS", "20"),
        ]))
        .unwrap();
        let client = config.client_config(&[("linger.ms", "2")]);
        assert_eq!(client.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(client.get("linger.ms"), Some("20"), "passthrough overrides our defaults");
    }
}
