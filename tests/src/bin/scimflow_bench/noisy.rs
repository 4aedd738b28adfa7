//! `noisy`: the noisy-neighbour benchmark on the real pipeline.
//!
//! Tenant B (the harness's tenant) runs a steady, realistic mix the whole time: list by filter
//! (`GET /Users?filter=userName eq ..`, half of its requests), `POST /Users` (a quarter) and a
//! group membership `PATCH` (a quarter), at `--b-rate` requests per second, under the default
//! limits every tenant gets ([`LimitsConfig::recommended`]: 50 req/s, burst 100, 64 at once).
//! Tenant A has a per-tenant override of `--a-limit` req/s (burst the same, 64 at once) and, in
//! every other phase, sends `POST /Users` at ten times that: an import storm.
//!
//! Both loads are open loop: each request starts on its schedule (`k / rate` after its window
//! opened) as a task of its own, whatever the latency of the others, so a slow server cannot
//! slow the load and hide its own latency. Each tenant's load runs on a thread and runtime of
//! its own, so B's latency does not include waiting behind A's tasks in the client.
//!
//! The run alternates phases: B alone, B + A, B alone, B + A, ... (`--pairs` pairs of
//! `--phase-seconds`), after a warm-up of B alone that is not measured. A B request belongs to
//! the phase it started in. Machines are shared and noisy, so one B-alone / B + A comparison is
//! not a measurement: each adjacent pair gives a p99 ratio (with A / alone) and the result is the
//! median of those ratios, with every pair printed.
//!
//! Checked (exit code 1 if not): the median p99 ratio is at most 1.5; A got 429s, each with a
//! `Retry-After` of at least one second; every request of both tenants got an answer (sent ==
//! answered, no transport errors); every B request and every admitted A request got a 2xx.

use super::{Harness, LogKind, StoreKind, cpu_seconds_of, percentiles, service_pid, user_id};
use clap::Args;
use futures_util::future::join_all;
use scimflow_core::ResourceKind;
use scimflow_core::command::Action;
use scimflow_core::resource::normalize_resource;
use scimflow_ingest_api::ApiConfig;
use scimflow_ingest_api::limits::{LimitsConfig, TenantLimits};
use scimflow_store::tenants::TenantDirectory;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(Args, Clone, Debug)]
pub struct NoisySettings {
    /// Tenant B's steady load, requests per second (below its default limit of 50).
    #[arg(long, default_value_t = 40)]
    b_rate: u32,
    /// Tenant A's rate limit (req/s, burst the same); A sends `--a-factor` (10) times this.
    #[arg(long, default_value_t = 25)]
    a_limit: u32,
    /// Tenant A's burst (default: its limit). `--a-burst 1` takes away the burst of admitted
    /// writes at the start of each A phase, to tell its cost from that of the rejected requests.
    #[arg(long)]
    a_burst: Option<u32>,
    /// How many times its limit A sends. Below 10 only to tell the cost of A's admitted work
    /// (`--a-factor 1`) from that of its rejected requests.
    #[arg(long, default_value_t = 10)]
    a_factor: u32,
    /// Pairs of phases (B alone, then B + A).
    #[arg(long, default_value_t = 5)]
    pairs: u32,
    /// Length of each phase.
    #[arg(long, default_value_t = 6)]
    phase_seconds: u64,
    /// Users seeded for B (read by filter, added to groups).
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Groups seeded for B (their membership is patched).
    #[arg(long, default_value_t = 20)]
    groups: usize,
}

/// The p99 ratio target (B with A / B alone).
const TARGET_RATIO: f64 = 1.5;
/// B's requests before the first phase, not measured (connections, caches, allocator).
const WARM_UP: Duration = Duration::from_secs(3);

/// Creates tenant A with its override; B (`bench`) keeps the default limits. Returns the API
/// config and A's token.
pub fn configure(tenants: &TenantDirectory, settings: &NoisySettings) -> (ApiConfig, String) {
    let (noisy, token) = tenants.create("noisy-a", 0).expect("tenant A");
    let mut limits = LimitsConfig::recommended();
    limits.tenants.insert(
        noisy.id,
        TenantLimits {
            requests_per_second: settings.a_limit,
            burst: settings.a_burst.unwrap_or(settings.a_limit),
            max_concurrent: 64,
        },
    );
    (ApiConfig { limits, ..ApiConfig::default() }, token)
}

/// One request of a load: what to send.
struct Request {
    /// What the request does, for the report of the slowest ones.
    kind: &'static str,
    method: reqwest::Method,
    path: String,
    body: Option<String>,
}

#[derive(Debug)]
enum Outcome {
    Success,
    /// 429, with the `Retry-After` seconds when the header was there and a whole number ≥ 1.
    Limited(Option<u64>),
    Other(u16),
    Transport(String),
}

struct Sample {
    kind: &'static str,
    started: Instant,
    latency: Duration,
    outcome: Outcome,
}

/// What one load sent and what came back.
struct LoadResult {
    sent: usize,
    samples: Vec<Sample>,
}

/// Runs an open-loop load on a thread and current-thread runtime of its own: `rate` requests
/// per second in each window, request `k` of a window started `k / rate` after the window opens
/// (late ticks fire at once: the schedule is kept, not the spacing).
fn spawn_load(
    base_url: String,
    token: String,
    rate: u32,
    windows: Vec<(Instant, Instant)>,
    make: impl Fn(u64) -> Request + Send + 'static,
) -> std::thread::JoinHandle<LoadResult> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            // Idle pooled connections are dropped before actix's 5 s keep-alive closes them:
            // otherwise a request written on a connection the server is closing fails in
            // transport (the keep-alive race), a client setting rather than a lost request.
            let client = reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            let mut tasks = Vec::new();
            let mut sequence = 0_u64;
            for (opens, closes) in windows {
                let mut due = opens;
                while due < closes {
                    tokio::time::sleep_until(due.into()).await;
                    let request = make(sequence);
                    sequence += 1;
                    let mut builder = client
                        .request(request.method, format!("{base_url}{}", request.path))
                        .bearer_auth(&token);
                    if let Some(body) = request.body {
                        builder = builder.header("Content-Type", "application/scim+json").body(body);
                    }
                    tasks.push(tokio::spawn(send(request.kind, builder)));
                    due += interval;
                }
            }
            let sent = tasks.len();
            let samples =
                join_all(tasks).await.into_iter().map(|sample| sample.expect("request task")).collect();
            LoadResult { sent, samples }
        })
    })
}

async fn send(kind: &'static str, request: reqwest::RequestBuilder) -> Sample {
    let started = Instant::now();
    let outcome = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .filter(|seconds| *seconds >= 1);
            match response.bytes().await {
                Err(error) => Outcome::Transport(error.to_string()),
                Ok(_) if (200..300).contains(&status) => Outcome::Success,
                Ok(_) if status == 429 => Outcome::Limited(retry_after),
                Ok(_) => Outcome::Other(status),
            }
        }
        Err(error) => Outcome::Transport(format!("{error:?}")),
    };
    Sample { kind, started, latency: started.elapsed(), outcome }
}

/// B's mix over its seeded users and groups (see the module docs).
fn b_request(settings: &NoisySettings, sequence: u64) -> Request {
    let index = sequence as usize / 4;
    match sequence % 4 {
        1 => Request {
            kind: "POST /Users",
            method: reqwest::Method::POST,
            path: "/Users".into(),
            body: Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("b-{sequence}-{}@example.com", uuid::Uuid::new_v4().simple()),
                    "active": true})
                .to_string(),
            ),
        },
        3 => {
            let member = user_id(index % settings.users);
            Request {
                kind: "PATCH /Groups",
                method: reqwest::Method::PATCH,
                path: format!("/Groups/{}", group_id(index % settings.groups)),
                body: Some(
                    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": member}]}]})
                    .to_string(),
                ),
            }
        }
        _ => {
            // `userName eq "user-…@example.com"`, percent-encoded.
            let user = user_id((sequence as usize * 7919) % settings.users);
            Request {
                kind: "GET /Users?filter",
                method: reqwest::Method::GET,
                path: format!("/Users?filter=userName%20eq%20%22{user}%40example.com%22"),
                body: None,
            }
        }
    }
}

/// A's import storm: new users, as fast as it is told.
fn a_request(sequence: u64) -> Request {
    Request {
        kind: "POST /Users",
        method: reqwest::Method::POST,
        path: "/Users".into(),
        body: Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("a-{sequence}-{}@example.com", uuid::Uuid::new_v4().simple()),
                "active": true})
            .to_string(),
        ),
    }
}

fn group_id(index: usize) -> String {
    format!("noisy-group-{index:03}")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The processes whose CPU time is measured per phase: this one (API, projector and both
/// clients) and the local broker and database when the run uses them.
fn measured_processes(log: LogKind, store: StoreKind) -> Vec<(&'static str, String)> {
    let mut processes = vec![("this process", "self".to_owned())];
    if log == LogKind::Kafka
        && let Some(pid) = service_pid("kafka")
    {
        processes.push(("Kafka", pid));
    }
    if store == StoreKind::Cql
        && let Some(pid) = service_pid("cassandra")
    {
        processes.push(("Cassandra", pid));
    }
    processes
}

fn cpu_seconds(processes: &[(&'static str, String)]) -> Vec<f64> {
    processes.iter().map(|(_, pid)| cpu_seconds_of(pid).unwrap_or(0.0)).collect()
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 }
}

/// Counts of one tenant's answers.
#[derive(Default)]
struct Tally {
    success: usize,
    limited: usize,
    limited_without_retry_after: usize,
    other: usize,
    transport: usize,
}

fn tally(samples: &[Sample]) -> Tally {
    let mut tally = Tally::default();
    for sample in samples {
        match &sample.outcome {
            Outcome::Success => tally.success += 1,
            Outcome::Limited(retry_after) => {
                tally.limited += 1;
                tally.limited_without_retry_after += usize::from(retry_after.is_none());
            }
            Outcome::Other(_) => tally.other += 1,
            Outcome::Transport(_) => tally.transport += 1,
        }
    }
    tally
}

/// Runs the benchmark; returns the JSON report and whether every target was met.
pub async fn bench_noisy(harness: &Harness, noisy_token: &str, settings: &NoisySettings) -> (Value, bool) {
    let (log, store) = harness.topology;
    let seeding = Instant::now();
    harness
        .seed(settings.users, |index| {
            harness.user_command(&user_id(index), &format!("{}@example.com", user_id(index)))
        })
        .await;
    harness
        .seed(settings.groups, |index| {
            let group = normalize_resource(
                &harness.registry,
                ResourceKind::Group,
                &json!({"displayName": format!("Noisy group {index}")}),
            )
            .expect("valid group");
            harness.command(ResourceKind::Group, &group_id(index), Action::Create(group))
        })
        .await;
    let load_before = load_average();
    let a_rate = settings.a_limit * settings.a_factor;
    println!(
        "noisy neighbour on --log {log:?} --store {store:?}: B at {} req/s (limit 50/s, burst 100), A limited to \
         {} req/s and sending {a_rate} req/s; {} pairs of {} s phases; seeded {} users and {} groups in {:.1} s; \
         load average {load_before}",
        settings.b_rate,
        settings.a_limit,
        settings.pairs,
        settings.phase_seconds,
        settings.users,
        settings.groups,
        seeding.elapsed().as_secs_f64()
    );

    let phase = Duration::from_secs(settings.phase_seconds);
    let phases = 2 * settings.pairs as usize;
    let warm_up_starts = Instant::now() + Duration::from_millis(200);
    let first_phase = warm_up_starts + WARM_UP;
    let phase_start = |index: usize| first_phase + phase * index as u32;
    let a_windows: Vec<(Instant, Instant)> = (0..settings.pairs as usize)
        .map(|pair| (phase_start(2 * pair + 1), phase_start(2 * pair + 2)))
        .collect();
    let b_settings = settings.clone();
    let b_load = spawn_load(
        harness.app_url.clone(),
        harness.token.clone(),
        settings.b_rate,
        vec![(warm_up_starts, phase_start(phases))],
        move |sequence| b_request(&b_settings, sequence),
    );
    let a_load = spawn_load(harness.app_url.clone(), noisy_token.to_owned(), a_rate, a_windows, a_request);

    // This process's CPU time per phase (API, projector and both clients): what A's phases cost.
    let processes = measured_processes(log, store);
    let mut cpu_by_phase: Vec<Vec<f64>> = Vec::with_capacity(phases);
    tokio::time::sleep_until(first_phase.into()).await;
    let mut cpu_before = cpu_seconds(&processes);
    for index in 0..phases {
        tokio::time::sleep_until(phase_start(index + 1).into()).await;
        let cpu_now = cpu_seconds(&processes);
        cpu_by_phase.push(cpu_now.iter().zip(&cpu_before).map(|(now, before)| now - before).collect());
        cpu_before = cpu_now;
    }
    let (b, a) = tokio::task::spawn_blocking(move || {
        (b_load.join().expect("B's load"), a_load.join().expect("A's load"))
    })
    .await
    .expect("loads");
    let load_after = load_average();

    for sample in b.samples.iter().chain(&a.samples) {
        match &sample.outcome {
            Outcome::Transport(error) => eprintln!("transport error: {error}"),
            Outcome::Other(status) => eprintln!("unexpected status {status}"),
            _ => {}
        }
    }
    let mut b_samples_by_phase: Vec<Vec<&Sample>> = vec![Vec::new(); phases];
    for sample in &b.samples {
        if sample.started < first_phase {
            continue;
        }
        let index = ((sample.started - first_phase).as_secs_f64() / phase.as_secs_f64()) as usize;
        if index < phases {
            b_samples_by_phase[index].push(sample);
        }
    }
    let mut b_by_phase: Vec<Vec<Duration>> = b_samples_by_phase
        .iter()
        .map(|samples| samples.iter().map(|sample| sample.latency).collect())
        .collect();
    let mut a_by_phase: Vec<Vec<&Sample>> = vec![Vec::new(); phases];
    for sample in &a.samples {
        let index = (sample.started.saturating_duration_since(first_phase).as_secs_f64()
            / phase.as_secs_f64()) as usize;
        a_by_phase[index.min(phases - 1)].push(sample);
    }

    println!(
        "pair | B alone p50 / p99 (n) | B with A p50 / p99 (n) | p99 ratio | p50 ratio | A 2xx / 429 | CPU s alone / with A"
    );
    let mut pairs = Vec::new();
    let (mut p99_ratios, mut p50_ratios) = (Vec::new(), Vec::new());
    let (mut all_alone, mut all_with) = (Vec::new(), Vec::new());
    for pair in 0..settings.pairs as usize {
        let (alone_index, with_index) = (2 * pair, 2 * pair + 1);
        all_alone.extend_from_slice(&b_by_phase[alone_index]);
        all_with.extend_from_slice(&b_by_phase[with_index]);
        let (alone_count, with_count) = (b_by_phase[alone_index].len(), b_by_phase[with_index].len());
        let alone = percentiles(&mut b_by_phase[alone_index]);
        let with = percentiles(&mut b_by_phase[with_index]);
        let (p99_ratio, p50_ratio) = (with.p99 / alone.p99, with.p50 / alone.p50);
        p99_ratios.push(p99_ratio);
        p50_ratios.push(p50_ratio);
        let a_success =
            a_by_phase[with_index].iter().filter(|sample| matches!(sample.outcome, Outcome::Success)).count();
        let a_limited = a_by_phase[with_index]
            .iter()
            .filter(|sample| matches!(sample.outcome, Outcome::Limited(_)))
            .count();
        println!(
            "{:>4} | {:.2} / {:.2} ms ({alone_count}) | {:.2} / {:.2} ms ({with_count}) | {p99_ratio:.2} | \
             {p50_ratio:.2} | {a_success} / {a_limited} | {:.2} / {:.2}",
            pair + 1,
            alone.p50,
            alone.p99,
            with.p50,
            with.p99,
            cpu_by_phase[alone_index][0],
            cpu_by_phase[with_index][0]
        );
        pairs.push(json!({"pair": pair + 1,
            "alone": {"p50_ms": alone.p50, "p99_ms": alone.p99, "max_ms": alone.max, "requests": alone_count,
                      "cpu_seconds": cpu_by_phase[alone_index][0]},
            "with_a": {"p50_ms": with.p50, "p99_ms": with.p99, "max_ms": with.max, "requests": with_count,
                       "cpu_seconds": cpu_by_phase[with_index][0], "a_2xx": a_success, "a_429": a_limited},
            "p99_ratio": p99_ratio, "p50_ratio": p50_ratio}));
    }
    // The p99 of a phase is its third-slowest request: what they were and when they started
    // tells a burst at the start of A's phase from a steady cost.
    println!("B's slowest requests per phase (latency ms, kind, ms into the phase):");
    for (index, samples) in b_samples_by_phase.iter_mut().enumerate() {
        samples.sort_by_key(|sample| std::cmp::Reverse(sample.latency));
        let opens = phase_start(index);
        let slowest: Vec<String> = samples
            .iter()
            .take(4)
            .map(|sample| {
                format!(
                    "{:.1} {} @{}",
                    sample.latency.as_secs_f64() * 1000.0,
                    sample.kind,
                    sample.started.saturating_duration_since(opens).as_millis()
                )
            })
            .collect();
        let label = if index % 2 == 0 { "alone " } else { "with A" };
        println!("  {} {label}: {}", index / 2 + 1, slowest.join(", "));
    }
    // What A's phases cost each process: on a shared machine, B's tail follows the CPU left.
    let mut cpu_report = json!({});
    let mut cpu_lines = Vec::new();
    for (index, (name, _)) in processes.iter().enumerate() {
        let mut alone: Vec<f64> = cpu_by_phase.iter().step_by(2).map(|cpu| cpu[index]).collect();
        let mut with: Vec<f64> = cpu_by_phase.iter().skip(1).step_by(2).map(|cpu| cpu[index]).collect();
        let (alone, with) = (median(&mut alone), median(&mut with));
        cpu_lines.push(format!("{name} {alone:.2} → {with:.2}"));
        cpu_report[*name] = json!({"alone": alone, "with_a": with});
    }
    println!(
        "CPU seconds per {} s phase (median), B alone → with A: {}",
        settings.phase_seconds,
        cpu_lines.join("; ")
    );
    let median_p99_ratio = median(&mut p99_ratios);
    let median_p50_ratio = median(&mut p50_ratios);
    let (pooled_alone, pooled_with) = (percentiles(&mut all_alone), percentiles(&mut all_with));
    let pooled_p99_ratio = pooled_with.p99 / pooled_alone.p99;

    let (b_tally, a_tally) = (tally(&b.samples), tally(&a.samples));
    let a_seconds = (settings.pairs as u64 * settings.phase_seconds) as f64;
    let a_admitted_rate = a_tally.success as f64 / a_seconds;
    let unanswered =
        (b.sent - b.samples.len()) + (a.sent - a.samples.len()) + b_tally.transport + a_tally.transport;
    println!(
        "median p99 ratio {median_p99_ratio:.2} (target ≤ {TARGET_RATIO}), median p50 ratio {median_p50_ratio:.2}; \
         pooled over all phases: B alone p99 {:.2} ms, with A {:.2} ms (ratio {pooled_p99_ratio:.2})",
        pooled_alone.p99, pooled_with.p99
    );
    println!(
        "B: sent {} answered {} (2xx {}, 429 {}, other {}, transport errors {})",
        b.sent,
        b.samples.len() - b_tally.transport,
        b_tally.success,
        b_tally.limited,
        b_tally.other,
        b_tally.transport
    );
    println!(
        "A: sent {} answered {} (2xx {}, 429 {} of which without Retry-After {}, other {}, transport errors {}); \
         admitted {a_admitted_rate:.1} req/s against its limit of {} (plus the burst of {} once per phase)",
        a.sent,
        a.samples.len() - a_tally.transport,
        a_tally.success,
        a_tally.limited,
        a_tally.limited_without_retry_after,
        a_tally.other,
        a_tally.transport,
        settings.a_limit,
        settings.a_burst.unwrap_or(settings.a_limit)
    );
    println!("load average before {load_before}, after {load_after}");

    let checks = [
        ("median p99 ratio within 1.5", median_p99_ratio <= TARGET_RATIO),
        ("A got 429s", a_tally.limited > 0 || settings.a_factor <= 1),
        ("every 429 carried Retry-After", a_tally.limited_without_retry_after == 0),
        ("no request lost", unanswered == 0),
        ("every B request 2xx", b_tally.success == b.sent),
        ("every admitted A request 2xx", a_tally.other == 0),
    ];
    let passed = checks.iter().all(|(_, ok)| *ok);
    for (name, ok) in &checks {
        println!("  {} {name}", if *ok { "ok  " } else { "FAIL" });
    }
    let report = json!({"mode": "noisy", "topology": super::topology_json(harness),
        "b_rate": settings.b_rate, "a_limit": settings.a_limit, "a_rate": a_rate, "pairs": pairs,
        "phase_seconds": settings.phase_seconds,
        "median_p99_ratio": median_p99_ratio, "median_p50_ratio": median_p50_ratio,
        "pooled": {"alone_p99_ms": pooled_alone.p99, "with_a_p99_ms": pooled_with.p99,
                   "alone_p50_ms": pooled_alone.p50, "with_a_p50_ms": pooled_with.p50, "p99_ratio": pooled_p99_ratio},
        "b": {"sent": b.sent, "success": b_tally.success, "limited": b_tally.limited, "other": b_tally.other,
              "transport_errors": b_tally.transport},
        "a": {"sent": a.sent, "success": a_tally.success, "limited": a_tally.limited,
              "limited_without_retry_after": a_tally.limited_without_retry_after, "other": a_tally.other,
              "transport_errors": a_tally.transport, "admitted_per_second": a_admitted_rate},
        "cpu_seconds_per_phase": cpu_report, "unanswered": unanswered, "load_average_before": load_before, "load_average_after": load_after,
        "passed": passed});
    (report, passed)
}
