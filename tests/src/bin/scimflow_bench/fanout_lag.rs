//! `fanout-lag`: how long after the API's 2xx a change reaches the product teams, with fanout
//! running inside the pipeline (`serve --fanout-config`).
//!
//! `POST /Users` at a steady `--rate` for `--seconds`; fanout delivers every change to a
//! webhook (a local RFC 8935 receiver that verifies each SET and answers 202 at once) and, on
//! Kafka, to a product topic read by a consumer in this process. The lag of a write is the time
//! from its 201 to its arrival: the receiver's accept, or the product record's receipt. Client,
//! pipeline, brokers and receiver share the machine, so this is the lag on one box under load.

use super::{Harness, percentiles};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use scimflow::pipeline::LogKind;
use scimflow_fanout::config::{Delivery, Subscription, TenantSelection, WebhookConfig};
use scimflow_fanout::testing::{Behaviour, Received, start_receiver, subject_and_version};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"fanout-lag bench key";
const WEBHOOK_PRODUCT: &str = "lag-webhook";
const KAFKA_PRODUCT: &str = "lag-kafka";
/// The topics fanout creates in a `fanout-lag` run, under the run's prefix.
pub const FANOUT_TOPICS: [&str; 4] =
    ["product.lag-kafka", "state.users", "state.groups", "state.memberships"];
/// How long to wait after the last write for its deliveries.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// The receiver, started before the pipeline so its address can be subscribed.
pub struct Receiver {
    addr: SocketAddr,
    received: Received,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let received = Received::default();
        let addr =
            start_receiver("127.0.0.1:0".parse().unwrap(), Behaviour::accepting(SECRET), received.clone())
                .await;
        Receiver { addr, received }
    }

    /// Every tenant's users and groups to the webhook, and on Kafka to a product topic too.
    pub fn subscriptions(&self, log: LogKind) -> Vec<Subscription> {
        let mut webhook =
            WebhookConfig::new(format!("http://{}/events", self.addr), String::from_utf8_lossy(SECRET));
        webhook.max_attempts = 0;
        let mut subscriptions = vec![subscription(WEBHOOK_PRODUCT, Delivery::Webhook(webhook))];
        if log == LogKind::Kafka {
            subscriptions.push(subscription(KAFKA_PRODUCT, Delivery::Kafka {}));
        }
        subscriptions
    }
}

fn subscription(product: &str, delivery: Delivery) -> Subscription {
    Subscription {
        product: product.into(),
        tenants: TenantSelection::All,
        resource_types: vec![],
        attributes: None,
        delivery,
    }
}

/// First receipt of each resource id on the product topic, until `stop`.
fn follow_product_topic(harness: &Harness, stop: Arc<AtomicBool>) -> Arc<Mutex<HashMap<String, Instant>>> {
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let kafka = harness.fresh.kafka.clone().expect("kafka");
    let topic = format!("{}product.{KAFKA_PRODUCT}", kafka.topic_prefix);
    let consumer: StreamConsumer = kafka
        .client_config(&[("fetch.wait.max.ms", "10")])
        .set("group.id", format!("fanout-lag-reader-{}", harness.fresh.run))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let partitions =
        consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).expect("metadata").topics()[0]
            .partitions()
            .len() as i32;
    for partition in 0..partitions {
        assignment.add_partition_offset(&topic, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let seen = arrivals.clone();
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await
            else {
                continue;
            };
            let now = Instant::now();
            // The key is `<tenant>/<type>/<id>`.
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            if let Some(id) = key.rsplit('/').next() {
                seen.lock().unwrap().entry(id.to_owned()).or_insert(now);
            }
        }
    });
    arrivals
}

struct Lag {
    delivered: usize,
    missing: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn lag(answered: &[(String, Instant)], arrivals: &HashMap<String, Instant>) -> Lag {
    let mut lags = Vec::new();
    for (id, answered_at) in answered {
        if let Some(arrived) = arrivals.get(id) {
            // A delivery can beat the HTTP answer to the client; that counts as no lag.
            lags.push(arrived.saturating_duration_since(*answered_at));
        }
    }
    let delivered = lags.len();
    let stats = percentiles(&mut lags);
    Lag {
        delivered,
        missing: answered.len() - delivered,
        p50_ms: stats.p50,
        p99_ms: stats.p99,
        max_ms: stats.max,
    }
}

fn report(name: &str, lag: &Lag) -> Value {
    println!(
        "  {name:<8} delivered {:>6}  missing {:>4}  lag p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        lag.delivered, lag.missing, lag.p50_ms, lag.p99_ms, lag.max_ms
    );
    json!({"delivered": lag.delivered, "missing": lag.missing,
           "lag_p50_ms": lag.p50_ms, "lag_p99_ms": lag.p99_ms, "lag_max_ms": lag.max_ms})
}

/// Creates one user and returns its id with the instants the request was sent and its 201
/// arrived (headers: the answer, before its body is read), or `None` if it was not a 201.
async fn create_user(
    client: reqwest::Client,
    url: String,
    token: String,
    sequence: u64,
) -> Option<(String, Instant, Instant)> {
    let body = json!({"userName": format!("lag-{sequence}@bench.example"), "active": true});
    let sent = Instant::now();
    let response = client
        .post(&url)
        .bearer_auth(&token)
        .header("Content-Type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let answered = Instant::now();
    if response.status().as_u16() != 201 {
        return None;
    }
    let created: Value = response.json().await.ok()?;
    Some((created["id"].as_str()?.to_owned(), sent, answered))
}

pub async fn bench_fanout_lag(harness: &Harness, receiver: &Receiver, rate: u32, seconds: u64) -> Value {
    let (log, store) = harness.topology;
    let stop = Arc::new(AtomicBool::new(false));
    let topic_arrivals = (log == LogKind::Kafka).then(|| follow_product_topic(harness, stop.clone()));

    // Open-loop load: one write every 1/rate s whatever the answers take, as an IdP pushes.
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let url = format!("{}/Users", harness.app_url);
    let mut writes = Vec::new();
    let started = Instant::now();
    for sequence in 0..u64::from(rate) * seconds {
        ticker.tick().await;
        writes.push(tokio::spawn(create_user(
            harness.client.clone(),
            url.clone(),
            harness.token.clone(),
            sequence,
        )));
    }
    let sending = started.elapsed().as_secs_f64();
    let mut answered = Vec::new();
    let mut write_latencies = Vec::new();
    let mut errors = 0usize;
    for write in writes {
        match write.await.expect("write task") {
            Some((id, sent, answered_at)) => {
                write_latencies.push(answered_at - sent);
                answered.push((id, answered_at));
            }
            None => errors += 1,
        }
    }

    let webhook_arrivals = || -> HashMap<String, Instant> {
        let mut first = HashMap::new();
        for arrival in receiver.received.arrivals() {
            let (uri, _) = subject_and_version(&arrival.claims);
            if let Some(id) = uri.strip_prefix("/Users/") {
                first.entry(id.to_owned()).or_insert(arrival.at);
            }
        }
        first
    };
    let all_arrived =
        |arrivals: &HashMap<String, Instant>| answered.iter().all(|(id, _)| arrivals.contains_key(id));
    let deadline = Instant::now() + DRAIN_LIMIT;
    while Instant::now() < deadline {
        let webhook_done = all_arrived(&webhook_arrivals());
        let topic_done =
            topic_arrivals.as_ref().is_none_or(|arrivals| all_arrived(&arrivals.lock().unwrap()));
        if webhook_done && topic_done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let writes_stats = percentiles(&mut write_latencies);
    println!(
        "fanout-lag on --log {log:?} --store {store:?}: {} writes sent in {sending:.1} s ({:.0}/s, target {rate}/s), \
         {} answered 201, {errors} errors; write p50 {:.1} ms, p99 {:.1} ms",
        answered.len() + errors,
        (answered.len() + errors) as f64 / sending,
        answered.len(),
        writes_stats.p50,
        writes_stats.p99
    );
    println!("  lag from the 201 to delivery:");
    let mut result = json!({
        "mode": "fanout-lag", "log": format!("{log:?}"), "store": format!("{store:?}"),
        "target_rate": rate, "seconds": seconds, "answered": answered.len(), "errors": errors,
        "achieved_rate": (answered.len() + errors) as f64 / sending,
        "write_p50_ms": writes_stats.p50, "write_p99_ms": writes_stats.p99,
    });
    result["webhook"] = report("webhook", &lag(&answered, &webhook_arrivals()));
    if let Some(arrivals) = &topic_arrivals {
        result["kafka_product_topic"] = report("kafka", &lag(&answered, &arrivals.lock().unwrap()));
    }
    result
}
