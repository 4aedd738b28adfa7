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
//! `serve --fanout-config FILE` also runs fanout in the process: from the changes topic on
//! Kafka, from the store's change feed on the embedded log (docs/consumers.md).
//!
//! Tenants live in `DATA_DIR/tenants.redb` in every topology.
//!
//! ## Metrics and readiness
//! Every component reports into one Prometheus registry, the API's
//! (`options.api.runtime.metrics().registry()`), also when the process runs no API: the log's
//! produce latency (Kafka), the store's call latency ([`MeteredStore`] around either adapter),
//! the projector's fold and lag metrics (either log), and fanout's when `serve` runs it. An API process serves it on its own `/metrics`; a
//! projector-only process serves [`App::metrics_registry`] and [`App::readiness_checks`] with a
//! [`MetricsServer`](crate::metrics_server::MetricsServer) (`scimflow projector --metrics-listen`).

use crate::config::tenant_limits::resolve_tenant_names;
use crate::embedded::open_tenants;
use crate::metrics_server::{kafka_check, probe};
use anyhow::Context;
use prometheus::Registry;
use scimflow_core::SchemaRegistry;
use scimflow_fanout::Fanout;
use scimflow_fanout::config::FanoutConfig;
use scimflow_fanout::db::FanoutDb;
use scimflow_fanout::source::{KafkaChangeSource, StoreFeedSource};
use scimflow_ingest_api::runtime::{ApiRuntime, ReadinessProbe};
use scimflow_ingest_api::startup::build_server_with_tls;
use scimflow_ingest_api::state::AuditAccess;
use scimflow_ingest_api::tls::{TlsFiles, server_config};
use scimflow_ingest_api::{ApiConfig, ApiState};
use scimflow_log::embedded::{EMBEDDED_PARTITION, EmbeddedLog};
use scimflow_log::kafka::{
    KafkaConfig, KafkaLog, KafkaLogReader, LogMetrics, OutcomeListener, ensure_topics,
};
use scimflow_log::{CommandLog, LogReader, OutcomeHub, WritePath};
use scimflow_projector::RoundLimits;
use scimflow_projector::embedded::MAX_BATCH;
use scimflow_projector::kafka::lag::LagMonitor;
use scimflow_projector::kafka::{KafkaProjectorConfig, run as run_kafka_projector};
use scimflow_projector::metrics::ProjectorMetrics;
use scimflow_store::cql::{CqlConfig, CqlStore};
use scimflow_store::embedded::EmbeddedStore;
use scimflow_store::metered::{MeteredStore, StoreMetrics};
use scimflow_store::tenants::TenantDirectory;
use scimflow_store::{StoreReader, StoreWriter};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a write waits for its outcome before answering 503 (it stays durable and is folded).
pub const OUTCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a Kafka projector process reads its group's lag (one metadata request, one offset
/// fetch and one watermark request per partition).
pub const LAG_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

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
    /// Also run fanout in this process (`serve --fanout-config`).
    pub fanout: Option<FanoutOptions>,
    /// The embedded projector's rounds (the Kafka projector's come from `projector`).
    pub rounds: RoundLimits,
}

#[derive(Debug, Clone)]
pub struct FanoutOptions {
    pub config: FanoutConfig,
    /// Consumer group on the changes topic (Kafka log only).
    pub group_id: String,
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
            fanout: None,
            rounds: RoundLimits::for_round(MAX_BATCH),
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

    fn reader(&self, metrics: &StoreMetrics) -> Arc<dyn StoreReader> {
        match self {
            AnyStore::Embedded(store) => Arc::new(MeteredStore::new(store.clone(), metrics.clone())),
            AnyStore::Cql(store) => Arc::new(MeteredStore::new(store.clone(), metrics.clone())),
        }
    }

    /// The writer side, for readiness: `Ok` when the store answers a position read.
    async fn check_writer(&self) -> Result<(), String> {
        let store = self.clone();
        let read = tokio::task::spawn_blocking(move || match &store {
            AnyStore::Embedded(store) => store.next_offset(0),
            AnyStore::Cql(store) => store.next_offset(0),
        });
        match read.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(join) => Err(format!("the store check failed: {join}")),
        }
    }

    fn writer(&self) -> Arc<dyn StoreWriter> {
        match self {
            AnyStore::Embedded(store) => Arc::new(store.clone()),
            AnyStore::Cql(store) => Arc::new(store.clone()),
        }
    }
}

/// A running pipeline: the API server (if this process serves it), the projector task, and
/// fanout when configured.
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
    metrics_registry: Registry,
    readiness_checks: Vec<(String, ReadinessProbe)>,
    fanout: Option<Fanout>,
}

impl App {
    pub async fn build(options: PipelineOptions) -> anyhow::Result<App> {
        let tenants = open_tenants(&options.data_dir)?;
        let registry = Arc::new(SchemaRegistry::standard());
        let hub = Arc::new(OutcomeHub::new());
        let store = AnyStore::open(&options).await?;
        let mut options = options;
        let store_metrics = match StoreMetrics::register(options.api.runtime.metrics().registry()) {
            Ok(metrics) => metrics,
            // These options built a pipeline before (a restart with cloned options): that one's
            // metrics own the names, so this one reports into a runtime of its own.
            Err(prometheus::Error::AlreadyReg) => {
                options.api.runtime = ApiRuntime::new();
                StoreMetrics::register(options.api.runtime.metrics().registry())?
            }
            Err(error) => return Err(error.into()),
        };
        let metrics_registry = options.api.runtime.metrics().registry().clone();
        let mut readiness_checks: Vec<(String, ReadinessProbe)> = Vec::new();
        let checked_store = store.clone();
        readiness_checks.push((
            "store".to_owned(),
            probe(move || {
                let store = checked_store.clone();
                async move { store.check_writer().await }
            }),
        ));
        let (stop_projector, stop_signal) = watch::channel(false);
        let mut embedded_log = None;
        let mut outcome_listener = None;
        let mut kafka_config = None;
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
                let projector_metrics = ProjectorMetrics::register(&metrics_registry)?;
                projector = Some(spawn_embedded_projector(
                    &registry,
                    &store,
                    &store_metrics,
                    &projector_metrics,
                    EmbeddedFeed { log: &embedded, rounds: options.rounds },
                    &hub,
                    stop_signal,
                ));
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
                let log_metrics = LogMetrics::register(&metrics_registry)?;
                log = Arc::new(KafkaLog::new(&kafka)?.with_metrics(log_metrics));
                history_log = Arc::new(KafkaLogReader::new(&kafka)?);
                let log_check = kafka_check(&kafka, &kafka.topics().commands)?;
                readiness_checks.push(("log".to_owned(), log_check.clone()));
                if options.run_api {
                    // The API's `/readyz` checks its store reads and its own appends; this adds
                    // an active check of the broker.
                    options.api.runtime.add_readiness_probe("kafka", log_check);
                }
                if options.run_projector {
                    let mut config = match &options.projector {
                        Some(config) => config.clone(),
                        None => KafkaProjectorConfig::from_env(kafka.clone())?,
                    };
                    config.metrics = ProjectorMetrics::register(&metrics_registry)?;
                    LagMonitor::new(&config, config.metrics.clone())?
                        .spawn(LAG_REFRESH_INTERVAL, stop_signal.clone());
                    // All-in-one: the projector hands outcomes straight to this process's hub.
                    let local_hub = options.run_api.then(|| hub.clone());
                    projector = Some(spawn_kafka_projector(
                        &registry,
                        &store,
                        &store_metrics,
                        config,
                        local_hub,
                        stop_signal,
                    ));
                }
                if options.run_api && !options.run_projector {
                    outcome_listener = Some(OutcomeListener::start(&kafka, hub.clone()).await?);
                }
                kafka_config = Some(kafka);
            }
        }
        let fanout = match &options.fanout {
            Some(fanout) => {
                let fanout = start_fanout(fanout, kafka_config.as_ref(), &store).await?;
                metrics_registry.register(Box::new(fanout.prometheus_collector()))?;
                Some(fanout)
            }
            None => None,
        };
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
                reader: store.reader(&store_metrics),
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
            metrics_registry,
            readiness_checks,
            fanout,
        })
    }

    /// Every metric of this pipeline (the API's registry, whether or not the API runs here).
    pub fn metrics_registry(&self) -> &Registry {
        &self.metrics_registry
    }

    /// The readiness checks of a process without the API: `store` (a position read) and, on
    /// Kafka, `log` (a metadata request for the commands topic).
    pub fn readiness_checks(&self) -> Vec<(String, ReadinessProbe)> {
        self.readiness_checks.clone()
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Runs until the server stops (Ctrl-C / SIGTERM: actix drains in-flight requests) or, for a
    /// projector-only process, until Ctrl-C or SIGTERM; then lets the projector finish what it
    /// started, stops fanout (what it had not committed is delivered after a restart) and
    /// checkpoints an embedded store. A fatal fanout error stops the server too and is returned
    /// at the end.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        let mut fanout_failure = None;
        match self.server.take() {
            Some(mut server) => {
                let handle = server.handle();
                tokio::select! {
                    served = &mut server => served?,
                    failure = fanout_ended(self.fanout.as_mut()) => {
                        tracing::error!(error = %failure, "FanoutFailed");
                        fanout_failure = Some(failure);
                        let stopping = handle.stop(true);
                        server.await?;
                        stopping.await;
                    }
                }
            }
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
        if let Some(fanout) = self.fanout.take()
            && fanout_failure.is_none()
        {
            fanout.stop().await?;
        }
        if let AnyStore::Embedded(store) = &self.store {
            store.checkpoint()?;
        }
        match fanout_failure {
            Some(failure) => Err(failure.context("fanout failed; a restart resumes from its last commit")),
            None => Ok(()),
        }
    }
}

/// Starts fanout on the changes topic (Kafka log), or on the store's change feed (embedded log:
/// there is no changes topic, and the store holds every change with its log offset).
async fn start_fanout(
    options: &FanoutOptions,
    kafka: Option<&KafkaConfig>,
    store: &AnyStore,
) -> anyhow::Result<Fanout> {
    let config = options.config.clone();
    let fanout = match kafka {
        Some(kafka) => {
            let source = KafkaChangeSource::new(kafka, &options.group_id)?;
            Fanout::start(config, Some(kafka), Box::new(source)).await?
        }
        None => {
            let db = FanoutDb::open(&config.data_dir)?;
            let source = StoreFeedSource::new(store.writer(), db.clone(), vec![EMBEDDED_PARTITION])?;
            Fanout::start_with_db(config, None, Box::new(source), db).await?
        }
    };
    Ok(fanout)
}

/// Resolves when fanout ends on its own (never without fanout).
async fn fanout_ended(fanout: Option<&mut Fanout>) -> anyhow::Error {
    let Some(fanout) = fanout else { return std::future::pending().await };
    match fanout.failed().await {
        Err(error) => error.into(),
        Ok(()) => anyhow::anyhow!("fanout stopped unexpectedly"),
    }
}

/// The embedded log the projector follows, and how it folds it.
struct EmbeddedFeed<'a> {
    log: &'a EmbeddedLog,
    rounds: RoundLimits,
}

fn spawn_embedded_projector(
    registry: &Arc<SchemaRegistry>,
    store: &AnyStore,
    store_metrics: &StoreMetrics,
    projector_metrics: &ProjectorMetrics,
    feed: EmbeddedFeed<'_>,
    hub: &Arc<OutcomeHub>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    let (registry, log, hub, rounds) = (registry.clone(), feed.log.clone(), hub.clone(), feed.rounds);
    let (store_metrics, projector_metrics) = (store_metrics.clone(), projector_metrics.clone());
    match store.clone() {
        AnyStore::Embedded(store) => tokio::spawn(async move {
            let store = Arc::new(MeteredStore::new(store, store_metrics));
            scimflow_projector::embedded::run(registry, store, log, hub, projector_metrics, rounds, stop)
                .await;
            Ok(())
        }),
        AnyStore::Cql(store) => tokio::spawn(async move {
            let store = Arc::new(MeteredStore::new(store, store_metrics));
            scimflow_projector::embedded::run(registry, store, log, hub, projector_metrics, rounds, stop)
                .await;
            Ok(())
        }),
    }
}

fn spawn_kafka_projector(
    registry: &Arc<SchemaRegistry>,
    store: &AnyStore,
    metrics: &StoreMetrics,
    config: KafkaProjectorConfig,
    hub: Option<Arc<OutcomeHub>>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    let (registry, metrics) = (registry.clone(), metrics.clone());
    match store.clone() {
        AnyStore::Embedded(store) => tokio::spawn(async move {
            let store = Arc::new(MeteredStore::new(store, metrics));
            Ok(run_kafka_projector(registry, store, config, hub, stop).await?)
        }),
        AnyStore::Cql(store) => tokio::spawn(async move {
            let store = Arc::new(MeteredStore::new(store, metrics));
            Ok(run_kafka_projector(registry, store, config, hub, stop).await?)
        }),
    }
}
