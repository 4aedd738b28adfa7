//! `backlog`: a quiet tenant's write latency while a busy tenant's backlog is folded, on one
//! log partition.
//!
//! Tenant B (the harness's tenant) writes steadily: `--clients` clients, each `POST /Users`
//! one after another. Tenant A shares B's partition (on Kafka the run's commands topic gets a
//! single partition). Before every other phase A appends `--backlog` user creates and a marker
//! straight to the log, as fast as the log takes them (a bulk import through many API nodes, or
//! queued work after an outage: what is already in the log, where the API's per-tenant limits
//! no longer apply); the phase is B's load from then until A's marker is folded. B does not
//! write while A appends: what is measured is waiting in the projector, not sharing the log's
//! disk. The other phases are B alone, each as long as the backlog phase before it.
//!
//! Each adjacent pair (B alone, B with A's backlog) gives a p99 ratio; the result is the median
//! of the ratios, with every pair printed. Run it with the default `--tenant-share` and with
//! `--tenant-share 2048` (every round taken in log order, as before fair rounds) to see what the
//! projector's share per tenant does.

use super::{Harness, percentiles, user_id};
use clap::Args;
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Args, Clone, Debug)]
pub struct BacklogSettings {
    /// Commands in each of tenant A's backlogs.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Tenant B's clients, each writing one user after another.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Pairs of phases (B alone, then B with A's backlog).
    #[arg(long, default_value_t = 3)]
    pairs: u32,
}

/// Tenant B's load for as long as `running` holds: returns each write's latency.
async fn b_load(harness: &Harness, clients: usize, running: &AtomicBool, phase: usize) -> Vec<Duration> {
    let writers = (0..clients).map(|client| async move {
        let mut latencies = Vec::new();
        let mut sequence = 0;
        while running.load(Ordering::Relaxed) {
            let body = json!({"userName": format!("b-{phase}-{client}-{sequence}@example.com")});
            sequence += 1;
            let (status, latency) = harness.send(reqwest::Method::POST, "/Users", Some(&body)).await;
            assert_eq!(status, 201, "tenant B's write failed");
            latencies.push(latency);
        }
        latencies
    });
    join_all(writers).await.into_iter().flatten().collect()
}

/// Appends A's backlog and its marker; returns the marker's id.
async fn append_backlog(
    harness: &Harness,
    busy_id: &str,
    settings: &BacklogSettings,
    phase: usize,
) -> String {
    let mut next = 0;
    while next < settings.backlog {
        let end = (next + 4096).min(settings.backlog);
        let appends = (next..end).map(|index| {
            let id = format!("a-{phase}-{}", user_id(index));
            let mut command = harness.user_command(&id, &format!("{id}@busy.example"));
            command.tenant_id = busy_id.to_owned();
            harness.log.append(busy_id, command.encode(), Vec::new())
        });
        for appended in join_all(appends).await {
            appended.expect("backlog append");
        }
        next = end;
    }
    let marker = format!("a-{phase}-marker");
    let mut command = harness.user_command(&marker, &format!("{marker}@busy.example"));
    command.tenant_id = busy_id.to_owned();
    harness.log.append(busy_id, command.encode(), Vec::new()).await.expect("marker append");
    marker
}

/// Returns when A's `marker` is readable with A's token: all of A's backlog is folded then.
async fn wait_for_marker(harness: &Harness, busy_token: &str, marker: &str) {
    loop {
        let response = harness
            .client
            .get(format!("{}/Users/{marker}", harness.app_url))
            .bearer_auth(busy_token)
            .send()
            .await
            .expect("GET marker");
        if response.status() == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn bench_backlog(
    harness: &Harness,
    busy_id: &str,
    busy_token: &str,
    settings: &BacklogSettings,
    tenant_share: usize,
) -> Value {
    println!(
        "backlog on --log {:?} --store {:?}: A appends {} commands per backlog phase, B writes with {} \
         clients; projector tenant share {tenant_share}",
        harness.topology.0, harness.topology.1, settings.backlog, settings.clients
    );
    // Warm-up of B alone, not measured.
    {
        let running = Arc::new(AtomicBool::new(true));
        let stop = {
            let running = running.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                running.store(false, Ordering::Relaxed);
            })
        };
        b_load(harness, settings.clients, &running, 0).await;
        stop.await.unwrap();
    }
    let mut pairs = Vec::new();
    let mut ratios = Vec::new();
    for pair in 1..=settings.pairs as usize {
        // B with A's backlog: from the end of A's appends until the backlog is folded.
        let appending = Instant::now();
        let marker = append_backlog(harness, busy_id, settings, pair).await;
        let appended_in = appending.elapsed();
        let running = AtomicBool::new(true);
        let started = Instant::now();
        let (mut with_backlog, ()) =
            tokio::join!(b_load(harness, settings.clients, &running, pair * 2), async {
                wait_for_marker(harness, busy_token, &marker).await;
                running.store(false, Ordering::Relaxed);
            });
        let drained_in = started.elapsed();
        // B alone, as long.
        let running = AtomicBool::new(true);
        let (mut alone, ()) =
            tokio::join!(b_load(harness, settings.clients, &running, pair * 2 + 1), async {
                tokio::time::sleep(drained_in).await;
                running.store(false, Ordering::Relaxed);
            });
        let (writes_alone, writes_with) = (alone.len(), with_backlog.len());
        let (alone, with) = (percentiles(&mut alone), percentiles(&mut with_backlog));
        let ratio = with.p99 / alone.p99;
        ratios.push(ratio);
        println!(
            "  pair {pair}: backlog of {} appended in {:.1} s, the rest folded {:.1} s later; B alone p50 {:.2} p99 {:.2} ms ({writes_alone} \
             writes), with the backlog p50 {:.2} p99 {:.2} ms ({writes_with} writes); p99 ratio {ratio:.2}",
            settings.backlog,
            appended_in.as_secs_f64(),
            drained_in.as_secs_f64(),
            alone.p50,
            alone.p99,
            with.p50,
            with.p99
        );
        pairs.push(json!({"append_seconds": appended_in.as_secs_f64(), "drain_seconds": drained_in.as_secs_f64(), "alone_p50_ms": alone.p50,
            "alone_p99_ms": alone.p99, "alone_writes": writes_alone, "with_p50_ms": with.p50,
            "with_p99_ms": with.p99, "with_writes": writes_with, "p99_ratio": ratio}));
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!("median p99 ratio (with A's backlog / alone): {median:.2}");
    json!({"mode": "backlog", "topology": super::topology_json(harness), "backlog": settings.backlog,
           "clients": settings.clients, "tenant_share": tenant_share, "pairs": pairs,
           "median_p99_ratio": median})
}
