//! `scimflow`: run the pipeline and operate it. `scimflow serve` with no flags runs everything
//! in one process on the embedded log and store under `./scimflow-data`.

use clap::{Args, Parser, Subcommand};
use scimflow::pipeline::{App, LogKind, PipelineOptions, StoreKind};
use scimflow::tenant_cmd::{self, TenantCommand};
use scimflow_ingest_api::ApiConfig;
use std::path::PathBuf;
use std::time::Instant;

// glibc malloc showed up as ~18% of CPU under write load; mimalloc serves the many small
// JSON allocations of a request with far less contention.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "scimflow", version, about = "Event-sourced SCIM 2.0 ingestion pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Per-tenant limits of the API (429 + `Retry-After` beyond them). Off unless set; Entra ID
/// needs 25 req/s per tenant sustained, so `--tenant-rate 50 --tenant-burst 100
/// --tenant-concurrency 64` is a sound production start.
#[derive(Debug, Args)]
struct TenantLimitArgs {
    /// Sustained requests per second per tenant (0 = unlimited).
    #[arg(long, default_value_t = 0, env = "SCIMFLOW_TENANT_RATE")]
    tenant_rate: u32,
    /// Requests a tenant may send at once above its rate.
    #[arg(long, default_value_t = 100, env = "SCIMFLOW_TENANT_BURST")]
    tenant_burst: u32,
    /// Requests of one tenant served at the same time (0 = unlimited).
    #[arg(long, default_value_t = 0, env = "SCIMFLOW_TENANT_CONCURRENCY")]
    tenant_concurrency: u32,
}

impl TenantLimitArgs {
    fn api_config(&self) -> ApiConfig {
        let mut config = ApiConfig::default();
        config.limits.default_limits = scimflow_ingest_api::limits::TenantLimits {
            requests_per_second: self.tenant_rate,
            burst: self.tenant_burst.max(1),
            max_concurrent: self.tenant_concurrency,
        };
        config
    }
}

#[derive(Debug, Args)]
struct Common {
    /// Tenants (and the embedded log and store) live here.
    #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
    data_dir: PathBuf,
    /// The projection store.
    #[arg(long, value_enum, default_value = "embedded", env = "SCIMFLOW_STORE")]
    store: StoreKind,
    #[command(flatten)]
    limits: TenantLimitArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline (API, log, projector, store) in one process.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080", env = "SCIMFLOW_LISTEN")]
        listen: String,
        /// The command log.
        #[arg(long, value_enum, default_value = "embedded", env = "SCIMFLOW_LOG")]
        log: LogKind,
        #[command(flatten)]
        common: Common,
    },
    /// Run only the SCIM API on Kafka (outcomes arrive from projectors over the outcomes topic).
    IngestApi {
        #[arg(long, default_value = "127.0.0.1:8080", env = "SCIMFLOW_LISTEN")]
        listen: String,
        #[command(flatten)]
        common: Common,
    },
    /// Run only a projector: fold the Kafka command log into the store.
    Projector {
        #[command(flatten)]
        common: Common,
    },
    /// Deliver applied changes from the Kafka changes topic to the subscriptions of a config file
    /// (product topics, compacted state topics, signed webhooks); see docs/consumers.md.
    Fanout {
        /// Subscriptions (TOML or JSON).
        #[arg(long, env = "SCIMFLOW_FANOUT_CONFIG")]
        config: PathBuf,
    },
    /// Create or upgrade the CQL schema (SCIMFLOW_CQL_NODES, SCIMFLOW_CQL_KEYSPACE, ...).
    Migrate,
    /// Rebuild the projection by folding the command log (resumable; docs/operations.md).
    Replay(scimflow::ops::replay::ReplayArgs),
    /// Compare the store with the command log, name drifted rows, `--repair` them.
    Verify(scimflow::ops::verify::VerifyArgs),
    /// The change history of a User or Group from the command log, or its state `--at` an instant.
    History(scimflow::ops::history::HistoryArgs),
    /// Re-send one product subscription the changes of a tenant and a time range.
    Redeliver(scimflow::ops::redeliver::RedeliverArgs),
    /// Manage tenants and their tokens.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage the operator's admin tokens (the `/admin` history endpoints).
    Admin {
        #[command(subcommand)]
        command: scimflow::admin_cmd::AdminCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    scimflow::telemetry::init_telemetry();
    match Cli::parse().command {
        Command::Serve { listen, log, common } => {
            let options = options(common, listen, log, true, true);
            serve(options).await
        }
        Command::IngestApi { listen, common } => {
            serve(options(common, listen, LogKind::Kafka, true, false)).await
        }
        Command::Projector { common } => {
            let app = App::build(options(common, String::new(), LogKind::Kafka, false, true)).await?;
            println!("scimflow projector is folding the Kafka command log; Ctrl-C or SIGTERM stops it");
            app.run_until_stopped().await
        }
        Command::Fanout { config } => fanout(&config).await,
        Command::Migrate => {
            let store = scimflow_store::cql::CqlStore::connect_from_env().await?.ok_or_else(|| {
                anyhow::anyhow!("set SCIMFLOW_CQL_NODES (e.g. 127.0.0.1:9042) to migrate a CQL store")
            })?;
            println!("CQL schema of keyspace {} is current", store.keyspace());
            Ok(())
        }
        Command::Tenant { command } => tenant_cmd::run(command),
        Command::Admin { command } => scimflow::admin_cmd::run(command),
        // Blocking tools: a blocking thread, from which the CQL driver's runtime is reachable.
        Command::Replay(args) => tokio::task::spawn_blocking(|| scimflow::ops::replay::command(args)).await?,
        Command::Verify(args) => tokio::task::spawn_blocking(|| scimflow::ops::verify::command(args)).await?,
        Command::History(args) => {
            tokio::task::spawn_blocking(|| scimflow::ops::history::command(args)).await?
        }
        Command::Redeliver(args) => scimflow::ops::redeliver::command(args).await,
    }
}

async fn fanout(config_path: &std::path::Path) -> anyhow::Result<()> {
    use scimflow_fanout::source::{DEFAULT_GROUP_ID, KafkaChangeSource};
    let config = scimflow_fanout::config::FanoutConfig::load(config_path)?;
    let kafka = scimflow_log::kafka::KafkaConfig::from_env()?;
    let group = std::env::var("SCIMFLOW_FANOUT_GROUP_ID").unwrap_or_else(|_| DEFAULT_GROUP_ID.to_owned());
    let source = KafkaChangeSource::new(&kafka, &group)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        scimflow::shutdown::requested().await;
        let _ = stop.send(true);
    });
    println!(
        "scimflow fanout is delivering changes from {}; Ctrl-C or SIGTERM stops it",
        kafka.topics().changes
    );
    Ok(scimflow_fanout::run(config, Some(&kafka), Box::new(source), stopped).await?)
}

fn options(
    common: Common,
    listen: String,
    log: LogKind,
    run_api: bool,
    run_projector: bool,
) -> PipelineOptions {
    PipelineOptions {
        data_dir: common.data_dir,
        listen,
        log,
        store: common.store,
        run_api,
        run_projector,
        api: common.limits.api_config(),
        kafka: None,
        projector: None,
        cql: None,
    }
}

async fn serve(options: PipelineOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = options.data_dir.clone();
    let app = App::build(options).await?;
    let first_token = if app.tenants.list()?.is_empty() {
        let now_ms = chrono::Utc::now().timestamp_millis();
        Some(app.tenants.create("default", now_ms)?.1)
    } else {
        None
    };
    let base_url = app.base_url.clone().unwrap_or_default();
    println!("scimflow is serving SCIM 2.0 at {base_url}");
    println!("data directory: {}", data_dir.display());
    match first_token {
        Some(token) => println!("created tenant \"default\"; its bearer token (shown once): {token}"),
        None => println!("tenants: `scimflow tenant list --data-dir {}`", data_dir.display()),
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, base_url = %base_url, "ServerStarted");
    app.run_until_stopped().await
}
