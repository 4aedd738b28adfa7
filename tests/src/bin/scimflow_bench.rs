//! `scimflow-bench`: benchmarks of the pipeline over real HTTP, server in-process, on any
//! topology: `--log embedded|kafka`, `--store embedded|cql` (default: embedded, embedded).
//!
//! - `writes`: acknowledged writes per second and latency with N concurrent clients, and where the
//!   time goes (produce, projector rounds) as far as the pipeline's own events tell.
//! - `fanout-lag`: with fanout in the pipeline, the lag from a write's 2xx to its delivery to a
//!   webhook and (on Kafka) a product topic, at a steady rate ([`fanout_lag`]).
//! - `membership`: one group grown to each size (default 1k, 100k, 1M members), then PATCH
//!   add/remove of one member and `GET ?excludedAttributes=members` on every group in turn, round
//!   after round, so the sizes are compared side by side in one run; latency per size, and the
//!   RSS of this process (API + projector) and of the Kafka / Cassandra JVMs after each group. `--page-all` also pages every
//!   member through `GET /Groups/{id}/members?count=1000&cursor=..` at each size (time, peak
//!   RSS, and that exactly the group's members come back, in id order).
//! - `backlog`: a quiet tenant's write latency while a busy tenant's backlog on the same
//!   partition is folded, against the same tenant alone (see [`backlog`]).
//! - `noisy`: the noisy-neighbour benchmark: tenant B's latency in alternating phases alone and
//!   while tenant A sends ten times its rate limit (see [`noisy`]).
//!
//! On Kafka and CQL the run gets fresh topics (`scimflow.bench.<run>.*`, 3 command partitions),
//! consumer group and keyspace, like the end-to-end tests, from `SCIMFLOW_KAFKA_BROKERS` and
//! `SCIMFLOW_CQL_NODES`; they are deleted at the end unless `--keep`.
//!
//! Groups are grown by appending commands to the log directly (the same commands the API would
//! append, folded by the same projector): the embedded log, or a `KafkaLog` producing to the
//! run's commands topic. Creating a million users one HTTP request at a time would measure setup
//! rather than the behaviour under test. Each seeding step appends its commands (4096 in flight),
//! then one marker user, and waits until `GET /Users/<marker>` answers 200: a tenant's commands
//! are folded in log order, so everything before the marker is folded then. Members are added
//! 1000 per PATCH command, at most 100 commands (100,000 members) per step, so no single
//! projector batch is larger than that. Everything measured goes through HTTP. Results print as
//! a table and, with `--json`, as JSON.

// A directory of their own: a file beside this one would be taken for another binary.
#[path = "scimflow_bench/backlog.rs"]
mod backlog;
#[path = "scimflow_bench/fanout_lag.rs"]
mod fanout_lag;
#[path = "scimflow_bench/noisy.rs"]
mod noisy;

use clap::{Parser, Subcommand};
use futures_util::future::join_all;
use scimflow::embedded::open_tenants;
use scimflow::pipeline::{App, LogKind, StoreKind};
use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::patch::parse_patch_request;
use scimflow_core::resource::normalize_resource;
use scimflow_core::{ResourceKind, SchemaRegistry};
use scimflow_ingest_api::ApiConfig;
use scimflow_log::CommandLog;
use scimflow_log::kafka::KafkaLog;
use scimflow_projector::kafka::KafkaProjectorConfig;
use scimflow_projector::window::DEFAULT_TENANT_SHARE;
use scimflow_store::tenants::TenantDirectory;
use scimflow_tests::FreshServices;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;

// glibc malloc showed up as ~18% of CPU under write load; mimalloc serves the many small
// JSON allocations of a request with far less contention.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    json: Option<std::path::PathBuf>,
    /// The command log: the embedded redb log, or Kafka (`SCIMFLOW_KAFKA_BROKERS`).
    #[arg(long, global = true, value_enum, default_value = "embedded")]
    log: LogKind,
    /// The store: the embedded redb store, or CQL (`SCIMFLOW_CQL_NODES`).
    #[arg(long, global = true, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// Keep the run's Kafka topics and CQL keyspace (deleted at the end by default).
    #[arg(long, global = true)]
    keep: bool,
    /// A librdkafka setting for every client, like `SCIMFLOW_KAFKA_CLIENT_<KEY>`
    /// (e.g. `--kafka-setting retry.backoff.ms=10`); repeatable.
    #[arg(long = "kafka-setting", global = true, value_parser = parse_setting)]
    kafka_settings: Vec<(String, String)>,
    /// The projector's share per tenant and round (`projector.tenant_share`; default 64 on the
    /// embedded log, 512 on Kafka); 2048, the largest round, folds in log order.
    #[arg(long, global = true)]
    tenant_share: Option<usize>,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not key=value"))?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

#[derive(Subcommand, Clone)]
enum Mode {
    /// Acknowledged POST /Users per second with concurrent clients.
    Writes {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Tenants the clients write as (client k as tenant k mod n): on Kafka, tenants spread
        /// over the command partitions, which a projector member folds at the same time.
        #[arg(long, default_value_t = 1)]
        tenants: usize,
    },
    /// Lag from the 2xx to fanout's delivery (webhook; product topic on Kafka) at a steady rate.
    FanoutLag {
        /// Writes per second (`POST /Users`, open loop).
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// PATCH latency per group size, measured side by side, and RSS as the groups grow.
    Membership {
        #[arg(long, value_delimiter = ',', default_values_t = vec![1_000, 100_000, 1_000_000])]
        sizes: Vec<usize>,
        /// Measured rounds; each PATCHes add + remove one member and reads, on every size.
        #[arg(long, default_value_t = 1000)]
        iterations: usize,
        /// Also page through all members at each size (time and peak RSS).
        #[arg(long)]
        page_all: bool,
    },
    /// Tenant B's latency alone and while tenant A sends ten times its rate limit (exit code 1
    /// when a target is missed).
    Noisy(noisy::NoisySettings),
    /// Tenant B's write latency alone and while tenant A's backlog on B's partition is folded.
    Backlog(backlog::BacklogSettings),
}

struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
}

fn percentiles(samples: &mut [Duration]) -> Percentiles {
    if samples.is_empty() {
        return Percentiles { p50: 0.0, p99: 0.0, max: 0.0 };
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    Percentiles { p50: at(0.50), p99: at(0.99), max: at(1.0) }
}

fn rss_of(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn rss_mib() -> f64 {
    rss_of("self")
}

/// RSS of a JVM started by `deploy/local/services.sh` (its pid file), if it runs here.
fn service_rss_mib(service: &str) -> Option<f64> {
    let rss = rss_of(&service_pid(service)?);
    (rss > 0.0).then_some(rss)
}

/// The pid of a JVM started by `deploy/local/services.sh` (its pid file), if it runs here.
fn service_pid(service: &str) -> Option<String> {
    let state = std::env::var("SERVICES_STATE").unwrap_or_else(|_| {
        format!("{}/.cache/scimflow-services/state", std::env::var("HOME").unwrap_or_default())
    });
    let pid = std::fs::read_to_string(format!("{state}/{service}/{service}.pid")).ok()?;
    let pid = pid.trim().to_owned();
    std::path::Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// CPU seconds (user + system) process `pid` (`self`: this one) has used so far.
fn cpu_seconds_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

fn services_rss(log: LogKind, store: StoreKind) -> Value {
    let mut rss = json!({});
    if log == LogKind::Kafka {
        rss["kafka_rss_mib"] = json!(service_rss_mib("kafka"));
    }
    if store == StoreKind::Cql {
        rss["cassandra_rss_mib"] = json!(service_rss_mib("cassandra"));
    }
    rss
}

// ---- where the time goes: the pipeline's own events ---------------------------------------------

/// Timings taken from the pipeline's events: `CommandsProduced {elapsed_ms}` (the Kafka log's
/// append, per command), `EventsProjected {elapsed_us, outcomes}` (a round's fold and store
/// commit) and `ChangesPublished {elapsed_us}` (a Kafka projector's transaction, which runs on a
/// thread of its own while the next rounds fold).
#[derive(Default)]
struct Timings {
    produce: Vec<Duration>,
    fold: Vec<Duration>,
    transaction: Vec<Duration>,
    commands_per_fold: Vec<u64>,
}

static TIMINGS: Mutex<Option<Timings>> = Mutex::new(None);

#[derive(Default)]
struct EventFields {
    message: String,
    elapsed_ms: Option<u64>,
    elapsed_us: Option<u64>,
    commands: Option<u64>,
}

impl tracing::field::Visit for EventFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "elapsed_ms" => self.elapsed_ms = Some(value),
            "elapsed_us" => self.elapsed_us = Some(value),
            "commands" | "outcomes" => self.commands = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }
}

struct TimingLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TimingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let mut guard = TIMINGS.lock().unwrap();
        let Some(timings) = guard.as_mut() else { return };
        match fields.message.as_str() {
            "CommandsProduced" => {
                timings.produce.push(Duration::from_millis(fields.elapsed_ms.unwrap_or(0)));
            }
            "EventsProjected" => {
                timings.fold.push(Duration::from_micros(fields.elapsed_us.unwrap_or(0)));
                timings.commands_per_fold.push(fields.commands.unwrap_or(0));
            }
            "ChangesPublished" => {
                timings.transaction.push(Duration::from_micros(fields.elapsed_us.unwrap_or(0)));
            }
            _ => {}
        }
    }
}

fn init_tracing() {
    let timing = tracing_subscriber::filter::Targets::new()
        .with_target("scimflow_log", tracing::Level::DEBUG)
        .with_target("scimflow_projector", tracing::Level::DEBUG);
    // Warnings and errors on stderr; `RUST_LOG` chooses others.
    let shown = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::registry()
        .with(TimingLayer.with_filter(timing))
        .with(tracing_subscriber::fmt::layer().with_writer(log_writer).with_filter(shown))
        .init();
}

/// Set while the run's topics and keyspace are deleted under the still running pipeline.
static QUIET: AtomicBool = AtomicBool::new(false);

fn log_writer() -> Box<dyn std::io::Write> {
    if QUIET.load(Ordering::Relaxed) { Box::new(std::io::sink()) } else { Box::new(std::io::stderr()) }
}

// ---- the pipeline under test ----------------------------------------------------------------------

struct Harness {
    app_url: String,
    token: String,
    tenant_id: String,
    client: reqwest::Client,
    /// Where seeding appends: the embedded log, or a producer to the run's commands topic.
    log: Arc<dyn CommandLog>,
    fresh: FreshServices,
    topology: (LogKind, StoreKind),
    markers: AtomicU64,
    registry: SchemaRegistry,
    _dir: tempfile::TempDir,
}

/// Starts the pipeline with the tenant `bench` (the harness's own) and whatever `configure` adds:
/// it gets the tenant directory before the API starts (per-tenant limits name tenant ids, known
/// only once the tenants exist) and returns the API's config.
async fn start(
    cli: &Cli,
    fanout: Option<Vec<scimflow_fanout::config::Subscription>>,
    configure: impl FnOnce(&TenantDirectory) -> ApiConfig,
) -> Harness {
    let (log, store) = (cli.log, cli.store);
    let mut fresh = FreshServices::from_env("bench", log == LogKind::Kafka, store == StoreKind::Cql)
        .unwrap_or_else(|why| panic!("--log {log:?} --store {store:?} {why}"));
    if let (Some(kafka), Some(projector)) = (fresh.kafka.as_mut(), fresh.projector.as_mut()) {
        kafka.client_settings.extend(cli.kafka_settings.iter().cloned());
        if matches!(cli.mode, Mode::Backlog(_)) {
            // Both tenants on one partition, whatever their ids hash to.
            kafka.command_partitions = 1;
        }
        projector.kafka = kafka.clone();
        projector.tenant_share = cli.tenant_share.unwrap_or(projector.tenant_share);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (tenant, token, api) = {
        // Closed again before the pipeline opens the same file.
        let tenants = open_tenants(dir.path()).expect("tenant directory");
        let (tenant, token) = tenants.create("bench", 0).expect("tenant");
        let api = configure(&tenants);
        (tenant, token, api)
    };
    let mut options = fresh.options(dir.path(), log, store);
    options.api = api;
    options.rounds.tenant_share = cli.tenant_share.unwrap_or(options.rounds.tenant_share);
    options.fanout = fanout.map(|subscriptions| fresh.fanout(dir.path(), subscriptions));
    let app = App::build(options).await.expect("app");
    let seed_log: Arc<dyn CommandLog> = match log {
        LogKind::Embedded => Arc::new(app.embedded_log.clone().expect("embedded log")),
        LogKind::Kafka => Arc::new(KafkaLog::new(fresh.kafka.as_ref().expect("kafka")).expect("producer")),
    };
    let harness = Harness {
        app_url: app.base_url.clone().expect("API"),
        token,
        tenant_id: tenant.id,
        client: reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap(),
        log: seed_log,
        fresh,
        topology: (log, store),
        markers: AtomicU64::new(0),
        registry: SchemaRegistry::standard(),
        _dir: dir,
    };
    tokio::spawn(app.run_until_stopped());
    harness.wait_until_ready().await;
    harness
}

impl Harness {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Duration) {
        let (status, elapsed, _) = self.send_reading(method, path, body).await;
        (status, elapsed)
    }

    async fn send_reading(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Duration, Vec<u8>) {
        self.send_as(&self.token, method, path, body).await
    }

    /// Sends as the tenant of `token`.
    async fn send_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Duration, Vec<u8>) {
        let started = Instant::now();
        let mut request = self.client.request(method, format!("{}{path}", self.app_url)).bearer_auth(token);
        if let Some(body) = body {
            request = request.header("Content-Type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map(|bytes| bytes.to_vec()).unwrap_or_default();
        (status, started.elapsed(), bytes)
    }

    /// A Kafka projector first has to join its group: wait until a write round-trips.
    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let body = json!({"userName": format!("ready-{}", uuid::Uuid::new_v4())});
            let (status, _) = self.send(reqwest::Method::POST, "/Users", Some(&body)).await;
            if status == 201 {
                return;
            }
            assert!(Instant::now() < deadline, "pipeline not ready: last status {status}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn command(&self, kind: ResourceKind, id: &str, action: Action) -> Command {
        Command {
            event_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: self.tenant_id.clone(),
            kind,
            resource_id: id.to_owned(),
            issued_at_ms: chrono::Utc::now().timestamp_millis(),
            if_match: None,
            action,
            metadata: CommandMetadata { actor: "scimflow-bench seed".into(), ..Default::default() },
        }
    }

    fn user_command(&self, id: &str, user_name: &str) -> Command {
        let body = json!({"userName": user_name, "active": true});
        let resource = normalize_resource(&self.registry, ResourceKind::User, &body).expect("valid user");
        self.command(ResourceKind::User, id, Action::Create(resource))
    }

    /// Appends `count` commands made by `make(index)` straight to the log (4096 in flight), then a
    /// marker user, and waits until the marker is readable through the API: the tenant's
    /// commands are folded in log order, so all of them are folded by then.
    async fn seed(&self, count: usize, make: impl Fn(usize) -> Command) {
        let mut next = 0;
        while next < count {
            let end = (next + 4096).min(count);
            let commands: Vec<Command> = (next..end).map(&make).collect();
            let appends =
                commands.iter().map(|command| self.log.append(&self.tenant_id, command.encode(), Vec::new()));
            for appended in join_all(appends).await {
                appended.expect("seed append");
            }
            next = end;
        }
        let marker = format!("seed-marker-{}", self.markers.fetch_add(1, Ordering::Relaxed));
        let command = self.user_command(&marker, &format!("{marker}@bench.example"));
        self.log.append(&self.tenant_id, command.encode(), Vec::new()).await.expect("marker append");
        loop {
            let (status, _) = self.send(reqwest::Method::GET, &format!("/Users/{marker}"), None).await;
            if status == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes the run's topics and keyspace (unless `--keep`).
    async fn clean_up(&self, keep: bool) {
        QUIET.store(true, Ordering::Relaxed);
        if keep {
            println!(
                "kept: run {} (topics scimflow.bench.{}.*, keyspace of that run)",
                self.fresh.run, self.fresh.run
            );
            return;
        }
        // With the topics fanout creates, if this run had fanout (absent ones are skipped).
        self.fresh.delete_topics(&fanout_lag::FANOUT_TOPICS).await;
        if let Some(cql) = &self.fresh.cql {
            match scimflow_store::cql::CqlStore::connect(cql.clone()).await {
                Ok(store) => {
                    let drop = format!("DROP KEYSPACE IF EXISTS {}", cql.keyspace);
                    if let Err(error) = store.session().query_unpaged(drop, ()).await {
                        eprintln!("could not drop keyspace {}: {error}", cql.keyspace);
                    }
                }
                Err(error) => eprintln!("could not connect to drop keyspace {}: {error}", cql.keyspace),
            }
        }
    }
}

fn user_id(index: usize) -> String {
    format!("user-{index:08}")
}

fn topology_json(harness: &Harness) -> Value {
    let (log, store) = harness.topology;
    json!({"log": format!("{log:?}").to_lowercase(), "store": format!("{store:?}").to_lowercase()})
}

// ---- writes -------------------------------------------------------------------------------------

fn mean_ms(samples: &[Duration]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / samples.len() as f64
}

async fn bench_writes(harness: &Harness, clients: usize, seconds: u64, other_tenants: &[String]) -> Value {
    *TIMINGS.lock().unwrap() = Some(Timings::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tokens: Vec<&str> =
        std::iter::once(harness.token.as_str()).chain(other_tenants.iter().map(String::as_str)).collect();
    let tokens = &tokens;
    let workers = (0..clients).map(|worker| async move {
        let token = tokens[worker % tokens.len()];
        let mut latencies = Vec::new();
        let mut errors = 0usize;
        let mut sequence = 0usize;
        while Instant::now() < deadline {
            sequence += 1;
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("w{worker}-{sequence}@example.com"), "active": true,
                "emails": [{"value": format!("w{worker}-{sequence}@example.com"), "type": "work", "primary": true}]});
            let (status, elapsed, _) = harness.send_as(token, reqwest::Method::POST, "/Users", Some(&body)).await;
            if status == 201 { latencies.push(elapsed) } else { errors += 1 }
        }
        (latencies, errors)
    });
    let started = Instant::now();
    let results = join_all(workers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let timings = TIMINGS.lock().unwrap().take().unwrap_or_default();
    let errors: usize = results.iter().map(|(_, errors)| errors).sum();
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|(latencies, _)| latencies).collect();
    let acknowledged = latencies.len();
    let mean = mean_ms(&latencies);
    let stats = percentiles(&mut latencies);
    let rate = acknowledged as f64 / elapsed;
    let (log, store) = harness.topology;
    println!(
        "writes on --log {log:?} --store {store:?}: {clients} clients as {} tenant(s), {elapsed:.1} s: \
         {acknowledged} acknowledged ({rate:.0}/s), {errors} errors",
        tokens.len()
    );
    println!(
        "  latency mean {mean:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; RSS {:.0} MiB",
        stats.p50,
        stats.p99,
        stats.max,
        rss_mib()
    );
    let Timings { mut produce, mut fold, mut transaction, commands_per_fold, .. } = timings;
    let produce_mean = mean_ms(&produce);
    let (fold_mean, transaction_mean) = (mean_ms(&fold), mean_ms(&transaction));
    let produce_stats = percentiles(&mut produce);
    let fold_stats = percentiles(&mut fold);
    let transaction_stats = percentiles(&mut transaction);
    let per_fold = commands_per_fold.iter().sum::<u64>() as f64 / commands_per_fold.len().max(1) as f64;
    if log == LogKind::Kafka {
        println!(
            "  produce (Kafka append, acks=all): mean {produce_mean:.2} ms, p50 {:.0} ms, p99 {:.0} ms \
             (whole ms, from CommandsProduced)",
            produce_stats.p50, produce_stats.p99
        );
    }
    println!(
        "  projector: {} rounds of {per_fold:.1} commands on average; fold + store commit mean {fold_mean:.2} ms \
         (p50 {:.2}, p99 {:.2})",
        commands_per_fold.len(),
        fold_stats.p50,
        fold_stats.p99
    );
    if log == LogKind::Kafka {
        println!(
            "  projector transactions (changes + offsets, off the fold loop, merging the rounds queued meanwhile): \
             {} of mean {transaction_mean:.2} ms (p50 {:.2}, p99 {:.2})",
            transaction.len(),
            transaction_stats.p50,
            transaction_stats.p99
        );
    }
    let mut report = json!({"mode": "writes", "topology": topology_json(harness), "clients": clients, "tenants": tokens.len(),
        "seconds": elapsed, "acknowledged": acknowledged, "writes_per_second": rate, "errors": errors,
        "mean_ms": mean, "p50_ms": stats.p50, "p99_ms": stats.p99, "max_ms": stats.max, "rss_mib": rss_mib(),
        "produce_mean_ms": produce_mean, "produce_p50_ms": produce_stats.p50, "produce_p99_ms": produce_stats.p99,
        "folds": commands_per_fold.len(), "commands_per_fold": per_fold,
        "fold_mean_ms": fold_mean, "fold_p50_ms": fold_stats.p50, "fold_p99_ms": fold_stats.p99,
        "transaction_mean_ms": transaction_mean, "transaction_p50_ms": transaction_stats.p50,
        "transaction_p99_ms": transaction_stats.p99});
    if let Value::Object(services) = services_rss(log, store) {
        report.as_object_mut().unwrap().extend(services);
    }
    report
}

// ---- membership ---------------------------------------------------------------------------------

/// Pages every member of `group` with `count=1000`; checks that exactly `expected` members come
/// back in ascending id order, and samples this process's RSS meanwhile.
async fn page_all(harness: &Harness, group: &str, expected: usize) -> Value {
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(Mutex::new(rss_mib()));
    let before = rss_mib();
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let rss = rss_mib();
                {
                    let mut peak = peak.lock().unwrap();
                    *peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut pages = Vec::new();
    let (mut cursor, mut count, mut last): (String, usize, Option<String>) = (String::new(), 0, None);
    loop {
        let path = format!("/Groups/{group}/members?count=1000&cursor={cursor}");
        let (status, elapsed, body) = harness.send_reading(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        pages.push(elapsed);
        let page: Value = serde_json::from_slice(&body).expect("JSON page");
        for member in page["Resources"].as_array().expect("Resources") {
            let id = member["value"].as_str().expect("member value").to_owned();
            assert!(last.as_ref().is_none_or(|previous| *previous < id), "members in ascending id order");
            last = Some(id);
            count += 1;
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let total = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let peak = *peak.lock().unwrap();
    assert_eq!(count, expected, "paging returns every member exactly once");
    let stats = percentiles(&mut pages);
    println!(
        "  page all {count} members: {} pages in {total:.1} s, page p50 {:.2} ms p99 {:.2} ms; RSS {before:.0} MiB \
         before, peak {peak:.0} MiB",
        pages.len(),
        stats.p50,
        stats.p99
    );
    json!({"members": count, "pages": pages.len(), "seconds": total, "page_p50_ms": stats.p50,
           "page_p99_ms": stats.p99, "rss_before_mib": before, "rss_peak_mib": peak})
}

/// Grows one group per size (ascending, recording the RSS after each), then measures every size
/// side by side: each round PATCHes add and remove one member, and reads, on every group in turn
/// (starting with a different group each round), so a noisy moment of the shared machine lands on
/// all sizes alike and the ratios compare sizes, not moments.
async fn bench_membership(harness: &Harness, sizes: Vec<usize>, iterations: usize, page: bool) -> Value {
    let mut sizes = sizes;
    sizes.sort_unstable();
    sizes.dedup();
    let largest = sizes.last().copied().unwrap_or(0);
    let spare = iterations.max(1);
    let (log, store) = harness.topology;
    println!(
        "seeding {} users and {} groups on --log {log:?} --store {store:?} ...",
        largest + spare,
        sizes.len()
    );
    let seeding = Instant::now();
    harness
        .seed(largest + spare, |index| {
            harness.user_command(&user_id(index), &format!("{}@example.com", user_id(index)))
        })
        .await;
    let seeded_users = seeding.elapsed().as_secs_f64();
    println!("  seeded in {seeded_users:.1} s ({:.0} users/s)", (largest + spare) as f64 / seeded_users);

    let mut rows = Vec::new();
    for &size in &sizes {
        let group_id = group_of(size);
        let group = normalize_resource(
            &harness.registry,
            ResourceKind::Group,
            &json!({"displayName": format!("Everyone ({size})")}),
        )
        .unwrap();
        harness
            .seed(1, |_| harness.command(ResourceKind::Group, &group_id, Action::Create(group.clone())))
            .await;
        let growing = Instant::now();
        grow_group(harness, &group_id, size).await;
        let grown_in = growing.elapsed().as_secs_f64();
        let rss = rss_mib();
        let services = services_rss(log, store);
        println!(
            "group of {size} members grown in {grown_in:.1} s ({:.0} members/s); RSS {rss:.0} MiB (this \
             process: API + projector); services {services}",
            size as f64 / grown_in.max(0.001)
        );
        rows.push(json!({"members": size, "grow_seconds": grown_in, "rss_mib": rss, "services": services}));
    }

    println!("measuring {iterations} rounds over every size (after 20 warm-up rounds) ...");
    let mut samples: Vec<[Vec<Duration>; 3]> = sizes.iter().map(|_| Default::default()).collect();
    for round in 0..iterations + 20 {
        let newcomer = user_id(largest + (round % spare));
        let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Add", "path": "members", "value": [{"value": newcomer}]}]});
        let remove = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": format!("members[value eq \"{newcomer}\"]")}]});
        for turn in 0..sizes.len() {
            let which = (round + turn) % sizes.len();
            let path = format!("/Groups/{}", group_of(sizes[which]));
            let (add_status, add_time) = harness.send(reqwest::Method::PATCH, &path, Some(&add)).await;
            let (remove_status, remove_time) =
                harness.send(reqwest::Method::PATCH, &path, Some(&remove)).await;
            let (read_status, read_time) =
                harness.send(reqwest::Method::GET, &format!("{path}?excludedAttributes=members"), None).await;
            assert!(
                add_status < 300 && remove_status < 300 && read_status == 200,
                "{add_status} {remove_status} {read_status}"
            );
            if round >= 20 {
                let [adds, removes, reads] = &mut samples[which];
                adds.push(add_time);
                removes.push(remove_time);
                reads.push(read_time);
            }
        }
    }
    let rss_after = rss_mib();
    for ((row, [adds, removes, reads]), &size) in rows.iter_mut().zip(samples.iter_mut()).zip(&sizes) {
        let (add, remove, read) = (percentiles(adds), percentiles(removes), percentiles(reads));
        println!(
            "  {size:>9} members: PATCH add p50 {:.2} p99 {:.2} ms | remove p50 {:.2} p99 {:.2} ms | \
             GET excludedAttributes=members p50 {:.2} p99 {:.2} ms",
            add.p50, add.p99, remove.p50, remove.p99, read.p50, read.p99
        );
        for (key, value) in [
            ("add_p50_ms", add.p50),
            ("add_p99_ms", add.p99),
            ("remove_p50_ms", remove.p50),
            ("remove_p99_ms", remove.p99),
            ("get_excluded_p50_ms", read.p50),
            ("get_excluded_p99_ms", read.p99),
        ] {
            row[key] = json!(value);
        }
    }
    println!("  RSS after measuring {rss_after:.0} MiB");
    if page {
        for (row, &size) in rows.iter_mut().zip(&sizes) {
            row["page_all"] = page_all(harness, &group_of(size), size).await;
        }
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let ratio = |key: &str| last[key].as_f64().unwrap_or(0.0) / first[key].as_f64().unwrap_or(1.0);
        println!(
            "ratio largest/smallest: add p50 {:.2}, add p99 {:.2}, remove p50 {:.2}, remove p99 {:.2}, \
             GET p50 {:.2}, RSS {:.2}",
            ratio("add_p50_ms"),
            ratio("add_p99_ms"),
            ratio("remove_p50_ms"),
            ratio("remove_p99_ms"),
            ratio("get_excluded_p50_ms"),
            ratio("rss_mib")
        );
    }
    json!({"mode": "membership", "topology": topology_json(harness), "iterations": iterations,
           "seed_users_seconds": seeded_users, "rss_after_measuring_mib": rss_after, "sizes": rows})
}

fn group_of(size: usize) -> String {
    format!("group-{size}")
}

/// Adds users `0..size` to `group_id`: commands of 1000 members each, at most 100 of them
/// (100,000 members) per seeding step.
async fn grow_group(harness: &Harness, group_id: &str, size: usize) {
    let mut members = 0usize;
    while members < size {
        let step_end = (members + 100_000).min(size);
        let first = members;
        let commands = (step_end - first).div_ceil(1000);
        harness
            .seed(commands, |command| {
                let from = first + command * 1000;
                let to = (from + 1000).min(step_end);
                let values: Vec<Value> = (from..to).map(|index| json!({"value": user_id(index)})).collect();
                let patch = json!({"Operations": [{"op": "add", "path": "members", "value": values}]});
                let operations = parse_patch_request(&patch).unwrap();
                harness.command(ResourceKind::Group, group_id, Action::Patch(operations))
            })
            .await;
        members = step_end;
    }
}

#[tokio::main]
async fn main() {
    init_tracing();
    let cli = Cli::parse();
    let receiver = match cli.mode {
        Mode::FanoutLag { .. } => Some(fanout_lag::Receiver::start().await),
        _ => None,
    };
    let subscriptions = receiver.as_ref().map(|receiver| receiver.subscriptions(cli.log));
    let mut noisy_tenant = None;
    let mut busy_tenant = None;
    let mut other_writers = Vec::new();
    let harness = start(&cli, subscriptions, |tenants| match &cli.mode {
        Mode::Noisy(settings) => {
            let (config, tenant) = noisy::configure(tenants, settings);
            noisy_tenant = Some(tenant);
            config
        }
        Mode::Backlog(_) => {
            let (tenant, token) = tenants.create("busy-a", 0).expect("tenant A");
            busy_tenant = Some((tenant.id, token));
            ApiConfig::default()
        }
        Mode::Writes { tenants: count, .. } => {
            other_writers = (1..*count)
                .map(|index| tenants.create(&format!("writes-{index}"), 0).expect("tenant").1)
                .collect();
            ApiConfig::default()
        }
        _ => ApiConfig::default(),
    })
    .await;
    let (report, passed) = match cli.mode.clone() {
        Mode::FanoutLag { rate, seconds } => {
            let receiver = receiver.as_ref().expect("started for this mode");
            (fanout_lag::bench_fanout_lag(&harness, receiver, rate, seconds).await, true)
        }
        Mode::Writes { clients, seconds, .. } => {
            (bench_writes(&harness, clients, seconds, &other_writers).await, true)
        }
        Mode::Membership { sizes, iterations, page_all } => {
            (bench_membership(&harness, sizes, iterations, page_all).await, true)
        }
        Mode::Noisy(settings) => {
            let noisy_tenant = noisy_tenant.expect("tenant A is created with the config");
            noisy::bench_noisy(&harness, &noisy_tenant, &settings).await
        }
        Mode::Backlog(settings) => {
            let (busy_id, busy_token) = busy_tenant.expect("tenant A is created with the config");
            let share = cli.tenant_share.unwrap_or(match cli.log {
                LogKind::Embedded => DEFAULT_TENANT_SHARE,
                LogKind::Kafka => KafkaProjectorConfig::DEFAULT_TENANT_SHARE,
            });
            (backlog::bench_backlog(&harness, &busy_id, &busy_token, &settings, share).await, true)
        }
    };
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).expect("write JSON report");
        println!("wrote {}", path.display());
    }
    harness.clean_up(cli.keep).await;
    if !passed {
        std::process::exit(1);
    }
}
