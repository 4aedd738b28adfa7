//! Measurements taken while the simulator runs: latency samples per operation, statuses,
//! retries, membership PATCH latency against group size, phases, and the live counters the
//! progress line reads.
//!
//! Samples are kept raw (microseconds as `u32`), not in a histogram: even the `large` profile
//! records a few million requests, a few tens of MiB, and exact percentiles are worth that.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Error samples kept for the report (the first ones are the useful ones).
const MAX_ERROR_SAMPLES: usize = 25;
/// Characters of a request or response body kept in an error sample.
const MAX_SAMPLE_BODY: usize = 600;

/// One operation type's raw measurements.
#[derive(Debug, Default, Clone)]
pub struct OpRecord {
    pub latencies_us: Vec<u32>,
    /// Final status of each request (after retries) as text; `"transport"` when none came.
    pub statuses: BTreeMap<String, u64>,
    /// Requests that ended in a status the simulator did not expect.
    pub errors: u64,
    /// Those errors by final status (`"transport"` when none came).
    pub error_statuses: BTreeMap<String, u64>,
}

/// A failed request, with enough to reproduce it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorSample {
    pub op: String,
    pub method: String,
    pub path: String,
    pub request_body: Option<String>,
    pub status: Option<u16>,
    pub response: String,
}

/// One membership PATCH: the group's size when sent, the member values it carried, its latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipSample {
    pub group_size: u32,
    pub members: u32,
    pub latency_us: u32,
}

/// One phase as it ran.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseRecord {
    pub name: String,
    pub elapsed_s: f64,
    pub operations: u64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_second: f64,
}

struct CurrentPhase {
    name: String,
    started: Instant,
    requests_at_start: u64,
    errors_at_start: u64,
}

/// The live counters, as the progress line shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub phase: String,
    pub done: u64,
    pub total: u64,
    pub requests: u64,
    pub errors: u64,
    pub retries: u64,
    pub elapsed: Duration,
}

/// Shared by every task of a run.
pub struct Metrics {
    started: Instant,
    requests: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    /// Requests and unexpected statuses of the load phases only: verification reads do not
    /// count towards the error-rate threshold (their failures are differences instead).
    load_requests: AtomicU64,
    load_errors: AtomicU64,
    done: AtomicU64,
    total: AtomicU64,
    current: Mutex<Option<CurrentPhase>>,
    phases: Mutex<Vec<PhaseRecord>>,
    ops: Mutex<BTreeMap<&'static str, OpRecord>>,
    retry_statuses: Mutex<BTreeMap<String, u64>>,
    membership: Mutex<Vec<MembershipSample>>,
    error_samples: Mutex<Vec<ErrorSample>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn micros(latency: Duration) -> u32 {
    latency.as_micros().min(u32::MAX as u128) as u32
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_SAMPLE_BODY {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(MAX_SAMPLE_BODY).collect();
        format!("{kept}... ({} bytes)", text.len())
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            load_requests: AtomicU64::new(0),
            load_errors: AtomicU64::new(0),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            current: Mutex::new(None),
            phases: Mutex::new(Vec::new()),
            ops: Mutex::new(BTreeMap::new()),
            retry_statuses: Mutex::new(BTreeMap::new()),
            membership: Mutex::new(Vec::new()),
            error_samples: Mutex::new(Vec::new()),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the running phase (if any) and starts `name` with `total` planned operations.
    pub fn begin_phase(&self, name: &str, total: u64) {
        self.end_phase();
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        *self.current.lock().expect("metrics lock") = Some(CurrentPhase {
            name: name.to_owned(),
            started: Instant::now(),
            requests_at_start: self.requests.load(Ordering::Relaxed),
            errors_at_start: self.errors.load(Ordering::Relaxed),
        });
    }

    /// Records the running phase's totals.
    pub fn end_phase(&self) {
        let Some(phase) = self.current.lock().expect("metrics lock").take() else { return };
        let elapsed = phase.started.elapsed().as_secs_f64();
        let requests = self.requests.load(Ordering::Relaxed) - phase.requests_at_start;
        self.phases.lock().expect("metrics lock").push(PhaseRecord {
            name: phase.name,
            elapsed_s: elapsed,
            operations: self.done.load(Ordering::Relaxed),
            requests,
            errors: self.errors.load(Ordering::Relaxed) - phase.errors_at_start,
            requests_per_second: if elapsed > 0.0 { requests as f64 / elapsed } else { 0.0 },
        });
    }

    /// One planned operation of the phase is finished (whatever its outcome).
    pub fn step(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The final answer of one request (after retries).
    pub fn record(&self, op: &'static str, status: Option<u16>, latency: Duration, error: bool, load: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if load {
            self.load_requests.fetch_add(1, Ordering::Relaxed);
        }
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            if load {
                self.load_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let label = status.map(|s| s.to_string()).unwrap_or_else(|| "transport".to_owned());
        let mut ops = self.ops.lock().expect("metrics lock");
        let record = ops.entry(op).or_default();
        // Transport failures have no meaningful latency (often the timeout itself).
        if status.is_some() {
            record.latencies_us.push(micros(latency));
        }
        if error {
            record.errors += 1;
            *record.error_statuses.entry(label.clone()).or_default() += 1;
        }
        *record.statuses.entry(label).or_default() += 1;
    }

    /// A request that will be retried (429/503 or a transport error).
    pub fn record_retry(&self, status: Option<u16>) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        let label = status.map(|s| s.to_string()).unwrap_or_else(|| "transport".to_owned());
        *self.retry_statuses.lock().expect("metrics lock").entry(label).or_default() += 1;
    }

    pub fn record_error_sample(
        &self,
        op: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
        status: Option<u16>,
        response: &str,
    ) {
        let mut samples = self.error_samples.lock().expect("metrics lock");
        if samples.len() < MAX_ERROR_SAMPLES {
            samples.push(ErrorSample {
                op: op.to_owned(),
                method: method.to_owned(),
                path: path.to_owned(),
                request_body: body.map(truncate),
                status,
                response: truncate(response),
            });
        }
    }

    /// A membership PATCH carrying `members` member values, on a group that had `group_size`
    /// members when it was sent.
    pub fn record_membership(&self, group_size: usize, members: usize, latency: Duration) {
        let clamp = |n: usize| n.min(u32::MAX as usize) as u32;
        self.membership.lock().expect("metrics lock").push(MembershipSample {
            group_size: clamp(group_size),
            members: clamp(members),
            latency_us: micros(latency),
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        let phase =
            self.current.lock().expect("metrics lock").as_ref().map(|p| p.name.clone()).unwrap_or_default();
        Snapshot {
            phase,
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            elapsed: self.elapsed(),
        }
    }

    pub fn ops(&self) -> BTreeMap<&'static str, OpRecord> {
        self.ops.lock().expect("metrics lock").clone()
    }

    pub fn phases(&self) -> Vec<PhaseRecord> {
        self.phases.lock().expect("metrics lock").clone()
    }

    pub fn retry_statuses(&self) -> BTreeMap<String, u64> {
        self.retry_statuses.lock().expect("metrics lock").clone()
    }

    pub fn membership_samples(&self) -> Vec<MembershipSample> {
        self.membership.lock().expect("metrics lock").clone()
    }

    pub fn error_samples(&self) -> Vec<ErrorSample> {
        self.error_samples.lock().expect("metrics lock").clone()
    }

    /// (requests, unexpected statuses) of the load phases.
    pub fn load_totals(&self) -> (u64, u64) {
        (self.load_requests.load(Ordering::Relaxed), self.load_errors.load(Ordering::Relaxed))
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn total_retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// The progress line, printed about once a second while a run goes on.
pub fn progress_line(now: &Snapshot, requests_per_second: f64) -> String {
    let progress = if now.total > 0 {
        format!("{}/{} ops ({:.0}%)", now.done, now.total, 100.0 * now.done as f64 / now.total as f64)
    } else {
        format!("{} ops", now.done)
    };
    format!(
        "[{:>7.1}s] {:<9} {:<26} {:>8.1} req/s  errors {}  retries {}",
        now.elapsed.as_secs_f64(),
        now.phase,
        progress,
        requests_per_second,
        now.errors,
        now.retries
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_counters() {
        let metrics = Metrics::new();
        metrics.begin_phase("users", 2);
        metrics.record("user.create", Some(201), Duration::from_millis(3), false, true);
        metrics.record("user.create", Some(500), Duration::from_millis(5), true, true);
        metrics.record("user.create", None, Duration::from_secs(30), true, true);
        metrics.record("verify.user", Some(404), Duration::from_millis(1), true, false);
        metrics.step();
        metrics.record_retry(Some(429));
        let now = metrics.snapshot();
        assert_eq!(
            (now.phase.as_str(), now.done, now.total, now.requests, now.errors),
            ("users", 1, 2, 4, 3)
        );
        metrics.begin_phase("groups", 0);
        let phases = metrics.phases();
        assert_eq!(phases.len(), 1);
        assert_eq!((phases[0].requests, phases[0].errors, phases[0].operations), (4, 3, 1));
        let ops = metrics.ops();
        let create = &ops["user.create"];
        assert_eq!(create.latencies_us.len(), 2, "no latency for a transport failure");
        assert_eq!(create.statuses["transport"], 1);
        assert_eq!(create.errors, 2);
        assert_eq!(create.error_statuses["500"], 1);
        assert_eq!(metrics.load_totals(), (3, 2), "verification does not count towards the error rate");
        assert_eq!(metrics.retry_statuses()["429"], 1);
        assert!(progress_line(&metrics.snapshot(), 12.0).contains("groups"));
    }

    #[test]
    fn error_samples_are_bounded_and_truncated() {
        let metrics = Metrics::new();
        let long = "x".repeat(5000);
        for _ in 0..100 {
            metrics.record_error_sample("op", "PATCH", "/Groups/1", Some(&long), Some(500), "oops");
        }
        let samples = metrics.error_samples();
        assert_eq!(samples.len(), MAX_ERROR_SAMPLES);
        assert!(samples[0].request_body.as_ref().unwrap().len() < 700);
    }
}
