//! End-to-end test helpers: [`spawn_app`] starts the real embedded pipeline (log, projector,
//! store, API) on a free port in a fresh data directory, with two tenants and their tokens;
//! [`spawn_app_on`] starts the same on real Kafka (and CQL) with fresh topics, consumer group and
//! keyspace, so one suite of assertions runs on every topology ([`topology_tests!`]).

use scimflow::embedded::EmbeddedApp;
use scimflow::pipeline::{App, FanoutOptions, LogKind, PipelineOptions, StoreKind};
use scimflow_fanout::config::{FanoutConfig, Subscription};
use scimflow_ingest_api::ApiConfig;
use scimflow_log::kafka::KafkaConfig;
use scimflow_projector::RoundLimits;
use scimflow_projector::embedded::MAX_BATCH;
use scimflow_projector::kafka::KafkaProjectorConfig;
use scimflow_store::cql::CqlConfig;
use serde_json::Value;

/// Where an end-to-end test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// `scimflow serve`: embedded log and store.
    Embedded,
    /// `scimflow serve --log kafka`: real Kafka, embedded store.
    Kafka,
    /// `scimflow serve --log kafka --store cql`: real Kafka and Cassandra.
    KafkaCql,
}

/// Starts the pipeline on `topology`, or returns `None` (after saying why) when the services it
/// needs are not configured: `SCIMFLOW_KAFKA_BROKERS`, `SCIMFLOW_CQL_NODES` (set by
/// `deploy/local/services.sh up`, and always in CI).
pub async fn spawn_app_on(topology: Topology) -> Option<TestApp> {
    if topology == Topology::Embedded {
        return Some(spawn_app().await);
    }
    let Ok(brokers) = std::env::var("SCIMFLOW_KAFKA_BROKERS") else {
        eprintln!("SKIPPED: {topology:?} needs SCIMFLOW_KAFKA_BROKERS (deploy/local/services.sh up)");
        return None;
    };
    let cql_nodes = std::env::var("SCIMFLOW_CQL_NODES").ok();
    if topology == Topology::KafkaCql && cql_nodes.is_none() {
        eprintln!("SKIPPED: {topology:?} needs SCIMFLOW_CQL_NODES (deploy/local/services.sh up)");
        return None;
    }
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut kafka = KafkaConfig::new(brokers);
    kafka.topic_prefix = format!("scimflow.e2e.{run}.");
    kafka.command_partitions = 3;
    let mut projector = KafkaProjectorConfig::new(kafka.clone());
    projector.group_id = format!("scimflow-e2e-{run}");
    let cql = cql_nodes.map(|nodes| {
        let mut config = CqlConfig::new(nodes.split(',').map(str::to_owned).collect());
        config.keyspace = format!("scimflow_e2e_{}", &run[..16]);
        config
    });
    let data_dir = tempfile::tempdir().expect("temp dir");
    let options = PipelineOptions {
        data_dir: data_dir.path().to_owned(),
        listen: "127.0.0.1:0".into(),
        log: LogKind::Kafka,
        store: if topology == Topology::KafkaCql { StoreKind::Cql } else { StoreKind::Embedded },
        run_api: true,
        run_projector: true,
        api: ApiConfig::default(),
        kafka: Some(kafka),
        projector: Some(projector),
        cql,
        tls: None,
        fanout: None,
        rounds: RoundLimits::for_round(MAX_BATCH),
    };
    let app = App::build(options).await.expect("pipeline starts on real services");
    let now = chrono::Utc::now().timestamp_millis();
    let (_, token) = app.tenants.create("acme", now).expect("tenant");
    let (_, other_token) = app.tenants.create("globex", now).expect("tenant");
    let base_url = app.base_url.clone().expect("API runs");
    tokio::spawn(app.run_until_stopped());
    let test_app = TestApp { base_url, token, other_token, client: reqwest::Client::new(), data_dir };
    test_app.wait_until_ready().await;
    Some(test_app)
}

/// Generates one `#[tokio::test]` per topology for each `async fn name(app: TestApp)`.
#[macro_export]
macro_rules! topology_tests {
    ($($name:ident),* $(,)?) => {
        mod on_embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::spawn_app_on($crate::Topology::Embedded).await.unwrap()).await } )*
        }
        mod on_kafka {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { if let Some(app) = $crate::spawn_app_on($crate::Topology::Kafka).await { super::$name(app).await } } )*
        }
        mod on_kafka_and_cql {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { if let Some(app) = $crate::spawn_app_on($crate::Topology::KafkaCql).await { super::$name(app).await } } )*
        }
    };
}

pub struct TestApp {
    pub base_url: String,
    /// Bearer token of tenant "acme".
    pub token: String,
    /// Bearer token of tenant "globex", to check isolation.
    pub other_token: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(ApiConfig::default()).await
}

pub async fn spawn_app_with(config: ApiConfig) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let app = EmbeddedApp::build(data_dir.path(), "127.0.0.1:0", config).await.expect("app builds");
    let now = chrono::Utc::now().timestamp_millis();
    let (_, token) = app.tenants.create("acme", now).expect("tenant");
    let (_, other_token) = app.tenants.create("globex", now).expect("tenant");
    let base_url = app.base_url.clone();
    tokio::spawn(app.run_until_stopped());
    TestApp { base_url, token, other_token, client: reqwest::Client::new(), data_dir }
}

impl TestApp {
    /// Waits until a write round-trips (a Kafka projector first has to join its group).
    pub async fn wait_until_ready(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let probe = serde_json::json!({"userName": "readiness-probe"});
        loop {
            let (status, _) = self.post("/Users", &probe).await;
            if status == 201 || status == 409 {
                let filter = "/Users?filter=userName%20eq%20%22readiness-probe%22";
                let (_, list) = self.get(filter).await;
                if let Some(id) = list["Resources"][0]["id"].as_str() {
                    let (deleted, _) = self.delete(&format!("/Users/{id}")).await;
                    assert_eq!(deleted, 204);
                }
                return;
            }
            assert!(std::time::Instant::now() < deadline, "pipeline not ready: last status {status}");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.header("Content-Type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, &self.token, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, &self.token, None).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, &self.token, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, &self.token, None).await
    }

    /// Creates a user and returns its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name});
        let (status, created) = self.post("/Users", &body).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().expect("id").to_owned()
    }

    pub async fn create_group(&self, display_name: &str) -> String {
        let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": display_name});
        let (status, created) = self.post("/Groups", &body).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().expect("id").to_owned()
    }
}

// ---- Pipelines with explicit settings, for the fault tests and `scimflow-bench` ----------------

/// Fresh per-run settings on the real services, as [`spawn_app_on`] makes them: topics
/// `scimflow.<label>.<run>.{commands,outcomes,changes}` with 3 command partitions, consumer
/// group `scimflow-<label>-<run>`, keyspace `scimflow_<label>_<run[..16]>`.
#[derive(Debug, Clone)]
pub struct FreshServices {
    pub run: String,
    pub kafka: Option<KafkaConfig>,
    pub projector: Option<KafkaProjectorConfig>,
    pub cql: Option<CqlConfig>,
}

impl FreshServices {
    /// Reads `SCIMFLOW_KAFKA_BROKERS` (when `kafka`) and `SCIMFLOW_CQL_NODES` (when `cql`); the
    /// error names the missing variable. `label` must be lowercase letters, digits or `_`.
    pub fn from_env(label: &str, kafka: bool, cql: bool) -> Result<FreshServices, String> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let mut fresh = FreshServices { run: run.clone(), kafka: None, projector: None, cql: None };
        if kafka {
            let brokers = std::env::var("SCIMFLOW_KAFKA_BROKERS")
                .map_err(|_| "needs SCIMFLOW_KAFKA_BROKERS (deploy/local/services.sh up)".to_owned())?;
            let mut config = KafkaConfig::new(brokers);
            config.topic_prefix = format!("scimflow.{label}.{run}.");
            config.command_partitions = 3;
            let mut projector = KafkaProjectorConfig::new(config.clone());
            projector.group_id = format!("scimflow-{label}-{run}");
            fresh.kafka = Some(config);
            fresh.projector = Some(projector);
        }
        if cql {
            let nodes = std::env::var("SCIMFLOW_CQL_NODES")
                .map_err(|_| "needs SCIMFLOW_CQL_NODES (deploy/local/services.sh up)".to_owned())?;
            let mut config = CqlConfig::new(nodes.split(',').map(str::to_owned).collect());
            config.keyspace = format!("scimflow_{label}_{}", &run[..16]);
            fresh.cql = Some(config);
        }
        Ok(fresh)
    }

    /// Pipeline options (API and projector in this process) on these settings.
    pub fn options(&self, data_dir: &std::path::Path, log: LogKind, store: StoreKind) -> PipelineOptions {
        PipelineOptions {
            data_dir: data_dir.to_owned(),
            listen: "127.0.0.1:0".into(),
            log,
            store,
            run_api: true,
            run_projector: true,
            api: ApiConfig::default(),
            kafka: self.kafka.clone(),
            projector: self.projector.clone(),
            cql: self.cql.clone(),
            tls: None,
            fanout: None,
            rounds: RoundLimits::for_round(MAX_BATCH),
        }
    }
}

impl FreshServices {
    /// In-process fanout (`serve --fanout-config`) for this run: its database under `data_dir`,
    /// its own consumer group (`<projector group>-fanout`), topics with 3 partitions.
    pub fn fanout(&self, data_dir: &std::path::Path, subscriptions: Vec<Subscription>) -> FanoutOptions {
        let mut config = FanoutConfig::new(data_dir.join("fanout"));
        config.topic_partitions = 3;
        config.subscriptions = subscriptions;
        let group_id = match &self.projector {
            Some(projector) => format!("{}-fanout", projector.group_id),
            None => format!("scimflow-fanout-{}", self.run),
        };
        FanoutOptions { config, group_id }
    }

    /// Deletes the run's topics: commands, outcomes, changes and `<prefix><suffix>` for each of
    /// `suffixes` (e.g. `product.billing`). Best effort: a failure is printed, not raised.
    pub async fn delete_topics(&self, suffixes: &[&str]) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        let Some(kafka) = &self.kafka else { return };
        let Ok(admin) =
            kafka.client_config(&[]).create::<AdminClient<rdkafka::client::DefaultClientContext>>()
        else {
            return;
        };
        let topics = kafka.topics();
        let mut names = vec![topics.commands, topics.outcomes, topics.changes];
        names.extend(suffixes.iter().map(|suffix| format!("{}{suffix}", kafka.topic_prefix)));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        if let Err(error) = admin.delete_topics(&names, &AdminOptions::new()).await {
            eprintln!("could not delete the run's topics: {error}");
        }
    }
}

/// Builds and serves `options` (tenants "acme" and "globex" are created first) and waits until a
/// write round-trips. `data_dir` must be the directory `options.data_dir` points into.
pub async fn spawn_app_with_options(options: PipelineOptions, data_dir: tempfile::TempDir) -> TestApp {
    let app = App::build(options).await.expect("pipeline starts");
    let now = chrono::Utc::now().timestamp_millis();
    let (_, token) = app.tenants.create("acme", now).expect("tenant");
    let (_, other_token) = app.tenants.create("globex", now).expect("tenant");
    let base_url = app.base_url.clone().expect("API runs");
    tokio::spawn(app.run_until_stopped());
    let test_app = TestApp { base_url, token, other_token, client: reqwest::Client::new(), data_dir };
    test_app.wait_until_ready().await;
    test_app
}
