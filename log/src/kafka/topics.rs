//! Creating the three topics at start, or verifying the ones that exist.
//!
//! Auto topic creation is off on our brokers (and must be: an auto-created commands topic would
//! get the broker's default retention and partition count). So every process calls
//! [`ensure_topics`] before producing or consuming. A topic that exists with a setting that
//! would break a guarantee is an error naming the fix; a setting that only changes how long
//! data is kept is a warning.

use super::config::{KafkaConfig, KafkaSetupError, TopicNames, millis};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Metadata of a topic just created can take a moment to reach the broker we ask.
const METADATA_PROPAGATION: Duration = Duration::from_secs(10);

/// What one topic must look like.
struct TopicSpec {
    name: String,
    partitions: i32,
    /// Only a minimum for the outcomes topic: its listener assigns whatever partitions exist.
    exact_partitions: bool,
    retention_ms: String,
    /// A different retention loses data (commands) rather than just keeping it for another time.
    retention_is_invariant: bool,
    min_insync_replicas: i32,
}

fn specs(config: &KafkaConfig) -> Vec<TopicSpec> {
    let topics = config.topics();
    vec![
        TopicSpec {
            name: topics.commands,
            partitions: config.command_partitions,
            exact_partitions: true,
            retention_ms: "-1".into(),
            retention_is_invariant: true,
            min_insync_replicas: config.min_insync_replicas,
        },
        TopicSpec {
            name: topics.outcomes,
            partitions: config.command_partitions,
            exact_partitions: false,
            retention_ms: millis(config.outcomes_retention),
            retention_is_invariant: false,
            // Losing an outcome only makes one request time out: no need to wait for replicas.
            min_insync_replicas: 1,
        },
        TopicSpec {
            name: topics.changes,
            // The projector publishes the changes of command partition p to changes partition p.
            partitions: config.command_partitions,
            exact_partitions: true,
            retention_ms: millis(config.changes_retention),
            retention_is_invariant: false,
            min_insync_replicas: config.min_insync_replicas,
        },
    ]
}

/// Creates the commands, outcomes and changes topics if missing and checks them if present.
/// Returns their names.
pub async fn ensure_topics(config: &KafkaConfig) -> Result<TopicNames, KafkaSetupError> {
    config.validate()?;
    let admin: Arc<AdminClient<DefaultClientContext>> = Arc::new(config.client_config(&[]).create()?);
    let options =
        AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT));
    let specs = specs(config);
    let min_insync: Vec<String> = specs.iter().map(|spec| spec.min_insync_replicas.to_string()).collect();
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&min_insync)
        .map(|(spec, min_insync)| {
            NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(config.replication_factor))
                .set("cleanup.policy", "delete")
                .set("retention.ms", &spec.retention_ms)
                .set("retention.bytes", "-1")
                .set("min.insync.replicas", min_insync)
        })
        .collect();
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(topic) => tracing::info!(topic = %topic, "TopicCreated"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaSetupError::Topic {
                    fix: format!(
                        "check the broker's limits (replication factor {} needs that many brokers) and \
                         the client's permission to create topics, or create it by hand with the \
                         settings in docs/kafka.md",
                        config.replication_factor
                    ),
                    topic,
                    problem: format!("cannot be created: {code}"),
                });
            }
        }
    }
    let specifiers: Vec<ResourceSpecifier<'_>> =
        specs.iter().map(|spec| ResourceSpecifier::Topic(&spec.name)).collect();
    let described = describe_settled(&admin, &specs, &specifiers, &options).await?;
    for (spec, entries) in specs.iter().zip(described) {
        verify_settings(config, spec, &entries)?;
        let partitions = partition_count(admin.clone(), spec.name.clone()).await?;
        verify_partitions(config, spec, partitions)?;
    }
    tracing::info!(prefix = %config.topic_prefix, partitions = config.command_partitions, "TopicsVerified");
    Ok(config.topics())
}

type TopicSettings = HashMap<String, Option<String>>;

/// The settings of each topic. Right after creation a broker can answer with the topic's
/// settings still empty (seen on Kafka 4.1 KRaft), so ask again until they are there.
async fn describe_settled(
    admin: &AdminClient<DefaultClientContext>,
    specs: &[TopicSpec],
    specifiers: &[ResourceSpecifier<'_>],
    options: &AdminOptions,
) -> Result<Vec<TopicSettings>, KafkaSetupError> {
    let started = Instant::now();
    loop {
        let mut all = Vec::with_capacity(specs.len());
        for (spec, resource) in specs.iter().zip(admin.describe_configs(specifiers, options).await?) {
            let resource = resource.map_err(|code| KafkaSetupError::Topic {
                topic: spec.name.clone(),
                problem: format!("cannot describe its configuration: {code}"),
                fix: "grant the client DescribeConfigs on the topic".into(),
            })?;
            all.push(
                resource
                    .entries
                    .into_iter()
                    .map(|entry| (entry.name, entry.value))
                    .collect::<TopicSettings>(),
            );
        }
        let settled = all.iter().all(|settings| {
            ["cleanup.policy", "retention.ms"].iter().all(|name| {
                settings.get(*name).is_some_and(|value| value.as_deref().is_some_and(|v| !v.is_empty()))
            })
        });
        if settled || started.elapsed() >= METADATA_PROPAGATION {
            return Ok(all);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn verify_settings(
    config: &KafkaConfig,
    spec: &TopicSpec,
    entries: &TopicSettings,
) -> Result<(), KafkaSetupError> {
    let value = |name: &str| entries.get(name).cloned().flatten().unwrap_or_default();
    let alter = |setting: &str| {
        format!(
            "fix it with `kafka-configs.sh --bootstrap-server {} --alter --entity-type topics \
             --entity-name {} --add-config {setting}`",
            config.brokers, spec.name
        )
    };
    let cleanup = value("cleanup.policy");
    if cleanup.split(',').any(|policy| policy.trim() == "compact") {
        // Compaction keeps one record per key: it would delete commands (key = tenant) and
        // changes, silently.
        return Err(KafkaSetupError::Topic {
            topic: spec.name.clone(),
            problem: format!("cleanup.policy is {cleanup:?}, compaction would delete records"),
            fix: alter("cleanup.policy=delete"),
        });
    }
    let retention = value("retention.ms");
    if retention != spec.retention_ms {
        if spec.retention_is_invariant {
            return Err(KafkaSetupError::Topic {
                topic: spec.name.clone(),
                problem: format!(
                    "retention.ms is {retention}, but the command log is the source of truth and \
                     must be kept forever (-1)"
                ),
                fix: alter("retention.ms=-1"),
            });
        }
        tracing::warn!(
            topic = %spec.name, actual = %retention, expected = %spec.retention_ms,
            fix = %alter(&format!("retention.ms={}", spec.retention_ms)),
            "TopicRetentionDiffers"
        );
    }
    let retention_bytes = value("retention.bytes");
    if spec.retention_is_invariant && retention_bytes != "-1" {
        return Err(KafkaSetupError::Topic {
            topic: spec.name.clone(),
            problem: format!("retention.bytes is {retention_bytes}, which would delete old commands"),
            fix: alter("retention.bytes=-1"),
        });
    }
    let min_insync = value("min.insync.replicas");
    if min_insync != spec.min_insync_replicas.to_string() {
        tracing::warn!(
            topic = %spec.name, actual = %min_insync, expected = spec.min_insync_replicas,
            fix = %alter(&format!("min.insync.replicas={}", spec.min_insync_replicas)),
            "TopicMinInsyncReplicasDiffers"
        );
    }
    Ok(())
}

fn verify_partitions(config: &KafkaConfig, spec: &TopicSpec, actual: i32) -> Result<(), KafkaSetupError> {
    if actual == spec.partitions || (!spec.exact_partitions && actual >= 1) {
        return Ok(());
    }
    let topics = config.topics();
    let fix = if spec.name == topics.commands {
        format!(
            "a tenant's partition is murmur2(tenant) mod the partition count, so the count of an \
             existing command log can never change: set SCIMFLOW_KAFKA_COMMAND_PARTITIONS={actual}"
        )
    } else {
        format!(
            "the changes topic must have as many partitions as {} ({}): delete it and let it be \
             recreated (a new projector consumer group republishes the change feed from the store), \
             or use another SCIMFLOW_KAFKA_TOPIC_PREFIX",
            topics.commands, spec.partitions
        )
    };
    Err(KafkaSetupError::Topic {
        topic: spec.name.clone(),
        problem: format!("has {actual} partitions, expected {}", spec.partitions),
        fix,
    })
}

async fn partition_count(
    admin: Arc<AdminClient<DefaultClientContext>>,
    topic: String,
) -> Result<i32, KafkaSetupError> {
    let blocking = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        loop {
            let metadata = admin.inner().fetch_metadata(Some(&topic), ADMIN_TIMEOUT)?;
            let found = metadata.topics().iter().find(|found| found.name() == topic).and_then(|found| {
                (found.error().is_none() && !found.partitions().is_empty())
                    .then(|| found.partitions().len() as i32)
            });
            match found {
                Some(count) => return Ok(count),
                None if started.elapsed() < METADATA_PROPAGATION => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                None => {
                    return Err(KafkaSetupError::Topic {
                        topic,
                        problem: "has no metadata (does not exist?)".into(),
                        fix: "check that the brokers in SCIMFLOW_KAFKA_BROKERS belong to one cluster".into(),
                    });
                }
            }
        }
    });
    blocking.await.map_err(|error| KafkaSetupError::Config(format!("metadata lookup panicked: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> TopicSettings {
        pairs.iter().map(|(name, value)| (name.to_string(), Some(value.to_string()))).collect()
    }

    #[test]
    fn a_commands_topic_with_finite_retention_is_refused_with_the_fix() {
        let config = KafkaConfig::new("b:9092");
        let spec = &specs(&config)[0];
        let error = verify_settings(
            &config,
            spec,
            &entries(&[
                ("cleanup.policy", "delete"),
                ("retention.ms", "604800000"),
                ("retention.bytes", "-1"),
            ]),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("scimflow.commands") && message.contains("--add-config retention.ms=-1"),
            "{message}"
        );
    }

    #[test]
    fn a_compacted_topic_is_refused() {
        let config = KafkaConfig::new("b:9092");
        for spec in specs(&config) {
            let settings =
                entries(&[("cleanup.policy", "compact,delete"), ("retention.ms", &spec.retention_ms)]);
            assert!(verify_settings(&config, &spec, &settings).is_err(), "{}", spec.name);
        }
    }

    #[test]
    fn other_retentions_of_changes_and_outcomes_only_warn() {
        let config = KafkaConfig::new("b:9092");
        for spec in &specs(&config)[1..] {
            let settings =
                entries(&[("cleanup.policy", "delete"), ("retention.ms", "1"), ("retention.bytes", "5")]);
            assert!(verify_settings(&config, spec, &settings).is_ok(), "{}", spec.name);
        }
    }

    #[test]
    fn partition_counts_must_match_except_for_outcomes() {
        let config = KafkaConfig::new("b:9092");
        let all = specs(&config);
        let error = verify_partitions(&config, &all[0], 6).unwrap_err().to_string();
        assert!(error.contains("SCIMFLOW_KAFKA_COMMAND_PARTITIONS=6"), "{error}");
        assert!(verify_partitions(&config, &all[1], 1).is_ok());
        assert!(verify_partitions(&config, &all[2], 6).is_err());
        assert!(verify_partitions(&config, &all[2], 12).is_ok());
    }
}
