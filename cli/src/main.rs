//! `scimflow`: run the pipeline and operate it. `scimflow serve` with no flags runs everything
//! in one process on the embedded log and store under `./scimflow-data`.

use clap::{Args, Parser, Subcommand};
use scimflow::config::check::ConfigCommand;
use scimflow::config::{CONFIG_ENV, Overrides, Settings};
use scimflow::pipeline::{App, LogKind, PipelineOptions, StoreKind};
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
    match Cli::parse().command {
        Command::Serve { listen, log, common } => {
            let settings = common.settings(listen.overrides(log))?;
            serve(settings.pipeline_options(true, true)?).await
        }
        Command::IngestApi { listen, common } => {
            let settings = common.settings(listen.overrides(Some(LogKind::Kafka)))?;
            serve(settings.pipeline_options(true, false)?).await
        }
        Command::Projector { common } => {
            let kafka = Overrides { log: Some(LogKind::Kafka), ..Overrides::default() };
            let settings = common.settings(kafka)?;
            let app = App::build(settings.pipeline_options(false, true)?).await?;
            println!("scimflow projector is folding the Kafka command log; Ctrl-C or SIGTERM stops it");
            app.run_until_stopped().await
        }
        Command::Fanout { subscriptions, settings } => {
            let flags = Overrides {
                log: Some(LogKind::Kafka),
                fanout_subscriptions: subscriptions,
                ..Overrides::default()
            };
            fanout(&load_settings(settings.as_deref(), &flags)?).await
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

async fn fanout(settings: &Settings) -> anyhow::Result<()> {
    use scimflow_fanout::source::KafkaChangeSource;
    let subscriptions = settings.fanout.subscriptions.as_deref().ok_or_else(|| {
        anyhow::anyhow!("scimflow fanout needs its subscriptions: --config FILE, SCIMFLOW_FANOUT_CONFIG or fanout.subscriptions")
    })?;
    let config = scimflow_fanout::config::FanoutConfig::load(subscriptions)?;
    let kafka = settings.kafka_config();
    let source = KafkaChangeSource::new(&kafka, &settings.fanout.group_id)?;
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
