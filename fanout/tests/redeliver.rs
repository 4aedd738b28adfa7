//! Redelivery on real Kafka: commands of two tenants on a fresh commands topic; redelivering one
//! tenant's time range to one product sends exactly the changes its commands applied in that
//! range which the subscription selects (same `change_id`s as the projector's), to that
//! product's topic only.
//!
//! Needs `SCIMFLOW_KAFKA_BROKERS` (else prints SKIPPED and passes).

use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use scimflow_core::ResourceKind;
use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::resource::normalize_resource;
use scimflow_fanout::config::{Delivery, FanoutConfig, Subscription, TenantSelection};
use scimflow_fanout::redeliver::{Redelivery, redeliver};
use scimflow_fanout::sinks::kafka::product_topic;
use scimflow_log::CommandLog;
use scimflow_log::kafka::{KafkaConfig, KafkaLog, KafkaLogReader, ensure_topics};
use scimflow_proto as pb;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_800_000_000_000;

fn create(tenant: &str, kind: ResourceKind, id: &str, body: serde_json::Value, at: i64) -> Command {
    let registry = scimflow_core::SchemaRegistry::standard();
    Command {
        event_id: format!("evt-{id}"),
        tenant_id: tenant.into(),
        kind,
        resource_id: id.into(),
        issued_at_ms: at,
        if_match: None,
        action: Action::Create(normalize_resource(&registry, kind, &body).unwrap()),
        metadata: CommandMetadata {
            actor: "test-idp".into(),
            raw_method: "POST".into(),
            ..Default::default()
        },
    }
}

/// A just-created topic may not have elected its leaders yet: ask again for a while.
fn watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> (i64, i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok(marks) => return marks,
            Err(error) if std::time::Instant::now() < deadline => {
                println!("watermarks of {topic}/{partition}: {error}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => panic!("watermarks of {topic}/{partition}: {error}"),
        }
    }
}

/// Every record of `topic` up to its end offsets as of now, decoded.
fn read_all(kafka: &KafkaConfig, topic: &str) -> Vec<pb::ChangeEnvelope> {
    let consumer: BaseConsumer = kafka
        .client_config(&[])
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = watermarks(&consumer, topic, partition.id());
        remaining += high - low;
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while (records.len() as i64) < remaining && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let payload = message.unwrap().payload().unwrap_or_default().to_vec();
            records.push(pb::ChangeEnvelope::decode(payload.as_slice()).unwrap());
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_time_range_is_redelivered_to_one_product() {
    let Ok(brokers) = std::env::var("SCIMFLOW_KAFKA_BROKERS") else {
        println!("SKIPPED: SCIMFLOW_KAFKA_BROKERS is not set");
        return;
    };
    let mut kafka = KafkaConfig::new(brokers);
    kafka.topic_prefix = format!("test.{}.", uuid::Uuid::new_v4().simple());
    kafka.command_partitions = 3;
    ensure_topics(&kafka).await.unwrap();
    let log = KafkaLog::new(&kafka).unwrap();
    let mut commands = Vec::new();
    for index in 0..6 {
        let user = json!({"userName": format!("u{index}"), "active": true});
        commands.push(create("acme", ResourceKind::User, &format!("u{index}"), user, T0 + index * 1000));
    }
    // In the range, but a Group: not selected by a Users-only subscription.
    let group = json!({"displayName": "eng", "members": [{"value": "u1"}]});
    commands.push(create("acme", ResourceKind::Group, "g1", group, T0 + 2500));
    // In the range, but another tenant's.
    commands.push(create("globex", ResourceKind::User, "x1", json!({"userName": "x1"}), T0 + 2000));
    for command in &commands {
        log.append(&command.tenant_id, command.encode(), Vec::new()).await.unwrap();
    }

    let data = tempfile::tempdir().unwrap();
    let mut config = FanoutConfig::new(data.path());
    config.state_topics = false;
    for product in ["billing", "chat"] {
        config.subscriptions.push(Subscription {
            product: product.into(),
            tenants: TenantSelection::All,
            resource_types: vec!["User".into()],
            attributes: Some(vec!["userName".into()]),
            delivery: Delivery::Kafka {},
        });
    }
    let reader = Arc::new(KafkaLogReader::new(&kafka).unwrap());
    let request =
        Redelivery { product: "billing".into(), tenant: "acme".into(), from_ms: T0 + 1000, to_ms: T0 + 4000 };
    let report = redeliver(&config, Some(&kafka), reader.clone(), &request).await.unwrap();
    // u1, u2, u3 created, and the group's create in between (its upsert and its members added),
    // not selected.
    assert_eq!(report.changes, 5, "{report:?}");
    assert_eq!(report.change_ids, ["evt-u1/0", "evt-u2/0", "evt-u3/0"]);
    assert_eq!(report.sent, 3);

    let delivered = read_all(&kafka, &product_topic(&kafka.topic_prefix, "billing"));
    let mut ids: Vec<&str> = delivered.iter().map(|envelope| envelope.change_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["evt-u1/0", "evt-u2/0", "evt-u3/0"]);
    for envelope in &delivered {
        assert_eq!(envelope.tenant_id, "acme");
        let Some(pb::change_envelope::Change::Upserted(upserted)) = &envelope.change else {
            panic!("an upsert: {envelope:?}")
        };
        let resource: serde_json::Value = serde_json::from_str(&upserted.resource_json).unwrap();
        assert!(resource.get("active").is_none(), "trimmed to the subscription's attributes: {resource}");
    }
    // The other product got nothing (its topic is not even created by a redelivery).
    let consumer: BaseConsumer = kafka.client_config(&[]).set("group.id", "probe").create().unwrap();
    let chat = product_topic(&kafka.topic_prefix, "chat");
    let metadata = consumer.fetch_metadata(Some(&chat), Duration::from_secs(10)).unwrap();
    let chat_records: i64 = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|partition| {
            consumer
                .fetch_watermarks(&chat, partition.id(), Duration::from_secs(10))
                .map(|(l, h)| h - l)
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(chat_records, 0);

    // An unknown product and an empty range are refused.
    let unknown = Redelivery { product: "nope".into(), ..request.clone() };
    assert!(redeliver(&config, Some(&kafka), reader.clone(), &unknown).await.is_err());
    let empty = Redelivery { to_ms: request.from_ms, ..request };
    assert!(redeliver(&config, Some(&kafka), reader, &empty).await.is_err());
}
