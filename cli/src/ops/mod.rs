//! Operating a pipeline from its command log: `scimflow replay`, `scimflow verify` and
//! `scimflow history`. The log is the source of truth and the fold is deterministic, so every
//! projection can be rebuilt ([`replay`]), checked ([`verify`]) and explained ([`history`]) by
//! folding the log again.
//!
//! The tools are written against the ports only: a [`LogReader`] (the embedded log of a data
//! directory, or the Kafka commands topic) and a store behind [`StoreWriter`], [`StoreReader`] and
//! [`StoreMaintenance`] (the embedded store file, or a CQL keyspace). The embedded files are
//! single-process redb files: stop `scimflow serve` first (see docs/operations.md). Kafka and CQL
//! are shared: the tools run beside the live pipeline.
//!
//! Every entry point blocks (the store and log ports are synchronous): `main` runs them on a
//! blocking thread of its runtime.
//!
//! ## Layout
//! - [`replay`]: fold the log into the live store or a fresh one, resumable, with progress.
//! - [`verify`]: compare the store with a re-fold of the log, name drifted rows, `--repair` them.
//! - [`history`]: the change history of one resource, and the resource as of an instant.
//! - [`redeliver`]: re-send one product the changes of a tenant and a time range.

pub mod history;
pub mod redeliver;
pub mod replay;
pub mod verify;

use crate::pipeline::{LogKind, StoreKind};
use anyhow::Context;
use scimflow_log::LogReader;
use scimflow_log::embedded::EmbeddedLog;
use scimflow_log::kafka::{KafkaConfig, KafkaLogReader};
use scimflow_store::cql::{CqlConfig, CqlStore};
use scimflow_store::embedded::EmbeddedStore;
use scimflow_store::{StoreMaintenance, StoreReader, StoreWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use scimflow_log::scan::{READ_BATCH, Until, fold_log};

/// Which log and store a tool works on.
#[derive(Debug, Clone, clap::Args)]
pub struct Backends {
    /// The data directory: the embedded log (`log.redb`) and store (`store.redb`) live here.
    #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The command log: `embedded` (DATA_DIR/log.redb) or `kafka` (the commands topic named by
    /// SCIMFLOW_KAFKA_BROKERS and SCIMFLOW_KAFKA_TOPIC_PREFIX).
    #[arg(long, value_enum, default_value = "embedded", env = "SCIMFLOW_LOG")]
    pub log: LogKind,
    /// The store: `embedded` (DATA_DIR/store.redb) or `cql` (SCIMFLOW_CQL_NODES and
    /// SCIMFLOW_CQL_KEYSPACE).
    #[arg(long, value_enum, default_value = "embedded", env = "SCIMFLOW_STORE")]
    pub store: StoreKind,
}

/// A store the tools can fold into, read back and repair.
pub trait OpsStore: StoreWriter + StoreReader + StoreMaintenance {}
impl<S: StoreWriter + StoreReader + StoreMaintenance> OpsStore for S {}

/// Where a tool's store is: a directory holding `store.redb`, or a CQL keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Directory(PathBuf),
    Keyspace(String),
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Directory(dir) => write!(f, "{}", dir.join("store.redb").display()),
            StoreLocation::Keyspace(keyspace) => write!(f, "CQL keyspace {keyspace}"),
        }
    }
}

impl Backends {
    /// The log, opened for reading.
    pub fn open_log(&self) -> anyhow::Result<Box<dyn LogReader>> {
        Ok(match self.log {
            LogKind::Embedded => Box::new(open_embedded_log(&self.data_dir)?),
            LogKind::Kafka => {
                let config = KafkaConfig::from_env()
                    .context("--log kafka needs SCIMFLOW_KAFKA_BROKERS (e.g. 127.0.0.1:9092)")?;
                Box::new(KafkaLogReader::new(&config)?)
            }
        })
    }

    /// The live store's location: the data directory, or the configured keyspace.
    pub fn live_store(&self) -> anyhow::Result<StoreLocation> {
        Ok(match self.store {
            StoreKind::Embedded => StoreLocation::Directory(self.data_dir.clone()),
            StoreKind::Cql => StoreLocation::Keyspace(cql_config()?.keyspace),
        })
    }

    /// `other` (a `--into` / `--store-dir` argument) as a location of this kind of store: a
    /// directory for the embedded store, a keyspace name for CQL.
    pub fn other_store(&self, other: &Path) -> anyhow::Result<StoreLocation> {
        Ok(match self.store {
            StoreKind::Embedded => StoreLocation::Directory(other.to_path_buf()),
            StoreKind::Cql => {
                let name = other.to_str().context("a keyspace name is plain text")?;
                scimflow_store::cql::config::validate_keyspace(name)
                    .map_err(|error| anyhow::anyhow!(error))?;
                StoreLocation::Keyspace(name.to_owned())
            }
        })
    }

    /// Opens (or creates) the store at `location`. Must run on a blocking thread of a Tokio
    /// runtime (the CQL driver runs on it).
    pub fn open_store(&self, location: &StoreLocation) -> anyhow::Result<Arc<dyn OpsStore>> {
        Ok(match location {
            StoreLocation::Directory(dir) => Arc::new(open_embedded_store(dir)?),
            StoreLocation::Keyspace(keyspace) => {
                let mut config = cql_config()?;
                config.keyspace = keyspace.clone();
                let handle = tokio::runtime::Handle::current();
                Arc::new(handle.block_on(CqlStore::connect(config))?)
            }
        })
    }
}

fn cql_config() -> anyhow::Result<CqlConfig> {
    CqlConfig::from_env()?.context("--store cql needs SCIMFLOW_CQL_NODES (e.g. 127.0.0.1:9042)")
}

fn lock_hint(path: &Path, error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot open {}: {error}\nredb files belong to one process at a time: if `scimflow serve` is running on \
         this data directory, stop it (Ctrl-C / SIGTERM) and run this command again",
        path.display()
    )
}

/// Opens `DATA_DIR/log.redb`, which must exist (replaying a log that is not there would only
/// create an empty one).
pub fn open_embedded_log(data_dir: &Path) -> anyhow::Result<EmbeddedLog> {
    let path = data_dir.join("log.redb");
    anyhow::ensure!(
        path.exists(),
        "no command log at {}: pass the --data-dir that `scimflow serve` uses",
        path.display()
    );
    EmbeddedLog::open(&path).map_err(|error| lock_hint(&path, error))
}

/// Opens (or creates) the store file `DIR/store.redb`.
pub fn open_embedded_store(dir: &Path) -> anyhow::Result<EmbeddedStore> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let path = dir.join("store.redb");
    EmbeddedStore::open(&path).map_err(|error| lock_hint(&path, error))
}

/// Parses an RFC 3339 instant into Unix milliseconds.
pub fn parse_instant(text: &str) -> anyhow::Result<i64> {
    let instant = chrono::DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("{text:?} is not an RFC 3339 instant; write e.g. 2026-11-29T23:15:00Z or 2026-11-29T23:15:00.250+01:00")
    })?;
    Ok(instant.timestamp_millis())
}
