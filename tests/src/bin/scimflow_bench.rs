//! `scimflow-bench`: benchmarks of the embedded pipeline over real HTTP, server in-process.
//!
//! - `writes`: acknowledged writes per second and latency with N concurrent clients.
//! - `membership`: a group grown to each size (default 1k, 100k, 1M members); PATCH add/remove of
//!   one member, and `GET ?excludedAttributes=members`, latency at each size, and the process RSS.
//!
//! Groups are grown by appending commands to the log directly (the same commands the API would
//! append, folded by the same projector), because creating a million users one HTTP request at a
//! time would measure setup rather than the behaviour under test. Everything measured goes through
//! HTTP. Results print as a table and, with `--json`, as JSON.

use clap::{Parser, Subcommand};
use futures_util::future::join_all;
use scimflow::embedded::EmbeddedApp;
use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::patch::parse_patch_request;
use scimflow_core::resource::normalize_resource;
use scimflow_core::{ResourceKind, SchemaRegistry};
use scimflow_ingest_api::ApiConfig;
use scimflow_log::CommandLog;
use scimflow_store::StoreWriter;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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
}

#[derive(Subcommand)]
enum Mode {
    /// Acknowledged POST /Users per second with concurrent clients.
    Writes {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// PATCH latency and RSS as one group grows.
    Membership {
        #[arg(long, value_delimiter = ',', default_values_t = vec![1_000, 100_000, 1_000_000])]
        sizes: Vec<usize>,
        /// Measured PATCH pairs (add + remove one member) per size.
        #[arg(long, default_value_t = 300)]
        iterations: usize,
    },
}

struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
}

fn percentiles(samples: &mut [Duration]) -> Percentiles {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    Percentiles { p50: at(0.50), p99: at(0.99), max: at(1.0) }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

struct Harness {
    app_url: String,
    token: String,
    tenant_id: String,
    client: reqwest::Client,
    log: scimflow_log::embedded::EmbeddedLog,
    store: scimflow_store::embedded::EmbeddedStore,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = EmbeddedApp::build(dir.path(), "127.0.0.1:0", ApiConfig::default()).await.expect("app");
    let (tenant, token) = app.tenants.create("bench", 0).expect("tenant");
    let harness = Harness {
        app_url: app.base_url.clone(),
        token,
        tenant_id: tenant.id,
        client: reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap(),
        log: app.log.clone(),
        store: app.store.clone(),
        _dir: dir,
    };
    tokio::spawn(app.run_until_stopped());
    harness
}

impl Harness {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Duration) {
        let started = Instant::now();
        let mut request = self.client.request(method, format!("{}{path}", self.app_url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.header("Content-Type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let _ = response.bytes().await;
        (status, started.elapsed())
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

    /// Appends commands straight to the log (many in flight) and waits until all are folded.
    async fn seed(&self, commands: Vec<Command>) {
        for chunk in commands.chunks(4096) {
            let appends = chunk.iter().map(|command| self.log.append(&self.tenant_id, command.encode(), Vec::new()));
            for appended in join_all(appends).await {
                appended.expect("seed append");
            }
        }
        let end = self.log.end_offset();
        while self.store.next_offset(0).expect("store position") < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn user_id(index: usize) -> String {
    format!("user-{index:08}")
}

async fn bench_writes(clients: usize, seconds: u64) -> Value {
    let harness = start().await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..clients).map(|worker| {
        let harness = &harness;
        async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut sequence = 0usize;
            while Instant::now() < deadline {
                sequence += 1;
                let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("w{worker}-{sequence}@example.com"), "active": true,
                    "emails": [{"value": format!("w{worker}-{sequence}@example.com"), "type": "work", "primary": true}]});
                let (status, elapsed) = harness.send(reqwest::Method::POST, "/Users", Some(&body)).await;
                if status == 201 { latencies.push(elapsed) } else { errors += 1 }
            }
            (latencies, errors)
        }
    });
    let started = Instant::now();
    let results = join_all(workers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let errors: usize = results.iter().map(|(_, errors)| errors).sum();
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|(latencies, _)| latencies).collect();
    let acknowledged = latencies.len();
    let stats = percentiles(&mut latencies);
    let rate = acknowledged as f64 / elapsed;
    println!("writes: {clients} clients, {elapsed:.1} s: {acknowledged} acknowledged ({rate:.0}/s), {errors} errors");
    println!("  latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; RSS {:.0} MiB", stats.p50, stats.p99, stats.max, rss_mib());
    json!({"mode": "writes", "clients": clients, "seconds": elapsed, "acknowledged": acknowledged,
           "writes_per_second": rate, "errors": errors, "p50_ms": stats.p50, "p99_ms": stats.p99,
           "max_ms": stats.max, "rss_mib": rss_mib()})
}

async fn bench_membership(sizes: Vec<usize>, iterations: usize) -> Value {
    let harness = start().await;
    let registry = SchemaRegistry::standard();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let spare = iterations.max(1);
    println!("seeding {} users ...", largest + spare);
    let seeding = Instant::now();
    let users: Vec<Command> = (0..largest + spare)
        .map(|index| {
            let body = json!({"userName": format!("{}@example.com", user_id(index)), "active": true});
            let resource = normalize_resource(&registry, ResourceKind::User, &body).expect("valid user");
            harness.command(ResourceKind::User, &user_id(index), Action::Create(resource))
        })
        .collect();
    harness.seed(users).await;
    let group = normalize_resource(&registry, ResourceKind::Group, &json!({"displayName": "Everyone"})).unwrap();
    harness.seed(vec![harness.command(ResourceKind::Group, "big-group", Action::Create(group))]).await;
    println!("  seeded in {:.1} s", seeding.elapsed().as_secs_f64());

    let mut rows = Vec::new();
    let mut members = 0usize;
    for size in sizes {
        let growing = Instant::now();
        let mut grow = Vec::new();
        while members < size {
            let end = (members + 1000).min(size);
            let values: Vec<Value> = (members..end).map(|index| json!({"value": user_id(index)})).collect();
            let patch = json!({"Operations": [{"op": "add", "path": "members", "value": values}]});
            let operations = parse_patch_request(&patch).unwrap();
            grow.push(harness.command(ResourceKind::Group, "big-group", Action::Patch(operations)));
            members = end;
        }
        harness.seed(grow).await;
        println!("group at {size} members (grown in {:.1} s); measuring ...", growing.elapsed().as_secs_f64());
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        let mut reads = Vec::new();
        for iteration in 0..iterations + 20 {
            let newcomer = user_id(largest + (iteration % spare));
            let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Add", "path": "members", "value": [{"value": newcomer}]}]});
            let remove = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Remove", "path": format!("members[value eq \"{newcomer}\"]")}]});
            let (add_status, add_time) = harness.send(reqwest::Method::PATCH, "/Groups/big-group", Some(&add)).await;
            let (remove_status, remove_time) =
                harness.send(reqwest::Method::PATCH, "/Groups/big-group", Some(&remove)).await;
            let (read_status, read_time) =
                harness.send(reqwest::Method::GET, "/Groups/big-group?excludedAttributes=members", None).await;
            assert!(add_status < 300 && remove_status < 300 && read_status == 200, "{add_status} {remove_status} {read_status}");
            if iteration >= 20 {
                adds.push(add_time);
                removes.push(remove_time);
                reads.push(read_time);
            }
        }
        let (add, remove, read) = (percentiles(&mut adds), percentiles(&mut removes), percentiles(&mut reads));
        let rss = rss_mib();
        println!("  PATCH add    p50 {:.2} ms  p99 {:.2} ms", add.p50, add.p99);
        println!("  PATCH remove p50 {:.2} ms  p99 {:.2} ms", remove.p50, remove.p99);
        println!("  GET excludedAttributes=members p50 {:.2} ms  p99 {:.2} ms", read.p50, read.p99);
        println!("  RSS {rss:.0} MiB");
        rows.push(json!({"members": size, "add_p50_ms": add.p50, "add_p99_ms": add.p99,
            "remove_p50_ms": remove.p50, "remove_p99_ms": remove.p99,
            "get_excluded_p50_ms": read.p50, "get_excluded_p99_ms": read.p99, "rss_mib": rss}));
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let ratio = |key: &str| last[key].as_f64().unwrap_or(0.0) / first[key].as_f64().unwrap_or(1.0);
        println!("ratio largest/smallest: add p99 {:.2}, remove p99 {:.2}, add p50 {:.2}, remove p50 {:.2}",
            ratio("add_p99_ms"), ratio("remove_p99_ms"), ratio("add_p50_ms"), ratio("remove_p50_ms"));
    }
    json!({"mode": "membership", "iterations": iterations, "sizes": rows})
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let report = match cli.mode {
        Mode::Writes { clients, seconds } => bench_writes(clients, seconds).await,
        Mode::Membership { sizes, iterations } => bench_membership(sizes, iterations).await,
    };
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).expect("write JSON report");
        println!("wrote {}", path.display());
    }
}
