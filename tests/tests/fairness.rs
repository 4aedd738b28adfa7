//! One tenant's backlog does not hold back another tenant of the same log partition: the
//! projector folds a share of each waiting tenant per round, so a quiet tenant's write is
//! answered while a busy tenant's backlog (appended straight to the log, as a bulk import
//! through many API nodes would) is still being folded; and the backlog is then folded
//! completely, in order. On the embedded log and on Kafka with a single command partition (the
//! Kafka test needs `SCIMFLOW_KAFKA_BROKERS`, else it prints SKIPPED and passes).

use futures_util::future::join_all;
use scimflow::pipeline::{App, LogKind, StoreKind};
use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::resource::normalize_resource;
use scimflow_core::{ResourceKind, SchemaRegistry};
use scimflow_log::CommandLog;
use scimflow_log::kafka::KafkaLog;
use scimflow_tests::{FreshServices, TestApp};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Commands of the busy tenant appended before the quiet tenant writes. Folding them takes
/// seconds on either log, the quiet tenant's write milliseconds.
const BACKLOG: usize = 40_000;

fn create_user(registry: &SchemaRegistry, tenant_id: &str, index: usize) -> Command {
    let body = json!({"userName": format!("bulk-{index:06}")});
    Command {
        event_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant_id.to_owned(),
        kind: ResourceKind::User,
        resource_id: format!("bulk-{index:06}"),
        issued_at_ms: chrono::Utc::now().timestamp_millis(),
        if_match: None,
        action: Action::Create(normalize_resource(registry, ResourceKind::User, &body).unwrap()),
        metadata: CommandMetadata::default(),
    }
}

/// The busy tenant's users folded so far.
async fn folded_users(app: &TestApp) -> u64 {
    let (status, body) = app.get("/Users?count=0").await;
    assert_eq!(status, 200, "{body}");
    body["totalResults"].as_u64().expect("totalResults")
}

async fn a_backlog_of_one_tenant_does_not_delay_another(log: LogKind, fresh: Option<FreshServices>) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let options = match &fresh {
        Some(fresh) => fresh.options(data_dir.path(), log, StoreKind::Embedded),
        None => scimflow::pipeline::PipelineOptions::embedded(
            data_dir.path().to_owned(),
            "127.0.0.1:0",
            Default::default(),
        ),
    };
    let app = App::build(options).await.expect("pipeline starts");
    let now = chrono::Utc::now().timestamp_millis();
    let (busy, busy_token) = app.tenants.create("busy", now).expect("tenant");
    let (_, quiet_token) = app.tenants.create("quiet", now).expect("tenant");
    let command_log: Arc<dyn CommandLog> = match &fresh {
        Some(fresh) => Arc::new(KafkaLog::new(fresh.kafka.as_ref().expect("kafka")).expect("producer")),
        None => Arc::new(app.embedded_log.clone().expect("embedded log")),
    };
    let base_url = app.base_url.clone().expect("API runs");
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let busy_app = TestApp { base_url, token: busy_token, other_token: quiet_token, client, data_dir };
    busy_app.wait_until_ready().await;

    let registry = SchemaRegistry::standard();
    let appending = Instant::now();
    for chunk in (0..BACKLOG).collect::<Vec<_>>().chunks(4096) {
        let appends = chunk.iter().map(|index| {
            command_log.append(&busy.id, create_user(&registry, &busy.id, *index).encode(), Vec::new())
        });
        for appended in join_all(appends).await {
            appended.expect("append");
        }
    }
    let appended_in = appending.elapsed();
    let folded_before = folded_users(&busy_app).await;

    // The quiet tenant writes now, behind the backlog in the log.
    let started = Instant::now();
    let (status, body) = busy_app
        .send(
            reqwest::Method::POST,
            "/Users",
            &busy_app.other_token,
            Some(
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "quiet-one"}),
            ),
        )
        .await;
    let answered_in = started.elapsed();
    let folded_when_answered = folded_users(&busy_app).await;
    assert_eq!(
        status, 201,
        "{body} after {answered_in:?}; {folded_before} folded before, {folded_when_answered} after"
    );
    eprintln!(
        "{log:?}: {BACKLOG} commands appended in {appended_in:?}; {folded_before} folded before the quiet \
         tenant's write, answered in {answered_in:?}, {folded_when_answered} folded then"
    );
    // The projector reads up to 64 rounds of 2,048 ahead, so the quiet tenant's command is in
    // its window at once and folded in one of the next (small, shared) rounds. Folding in log
    // order would answer it only after all 40,000.
    assert!(
        folded_when_answered <= (BACKLOG * 3 / 4) as u64,
        "the quiet tenant's write waited for most of the backlog \
         ({folded_when_answered} of {BACKLOG}, answered in {answered_in:?})"
    );

    // The backlog is then folded completely and exactly once.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let folded = folded_users(&busy_app).await;
        if folded == BACKLOG as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "only {folded} of {BACKLOG} folded after 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = busy_app.get(&format!("/Users/bulk-{:06}", BACKLOG - 1)).await;
    assert_eq!(status, 200);
    let (status, page) = busy_app
        .send(reqwest::Method::GET, "/Users?filter=userName eq \"quiet-one\"", &busy_app.other_token, None)
        .await;
    assert_eq!((status, page["totalResults"].as_u64()), (200, Some(1)), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_log_a_backlog_of_one_tenant_does_not_delay_another() {
    a_backlog_of_one_tenant_does_not_delay_another(LogKind::Embedded, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_a_backlog_of_one_tenant_does_not_delay_another_of_its_partition() {
    let mut fresh = match FreshServices::from_env("fairness", true, false) {
        Ok(fresh) => fresh,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    // One command partition: both tenants share it whatever their ids hash to.
    if let (Some(kafka), Some(projector)) = (fresh.kafka.as_mut(), fresh.projector.as_mut()) {
        kafka.command_partitions = 1;
        projector.kafka = kafka.clone();
    }
    a_backlog_of_one_tenant_does_not_delay_another(LogKind::Kafka, Some(fresh)).await;
}
