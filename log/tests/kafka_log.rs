//! The Kafka command log against a real broker: topics are created and verified, appends are
//! durable and ordered per tenant, a broker that is not there makes appends unavailable within
//! the deadline, and outcomes reach a listening hub.
//!
//! Needs `SCIMFLOW_KAFKA_BROKERS` (e.g. `deploy/local/services.sh up kafka`); without it the
//! broker tests print that they are skipped. With it set, an unreachable broker fails them.

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use scimflow_core::error::ScimError;
use scimflow_log::kafka::{
    KafkaConfig, KafkaLog, KafkaSetupError, OutcomeListener, OutcomePublisher, ensure_topics,
};
use scimflow_log::outcome::Accepted;
use scimflow_log::{CommandLog, LogError, Outcome, OutcomeHub};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn brokers() -> Option<String> {
    match std::env::var("SCIMFLOW_KAFKA_BROKERS") {
        Ok(brokers) if !brokers.trim().is_empty() => Some(brokers),
        _ => {
            eprintln!(
                "skipped: SCIMFLOW_KAFKA_BROKERS is not set (start one with `deploy/local/services.sh up kafka`)"
            );
            None
        }
    }
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{:x}{}", nanos, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Fresh topics for each test: `test.<random>.commands` etc., 3 partitions.
fn fresh_config(brokers: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(brokers);
    config.topic_prefix = format!("test.{}.", unique_suffix());
    config.command_partitions = 3;
    config
}

async fn delete_topics(config: &KafkaConfig) {
    let admin: AdminClient<DefaultClientContext> = config.client_config(&[]).create().unwrap();
    let topics = config.topics();
    let names = [topics.commands.as_str(), topics.outcomes.as_str(), topics.changes.as_str()];
    let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
}

#[tokio::test]
async fn appends_are_acknowledged_in_order_within_each_tenant() {
    let Some(brokers) = brokers() else { return };
    let config = fresh_config(&brokers);
    ensure_topics(&config).await.unwrap();
    let log = Arc::new(KafkaLog::new(&config).unwrap());
    let tenants = ["acme", "globex", "initech", "umbrella", "hooli"];
    let mut tasks = Vec::new();
    for tenant in tenants {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut appended = Vec::new();
            for index in 0..20 {
                let headers = vec![("request-id".to_owned(), format!("r{index}"))];
                appended.push(
                    log.append(tenant, format!("{tenant}-{index}").into_bytes(), headers).await.unwrap(),
                );
            }
            (tenant, appended)
        }));
    }
    let mut partitions_used = HashMap::new();
    for task in tasks {
        let (tenant, appended) = task.await.unwrap();
        assert!(appended.iter().all(|a| a.partition == appended[0].partition), "{tenant} spans partitions");
        assert!(
            appended.windows(2).all(|pair| pair[0].offset < pair[1].offset),
            "{tenant} out of order: {appended:?}"
        );
        assert!(appended[0].partition < 3);
        partitions_used.insert(tenant, appended[0].partition);
    }
    // Same key, same partition, on a second producer too: the mapping is stable.
    let again = KafkaLog::new(&config).unwrap();
    for (tenant, partition) in partitions_used {
        assert_eq!(again.append(tenant, b"again".to_vec(), vec![]).await.unwrap().partition, partition);
    }
    delete_topics(&config).await;
}

#[tokio::test]
async fn topics_are_created_once_and_a_changed_partition_count_is_refused() {
    let Some(brokers) = brokers() else { return };
    let config = fresh_config(&brokers);
    let names = ensure_topics(&config).await.unwrap();
    assert_eq!(names, config.topics());
    // A second start finds them and accepts them.
    ensure_topics(&config).await.unwrap();
    let mut resized = config.clone();
    resized.command_partitions = 6;
    match ensure_topics(&resized).await {
        Err(KafkaSetupError::Topic { topic, fix, .. }) => {
            assert_eq!(topic, config.topics().commands);
            assert!(fix.contains("SCIMFLOW_KAFKA_COMMAND_PARTITIONS=3"), "{fix}");
        }
        other => panic!("expected a topic error, got {other:?}"),
    }
    delete_topics(&config).await;
}

/// No broker needed: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_broker_makes_appends_unavailable_within_the_deadline() {
    let mut config = KafkaConfig::new("127.0.0.1:1");
    config.produce_deadline = Duration::from_millis(1500);
    let log = KafkaLog::new(&config).unwrap();
    let started = Instant::now();
    let result = log.append("acme", b"never acknowledged".to_vec(), vec![]).await;
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(LogError::Unavailable(_))), "{result:?}");
    assert!(elapsed >= Duration::from_millis(1000), "gave up early: {elapsed:?}");
    assert!(elapsed <= Duration::from_millis(1500) + Duration::from_millis(200), "too slow: {elapsed:?}");
}

#[tokio::test]
async fn outcomes_published_after_the_listener_started_reach_their_waiters() {
    let Some(brokers) = brokers() else { return };
    let config = fresh_config(&brokers);
    ensure_topics(&config).await.unwrap();
    let publisher = OutcomePublisher::new(&config).unwrap();
    // Published before the listener starts: must not be delivered (it reads from the end).
    publisher.publish(&[Outcome { event_id: "early".into(), result: Err(ScimError::uniqueness("old")) }]);
    publisher.flush(Duration::from_secs(5));
    let hub = Arc::new(OutcomeHub::new());
    let listener = OutcomeListener::start(&config, hub.clone()).await.unwrap();
    let early = hub.register("early");
    let waiters: Vec<_> = (0..10).map(|index| hub.register(&format!("e{index}"))).collect();
    let outcomes: Vec<Outcome> = (0..10)
        .map(|index| Outcome {
            event_id: format!("e{index}"),
            result: Ok(Accepted { status: 201, resource: None, skipped_members: vec![] }),
        })
        .collect();
    publisher.publish(&outcomes);
    for (index, waiter) in waiters.into_iter().enumerate() {
        let outcome = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap();
        assert_eq!(outcome, outcomes[index]);
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), early).await.is_err(),
        "an old outcome was replayed"
    );
    listener.stop();
    delete_topics(&config).await;
}
