//! `scimflow`: run the pipeline and operate it. `scimflow serve` with no flags runs everything
//! in one process on the embedded log and store under `./scimflow-data`.

use clap::{Args, Parser, Subcommand};
use scimflow::config::check::ConfigCommand;
use scimflow::config::{CONFIG_ENV, Overrides, Settings};
use scimflow::metrics_server::MetricsServer;
use scimflow::pipeline::{App, FanoutOptions, LogKind, PipelineOptions, StoreKind};
use scimflow::tenant_cmd::{self, TenantCommand};
use std::path::{Path, PathBuf};
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
/// --tenant-concurrency 64` is a sound production start. Per-tenant overrides live in the
/// configuration file (`[api.tenant_overrides.<name>]`).
#[derive(Debug, Args)]
struct TenantLimitArgs {
    /// Sustained requests per second per tenant (0 = unlimited) [default: 0].
    #[arg(long, env = "SCIMFLOW_TENANT_RATE")]
    tenant_rate: Option<u32>,
    /// Requests a tenant may send at once above its rate [default: 100].
    #[arg(long, env = "SCIMFLOW_TENANT_BURST")]
    tenant_burst: Option<u32>,
    /// Requests of one tenant served at the same time (0 = unlimited) [default: 0].
    #[arg(long, env = "SCIMFLOW_TENANT_CONCURRENCY")]
    tenant_concurrency: Option<u32>,
}

/// Flags of every pipeline command. Each overrides the configuration file and the environment.
#[derive(Debug, Args)]
struct Common {
    /// The configuration file (TOML, docs/configuration.md).
    #[arg(long, env = CONFIG_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Tenants (and the embedded log and store) live here [default: scimflow-data].
    #[arg(long, env = "SCIMFLOW_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The projection store [default: embedded].
    #[arg(long, value_enum, env = "SCIMFLOW_STORE")]
    store: Option<StoreKind>,
    #[command(flatten)]
    limits: TenantLimitArgs,
}

impl Common {
    /// The settings (file < environment < these flags < `overrides`), validated; starts logging.
    fn settings(self, overrides: Overrides) -> anyhow::Result<Settings> {
        let flags = Overrides {
            data_dir: self.data_dir,
            store: self.store,
            tenant_rate: self.limits.tenant_rate,
            tenant_burst: self.limits.tenant_burst,
            tenant_concurrency: self.limits.tenant_concurrency,
            ..overrides
        };
        load_settings(self.config.as_deref(), &flags)
    }
}

/// Where and how the API listens.
#[derive(Debug, Args)]
struct ListenArgs {
    /// `host:port` of the API [default: 127.0.0.1:8080].
    #[arg(long, env = "SCIMFLOW_LISTEN")]
    listen: Option<String>,
    /// PEM certificate chain: serve HTTPS (needs --tls-key).
    #[arg(long, env = "SCIMFLOW_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "SCIMFLOW_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
}

impl ListenArgs {
    fn overrides(self, log: Option<LogKind>) -> Overrides {
        Overrides {
            listen: self.listen,
            log,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            ..Overrides::default()
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline (API, log, projector, store) in one process.
    Serve {
        #[command(flatten)]
        listen: ListenArgs,
        /// The command log [default: embedded].
        #[arg(long, value_enum, env = "SCIMFLOW_LOG")]
        log: Option<LogKind>,
        /// Also deliver applied changes to the subscriptions of this file (TOML or JSON,
        /// docs/consumers.md), from the changes topic on Kafka, the store's change feed
        /// otherwise; or SCIMFLOW_FANOUT_CONFIG, or `fanout.subscriptions` in the configuration.
        #[arg(long, value_name = "FILE")]
        fanout_config: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Run only the SCIM API on Kafka (outcomes arrive from projectors over the outcomes topic).
    IngestApi {
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Run only a projector: fold the Kafka command log into the store.
    Projector {
        /// Where `/metrics`, `/healthz` and `/readyz` are served.
        #[arg(long, default_value = "127.0.0.1:9464", env = "SCIMFLOW_METRICS_LISTEN")]
        metrics_listen: String,
        #[command(flatten)]
        common: Common,
    },
    /// Deliver applied changes from the Kafka changes topic to the subscriptions of a config file
    /// (product topics, compacted state topics, signed webhooks); see docs/consumers.md.
    Fanout {
        /// Subscriptions (TOML or JSON); or `fanout.subscriptions` in the configuration file.
        #[arg(long = "config", env = "SCIMFLOW_FANOUT_CONFIG", value_name = "FILE")]
        subscriptions: Option<PathBuf>,
        /// The scimflow configuration file (what `--config` is to the other commands).
        #[arg(long, env = CONFIG_ENV, value_name = "FILE")]
        settings: Option<PathBuf>,
        /// Where `/metrics`, `/healthz` and `/readyz` are served.
        #[arg(long, default_value = "127.0.0.1:9465", env = "SCIMFLOW_METRICS_LISTEN")]
        metrics_listen: String,
    },
    /// Create or upgrade the CQL schema (`store.cql` settings or SCIMFLOW_CQL_NODES, ...).
    Migrate {
        /// The configuration file (TOML, docs/configuration.md).
        #[arg(long, env = CONFIG_ENV, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check the configuration and print the effective settings (docs/configuration.md).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
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

/// Loads and validates the settings, then starts logging as they say.
fn load_settings(file: Option<&Path>, flags: &Overrides) -> anyhow::Result<Settings> {
    let settings = scimflow::config::load_from_process(file, flags)?;
    scimflow::telemetry::init_telemetry_from(&settings.telemetry);
    Ok(settings)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    scimflow_ingest_api::tls::install_default_crypto_provider();
    let command = Cli::parse().command;
    scimflow::telemetry::set_service_name(command.service_name());
    let result = run(command).await;
    // Exports the spans still buffered (a no-op when traces are off).
    scimflow::telemetry::shutdown().await;
    result
}

impl Command {
    /// The service name of this process in traces.
    fn service_name(&self) -> &'static str {
        use scimflow::telemetry::*;
        match self {
            Command::Serve { .. } => SERVE_SERVICE,
            Command::IngestApi { .. } => INGEST_API_SERVICE,
            Command::Projector { .. } => PROJECTOR_SERVICE,
            Command::Fanout { .. } => FANOUT_SERVICE,
            _ => CLI_SERVICE,
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { listen, log, fanout_config, common } => {
            let overrides = Overrides { fanout_subscriptions: fanout_config, ..listen.overrides(log) };
            let settings = common.settings(overrides)?;
            let mut options = settings.pipeline_options(true, true)?;
            options.fanout = fanout_in_serve(&settings)?;
            serve(options).await
        }
        Command::IngestApi { listen, common } => {
            let settings = common.settings(listen.overrides(Some(LogKind::Kafka)))?;
            serve(settings.pipeline_options(true, false)?).await
        }
        Command::Projector { metrics_listen, common } => {
            let kafka = Overrides { log: Some(LogKind::Kafka), ..Overrides::default() };
            let settings = common.settings(kafka)?;
            let app = App::build(settings.pipeline_options(false, true)?).await?;
            let metrics = MetricsServer::start(
                &metrics_listen,
                app.metrics_registry().clone(),
                app.readiness_checks(),
            )?;
            println!("scimflow projector is folding the Kafka command log; Ctrl-C or SIGTERM stops it");
            println!("metrics, health and readiness on {}/metrics, /healthz, /readyz", metrics.origin());
            let result = app.run_until_stopped().await;
            metrics.stop().await;
            result
        }
        Command::Fanout { subscriptions, settings, metrics_listen } => {
            let flags = Overrides {
                log: Some(LogKind::Kafka),
                fanout_subscriptions: subscriptions,
                ..Overrides::default()
            };
            fanout(&load_settings(settings.as_deref(), &flags)?, &metrics_listen).await
        }
        Command::Migrate { config } => {
            let cql = Overrides { store: Some(StoreKind::Cql), ..Overrides::default() };
            let settings = load_settings(config.as_deref(), &cql)?;
            let store = scimflow_store::cql::CqlStore::connect(settings.cql_config()?).await?;
            println!("CQL schema of keyspace {} is current", store.keyspace());
            Ok(())
        }
        command => {
            scimflow::telemetry::init_telemetry();
            match command {
                Command::Config { command } => scimflow::config::check::run(command),
                Command::Tenant { command } => tenant_cmd::run(command),
                Command::Admin { command } => scimflow::admin_cmd::run(command),
                // Blocking tools: a blocking thread, from which the CQL driver's runtime is reachable.
                Command::Replay(args) => {
                    tokio::task::spawn_blocking(|| scimflow::ops::replay::command(args)).await?
                }
                Command::Verify(args) => {
                    tokio::task::spawn_blocking(|| scimflow::ops::verify::command(args)).await?
                }
                Command::History(args) => {
                    tokio::task::spawn_blocking(|| scimflow::ops::history::command(args)).await?
                }
                Command::Redeliver(args) => scimflow::ops::redeliver::command(args).await,
                _ => unreachable!("pipeline commands are matched above"),
            }
        }
    }
}

/// Fanout inside `serve`, when subscriptions are configured.
fn fanout_in_serve(settings: &Settings) -> anyhow::Result<Option<FanoutOptions>> {
    let Some(subscriptions) = &settings.fanout.subscriptions else { return Ok(None) };
    let config = scimflow_fanout::config::FanoutConfig::load(subscriptions)?;
    Ok(Some(FanoutOptions { config, group_id: settings.fanout.group_id.clone() }))
}

async fn fanout(settings: &Settings, metrics_listen: &str) -> anyhow::Result<()> {
    let subscriptions = settings.fanout.subscriptions.as_deref().ok_or_else(|| {
        anyhow::anyhow!("scimflow fanout needs its subscriptions: --config FILE, SCIMFLOW_FANOUT_CONFIG or fanout.subscriptions")
    })?;
    let config = scimflow_fanout::config::FanoutConfig::load(subscriptions)?;
    let kafka = settings.kafka_config();
    let process =
        scimflow::fanout_cmd::start(config, &kafka, &settings.fanout.group_id, metrics_listen).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        scimflow::shutdown::requested().await;
        let _ = stop.send(true);
    });
    println!(
        "scimflow fanout is delivering changes from {}; Ctrl-C or SIGTERM stops it",
        kafka.topics().changes
    );
    println!("metrics, health and readiness on {}/metrics, /healthz, /readyz", process.metrics.origin());
    let result = process.fanout.run_until(stopped).await;
    process.metrics.stop().await;
    Ok(result?)
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
