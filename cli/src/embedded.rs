//! The all-in-one embedded pipeline: the redb command log, the projector folding it into the
//! redb store, and the SCIM API, in one process under one data directory:
//!
//! ```text
//! DATA_DIR/log.redb      the command log (source of truth)
//! DATA_DIR/store.redb    the projection (rebuildable from the log)
//! DATA_DIR/tenants.redb  tenants and token hashes
//! ```

use anyhow::Context;
use scimflow_core::SchemaRegistry;
use scimflow_ingest_api::{ApiConfig, ApiState, build_server};
use scimflow_log::embedded::EmbeddedLog;
use scimflow_log::{OutcomeHub, WritePath};
use scimflow_store::embedded::EmbeddedStore;
use scimflow_store::tenants::TenantDirectory;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a write waits for its outcome before answering 503 (it stays durable and is folded).
pub const OUTCOME_TIMEOUT: Duration = Duration::from_secs(10);

pub fn open_tenants(data_dir: &Path) -> anyhow::Result<TenantDirectory> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let path = data_dir.join("tenants.redb");
    let db = redb::Database::create(&path).with_context(|| {
        format!("cannot open {} (is another scimflow process using this data directory?)", path.display())
    })?;
    Ok(TenantDirectory::open(Arc::new(db))?)
}

pub struct EmbeddedApp {
    server: actix_web::dev::Server,
    port: u16,
    pub base_url: String,
    pub tenants: TenantDirectory,
    /// The log and store, for tools that seed or inspect state below the API (benchmarks).
    pub log: EmbeddedLog,
    pub store: EmbeddedStore,
    projector: tokio::task::JoinHandle<()>,
    stop_projector: watch::Sender<bool>,
}

impl EmbeddedApp {
    /// Opens (or creates) the data directory and binds `listen` (port 0 picks a free port).
    pub async fn build(data_dir: &Path, listen: &str, config: ApiConfig) -> anyhow::Result<Self> {
        let tenants = open_tenants(data_dir)?;
        let log = EmbeddedLog::open(&data_dir.join("log.redb"))?;
        let store = EmbeddedStore::open(&data_dir.join("store.redb"))?;
        let registry = Arc::new(SchemaRegistry::standard());
        let hub = Arc::new(OutcomeHub::new());
        let (stop_projector, stop_signal) = watch::channel(false);
        let projector = tokio::spawn(scimflow_projector::embedded::run(
            registry.clone(),
            Arc::new(store.clone()),
            log.clone(),
            hub.clone(),
            stop_signal,
        ));
        let listener = TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
        let port = listener.local_addr()?.port();
        let host = listen.rsplit_once(':').map(|(host, _)| host).unwrap_or("127.0.0.1");
        let base_url = format!("http://{host}:{port}{}", config.base_path);
        let state = ApiState {
            registry,
            write: WritePath::new(Arc::new(log.clone()), hub, OUTCOME_TIMEOUT),
            reader: Arc::new(store.clone()),
            auth: Arc::new(tenants.clone()),
            config,
        };
        let server = build_server(listener, state)?;
        Ok(EmbeddedApp { server, port, base_url, tenants, log, store, projector, stop_projector })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server stops (Ctrl-C / SIGTERM: actix drains in-flight requests), then
    /// lets the projector fold everything already logged and checkpoints the store.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await?;
        let _ = self.stop_projector.send(true);
        self.projector.await?;
        self.store.checkpoint()?;
        Ok(())
    }
}

pub fn default_data_dir() -> PathBuf {
    PathBuf::from("scimflow-data")
}
