//! Noisy-neighbour benchmark (issue 8): tenant B runs its normal load alone, then again while
//! tenant A sends at ten times its rate limit. Reports B's p50/p99 latency in both phases and
//! their ratio, A's 429s (each checked for `Retry-After`), and that every request was answered.
//!
//! The API runs on a real socket with actix workers, over the in-memory pipeline of
//! [`scimflow_ingest_api::testing::MemoryPipeline`] (log, fold and store in memory): this crate
//! cannot depend on the `scimflow` binary crate (it depends on this one), and what is measured
//! here is the HTTP layer's isolation, which sits in front of whichever log and store.
//!
//! ```text
//! cargo run --release -p scimflow-ingest-api --example noisy_neighbour -- [seconds] [b_rate] [a_limit]
//! ```
//! Defaults: 10 s per phase, B at 20 req/s, A limited to 20 req/s (burst 20) and sending 200.

use scimflow_ingest_api::limits::{LimitsConfig, TenantLimits};
use scimflow_ingest_api::testing::MemoryPipeline;
use scimflow_ingest_api::{ApiConfig, Application};
use serde_json::json;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const TOKEN_A: &str = "token-noisy-a";
const TOKEN_B: &str = "token-normal-b";

/// What one tenant's load saw.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    ok: AtomicU64,
    limited: AtomicU64,
    limited_without_retry_after: AtomicU64,
    other_status: AtomicU64,
    transport_errors: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

/// A counter's value (all are final once the load has ended).
fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

/// Sends `rate` requests per second for `duration`, open loop: each request is its own task,
/// started on schedule whatever the latency of the others (so a slow server cannot slow the
/// load down and hide its latency).
async fn run_load(
    client: reqwest::Client,
    base: String,
    token: &'static str,
    rate: u32,
    duration: Duration,
    tally: Arc<Tally>,
) {
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut sequence = 0_u64;
    while started.elapsed() < duration {
        ticker.tick().await;
        sequence += 1;
        let (client, base, tally) = (client.clone(), base.clone(), tally.clone());
        tally.sent.fetch_add(1, Ordering::SeqCst);
        tasks.push(tokio::spawn(async move {
            // Half writes (through the log and the fold), half list reads.
            let request = if sequence.is_multiple_of(2) {
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("{token}-{sequence}-{}", uuid::Uuid::new_v4()),
                });
                client
                    .post(format!("{base}/Users"))
                    .header("content-type", "application/scim+json")
                    .body(body.to_string())
            } else {
                client.get(format!("{base}/Users?count=10"))
            };
            let sent_at = Instant::now();
            match request.bearer_auth(token).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let has_retry_after = response.headers().contains_key("retry-after");
                    let _ = response.bytes().await;
                    let micros = sent_at.elapsed().as_micros() as u64;
                    tally.answered.fetch_add(1, Ordering::SeqCst);
                    match status {
                        200..=299 => {
                            tally.ok.fetch_add(1, Ordering::SeqCst);
                            tally.latencies_us.lock().await.push(micros);
                        }
                        429 => {
                            tally.limited.fetch_add(1, Ordering::SeqCst);
                            if !has_retry_after {
                                tally.limited_without_retry_after.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        _ => {
                            tally.other_status.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                Err(error) => {
                    eprintln!("transport error: {error:?}");
                    tally.transport_errors.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

fn percentile(sorted: &[u64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64) * fraction).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

async fn report(phase: &str, tenant: &str, tally: &Tally) -> (f64, f64) {
    let mut latencies = tally.latencies_us.lock().await.clone();
    latencies.sort_unstable();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    println!(
        "{phase:<12} {tenant}: sent {:>5} answered {:>5} 2xx {:>5} 429 {:>5} (without Retry-After {}) other {} lost {} | p50 {p50:.2} ms p99 {p99:.2} ms max {:.2} ms",
        load(&tally.sent),
        load(&tally.answered),
        load(&tally.ok),
        load(&tally.limited),
        load(&tally.limited_without_retry_after),
        load(&tally.other_status),
        load(&tally.transport_errors),
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    (p50, p99)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg =
        |index: usize, default: u64| args.get(index).and_then(|value| value.parse().ok()).unwrap_or(default);
    let seconds = arg(0, 10);
    let b_rate = arg(1, 20) as u32;
    let a_limit = arg(2, 20) as u32;
    let duration = Duration::from_secs(seconds);

    let mut config = ApiConfig { limits: LimitsConfig::recommended(), ..ApiConfig::default() };
    config.limits.tenants.insert(
        "tenant-a".into(),
        TenantLimits { requests_per_second: a_limit, burst: a_limit, max_concurrent: 16 },
    );
    let pipeline = MemoryPipeline::new();
    let state = pipeline.api_state(&[(TOKEN_A, "tenant-a"), (TOKEN_B, "tenant-b")], config.clone());
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let application = Application::build(listener, state)?;
    let base = format!("http://127.0.0.1:{}/scim/v2", application.port());
    let handle = application.handle();
    let server = actix_web::rt::spawn(application.run_until_stopped());
    println!(
        "API over MemoryPipeline; B at {b_rate} req/s (default limits {:?}); A limited to {a_limit} req/s, sending {} req/s; {seconds} s per phase",
        config.limits.default_limits,
        a_limit * 10
    );

    // Idle pooled connections are dropped before actix's 5 s keep-alive closes them: otherwise
    // a request sent on a connection the server is closing fails in transport (the classic
    // keep-alive race), which is a client setting, not a request the API lost.
    let client = || reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2)).build();
    let client_b = client().map_err(std::io::Error::other)?;
    // Warm-up: connections and allocator, not measured.
    run_load(
        client_b.clone(),
        base.clone(),
        TOKEN_B,
        b_rate,
        Duration::from_secs(1),
        Arc::new(Tally::default()),
    )
    .await;

    let alone = Arc::new(Tally::default());
    run_load(client_b.clone(), base.clone(), TOKEN_B, b_rate, duration, alone.clone()).await;

    let b_with_a = Arc::new(Tally::default());
    let a = Arc::new(Tally::default());
    // A's load runs on a thread and runtime of its own: on one client thread, B's measured
    // latency would include waiting behind A's tasks in the client, not in the API.
    let noisy = {
        let (base, a) = (base.clone(), a.clone());
        std::thread::spawn(move || -> std::io::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let client_a = client().map_err(std::io::Error::other)?;
                run_load(client_a, base, TOKEN_A, a_limit * 10, duration, a).await;
                Ok(())
            })
        })
    };
    run_load(client_b.clone(), base.clone(), TOKEN_B, b_rate, duration, b_with_a.clone()).await;
    tokio::task::spawn_blocking(move || noisy.join())
        .await
        .map_err(std::io::Error::other)?
        .map_err(|_| std::io::Error::other("the load of A panicked"))??;

    let (_, p99_alone) = report("B alone", "B", &alone).await;
    let (_, p99_noisy) = report("B with A", "B", &b_with_a).await;
    report("B with A", "A", &a).await;
    let ratio = p99_noisy / p99_alone;
    println!("B p99 ratio (with A / alone): {ratio:.2} (target <= 1.5)");
    let admitted_rate = load(&a.ok) as f64 / seconds as f64;
    println!(
        "A admitted {admitted_rate:.1} req/s against a limit of {a_limit} (plus the burst of {a_limit})"
    );
    let lost =
        [&alone, &b_with_a, &a].iter().map(|tally| load(&tally.sent) - load(&tally.answered)).sum::<u64>();
    println!("requests without an answer: {lost}");
    let b_failures = load(&alone.limited)
        + load(&alone.other_status)
        + load(&b_with_a.limited)
        + load(&b_with_a.other_status);
    println!("B requests not 2xx: {b_failures}");

    handle.stop(true).await;
    let _ = server.await;
    let pass = ratio <= 1.5
        && lost == 0
        && b_failures == 0
        && load(&a.limited) > 0
        && load(&a.limited_without_retry_after) == 0;
    println!("{}", if pass { "PASS" } else { "FAIL" });
    if !pass {
        std::process::exit(1);
    }
    Ok(())
}
