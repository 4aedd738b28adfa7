//! Fanout on real Kafka: changes produced to a fresh changes topic reach the subscribed product
//! topic (filtered, trimmed, keyed per resource) and not an unsubscribed one; the compacted
//! state topics get the latest state, tombstones and the members-cleared marker.
//!
//! Needs `SCIMFLOW_KAFKA_BROKERS` (else prints SKIPPED and passes).

mod common;

use common::*;
use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use scimflow_core::ResourceKind;
use scimflow_core::change::{Change, ChangeBody};
use scimflow_core::state::Member;
use scimflow_fanout::Fanout;
use scimflow_fanout::config::{Delivery, FanoutConfig, Subscription, TenantSelection, WebhookConfig};
use scimflow_fanout::source::KafkaChangeSource;
use scimflow_log::kafka::{KafkaConfig, ensure_topics};
use scimflow_proto as pb;
use std::time::Duration;

fn kafka() -> Option<KafkaConfig> {
    let Ok(brokers) = std::env::var("SCIMFLOW_KAFKA_BROKERS") else {
        println!("SKIPPED: SCIMFLOW_KAFKA_BROKERS is not set");
        return None;
    };
    let mut config = KafkaConfig::new(brokers);
    config.topic_prefix = format!("test.{}.", uuid::Uuid::new_v4().simple());
    config.command_partitions = 3;
    Some(config)
}

/// Every record of `topic` as (key, value or None for a tombstone, change-id header), up to the
/// end offsets as of now.
fn read_all(kafka: &KafkaConfig, topic: &str) -> Vec<(String, Option<Vec<u8>>, String)> {
    let consumer: BaseConsumer = kafka
        .client_config(&[])
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for partition in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *partition, Duration::from_secs(10)).unwrap();
        remaining += high - low;
        assignment.add_partition_offset(topic, *partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while (records.len() as i64) < remaining && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let change_id = message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "change-id").and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            records.push((
                String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                message.payload().map(<[u8]>::to_vec),
                change_id,
            ));
        }
    }
    records
}

async fn delete_topics(kafka: &KafkaConfig, topics: &[String]) {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config(&[]).create().unwrap();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
}

fn group_change(tenant: &str, id: &str, version: u64, body: ChangeBody, index: usize) -> pb::ChangeEnvelope {
    Change { kind: ResourceKind::Group, resource_id: id.into(), version, occurred_at_ms: now_ms(), body }
        .to_proto(tenant, &format!("cmd-{id}-{version}"), index, "trace")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reaches_the_subscribed_product_topic_and_not_an_unsubscribed_one() {
    let Some(kafka) = kafka() else { return };
    let topics = ensure_topics(&kafka).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = FanoutConfig::new(dir.path());
    config.topic_partitions = 3;
    config.subscriptions = vec![
        Subscription {
            product: "billing".into(),
            tenants: TenantSelection::List(vec!["acme".into()]),
            resource_types: vec!["User".into()],
            attributes: Some(vec!["userName".into()]),
            delivery: Delivery::Kafka {},
        },
        Subscription {
            product: "support".into(),
            tenants: TenantSelection::List(vec!["globex".into()]),
            resource_types: vec![],
            attributes: None,
            delivery: Delivery::Kafka {},
        },
    ];

    // What the projector would publish: key = tenant, header change-id.
    let producer: FutureProducer = kafka.client_config(&[]).create().unwrap();
    let member = Member { value: "u1".into(), kind: ResourceKind::User, display: None };
    let envelopes = vec![
        user_upsert("acme", "u1", 1, "alice"),
        user_upsert("acme", "u1", 2, "alice.b"),
        group_change("acme", "g1", 1, ChangeBody::MembersAdded(vec![member.clone()]), 1),
        group_change("acme", "g1", 2, ChangeBody::MembersCleared, 0),
        user_upsert("acme", "u2", 1, "bob"),
        user_delete("acme", "u2", 2),
    ];
    for envelope in &envelopes {
        let bytes = envelope.encode_to_vec();
        producer
            .send(
                FutureRecord::to(&topics.changes).key(&envelope.tenant_id).payload(&bytes),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }

    let source = KafkaChangeSource::new(&kafka, &format!("fanout-{}", uuid::Uuid::new_v4())).unwrap();
    let fanout = Fanout::start(config, Some(&kafka), Box::new(source)).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || fanout.metrics().read == envelopes.len() as u64).await,
        "fanout read {}",
        fanout.metrics().read
    );
    // A globex write arrives after the acme ones were handled.
    let globex = user_upsert("globex", "x1", 1, "xavier");
    producer
        .send(
            FutureRecord::to(&topics.changes).key("globex").payload(&globex.encode_to_vec()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || fanout.metrics().read == 7).await);
    fanout.stop().await.unwrap();

    let billing = read_all(&kafka, &format!("{}product.billing", kafka.topic_prefix));
    let keys: Vec<&str> = billing.iter().map(|(key, _, _)| key.as_str()).collect();
    assert_eq!(keys, ["acme/User/u1", "acme/User/u1", "acme/User/u2", "acme/User/u2"], "users of acme only");
    let first = pb::ChangeEnvelope::decode(billing[1].1.as_deref().unwrap()).unwrap();
    assert_eq!(first.change_id, "cmd-u1-2/0");
    assert_eq!(billing[1].2, "cmd-u1-2/0", "change-id header");
    let Some(pb::change_envelope::Change::Upserted(upserted)) = first.change else { panic!("not an upsert") };
    let resource: serde_json::Value = serde_json::from_str(&upserted.resource_json).unwrap();
    assert_eq!(resource["userName"], "alice.b");
    assert!(resource.get("title").is_none(), "unselected attributes are trimmed: {resource}");

    let support = read_all(&kafka, &format!("{}product.support", kafka.topic_prefix));
    let keys: Vec<&str> = support.iter().map(|(key, _, _)| key.as_str()).collect();
    assert_eq!(keys, ["globex/User/x1"], "no acme change on the product not subscribed to acme");

    let users = read_all(&kafka, &format!("{}state.users", kafka.topic_prefix));
    let user_records: Vec<(&str, bool)> = users.iter().map(|(k, v, _)| (k.as_str(), v.is_some())).collect();
    assert!(user_records.contains(&("acme/u2", false)), "a delete is a tombstone: {user_records:?}");
    assert!(user_records.contains(&("globex/x1", true)));
    let memberships = read_all(&kafka, &format!("{}state.memberships", kafka.topic_prefix));
    let member_records: Vec<(&str, bool)> =
        memberships.iter().map(|(k, v, _)| (k.as_str(), v.is_some())).collect();
    assert_eq!(member_records, [("acme/g1/u1", true), ("acme/g1", true)], "member, then the cleared marker");

    let mut created = vec![topics.commands, topics.outcomes, topics.changes];
    created.extend(
        ["product.billing", "product.support", "state.users", "state.groups", "state.memberships"]
            .iter()
            .map(|suffix| format!("{}{suffix}", kafka.topic_prefix)),
    );
    delete_topics(&kafka, &created).await;
}

fn webhook_subscription(product: &str, addr: std::net::SocketAddr) -> Subscription {
    let mut webhook = WebhookConfig::new(format!("http://{addr}/events"), "k");
    (webhook.initial_backoff_ms, webhook.max_backoff_ms, webhook.max_attempts) = (50, 400, 0);
    Subscription {
        product: product.into(),
        tenants: TenantSelection::All,
        resource_types: vec![],
        attributes: None,
        delivery: Delivery::Webhook(webhook),
    }
}

async fn produce(producer: &FutureProducer, topic: &str, envelope: &pb::ChangeEnvelope) {
    let bytes = envelope.encode_to_vec();
    producer
        .send(FutureRecord::to(topic).key(&envelope.tenant_id).payload(&bytes), Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_kafka_reach_a_webhook_that_was_down_in_order_per_resource() {
    let Some(kafka) = kafka() else { return };
    let topics = ensure_topics(&kafka).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config = FanoutConfig::new(dir.path());
    (config.topic_partitions, config.state_topics) = (3, false);
    config.subscriptions = vec![webhook_subscription("crm", addr)];
    let producer: FutureProducer = kafka.client_config(&[]).create().unwrap();
    for version in 1..=5 {
        for (tenant, user) in [("acme", "u1"), ("globex", "u2"), ("initech", "u3")] {
            produce(&producer, &topics.changes, &user_upsert(tenant, user, version, user)).await;
        }
    }
    let source = KafkaChangeSource::new(&kafka, &format!("fanout-{}", uuid::Uuid::new_v4())).unwrap();
    let fanout = Fanout::start(config, Some(&kafka), Box::new(source)).await.unwrap();
    assert!(wait_until(Duration::from_secs(30), || fanout.metrics().read == 15).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let received = Received::default();
    start_receiver(
        addr,
        Behaviour { secret: b"k".to_vec(), delay: Duration::ZERO, refuse: vec![] },
        received.clone(),
    )
    .await;
    assert!(wait_until(Duration::from_secs(15), || received.len() == 15).await, "got {}", received.len());
    let mut per_resource: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for claims in received.claims() {
        per_resource.entry(claims["sub_id"]["uri"].as_str().unwrap().into()).or_default().push(
            claims["events"].as_object().unwrap().values().next().unwrap()["version"]
                .as_str()
                .unwrap()
                .into(),
        );
    }
    for versions in per_resource.values() {
        let expected: Vec<String> = (1..=5).map(|v| format!("W/\"{v}\"")).collect();
        assert_eq!(versions, &expected);
    }
    fanout.stop().await.unwrap();
    let mut created = vec![topics.commands, topics.outcomes, topics.changes];
    created.push(format!("{}product.crm", kafka.topic_prefix));
    delete_topics(&kafka, &created).await;
}

/// Not a pass/fail check: prints the lag from a change's `occurred_at` (ingest time, just
/// before the API answers) to its acknowledged webhook delivery and to its product-topic
/// record, at a steady 200 changes/s through real Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_from_ingest_to_delivery_under_steady_load_is_reported() {
    let Some(kafka) = kafka() else { return };
    let topics = ensure_topics(&kafka).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let received = Received::default();
    let behaviour = Behaviour { secret: b"k".to_vec(), delay: Duration::ZERO, refuse: vec![] };
    let addr = start_receiver("127.0.0.1:0".parse().unwrap(), behaviour, received.clone()).await;
    let mut config = FanoutConfig::new(dir.path());
    (config.topic_partitions, config.state_topics) = (3, false);
    config.subscriptions = vec![webhook_subscription("hook", addr)];
    let source = KafkaChangeSource::new(&kafka, &format!("fanout-{}", uuid::Uuid::new_v4())).unwrap();
    let fanout = Fanout::start(config, Some(&kafka), Box::new(source)).await.unwrap();
    let producer: FutureProducer = kafka.client_config(&[("linger.ms", "0")]).create().unwrap();
    // Let the consumer group settle before timing.
    produce(&producer, &topics.changes, &user_upsert("warm", "w", 1, "w")).await;
    assert!(wait_until(Duration::from_secs(30), || received.len() == 1).await);

    let total = 600;
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    let mut produce_ms = Vec::new();
    for i in 0..total {
        ticker.tick().await;
        let started = std::time::Instant::now();
        produce(&producer, &topics.changes, &user_upsert("acme", &format!("u{i}"), 1, "x")).await;
        produce_ms.push(started.elapsed().as_millis() as u64);
    }
    produce_ms.sort_unstable();
    println!(
        "BENCH produce to the changes topic: p50 {} ms, p99 {} ms",
        produce_ms[total / 2],
        produce_ms[total * 99 / 100]
    );
    assert!(wait_until(Duration::from_secs(30), || received.len() == total + 1).await);
    let snapshot = &fanout.metrics().products["hook"];
    println!(
        "BENCH fanout webhook lag at 200 changes/s over {total}: p50 <= {} ms, p99 <= {} ms, max {} ms",
        snapshot.lag_p50_ms, snapshot.lag_p99_ms, snapshot.lag_max_ms
    );
    fanout.stop().await.unwrap();
    delete_topics(
        &kafka,
        &[topics.commands, topics.outcomes, topics.changes, format!("{}product.hook", kafka.topic_prefix)],
    )
    .await;
}
