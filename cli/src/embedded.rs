//! The all-in-one embedded pipeline: the redb command log, the projector folding it into the
//! redb store, and the SCIM API, in one process under one data directory:
//!
//! ```text
//! DATA_DIR/log.redb      the command log (source of truth)
//! DATA_DIR/store.redb    the projection (rebuildable from the log)
//! DATA_DIR/tenants.redb  tenants and token hashes
//! ```

use crate::pipeline::{AnyStore, App, PipelineOptions};
use anyhow::Context;
use scimflow_ingest_api::ApiConfig;
use scimflow_log::embedded::EmbeddedLog;
use scimflow_store::embedded::EmbeddedStore;
use scimflow_store::tenants::TenantDirectory;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn open_tenants(data_dir: &Path) -> anyhow::Result<TenantDirectory> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let path = data_dir.join("tenants.redb");
    let db = redb::Database::create(&path).with_context(|| {
        format!("cannot open {} (is another scimflow process using this data directory?)", path.display())
    })?;
    Ok(TenantDirectory::open(Arc::new(db))?)
}

/// The all-in-one embedded pipeline (what `scimflow serve` runs with no flags), with direct
/// access to its log and store for tests and benchmarks.
pub struct EmbeddedApp {
    app: App,
    pub base_url: String,
    pub tenants: TenantDirectory,
    /// The log and store, for tools that seed or inspect state below the API (benchmarks).
    pub log: EmbeddedLog,
    pub store: EmbeddedStore,
}

impl EmbeddedApp {
    /// Opens (or creates) the data directory and binds `listen` (port 0 picks a free port).
    pub async fn build(data_dir: &Path, listen: &str, config: ApiConfig) -> anyhow::Result<Self> {
        let app = App::build(PipelineOptions::embedded(data_dir.to_owned(), listen, config)).await?;
        let AnyStore::Embedded(store) = app.store.clone() else { unreachable!("embedded store requested") };
        let log = app.embedded_log.clone().context("embedded log requested")?;
        let base_url = app.base_url.clone().context("API requested")?;
        let tenants = app.tenants.clone();
        Ok(EmbeddedApp { app, base_url, tenants, log, store })
    }

    pub fn port(&self) -> u16 {
        self.app.port().unwrap_or_default()
    }

    /// Serves until the server stops (Ctrl-C / SIGTERM: actix drains in-flight requests), then
    /// lets the projector fold everything already logged and checkpoints the store.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.app.run_until_stopped().await
    }
}

pub fn default_data_dir() -> PathBuf {
    PathBuf::from("scimflow-data")
}
