//! Wiring any topology from the same parts: which log (embedded or Kafka), which store
//! (embedded or CQL), and which roles run in this process (API, projector, or both).
//!
//! | command | log | store | roles |
//! |---|---|---|---|
//! | `scimflow serve` | embedded | embedded | API + projector |
//! | `scimflow serve --log kafka [--store cql]` | Kafka | any | API + projector |
//! | `scimflow ingest-api --store cql` | Kafka | any | API (outcomes from the outcomes topic) |
//! | `scimflow projector --store cql` | Kafka | any | projector |
//!
//! Tenants live in `DATA_DIR/tenants.redb` in every topology.

use crate::config::tenant_limits::resolve_tenant_names;
use crate::embedded::open_tenants;
use anyhow::Context;
use scimflow_core::SchemaRegistry;
use scimflow_ingest_api::startup::build_server_with_tls;
use scimflow_ingest_api::state::AuditAccess;
use scimflow_ingest_api::tls::{TlsFiles, server_config};
use scimflow_ingest_api::{ApiConfig, ApiState};
use scimflow_log::embedded::EmbeddedLog;
use scimflow_log::kafka::{KafkaConfig, KafkaLog, KafkaLogReader, OutcomeListener, ensure_topics};
use scimflow_log::{CommandLog, LogReader, OutcomeHub, WritePath};
use scimflow_projector::kafka::{KafkaProjectorConfig, run as run_kafka_projector};
use scimflow_store::StoreReader;
use scimflow_store::cql::{CqlConfig, CqlStore};
use scimflow_store::embedded::EmbeddedStore;
use scimflow_store::tenants::TenantDirectory;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a write waits for its outcome before answering 503 (it stays durable and is folded).
pub const OUTCOME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// The embedded redb log in the data directory (one process).
    Embedded,
    /// Apache Kafka (`SCIMFLOW_KAFKA_BROKERS`).
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded redb store in the data directory (one process).
    Embedded,
    /// ScyllaDB / Cassandra (`SCIMFLOW_CQL_NODES`, `SCIMFLOW_CQL_KEYSPACE`, ...).
    Cql,
}

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub data_dir: PathBuf,
    pub listen: String,
    pub log: LogKind,
    pub store: StoreKind,
    pub run_api: bool,
    pub run_projector: bool,
    pub api: ApiConfig,
    /// Explicit Kafka settings; `None` reads `SCIMFLOW_KAFKA_*` from the environment.
    pub kafka: Option<KafkaConfig>,
    /// Explicit projector settings (consumer group, instance); `None` reads the environment.
    pub projector: Option<KafkaProjectorConfig>,
    /// Explicit CQL settings; `None` reads `SCIMFLOW_CQL_*` from the environment.
    pub cql: Option<CqlConfig>,
    /// Serve the API over HTTPS with this certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

impl PipelineOptions {
    /// The all-in-one embedded pipeline.
    pub fn embedded(data_dir: PathBuf, listen: &str, api: ApiConfig) -> Self {
        PipelineOptions {
            data_dir,
            listen: listen.to_owned(),
            log: LogKind::Embedded,
            store: StoreKind::Embedded,
            run_api: true,
            run_projector: true,
            api,
            kafka: None,
            projector: None,
            cql: None,
            tls: None,
        }
    }
}

/// The store behind both ports, whichever adapter it is.
#[derive(Clone)]
pub enum AnyStore {
    Embedded(EmbeddedStore),
    Cql(CqlStore),
}

impl AnyStore {
    async fn open(options: &PipelineOptions) -> anyhow::Result<AnyStore> {
        Ok(match options.store {
            StoreKind::Embedded => {
                AnyStore::Embedded(EmbeddedStore::open(&options.data_dir.join("store.redb"))?)
            }
            StoreKind::Cql => {
                let config = match &options.cql {
                    Some(config) => config.clone(),
                    None => CqlConfig::from_env()?.context(
                        "--store cql needs SCIMFLOW_CQL_NODES (e.g. 127.0.0.1:9042); deploy/local/services.sh up cassandra starts one",
                    )?,
                };
                AnyStore::Cql(CqlStore::connect(config).await?)
            }
        })
    }

    fn reader(&self) -> Arc<dyn StoreReader> {
        match self {
            AnyStore::Embedded(store) => Arc::new(store.clone()),
            AnyStore::Cql(store) => Arc::new(store.clone()),
        }
    }
}

/// A running pipeline: the API server (if this process serves it) and the projector task.
pub struct App {
    server: Option<actix_web::dev::Server>,
    port: Option<u16>,
    pub base_url: Option<String>,
    pub tenants: TenantDirectory,
    pub store: AnyStore,
    /// The embedded log, when this pipeline runs on it (benchmarks seed through it).
    pub embedded_log: Option<EmbeddedLog>,
    projector: Option<JoinHandle<anyhow::Result<()>>>,
    stop_projector: watch::Sender<bool>,
    outcome_listener: Option<OutcomeListener>,
}

impl App {
    pub async fn build(options: PipelineOptions) -> anyhow::Result<App> {
        let tenants = open_tenants(&options.data_dir)?;
        let registry = Arc::new(SchemaRegistry::standard());
        let hub = Arc::new(OutcomeHub::new());
        let store = AnyStore::open(&options).await?;
        let (stop_projector, stop_signal) = watch::channel(false);
        let mut embedded_log = None;
        let mut outcome_listener = None;
        let log: Arc<dyn CommandLog>;
        // What the API's history endpoints read the commands from.
        let history_log: Arc<dyn LogReader>;
        let mut projector = None;
        match options.log {
            LogKind::Embedded => {
                anyhow::ensure!(
                    options.run_api && options.run_projector,
                    "the embedded log runs the API and the projector in one process; use --log kafka to split them"
                );
                let embedded = EmbeddedLog::open(&options.data_dir.join("log.redb"))?;
                log = Arc::new(embedded.clone());
                history_log = Arc::new(embedded.clone());
                projector = Some(spawn_embedded_projector(&registry, &store, &embedded, &hub, stop_signal));
                embedded_log = Some(embedded);
            }
            LogKind::Kafka => {
                let kafka = match &options.kafka {
                    Some(kafka) => kafka.clone(),
                    None => KafkaConfig::from_env().context(
                        "--log kafka needs SCIMFLOW_KAFKA_BROKERS (e.g. 127.0.0.1:9092); deploy/local/services.sh up kafka starts one",
                    )?,
                };
                ensure_topics(&kafka).await?;
                log = Arc::new(KafkaLog::new(&kafka)?);
                history_log = Arc::new(KafkaLogReader::new(&kafka)?);
                if options.run_projector {
                    let config = match &options.projector {
                        Some(config) => config.clone(),
                        None => KafkaProjectorConfig::from_env(kafka.clone())?,
                    };
                    // All-in-one: the projector hands outcomes straight to this process's hub.
                    let local_hub = options.run_api.then(|| hub.clone());
                    projector =
                        Some(spawn_kafka_projector(&registry, &store, config, local_hub, stop_signal));
                }
                if options.run_api && !options.run_projector {
                    outcome_listener = Some(OutcomeListener::start(&kafka, hub.clone()).await?);
                }
            }
        }
        let (mut server, mut port, mut base_url) = (None, None, None);
        if options.run_api {
            // Before binding: a bad certificate or key stops the start with the file's name.
            let tls = options.tls.as_ref().map(server_config).transpose()?;
            let listener = TcpListener::bind(&options.listen)
                .with_context(|| format!("cannot listen on {}", options.listen))?;
            let bound = listener.local_addr()?.port();
            let host = options.listen.rsplit_once(':').map(|(host, _)| host).unwrap_or("127.0.0.1");
            let scheme = if tls.is_some() { "https" } else { "http" };
            base_url = Some(format!("{scheme}://{host}:{bound}{}", options.api.base_path));
            let mut config = options.api.clone();
            resolve_tenant_names(&tenants, &mut config.limits)?;
            let state = ApiState {
                registry: registry.clone(),
                write: WritePath::new(log, hub, OUTCOME_TIMEOUT),
                reader: store.reader(),
                auth: Arc::new(tenants.clone()),
                config,
                audit: Some(AuditAccess { log: history_log, admins: Arc::new(tenants.admins()?) }),
            };
            server = Some(build_server_with_tls(listener, state, tls)?);
            port = Some(bound);
        }
        Ok(App {
            server,
            port,
            base_url,
            tenants,
            store,
            embedded_log,
            projector,
            stop_projector,
            outcome_listener,
        })
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Runs until the server stops (Ctrl-C / SIGTERM: actix drains in-flight requests) or, for a
    /// projector-only process, until Ctrl-C or SIGTERM; then lets the projector finish what it started and
    /// checkpoints an embedded store.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(server) => server.await?,
            None => {
                let projector = self.projector.as_mut().context("nothing to run")?;
                tokio::select! {
                    finished = projector => return finished?,
                    () = crate::shutdown::requested() => {}
                }
            }
        }
        let _ = self.stop_projector.send(true);
        if let Some(projector) = self.projector.take() {
            projector.await??;
        }
        if let Some(listener) = self.outcome_listener.take() {
            listener.stop();
        }
        if let AnyStore::Embedded(store) = &self.store {
            store.checkpoint()?;
        }
        Ok(())
    }
}

fn spawn_embedded_projector(
    registry: &Arc<SchemaRegistry>,
    store: &AnyStore,
    log: &EmbeddedLog,
    hub: &Arc<OutcomeHub>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    let (registry, log, hub) = (registry.clone(), log.clone(), hub.clone());
    match store.clone() {
        AnyStore::Embedded(store) => tokio::spawn(async move {
            scimflow_projector::embedded::run(registry, Arc::new(store), log, hub, stop).await;
            Ok(())
        }),
        AnyStore::Cql(store) => tokio::spawn(async move {
            scimflow_projector::embedded::run(registry, Arc::new(store), log, hub, stop).await;
            Ok(())
        }),
    }
}

fn spawn_kafka_projector(
    registry: &Arc<SchemaRegistry>,
    store: &AnyStore,
    config: KafkaProjectorConfig,
    hub: Option<Arc<OutcomeHub>>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    let registry = registry.clone();
    match store.clone() {
        AnyStore::Embedded(store) => tokio::spawn(async move {
            Ok(run_kafka_projector(registry, Arc::new(store), config, hub, stop).await?)
        }),
        AnyStore::Cql(store) => tokio::spawn(async move {
            Ok(run_kafka_projector(registry, Arc::new(store), config, hub, stop).await?)
        }),
    }
}
