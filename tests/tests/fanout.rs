//! Fanout inside `scimflow serve --fanout-config`, driven by IdP writes through the HTTP API:
//! a write reaches the product topics it is subscribed to (and no other), a webhook receiver
//! that was down gets every event in order once it is back, a slow receiver does not hold back
//! a fast one. The Kafka tests need `SCIMFLOW_KAFKA_BROKERS` (else they print SKIPPED and pass).

use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use scimflow::pipeline::App;
use scimflow::pipeline::{LogKind, StoreKind};
use scimflow_fanout::config::{Delivery, Subscription, TenantSelection, WebhookConfig};
use scimflow_fanout::set::{EVENT_CREATE_FULL, EVENT_PUT_FULL};
use scimflow_fanout::testing::{Behaviour, Received, start_receiver, subject_and_version, wait_until};
use scimflow_log::kafka::KafkaConfig;
use scimflow_proto as pb;
use scimflow_proto::change_envelope::Change;
use scimflow_tests::{FreshServices, TestApp};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SECRET: &str = "subscriber key";

fn kafka_services() -> Option<FreshServices> {
    match FreshServices::from_env("fanout", true, false) {
        Ok(fresh) => Some(fresh),
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// Tenant ids: subscriptions select tenants by id, so the tenants exist before fanout starts.
struct Tenants {
    acme: String,
    globex: String,
}

/// `serve` on `log` with fanout delivering to the subscriptions `subscriptions` makes for the
/// tenants "acme" (`app.token`) and "globex" (`app.other_token`).
async fn serve_with_fanout(
    fresh: &FreshServices,
    log: LogKind,
    subscriptions: impl FnOnce(&Tenants) -> Vec<Subscription>,
) -> (TestApp, Tenants) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let now = chrono::Utc::now().timestamp_millis();
    let directory = scimflow::embedded::open_tenants(data_dir.path()).expect("tenants");
    let (acme, token) = directory.create("acme", now).expect("tenant");
    let (globex, other_token) = directory.create("globex", now).expect("tenant");
    drop(directory);
    let tenants = Tenants { acme: acme.id, globex: globex.id };
    let mut options = fresh.options(data_dir.path(), log, StoreKind::Embedded);
    options.fanout = Some(fresh.fanout(data_dir.path(), subscriptions(&tenants)));
    let app = App::build(options).await.expect("pipeline starts");
    let base_url = app.base_url.clone().expect("API runs");
    tokio::spawn(app.run_until_stopped());
    let app = TestApp { base_url, token, other_token, client: reqwest::Client::new(), data_dir };
    app.wait_until_ready().await;
    (app, tenants)
}

fn subscription(product: &str, tenant: &str, types: &[&str], delivery: Delivery) -> Subscription {
    Subscription {
        product: product.into(),
        tenants: TenantSelection::List(vec![tenant.to_owned()]),
        resource_types: types.iter().map(|t| t.to_string()).collect(),
        attributes: None,
        delivery,
    }
}

fn webhook(addr: SocketAddr, tune: impl FnOnce(&mut WebhookConfig)) -> Delivery {
    let mut config = WebhookConfig::new(format!("http://{addr}/events"), SECRET);
    (config.initial_backoff_ms, config.max_backoff_ms, config.max_attempts) = (50, 400, 0);
    tune(&mut config);
    Delivery::Webhook(config)
}

fn accepting(delay: Duration) -> Behaviour {
    Behaviour { delay, ..Behaviour::accepting(SECRET.as_bytes()) }
}

/// A port nothing listens on yet: connections to it are refused.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A W3C `traceparent` whose trace id becomes the change's `correlation_id`.
fn traceparent() -> (String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    (format!("00-{trace_id}-00f067aa0ba902b7-01"), trace_id)
}

/// Sends a SCIM write with a `traceparent`; returns status and body.
async fn write(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &Value,
    traceparent: &str,
) -> (u16, Value) {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("Content-Type", "application/scim+json")
        .header("traceparent", traceparent)
        .body(body.to_string())
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn user(user_name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "active": true})
}

fn replace(path: &str, value: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "replace", "path": path, "value": value}]})
}

struct TopicRecord {
    key: String,
    envelope: pb::ChangeEnvelope,
    change_id_header: String,
}

/// Reads `topic` from the beginning until `done` holds for what was read, or 30 s pass.
async fn read_topic_until(
    kafka: &KafkaConfig,
    topic: &str,
    done: impl Fn(&[TopicRecord]) -> bool,
) -> Vec<TopicRecord> {
    let consumer: StreamConsumer = kafka
        .client_config(&[])
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let (probe, name) = (kafka.clone(), topic.to_owned());
    let partitions = tokio::task::spawn_blocking(move || {
        let consumer: rdkafka::consumer::BaseConsumer = probe.client_config(&[]).create().expect("consumer");
        let metadata = consumer.fetch_metadata(Some(&name), Duration::from_secs(10)).expect("metadata");
        metadata.topics()[0].partitions().len() as i32
    })
    .await
    .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&records) && tokio::time::Instant::now() < deadline {
        let Ok(message) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await else {
            continue;
        };
        let message = message.expect("record");
        let header = message
            .headers()
            .and_then(|headers| headers.iter().find(|h| h.key == "change-id").and_then(|h| h.value))
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();
        records.push(TopicRecord {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            envelope: pb::ChangeEnvelope::decode(message.payload().unwrap_or_default()).expect("envelope"),
            change_id_header: header,
        });
    }
    records
}

fn resource_of(envelope: &pb::ChangeEnvelope) -> Value {
    let Some(Change::Upserted(upserted)) = &envelope.change else { panic!("not an upsert: {envelope:?}") };
    serde_json::from_str(&upserted.resource_json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_write_reaches_the_subscribed_product_topic_and_not_the_unsubscribed_ones() {
    let Some(fresh) = kafka_services() else { return };
    let (app, tenants) = serve_with_fanout(&fresh, LogKind::Kafka, |tenants| {
        let mut billing = subscription("billing", &tenants.acme, &["User"], Delivery::Kafka {});
        billing.attributes = Some(vec!["userName".into(), "active".into()]);
        vec![
            billing,
            subscription("support", &tenants.globex, &[], Delivery::Kafka {}),
            subscription("acme-groups", &tenants.acme, &["Group"], Delivery::Kafka {}),
        ]
    })
    .await;
    let kafka = fresh.kafka.clone().unwrap();
    let topic = |product: &str| format!("{}product.{product}", kafka.topic_prefix);

    let mut alice = user("alice@example.com");
    alice["title"] = json!("CFO");
    let (create_trace, create_trace_id) = traceparent();
    let (status, created) =
        write(&app, reqwest::Method::POST, "/Users", &app.token, &alice, &create_trace).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (patch_trace, patch_trace_id) = traceparent();
    let path = format!("/Users/{id}");
    let (status, patched) = write(
        &app,
        reqwest::Method::PATCH,
        &path,
        &app.token,
        &replace("active", json!(false)),
        &patch_trace,
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let key = format!("{}/User/{id}", tenants.acme);

    let records = read_topic_until(&kafka, &topic("billing"), |records| {
        records.iter().filter(|record| record.key == key).count() >= 2
    })
    .await;
    let alice_records: Vec<&TopicRecord> = records.iter().filter(|record| record.key == key).collect();
    assert_eq!(alice_records.len(), 2, "the create and the patch, once each");
    for (record, (version, trace_id, active)) in
        alice_records.iter().zip([(1, &create_trace_id, true), (2, &patch_trace_id, false)])
    {
        let envelope = &record.envelope;
        assert_eq!((&envelope.tenant_id, &envelope.resource_id), (&tenants.acme, &id));
        assert_eq!(envelope.resource_type, pb::ResourceType::User as i32);
        assert_eq!(envelope.resource_version, version);
        assert_eq!(&envelope.correlation_id, trace_id, "the change of exactly this request");
        assert_eq!(
            envelope.change_id,
            format!("{}/0", envelope.command_event_id),
            "change id = event id/index"
        );
        assert_eq!(record.change_id_header, envelope.change_id);
        let resource = resource_of(envelope);
        assert_eq!(resource["userName"], "alice@example.com");
        assert_eq!(resource["active"], active);
        assert_eq!(resource["meta"]["version"], format!("W/\"{version}\""));
        assert!(resource.get("title").is_none(), "attributes not selected are trimmed: {resource}");
    }
    assert_ne!(alice_records[0].envelope.change_id, alice_records[1].envelope.change_id);
    assert!(records.iter().all(|record| record.envelope.tenant_id == tenants.acme), "billing is acme only");

    // Later writes: a globex user (support's only tenant) and an acme group. They reach their
    // topics only after the batches carrying alice's changes were fully delivered, so alice not
    // being there now means she is not delivered there at all.
    let (status, _) = app
        .send(reqwest::Method::POST, "/Users", &app.other_token, Some(&user("xavier@globex.example")))
        .await;
    assert_eq!(status, 201);
    let group = app.create_group("Finance").await;
    let support = read_topic_until(&kafka, &topic("support"), |records| {
        records.iter().any(|record| record.envelope.tenant_id == tenants.globex)
    })
    .await;
    assert!(
        support.iter().any(|record| resource_of(&record.envelope)["userName"] == "xavier@globex.example")
    );
    assert!(
        support.iter().all(|record| record.envelope.tenant_id == tenants.globex),
        "no acme change for support"
    );
    let group_key = format!("{}/Group/{group}", tenants.acme);
    let groups = read_topic_until(&kafka, &topic("acme-groups"), |records| {
        records.iter().any(|record| record.key == group_key)
    })
    .await;
    assert!(groups.iter().any(|record| record.key == group_key), "the group reached its topic");
    assert!(
        groups.iter().all(|record| record.envelope.resource_type == pb::ResourceType::Group as i32),
        "no user change on the groups-only topic"
    );
    fresh
        .delete_topics(&[
            "product.billing",
            "product.support",
            "product.acme-groups",
            "state.users",
            "state.groups",
            "state.memberships",
        ])
        .await;
}

/// Every SET of `uri`s in `wanted`, as (uri → versions in arrival order).
fn versions_by_resource(received: &Received, wanted: &[String]) -> BTreeMap<String, Vec<u64>> {
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for claims in received.claims() {
        let (uri, version) = subject_and_version(&claims);
        if wanted.contains(&uri) {
            versions.entry(uri).or_default().push(version.expect("a version"));
        }
    }
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_receiver_that_was_down_gets_every_api_write_in_order_per_resource() {
    let Some(fresh) = kafka_services() else { return };
    let addr = free_port();
    let (app, _) = serve_with_fanout(&fresh, LogKind::Kafka, |tenants| {
        vec![subscription("crm", &tenants.acme, &["User"], webhook(addr, |_| {}))]
    })
    .await;

    // 4 users × (create + 4 patches) while the receiver is down, interleaved across users.
    let mut uris = Vec::new();
    for index in 0..4 {
        uris.push(format!("/Users/{}", app.create_user(&format!("down-{index}")).await));
    }
    for version in 2..=5 {
        for uri in &uris {
            let (status, body) = app.patch(uri, &replace("displayName", json!(format!("v{version}")))).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let received = Received::default();
    start_receiver(addr, accepting(Duration::ZERO), received.clone()).await;
    let expected = uris.len() * 5;
    let ours =
        |received: &Received| versions_by_resource(received, &uris).values().map(Vec::len).sum::<usize>();
    assert!(
        wait_until(Duration::from_secs(30), || ours(&received) >= expected).await,
        "got {} of {expected}",
        ours(&received)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let versions = versions_by_resource(&received, &uris);
    assert_eq!(versions.len(), uris.len());
    for (uri, seen) in &versions {
        assert_eq!(seen, &(1..=5).collect::<Vec<u64>>(), "{uri}: every version once, in order");
    }
    // The last SET of each user carries its state as the API shows it.
    for claims in received.claims() {
        let (uri, version) = subject_and_version(&claims);
        if version == Some(5) && uris.contains(&uri) {
            let data = &claims["events"][EVENT_PUT_FULL]["data"];
            let (_, current) = app.get(&uri).await;
            assert_eq!(data["displayName"], "v5");
            assert_eq!(data["displayName"], current["displayName"]);
        }
    }
    fresh.delete_topics(&["state.users", "state.groups", "state.memberships"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_receiver_does_not_delay_a_fast_one() {
    let Some(fresh) = kafka_services() else { return };
    // The slow receiver takes 8 s per SET; with 4 lanes it can accept at most 4 in 8 s.
    let slow_delay = Duration::from_secs(8);
    let (slow, fast) = (Received::default(), Received::default());
    let slow_addr = start_receiver("127.0.0.1:0".parse().unwrap(), accepting(slow_delay), slow.clone()).await;
    let fast_addr =
        start_receiver("127.0.0.1:0".parse().unwrap(), accepting(Duration::ZERO), fast.clone()).await;
    let (app, _) = serve_with_fanout(&fresh, LogKind::Kafka, |tenants| {
        vec![
            subscription("slow", &tenants.acme, &["User"], webhook(slow_addr, |c| c.timeout_ms = 30_000)),
            subscription("fast", &tenants.acme, &["User"], webhook(fast_addr, |_| {})),
        ]
    })
    .await;

    let mut answered = BTreeMap::new();
    for index in 0..20 {
        let id = app.create_user(&format!("user-{index}")).await;
        answered.insert(format!("/Users/{id}"), Instant::now());
    }
    let uris: Vec<String> = answered.keys().cloned().collect();
    let delivered_to_fast =
        |received: &Received| versions_by_resource(received, &uris).values().map(Vec::len).sum::<usize>();
    assert!(
        wait_until(Duration::from_secs(30), || delivered_to_fast(&fast) == uris.len()).await,
        "fast got {} of {}",
        delivered_to_fast(&fast),
        uris.len()
    );
    let slow_so_far = slow.len();
    let mut lags: Vec<Duration> = fast
        .arrivals()
        .iter()
        .filter_map(|arrival| {
            let (uri, _) = subject_and_version(&arrival.claims);
            answered.get(&uri).map(|answered_at| arrival.at.saturating_duration_since(*answered_at))
        })
        .collect();
    lags.sort();
    println!(
        "fast receiver lag after the 201: p50 {:?}, max {:?}; slow had {slow_so_far}",
        lags[lags.len() / 2],
        lags.last().unwrap()
    );
    assert!(
        slow_so_far <= 4,
        "the slow receiver accepted {slow_so_far}: it cannot have taken more than its 4 lanes"
    );
    assert!(
        *lags.last().unwrap() < Duration::from_secs(5),
        "every fast delivery came well within one slow answer ({slow_delay:?}): {lags:?}"
    );
    fresh.delete_topics(&["state.users", "state.groups", "state.memberships"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_log_fanout_delivers_from_the_store_change_feed() {
    let fresh = FreshServices::from_env("fanout", false, false).expect("no services needed");
    let received = Received::default();
    let addr =
        start_receiver("127.0.0.1:0".parse().unwrap(), accepting(Duration::ZERO), received.clone()).await;
    let (app, tenants) = serve_with_fanout(&fresh, LogKind::Embedded, |tenants| {
        vec![subscription("crm", &tenants.acme, &[], webhook(addr, |_| {}))]
    })
    .await;

    // The unsubscribed tenant writes first: the feed is read in log order, so by the time the
    // acme write arrives the globex one was handled (and not queued, or it would arrive too).
    let (status, _) =
        app.send(reqwest::Method::POST, "/Users", &app.other_token, Some(&user("other-tenant"))).await;
    assert_eq!(status, 201);
    let id = app.create_user("embedded@example.com").await;
    let uri = format!("/Users/{id}");
    assert!(
        wait_until(Duration::from_secs(10), || received.claims().iter().any(|c| c["sub_id"]["uri"] == uri))
            .await,
        "the write was delivered"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let claims = received.claims().into_iter().find(|c| c["sub_id"]["uri"] == uri).unwrap();
    assert_eq!(claims["tenant"], tenants.acme);
    assert_eq!(claims["events"][EVENT_CREATE_FULL]["data"]["userName"], "embedded@example.com");
    assert!(received.claims().iter().all(|c| c["tenant"] == tenants.acme), "globex is not subscribed");
}
