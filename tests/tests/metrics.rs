//! Metrics and readiness of every process, scraped over HTTP on real Kafka after real writes:
//! the all-in-one `serve --log kafka` (API, log, projector and store metrics on the API's
//! `/metrics`), a projector-only process and fanout on their own metrics servers, and `/readyz`
//! of a process whose broker is unreachable.
//!
//! Needs `SCIMFLOW_KAFKA_BROKERS` (skipped without it, like the other Kafka tests).

use rdkafka::producer::{FutureProducer, FutureRecord};
use scimflow::fanout_cmd;
use scimflow::metrics_server::{MetricsServer, kafka_check};
use scimflow::pipeline::{App, FanoutOptions, LogKind, StoreKind};
use scimflow_fanout::config::{Delivery, FanoutConfig, Subscription, TenantSelection, WebhookConfig};
use scimflow_ingest_api::limits::TenantLimits;
use scimflow_log::kafka::KafkaConfig;
use scimflow_tests::{FreshServices, TestApp, spawn_app_with_options};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label pair");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            Sample { name: name.to_owned(), labels, value: value.parse().expect("numeric value") }
        })
        .collect()
}

struct Scrape(Vec<Sample>);

impl Scrape {
    /// Samples of `name` whose labels include every pair of `labels`.
    fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.0
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                labels.iter().all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
            })
            .collect()
    }

    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).iter().map(|sample| sample.value).sum()
    }
}

async fn scrape(url: &str) -> Scrape {
    let response = reqwest::get(url).await.expect("metrics answer");
    assert_eq!(response.status(), 200);
    Scrape(parse(&response.text().await.expect("metrics body")))
}

/// Scrapes until `done` holds (metrics that are refreshed periodically), at most 30 s.
async fn scrape_until(url: &str, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scraped = scrape(url).await;
        if done(&scraped) {
            return scraped;
        }
        assert!(Instant::now() < deadline, "{what} never held; last scrape: {:#?}", scraped.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The origin (`http://host:port`) of a SCIM base URL.
fn origin(base_url: &str) -> String {
    let after_scheme = base_url.find("://").map_or(0, |index| index + 3);
    let end = base_url[after_scheme..].find('/').map_or(base_url.len(), |index| after_scheme + index);
    base_url[..end].to_owned()
}

async fn write_some(app: &TestApp, users: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for index in 0..users {
        ids.push(app.create_user(&format!("metrics-user-{index}")).await);
    }
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}]
    });
    let (status, _) = app.patch(&format!("/Users/{}", ids[0]), &patch).await;
    assert_eq!(status, 200);
    let (status, _) = app.get(&format!("/Users/{}", ids[0])).await;
    assert_eq!(status, 200);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_all_in_one_metrics_cover_api_log_projector_and_store() {
    let fresh = match FreshServices::from_env("metrics", true, false) {
        Ok(fresh) => fresh,
        Err(reason) => return eprintln!("SKIPPED: {reason}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut options = fresh.options(dir.path(), LogKind::Kafka, StoreKind::Embedded);
    // A burst that the writes fit in and a slow refill, so a flood of reads is limited.
    options.api.limits.default_limits = TenantLimits { requests_per_second: 1, burst: 60, max_concurrent: 0 };
    // `serve --fanout-config`: fanout in the process, its metrics on the same /metrics.
    let accepting = accepting_receiver().await;
    let mut subscriptions = FanoutConfig::new(dir.path().join("fanout"));
    subscriptions.subscriptions = vec![webhook("crm", format!("http://{accepting}/events"), 0)];
    let group_id = format!("fanout-metrics-{}", fresh.run);
    options.fanout = Some(FanoutOptions { config: subscriptions, group_id });
    let app = spawn_app_with_options(options, dir).await;
    let users = 5;
    write_some(&app, users).await;
    let mut limited = 0;
    for _ in 0..100 {
        let (status, _) = app.get("/Users?count=1").await;
        limited += usize::from(status == 429);
    }
    assert!(limited > 0, "100 reads beyond the burst were all admitted");

    let commands_topic = fresh.kafka.as_ref().unwrap().topics().commands;
    let url = format!("{}/metrics", origin(&app.base_url));
    // Lag is read every few seconds; wait until the monitor has seen every write folded.
    let at_least_writes = (users + 1) as f64;
    let scraped = scrape_until(&url, "the lag monitor saw the writes", |scraped| {
        scraped.sum("scimflow_projector_log_end_offset", &[]) >= at_least_writes
            && scraped.sum("scimflow_projector_consumer_lag", &[]) == 0.0
            && scraped.sum("scimflow_fanout_delivered_total", &[("product", "crm")]) >= at_least_writes
    })
    .await;

    // API: requests by route, method, status and tenant class; latency; outcome wait; 429s.
    let standard = ("tenant_class", "standard");
    let created = scraped.sum(
        "scimflow_api_requests_total",
        &[("route", "/Users"), ("method", "POST"), ("status", "201"), standard],
    );
    assert!(created >= users as f64, "created {created}");
    assert!(
        scraped.sum(
            "scimflow_api_request_duration_seconds_count",
            &[("route", "/Users/{id}"), ("method", "PATCH"), ("status_class", "2xx"), standard],
        ) >= 1.0
    );
    assert!(scraped.sum("scimflow_api_request_duration_seconds_sum", &[("route", "/Users")]) > 0.0);
    let waited = scraped.sum("scimflow_api_outcome_wait_seconds_count", &[standard, ("result", "accepted")]);
    assert!(waited >= at_least_writes, "outcome waits {waited}");
    assert!(scraped.sum("scimflow_api_outcome_wait_seconds_sum", &[standard, ("result", "accepted")]) > 0.0);
    assert_eq!(
        scraped.sum("scimflow_api_rate_limited_total", &[standard, ("reason", "rate")]),
        limited as f64
    );
    assert_eq!(
        scraped.sum("scimflow_api_requests_total", &[("route", "/Users"), ("status", "429"), standard]),
        limited as f64
    );

    // Log: produce latency on the commands topic.
    let acked = [("topic", commands_topic.as_str()), ("result", "acked")];
    assert!(scraped.sum("scimflow_log_produce_duration_seconds_count", &acked) >= at_least_writes);
    assert!(scraped.sum("scimflow_log_produce_duration_seconds_sum", &acked) > 0.0);

    // Projector: fold rate per partition, batch sizes, transactions, lag per partition.
    let folded = scraped.sum("scimflow_projector_commands_folded_total", &[]);
    assert!(folded >= at_least_writes, "folded {folded}");
    assert!(scraped.sum("scimflow_projector_batch_size_count", &[]) >= 1.0);
    assert!(scraped.sum("scimflow_projector_batch_size_sum", &[]) >= at_least_writes);
    assert!(
        scraped.sum("scimflow_projector_transaction_duration_seconds_count", &[("result", "committed")])
            >= 1.0
    );
    for partition in ["0", "1", "2"] {
        assert_eq!(scraped.matching("scimflow_projector_consumer_lag", &[("partition", partition)]).len(), 1);
    }
    // The fair rounds' window: everything folded, so nothing waits and nobody is ahead.
    assert!(!scraped.matching("scimflow_projector_window_commands", &[]).is_empty());
    assert_eq!(scraped.sum("scimflow_projector_window_commands", &[]), 0.0);
    assert_eq!(scraped.sum("scimflow_projector_tenants_ahead", &[]), 0.0);
    assert_eq!(
        scraped.sum("scimflow_projector_committed_offset", &[]),
        scraped.sum("scimflow_projector_log_end_offset", &[]),
        "every command folded and published"
    );

    // Store: writer (projector) and reader (API) latency by operation.
    let commits = [("side", "writer"), ("operation", "commit"), ("result", "ok")];
    assert!(scraped.sum("scimflow_store_operation_duration_seconds_count", &commits) >= 1.0);
    assert!(scraped.sum("scimflow_store_operation_duration_seconds_sum", &commits) > 0.0);
    let reads = [("side", "reader"), ("operation", "resource"), ("result", "ok")];
    assert!(scraped.sum("scimflow_store_operation_duration_seconds_count", &reads) >= 1.0);

    // Fanout in the same process: deliveries and their lag on the same registry.
    let crm = [("product", "crm")];
    assert!(scraped.sum("scimflow_fanout_delivery_lag_seconds_count", &crm) >= at_least_writes);
    assert!(scraped.sum("scimflow_fanout_delivery_lag_seconds_sum", &crm) > 0.0);

    // The API's readiness includes the active Kafka check.
    let ready: Value =
        reqwest::get(format!("{}/readyz", origin(&app.base_url))).await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["kafka"], "ok", "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projector_process_serves_its_metrics_health_and_readiness() {
    let fresh = match FreshServices::from_env("metricsproj", true, false) {
        Ok(fresh) => fresh,
        Err(reason) => return eprintln!("SKIPPED: {reason}"),
    };
    // `scimflow projector`: no API, its own metrics server.
    let projector_dir = tempfile::tempdir().unwrap();
    let mut projector_options = fresh.options(projector_dir.path(), LogKind::Kafka, StoreKind::Embedded);
    projector_options.run_api = false;
    let projector = App::build(projector_options).await.expect("projector starts");
    let server = MetricsServer::start(
        "127.0.0.1:0",
        projector.metrics_registry().clone(),
        projector.readiness_checks(),
    )
    .expect("metrics server starts");
    let metrics_origin = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(projector.run_until_stopped());
    // `scimflow ingest-api`: writes, answered through the outcomes topic.
    let api_dir = tempfile::tempdir().unwrap();
    let mut api_options = fresh.options(api_dir.path(), LogKind::Kafka, StoreKind::Embedded);
    api_options.run_projector = false;
    let api = spawn_app_with_options(api_options, api_dir).await;
    for index in 0..3 {
        api.create_user(&format!("projected-{index}")).await;
    }
    // Two records that are not commands: skipped by the projector, and counted.
    let kafka = fresh.kafka.clone().unwrap();
    let producer: FutureProducer = kafka.client_config(&[]).create().unwrap();
    let commands_topic = kafka.topics().commands;
    for _ in 0..2 {
        let record = FutureRecord::to(&commands_topic).key("junk").payload("not a command");
        producer.send(record, Duration::from_secs(10)).await.expect("junk appended");
    }

    let health = reqwest::get(format!("{metrics_origin}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{metrics_origin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready, json!({"status": "ready", "checks": {"store": "ok", "log": "ok"}}));

    let url = format!("{metrics_origin}/metrics");
    let scraped =
        scrape_until(&url, "the projector folded the writes and the lag monitor saw it", |scraped| {
            scraped.sum("scimflow_projector_commands_folded_total", &[]) >= 4.0
                && scraped.sum("scimflow_projector_poison_records_total", &[]) == 2.0
                && scraped.sum("scimflow_projector_log_end_offset", &[]) >= 6.0
                && scraped.sum("scimflow_projector_consumer_lag", &[]) == 0.0
        })
        .await;
    assert!(
        scraped.sum("scimflow_store_operation_duration_seconds_count", &[("operation", "commit")]) >= 1.0
    );
    assert!(
        scraped.sum("scimflow_projector_transaction_duration_seconds_count", &[("result", "committed")])
            >= 1.0
    );
    assert_eq!(scraped.sum("scimflow_ready", &[("check", "log")]), 1.0);
    // No API runs here: its request metrics stay empty.
    assert!(scraped.matching("scimflow_api_requests_total", &[]).is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_broker_is_unreachable() {
    // Nothing listens on port 1: the log check of a projector or fanout pointed there.
    let unreachable = KafkaConfig::new("127.0.0.1:1");
    let check = kafka_check(&unreachable, &unreachable.topics().commands).unwrap();
    let server =
        MetricsServer::start("127.0.0.1:0", prometheus::Registry::new(), vec![("log".into(), check)])
            .unwrap();
    let origin = format!("http://127.0.0.1:{}", server.port());

    let health = reqwest::get(format!("{origin}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "alive even when not ready");
    let ready = reqwest::get(format!("{origin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    let reason = body["checks"]["log"].as_str().unwrap();
    assert!(reason.contains("kafka did not answer"), "the reason names the cause: {reason}");
    let scraped = scrape(&format!("{origin}/metrics")).await;
    assert_eq!(scraped.sum("scimflow_ready", &[("check", "log")]), 0.0);
    assert_eq!(scraped.matching("scimflow_ready", &[("check", "log")]).len(), 1);
    server.stop().await;
}

/// A webhook receiver that accepts every event.
async fn accepting_receiver() -> std::net::SocketAddr {
    use actix_web::{App as WebApp, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| WebApp::new().default_service(web::to(HttpResponse::Accepted)))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
    tokio::spawn(server);
    addr
}

fn webhook(product: &str, url: String, max_attempts: u32) -> Subscription {
    let mut config = WebhookConfig::new(url, "metrics test secret");
    config.max_attempts = max_attempts;
    config.initial_backoff_ms = 10;
    config.max_backoff_ms = 20;
    config.timeout_ms = 2_000;
    Subscription {
        product: product.into(),
        tenants: TenantSelection::All,
        resource_types: vec![],
        attributes: None,
        delivery: Delivery::Webhook(config),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fanout_serves_delivery_lag_retries_and_dead_letters() {
    let fresh = match FreshServices::from_env("metricsfan", true, false) {
        Ok(fresh) => fresh,
        Err(reason) => return eprintln!("SKIPPED: {reason}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let options = fresh.options(dir.path(), LogKind::Kafka, StoreKind::Embedded);
    let app = spawn_app_with_options(options, dir).await;
    let users = 3;
    for index in 0..users {
        app.create_user(&format!("fanned-{index}")).await;
    }

    let accepting = accepting_receiver().await;
    // A port nothing listens on: every delivery fails, is retried, then dead-lettered.
    let refusing = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let fanout_dir = tempfile::tempdir().unwrap();
    let mut config = FanoutConfig::new(fanout_dir.path());
    config.subscriptions = vec![
        webhook("crm", format!("http://{accepting}/events"), 0),
        webhook("audit", format!("http://{refusing}/events"), 2),
    ];
    let kafka = fresh.kafka.clone().unwrap();
    // Not the projector's group (`scimflow-metricsfan-<run>`): a group has one protocol.
    let group = format!("fanout-metricsfan-{}", fresh.run);
    let process = fanout_cmd::start(config, &kafka, &group, "127.0.0.1:0").await.expect("fanout starts");
    let origin = format!("http://127.0.0.1:{}", process.metrics.port());

    // The readiness probe's create + delete, then the users: every change reaches both products.
    let changes = (users + 2) as f64;
    let scraped =
        scrape_until(&format!("{origin}/metrics"), "every change delivered or dead-lettered", |scraped| {
            scraped.sum("scimflow_fanout_delivered_total", &[("product", "crm")]) >= changes
                && scraped.sum("scimflow_fanout_dead_letters_total", &[("product", "audit")]) >= changes
        })
        .await;
    assert!(scraped.sum("scimflow_fanout_records_read_total", &[]) >= changes);
    let crm = [("product", "crm")];
    assert_eq!(
        scraped.sum("scimflow_fanout_delivery_lag_seconds_count", &crm),
        scraped.sum("scimflow_fanout_delivered_total", &crm)
    );
    let lag = scraped.sum("scimflow_fanout_delivery_lag_seconds_sum", &crm);
    assert!(lag > 0.0 && lag < 600.0 * changes, "lag sum {lag} s");
    assert_eq!(scraped.sum("scimflow_fanout_retries_total", &crm), 0.0);
    // Two attempts per dead letter, both failed.
    let audit = [("product", "audit")];
    assert!(scraped.sum("scimflow_fanout_retries_total", &audit) >= 2.0 * changes);
    assert_eq!(scraped.sum("scimflow_fanout_delivered_total", &audit), 0.0);

    let ready = reqwest::get(format!("{origin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let (stop, stopped) = tokio::sync::watch::channel(true);
    process.fanout.run_until(stopped).await.expect("fanout stops cleanly");
    drop(stop);
    process.metrics.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_pipeline_reports_its_fold_and_store_metrics() {
    let app = scimflow_tests::spawn_app().await;
    let users = 3;
    write_some(&app, users).await;
    let url = format!("{}/metrics", origin(&app.base_url));
    let writes = (users + 1) as f64;
    let scraped = scrape_until(&url, "the embedded projector folded every write", |scraped| {
        scraped.sum("scimflow_projector_commands_folded_total", &[("partition", "0")]) >= writes
            && scraped.sum("scimflow_projector_consumer_lag", &[("partition", "0")]) == 0.0
    })
    .await;
    assert!(scraped.sum("scimflow_projector_log_end_offset", &[("partition", "0")]) >= writes);
    assert!(scraped.sum("scimflow_projector_batch_size_count", &[]) >= 1.0);
    assert_eq!(scraped.matching("scimflow_projector_window_commands", &[("partition", "0")]).len(), 1);
    assert_eq!(scraped.matching("scimflow_projector_tenants_ahead", &[("partition", "0")]).len(), 1);
    let commits = [("side", "writer"), ("operation", "commit"), ("result", "ok")];
    assert!(scraped.sum("scimflow_store_operation_duration_seconds_count", &commits) >= 1.0);
    let reads = [("side", "reader"), ("operation", "resource"), ("result", "ok")];
    assert!(scraped.sum("scimflow_store_operation_duration_seconds_count", &reads) >= 1.0);
    assert!(scraped.sum("scimflow_api_outcome_wait_seconds_count", &[("result", "accepted")]) >= writes);
    // No Kafka here: no produce latency and no transactions.
    assert!(scraped.matching("scimflow_log_produce_duration_seconds_count", &[]).is_empty());
    assert!(scraped.matching("scimflow_projector_transaction_duration_seconds_count", &[]).is_empty());
}
