//! Fault tests on the real services of `deploy/local/services.sh`: the Kafka broker stopped under
//! load, Cassandra stopped under load, and a projector process killed with SIGKILL mid-batch.
//!
//! They stop and start the local Kafka / Cassandra, so they run one at a time (`LOCK`), keep each
//! outage short (about 15–30 s including the restart), and always start the service again, also
//! when an assertion fails (`Outage`'s `Drop` runs `services.sh up <name>`). Other processes that
//! use the services at the same time see the outage too. Each test prints `SKIPPED:` and passes
//! when `SCIMFLOW_KAFKA_BROKERS` (and, where needed, `SCIMFLOW_CQL_NODES`) is unset.
//!
//! ```sh
//! export CARGO_TARGET_DIR=$HOME/.cache/scimflow/target
//! export SCIMFLOW_KAFKA_BROKERS=127.0.0.1:9092 SCIMFLOW_CQL_NODES=127.0.0.1:9042
//! cargo test -p scimflow-tests --test faults -- --nocapture
//! ```
//!
//! What a client may conclude from an answer, and what the tests hold the pipeline to:
//! - **2xx**: durable in the log and folded into the store; never lost, visible to every read.
//! - **503 + `Retry-After`**: the append failed (not logged), *or* the command was logged but its
//!   outcome did not arrive within the API's outcome timeout (10 s): **durable, outcome unknown**.
//!   A logged command is still folded, in log order, before anything the same client sends
//!   later: a retried create then gets 409 (`uniqueness`), a retried membership add or remove is
//!   a no-op. The 503 body does not say which of the two happened.
//!
//! The clients here behave like an IdP: every write is retried after a 503 until it gets a
//! definitive answer (2xx, or the 409 of a create whose earlier attempt was applied), so the
//! expected final state is exact: every user created once, the group's members exactly the
//! union of acknowledged adds minus acknowledged removes.

use futures_util::future::join_all;
use prost::Message as _;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use scimflow::pipeline::{LogKind, OUTCOME_TIMEOUT, StoreKind};
use scimflow_log::kafka::KafkaConfig;
use scimflow_proto::change_envelope::Change;
use scimflow_tests::{FreshServices, TestApp, spawn_app_with_options};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One fault test at a time: they stop shared services.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CLIENTS: usize = 8;
/// The longest a write may take: the append deadline (`SCIMFLOW_KAFKA_PRODUCE_DEADLINE_MS`,
/// 5 s) plus the outcome timeout (10 s) plus slack for two busy cores.
const CALL_BOUND: Duration =
    Duration::from_secs(KafkaConfig::DEFAULT_PRODUCE_DEADLINE.as_secs() + OUTCOME_TIMEOUT.as_secs() + 5);
/// A request with no answer after this counts as a hang.
const HTTP_TIMEOUT: Duration = Duration::from_secs(40);
/// Pause before retrying a 503 (shorter than `Retry-After`, to keep the load up).
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How long one logical write may keep being retried before the test gives up on recovery.
const GIVE_UP_AFTER: Duration = Duration::from_secs(180);
/// Writes must succeed again within this long after the service is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(60);
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

// ---- the services ------------------------------------------------------------------------------

fn services_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/services.sh")
}

fn run_services(args: &[&str]) -> std::process::Output {
    std::process::Command::new(services_script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("deploy/local/services.sh runs")
}

fn assert_running(service: &str) {
    let status = String::from_utf8_lossy(&run_services(&["status"]).stdout).into_owned();
    let running = status.lines().any(|line| line.starts_with(service) && line.contains("accepting"));
    assert!(
        running,
        "{service} must be running under deploy/local/services.sh for this fault test (it stops and \
         starts it); status:\n{status}"
    );
}

/// A service stopped with `services.sh down`; started again by [`Outage::end`], or on drop.
struct Outage {
    service: &'static str,
    /// `host:port` of the service's client port, watched while it starts again.
    address: String,
    restored: bool,
    /// When `down` returned (the service process is gone).
    down_at: Instant,
    /// When the client port accepted a connection again: before this, nothing can have reached
    /// the service.
    port_open_at: Option<Instant>,
    /// When `up` returned (the service is ready).
    up_at: Option<Instant>,
}

impl Outage {
    async fn begin(service: &'static str, address: &str) -> Outage {
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || run_services(&["down", service])).await.unwrap();
        let outage = Outage {
            service,
            address: address.to_owned(),
            restored: false,
            down_at: Instant::now(),
            port_open_at: None,
            up_at: None,
        };
        assert!(
            output.status.success(),
            "services.sh down {service}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            tokio::net::TcpStream::connect(&outage.address).await.is_err(),
            "{service} still accepts connections on {} after services.sh down",
            outage.address
        );
        eprintln!("{service} stopped in {:.1} s", started.elapsed().as_secs_f64());
        outage
    }

    async fn end(&mut self) {
        let service = self.service;
        let started = Instant::now();
        let mut up = tokio::task::spawn_blocking(move || run_services(&["up", service]));
        let output = loop {
            tokio::select! {
                output = &mut up => break output.unwrap(),
                _ = tokio::time::sleep(Duration::from_millis(50)), if self.port_open_at.is_none() => {
                    if tokio::net::TcpStream::connect(&self.address).await.is_ok() {
                        self.port_open_at = Some(Instant::now());
                    }
                }
            }
        };
        self.restored = output.status.success();
        self.up_at = Some(Instant::now());
        assert!(
            output.status.success(),
            "services.sh up {service}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port_open_at = *self.port_open_at.get_or_insert(started);
        eprintln!(
            "{service} back after {:.1} s down (port open {:.1} s after `up`, ready after {:.1} s)",
            (port_open_at - self.down_at).as_secs_f64(),
            (port_open_at - started).as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if !self.restored {
            eprintln!("starting {} again after a failed fault test", self.service);
            let output = run_services(&["up", self.service]);
            eprintln!("services.sh up {}: {}", self.service, output.status);
        }
    }
}

// ---- calls, recorded -------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Call {
    what: String,
    started: Instant,
    ended: Instant,
    /// 0: no answer (connection error or no response within `HTTP_TIMEOUT`).
    status: u16,
    retry_after: bool,
}

impl Call {
    fn is_write(&self) -> bool {
        self.what.starts_with("POST") || self.what.starts_with("PATCH")
    }

    fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The client side of a test: the API, the group under test, every call made, and violations
/// of the guarantees noticed while running.
struct Harness {
    app: TestApp,
    group_id: String,
    calls: Mutex<Vec<Call>>,
    violations: Mutex<Vec<String>>,
    stop: AtomicBool,
    /// Set while the pipeline is expected to be healthy (Kafka up in the Cassandra and kill
    /// tests): then every 503 write was logged, and a retried create must meet its first attempt.
    log_always_up: bool,
}

impl Harness {
    fn new(app: TestApp, group_id: String, log_always_up: bool) -> Arc<Harness> {
        Arc::new(Harness {
            app,
            group_id,
            calls: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            log_always_up,
        })
    }

    fn violation(&self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.lock().unwrap().push(what);
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let what = format!("{method} {path}");
        let mut request = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(&self.app.token)
            .timeout(HTTP_TIMEOUT);
        if let Some(body) = body {
            request = request.header("Content-Type", "application/scim+json").body(body.to_string());
        }
        let started = Instant::now();
        let (status, retry_after, json) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let text = response.text().await.unwrap_or_default();
                (status, retry_after, serde_json::from_str(&text).unwrap_or(Value::String(text)))
            }
            Err(error) => {
                // No answer within `HTTP_TIMEOUT` is a hang. Any other transport error (e.g. a
                // pooled connection the server closed as idle) leaves the outcome unknown, like
                // a 503: callers retry, and give up with a violation if it persists.
                if error.is_timeout() {
                    self.violation(format!("{what}: no answer within {HTTP_TIMEOUT:?}"));
                }
                (0, false, Value::String(error.to_string()))
            }
        };
        let ended = Instant::now();
        if status == 503 && !retry_after {
            self.violation(format!("{what}: 503 without Retry-After"));
        }
        self.calls.lock().unwrap().push(Call { what, started, ended, status, retry_after });
        (status, json)
    }

    /// A read, retried while the service answers 503.
    async fn read(&self, path: &str) -> Option<Value> {
        let deadline = Instant::now() + GIVE_UP_AFTER;
        loop {
            let (status, body) = self.call(reqwest::Method::GET, path, None).await;
            match status {
                200 => return Some(body),
                503 | 0 if Instant::now() < deadline => tokio::time::sleep(RETRY_PAUSE).await,
                _ => {
                    self.violation(format!("GET {path}: {status} {body}"));
                    return None;
                }
            }
        }
    }

    async fn user_id_by_name(&self, name: &str) -> Option<String> {
        let list = self.read(&format!("/Users?filter=userName%20eq%20%22{name}%22")).await?;
        list["Resources"][0]["id"].as_str().map(str::to_owned)
    }

    /// Creates a user, retrying 503s until the answer is definitive; returns its id.
    async fn create_user(&self, name: &str) -> Option<String> {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
        let deadline = Instant::now() + GIVE_UP_AFTER;
        let mut earlier_attempt = false;
        loop {
            let (status, created) = self.call(reqwest::Method::POST, "/Users", Some(&body)).await;
            match status {
                201 => {
                    if earlier_attempt && self.log_always_up {
                        // Every earlier attempt was logged (the log was up) and is folded before
                        // this one, so this one must have met it.
                        self.violation(format!(
                            "create {name}: 201 after a 503 while the log was up: the earlier, logged \
                             attempt was lost or folded out of order"
                        ));
                    }
                    return created["id"].as_str().map(str::to_owned);
                }
                // An earlier attempt (answered 503) was logged and applied after all.
                409 if earlier_attempt => return self.user_id_by_name(name).await,
                503 | 0 if Instant::now() < deadline => {
                    earlier_attempt = true;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                _ => {
                    self.violation(format!("create {name}: {status} {created}"));
                    return None;
                }
            }
        }
    }

    /// Adds or removes one member, retrying 503s until acknowledged.
    async fn membership(&self, op: &str, member_id: &str) -> bool {
        let body = json!({"schemas": [PATCH_OP],
            "Operations": [{"op": op, "path": "members", "value": [{"value": member_id}]}]});
        let path = format!("/Groups/{}", self.group_id);
        let deadline = Instant::now() + GIVE_UP_AFTER;
        loop {
            let (status, answer) = self.call(reqwest::Method::PATCH, &path, Some(&body)).await;
            match status {
                200 | 204 => return true,
                503 | 0 if Instant::now() < deadline => tokio::time::sleep(RETRY_PAUSE).await,
                _ => {
                    self.violation(format!("{op} member {member_id}: {status} {answer}"));
                    return false;
                }
            }
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until a write that started at or after `since` is acknowledged; returns how long
    /// after `since` its answer came.
    async fn recovered_after(&self, since: Instant) -> Duration {
        let deadline = since + RECOVERY_BOUND;
        loop {
            let first = self
                .calls()
                .iter()
                .filter(|call| call.is_write() && call.acknowledged() && call.started >= since)
                .map(|call| call.ended)
                .min();
            if let Some(ended) = first {
                return ended - since;
            }
            assert!(
                Instant::now() < deadline,
                "no write acknowledged within {RECOVERY_BOUND:?} after the service was back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every member of the group, by paging `/Groups/{id}/members`; duplicates are violations.
    async fn all_members(&self) -> BTreeSet<String> {
        let mut members = BTreeSet::new();
        let mut cursor = String::new();
        loop {
            let path = format!("/Groups/{}/members?count=1000&cursor={cursor}", self.group_id);
            let Some(page) = self.read(&path).await else { return members };
            for member in page["Resources"].as_array().cloned().unwrap_or_default() {
                let id = member["value"].as_str().unwrap_or_default().to_owned();
                if !members.insert(id.clone()) {
                    self.violation(format!("member {id} listed twice"));
                }
            }
            match page["nextCursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return members,
            }
        }
    }
}

// ---- the workloads -----------------------------------------------------------------------------

/// What one provisioning client knows at the end: users it created and the members it left.
#[derive(Debug, Default)]
struct Provisioned {
    /// (userName, id) of every create that ended definitively.
    users: Vec<(String, String)>,
    members: BTreeSet<String>,
}

/// An IdP-like client: creates users one after another, adds each to the group, and removes an
/// earlier one every third round; every write retried until it is definitive.
async fn provisioning_client(harness: Arc<Harness>, client: usize) -> Provisioned {
    let mut provisioned = Provisioned::default();
    let mut present = VecDeque::new();
    let mut round = 0usize;
    while !harness.stop.load(Ordering::Relaxed) {
        round += 1;
        let name = format!("c{client}-{round}@faults.example");
        let Some(id) = harness.create_user(&name).await else { continue };
        provisioned.users.push((name, id.clone()));
        if harness.membership("add", &id).await {
            present.push_back(id);
        }
        if round.is_multiple_of(3)
            && let Some(old) = present.pop_front()
            && !harness.membership("remove", &old).await
        {
            present.push_front(old);
        }
    }
    provisioned.members = present.into_iter().collect();
    provisioned
}

/// Checks the calls against the outage window `[down, up)` (from the service's exit to its port
/// accepting connections again): bounded latency everywhere, and writes made entirely inside the
/// window answered 503 + `Retry-After`, never 2xx.
fn check_calls(harness: &Harness, down: Instant, up: Instant) {
    let calls = harness.calls();
    let slowest = calls.iter().map(|call| call.ended - call.started).max().unwrap_or_default();
    for call in &calls {
        if call.ended - call.started > CALL_BOUND {
            harness.violation(format!(
                "{} took {:?} (bound {CALL_BOUND:?})",
                call.what,
                call.ended - call.started
            ));
        }
    }
    let around: Vec<String> = calls
        .iter()
        .filter(|call| call.is_write() && call.ended >= down && call.started <= up)
        .map(|call| {
            let start = call.started.saturating_duration_since(down).as_secs_f64()
                - down.saturating_duration_since(call.started).as_secs_f64();
            format!("{start:+.1}s/{:.1}s:{}", (call.ended - call.started).as_secs_f64(), call.status)
        })
        .collect();
    let shown = around.len().min(80);
    eprintln!(
        "writes overlapping the outage (start from down / duration : status), {} of {}: {}",
        shown,
        around.len(),
        around[..shown].join(" ")
    );
    let inside: Vec<&Call> =
        calls.iter().filter(|call| call.is_write() && call.started >= down && call.ended <= up).collect();
    let unavailable = inside.iter().filter(|call| call.status == 503).count();
    for call in inside.iter().filter(|call| call.status != 503) {
        harness.violation(format!("{} answered {} during the outage, not 503", call.what, call.status));
    }
    let retry_after = inside.iter().filter(|call| call.retry_after).count();
    eprintln!(
        "calls: {} in all, slowest {slowest:?}; {} writes inside the outage: {unavailable} answered 503 \
         ({retry_after} with Retry-After), statuses {:?}",
        calls.len(),
        inside.len(),
        inside.iter().map(|call| call.status).collect::<BTreeSet<_>>()
    );
    assert!(unavailable > 0, "writes made during the outage were answered 503");
}

/// Every user readable with its name, exactly one user per name, and the group's members equal
/// to what the clients' acknowledged writes left.
async fn check_final_state(harness: &Harness, provisioned: &[Provisioned]) {
    let users: Vec<&(String, String)> = provisioned.iter().flat_map(|client| &client.users).collect();
    for chunk in users.chunks(16) {
        join_all(chunk.iter().map(|(name, id)| async move {
            if let Some(user) = harness.read(&format!("/Users/{id}")).await
                && user["userName"] != *name
            {
                harness.violation(format!("user {id} is {}, expected {name}", user["userName"]));
            }
            if let Some(list) = harness.read(&format!("/Users?filter=userName%20eq%20%22{name}%22")).await {
                let ids: Vec<&str> = list["Resources"]
                    .as_array()
                    .map(|found| found.iter().filter_map(|user| user["id"].as_str()).collect())
                    .unwrap_or_default();
                if ids != [id.as_str()] {
                    harness.violation(format!("userName {name}: users {ids:?}, expected exactly [{id}]"));
                }
            }
        }))
        .await;
    }
    let expected: BTreeSet<String> =
        provisioned.iter().flat_map(|client| client.members.iter().cloned()).collect();
    let members = harness.all_members().await;
    if members != expected {
        let missing: Vec<_> = expected.difference(&members).collect();
        let extra: Vec<_> = members.difference(&expected).collect();
        harness.violation(format!("group members: missing {missing:?}, unexpected {extra:?}"));
    }
    eprintln!("final state: {} users, {} members, checked", users.len(), members.len());
}

fn assert_no_violations(harness: &Harness) {
    let violations = harness.violations.lock().unwrap();
    assert!(violations.is_empty(), "{} violations:\n{}", violations.len(), violations.join("\n"));
}

/// Starts a write every second, whatever the others are doing, so that some writes begin and end
/// inside the outage (the clients' own writes mostly wait out a deadline that began before it).
/// Acknowledged probes join the users checked at the end.
async fn prober(harness: Arc<Harness>) -> Provisioned {
    let mut probes = Vec::new();
    let mut index = 0;
    while !harness.stop.load(Ordering::Relaxed) {
        index += 1;
        let harness = harness.clone();
        probes.push(tokio::spawn(async move {
            let name = format!("probe-{index}@faults.example");
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
            let (status, created) = harness.call(reqwest::Method::POST, "/Users", Some(&body)).await;
            match status {
                201 => created["id"].as_str().map(|id| (name, id.to_owned())),
                // Not retried: its outcome stays unknown (it may still be folded later).
                503 | 0 => None,
                _ => {
                    harness.violation(format!("probe {name}: {status} {created}"));
                    None
                }
            }
        }));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let users = join_all(probes).await.into_iter().filter_map(Result::unwrap).collect();
    Provisioned { users, members: BTreeSet::new() }
}

/// Runs the provisioning clients around an outage of `service` (stopped for `down_for`) and
/// checks the calls, the recovery and the final state.
async fn outage_under_load(
    mut app: TestApp,
    service: &'static str,
    address: &str,
    down_for: Duration,
    log_always_up: bool,
) {
    let group_id = app.create_group("Fault tolerant").await;
    // Idle connections are dropped before the server's keep-alive (5 s) closes them, so a request
    // never races a closing connection.
    app.client = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2)).build().unwrap();
    let harness = Harness::new(app, group_id, log_always_up);
    let mut workers: Vec<_> =
        (0..CLIENTS).map(|client| tokio::spawn(provisioning_client(harness.clone(), client))).collect();
    workers.push(tokio::spawn(prober(harness.clone())));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let warm = harness.calls().iter().filter(|call| call.acknowledged()).count();
    assert!(warm > 0, "writes are acknowledged before the outage");
    eprintln!("{warm} writes acknowledged before the outage; stopping {service}");

    let mut outage = Outage::begin(service, address).await;
    tokio::time::sleep(down_for).await;
    outage.end().await;
    let (down, port_open, up) = (outage.down_at, outage.port_open_at.unwrap(), outage.up_at.unwrap());
    let recovery = harness.recovered_after(up).await;
    eprintln!("first write acknowledged {:.1} s after {service} was ready again", recovery.as_secs_f64());
    tokio::time::sleep(Duration::from_secs(4)).await;
    harness.stop.store(true, Ordering::Relaxed);
    let provisioned: Vec<Provisioned> = join_all(workers).await.into_iter().map(Result::unwrap).collect();
    drop(outage);

    check_calls(&harness, down, port_open);
    check_final_state(&harness, &provisioned).await;
    assert_no_violations(&harness);
}

/// The in-process pipeline's warnings and errors (and the projector's info events), through the
/// test harness's capture: printed when a test fails, or always with `--nocapture`. `RUST_LOG`
/// overrides the filter.
fn capture_pipeline_logs() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| {
        "warn,scimflow_projector=info,scimflow_log::kafka::context=error,scylla=error".into()
    });
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

fn env_secs(variable: &str, default: u64) -> u64 {
    std::env::var(variable).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// The first `host:port` of a comma-separated list in `variable`.
fn first_address(variable: &str) -> String {
    std::env::var(variable).unwrap_or_default().split(',').next().unwrap_or_default().trim().to_owned()
}

// ---- a. the Kafka broker stopped under load (Kafka log, embedded store) ------------------------

/// Stops the broker for `SCIMFLOW_FAULTS_DOWN_SECS` (default `default_down_secs`; plus ~7 s
/// without a broker for its restart) under load, with the projector's transaction timeout set to `transaction_timeout`.
async fn kafka_outage(transaction_timeout: Duration, default_down_secs: u64) {
    let fresh = match FreshServices::from_env("faults", true, false) {
        Ok(fresh) => fresh,
        Err(why) => return eprintln!("SKIPPED: Kafka broker outage {why}"),
    };
    assert_running("kafka");
    capture_pipeline_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut options = fresh.options(dir.path(), LogKind::Kafka, StoreKind::Embedded);
    options.projector.as_mut().expect("projector settings").transaction_timeout = transaction_timeout;
    let app = spawn_app_with_options(options, dir).await;
    let down_for = Duration::from_secs(env_secs("SCIMFLOW_FAULTS_DOWN_SECS", default_down_secs));
    outage_under_load(app, "kafka", &first_address("SCIMFLOW_KAFKA_BROKERS"), down_for, false).await;
}

/// An outage shorter than the projector's transaction timeout (60 s here, 15 s by default): the
/// transaction open when the broker went away commits when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_broker_stopped_under_load_loses_no_acknowledged_write_and_recovers_by_itself() {
    let _serial = LOCK.lock().await;
    kafka_outage(Duration::from_secs(60), 8).await;
}

/// An outage longer than the projector's transaction timeout (5 s here; 15 s by default, so a
/// broker restart that takes a little longer): the restarted broker aborts the projector's open
/// transaction and librdkafka makes the producer's next step fatal (INVALID_TXN_STATE). The
/// projector's publisher replaces its transactional producer (same transactional id), every
/// partition republishes from the committed offset, and the pipeline recovers without a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_broker_stopped_longer_than_the_transaction_timeout_recovers_by_itself() {
    let _serial = LOCK.lock().await;
    // Down 20 s, four times the timeout: the open transaction is reliably aborted by the
    // broker (with 8 s it sometimes was not, and the test then proved nothing new).
    kafka_outage(Duration::from_secs(5), 20).await;
}

// ---- b. Cassandra stopped under load (Kafka log, CQL store) ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_stopped_under_load_pauses_the_projector_and_resumes_exactly() {
    let _serial = LOCK.lock().await;
    let fresh = match FreshServices::from_env("faults", true, true) {
        Ok(fresh) => fresh,
        Err(why) => return eprintln!("SKIPPED: Cassandra outage {why}"),
    };
    assert_running("cassandra");
    capture_pipeline_logs();
    let dir = tempfile::tempdir().unwrap();
    let options = fresh.options(dir.path(), LogKind::Kafka, StoreKind::Cql);
    let app = spawn_app_with_options(options, dir).await;
    // Held down longer than the outcome timeout: a write made during the outage is answered
    // 503 only after OUTCOME_TIMEOUT, so a shorter outage (Cassandra may restart in ~6 s) can
    // end before any write made inside it is answered, and the check below has nothing to see.
    let down_for = OUTCOME_TIMEOUT + Duration::from_secs(3);
    outage_under_load(app, "cassandra", &first_address("SCIMFLOW_CQL_NODES"), down_for, true).await;
}

// ---- c. kill -9 of a projector process (separate API and projector processes, Kafka + CQL) -----

/// The `scimflow` binary next to this test's target directory, built first (a no-op when it is
/// fresh; `cargo test --workspace` builds it anyway, for the cli's own tests).
fn scimflow_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/faults-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).expect("test binary in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target dir");
    let mut build = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "--quiet", "-p", "scimflow", "--bin", "scimflow", "--target-dir"]).arg(target_dir);
    if profile_dir.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    let status = build.current_dir(env!("CARGO_MANIFEST_DIR")).status().expect("cargo runs");
    assert!(status.success(), "cargo build -p scimflow failed");
    let binary = profile_dir.join("scimflow");
    assert!(binary.exists(), "{} exists", binary.display());
    binary
}

/// A `scimflow` child process; SIGKILLed on drop. stdout and stderr go to `log`.
struct ScimflowProcess {
    child: std::process::Child,
    log: PathBuf,
}

impl ScimflowProcess {
    fn start(binary: &Path, args: &[&str], env: &[(String, String)], log: PathBuf) -> ScimflowProcess {
        let file = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(binary)
            .args(args)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("scimflow starts");
        ScimflowProcess { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until a line containing `marker` is printed.
    async fn wait_for(&mut self, marker: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.output().lines().find(|line| line.contains(marker)) {
                return line.to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("scimflow exited ({status}) before printing {marker:?}:\n{}", self.output());
            }
            assert!(Instant::now() < deadline, "no {marker:?} within {within:?}:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill_9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL: nothing of the projector's shutdown runs
        self.child.wait().unwrap();
    }
}

impl Drop for ScimflowProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scimflow_run(binary: &Path, args: &[&str], env: &[(String, String)]) -> String {
    let output = std::process::Command::new(binary)
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .output()
        .expect("scimflow runs");
    assert!(output.status.success(), "scimflow {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One membership-toggling client: over its own users, adds a user that is not a member and
/// removes one that is; returns, per user, how many of its writes were acknowledged (each one
/// flips the membership exactly once, retries included) and whether it ends as a member.
async fn toggling_client(harness: Arc<Harness>, users: Vec<String>) -> BTreeMap<String, (usize, bool)> {
    let mut state: BTreeMap<String, (usize, bool)> =
        users.iter().map(|id| (id.clone(), (0, false))).collect();
    let mut turn = 0usize;
    while !harness.stop.load(Ordering::Relaxed) {
        let id = &users[turn % users.len()];
        turn += 1;
        let (flips, member) = state.get_mut(id).unwrap();
        if harness.membership(if *member { "remove" } else { "add" }, id).await {
            *flips += 1;
            *member = !*member;
        } else {
            break; // a violation was recorded; the user's state is unknown from here on
        }
    }
    state
}

/// Waits until the projector group has committed (with the changes of) every command offset.
fn wait_until_changes_published(kafka: &KafkaConfig, group: &str, within: Duration) {
    let topics = kafka.topics();
    let consumer: BaseConsumer = kafka
        .client_config(&[])
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + within;
    loop {
        let mut list = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        for partition in 0..kafka.command_partitions {
            let (_, high) =
                consumer.fetch_watermarks(&topics.commands, partition, Duration::from_secs(10)).unwrap();
            ends.insert(partition, high);
            list.add_partition(&topics.commands, partition);
        }
        let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
        let behind: Vec<(i32, i64, i64)> = committed
            .elements()
            .iter()
            .filter_map(|element| {
                let end = ends[&element.partition()];
                let at = match element.offset() {
                    Offset::Offset(offset) => offset,
                    _ => 0,
                };
                (at < end).then_some((element.partition(), at, end))
            })
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "changes not published within {within:?}: {behind:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every change on the changes topic as a `read_committed` consumer sees it, in partition order.
fn read_changes(kafka: &KafkaConfig) -> Vec<scimflow_proto::ChangeEnvelope> {
    let topics = kafka.topics();
    let consumer: BaseConsumer = kafka
        .client_config(&[])
        .set("group.id", format!("faults-reader-{}", uuid::Uuid::new_v4().simple()))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..kafka.command_partitions {
        list.add_partition_offset(&topics.changes, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut at_end = BTreeSet::new();
    let mut changes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < kafka.command_partitions as usize {
        assert!(Instant::now() < deadline, "changes topic not read to its end within 60 s");
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Ok(message)) => {
                let envelope = scimflow_proto::ChangeEnvelope::decode(message.payload().unwrap_or_default())
                    .expect("a change envelope");
                changes.push(envelope);
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(error)) => panic!("reading the changes topic: {error}"),
        }
    }
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_projector_process_mid_batch_loses_and_duplicates_nothing() {
    let _serial = LOCK.lock().await;
    let fresh = match FreshServices::from_env("kill9", true, true) {
        Ok(fresh) => fresh,
        Err(why) => return eprintln!("SKIPPED: projector kill -9 {why}"),
    };
    let (kafka, projector, cql) = (fresh.kafka.unwrap(), fresh.projector.unwrap(), fresh.cql.unwrap());
    let binary = scimflow_binary();
    let work = tempfile::tempdir().unwrap();
    let (api_dir, projector_dir) = (work.path().join("api"), work.path().join("projector"));
    // `App::build` opens DATA_DIR/tenants.redb in every role, and redb allows one process per
    // file: the projector gets a data directory of its own (it never reads tenants).
    let env: Vec<(String, String)> = vec![
        ("SCIMFLOW_KAFKA_BROKERS".into(), kafka.brokers.clone()),
        ("SCIMFLOW_KAFKA_TOPIC_PREFIX".into(), kafka.topic_prefix.clone()),
        ("SCIMFLOW_KAFKA_COMMAND_PARTITIONS".into(), kafka.command_partitions.to_string()),
        ("SCIMFLOW_CQL_NODES".into(), cql.nodes.join(",")),
        ("SCIMFLOW_CQL_KEYSPACE".into(), cql.keyspace.clone()),
        ("SCIMFLOW_PROJECTOR_GROUP_ID".into(), projector.group_id.clone()),
        // A stable per-slot id (the production setting): the restarted member fences the killed
        // one's transactional producer and aborts its open transaction at once.
        ("SCIMFLOW_PROJECTOR_INSTANCE_ID".into(), "slot-0".into()),
        // The killed member leaves the group after 6 s (the broker's minimum) instead of 45 s.
        ("SCIMFLOW_KAFKA_CLIENT_SESSION_TIMEOUT_MS".into(), "6000".into()),
        ("SCIMFLOW_STORE".into(), "cql".into()),
        // Any free port for the projector's /metrics: the default one may be taken on this host.
        ("SCIMFLOW_METRICS_LISTEN".into(), "127.0.0.1:0".into()),
        ("RUST_LOG".into(), "info".into()),
        ("SCIMFLOW_LOG_FORMAT".into(), "json".into()),
    ];
    let with_dir = |dir: &Path| {
        let mut env = env.clone();
        env.push(("SCIMFLOW_DATA_DIR".into(), dir.display().to_string()));
        env
    };
    let token = scimflow_run(&binary, &["tenant", "create", "acme", "--quiet"], &with_dir(&api_dir))
        .trim()
        .to_owned();
    scimflow_run(&binary, &["migrate"], &env);

    let start_projector = |generation: usize| {
        let log = work.path().join(format!("projector-{generation}.log"));
        ScimflowProcess::start(&binary, &["projector"], &with_dir(&projector_dir), log)
    };
    let mut projector_process = start_projector(0);
    projector_process.wait_for("is folding the Kafka command log", Duration::from_secs(60)).await;
    let port = free_port();
    let mut api_env = with_dir(&api_dir);
    api_env.push(("SCIMFLOW_LISTEN".into(), format!("127.0.0.1:{port}")));
    let mut api = ScimflowProcess::start(&binary, &["ingest-api"], &api_env, work.path().join("api.log"));
    let banner = api.wait_for("serving SCIM 2.0 at", Duration::from_secs(60)).await;
    let base_url = banner.rsplit(' ').next().unwrap().to_owned();
    let app = TestApp {
        base_url,
        token,
        other_token: String::new(),
        client: reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2)).build().unwrap(),
        data_dir: tempfile::tempdir().unwrap(),
    };
    app.wait_until_ready().await;

    let group_id = app.create_group("Killed mid-batch").await;
    let harness = Harness::new(app, group_id.clone(), true);
    let mut users = Vec::new();
    for chunk in (0..CLIENTS * 40).collect::<Vec<_>>().chunks(16) {
        let created = join_all(chunk.iter().map(|index| {
            let harness = &harness;
            async move { harness.create_user(&format!("k{index}@faults.example")).await }
        }))
        .await;
        users.extend(created.into_iter().map(|id| id.expect("user created")));
    }
    let workers: Vec<_> =
        users.chunks(40).map(|own| tokio::spawn(toggling_client(harness.clone(), own.to_vec()))).collect();

    let mut previous = Vec::new();
    for generation in 1..=3 {
        tokio::time::sleep(Duration::from_millis(2000 + 700 * generation as u64)).await;
        let in_flight = harness.calls().len();
        projector_process.kill_9();
        eprintln!("projector {} killed with SIGKILL ({in_flight} calls so far)", generation - 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        previous.push(std::mem::replace(&mut projector_process, start_projector(generation)));
        projector_process.wait_for("is folding the Kafka command log", Duration::from_secs(60)).await;
        let restarted = Instant::now();
        let recovery = harness.recovered_after(restarted).await;
        eprintln!(
            "projector {generation} started; first write acknowledged {:.1} s later",
            recovery.as_secs_f64()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    harness.stop.store(true, Ordering::Relaxed);
    let states: Vec<BTreeMap<String, (usize, bool)>> =
        join_all(workers).await.into_iter().map(Result::unwrap).collect();
    let states: BTreeMap<String, (usize, bool)> = states.into_iter().flatten().collect();

    // The store, through the API: exactly the members the acknowledged writes left.
    let expected: BTreeSet<String> =
        states.iter().filter(|(_, (_, member))| *member).map(|(id, _)| id.clone()).collect();
    let members = harness.all_members().await;
    assert_eq!(members, expected, "the group's members are exactly what the acknowledged writes left");

    // The changes topic, read_committed: every change once, in order.
    let (kafka_check, group) = (kafka.clone(), projector.group_id.clone());
    tokio::task::spawn_blocking(move || {
        wait_until_changes_published(&kafka_check, &group, Duration::from_secs(90))
    })
    .await
    .unwrap();
    let kafka_read = kafka.clone();
    let changes = tokio::task::spawn_blocking(move || read_changes(&kafka_read)).await.unwrap();
    let mut seen = BTreeSet::new();
    let duplicates: Vec<&str> = changes
        .iter()
        .filter(|change| !seen.insert(change.change_id.clone()))
        .map(|c| c.change_id.as_str())
        .collect();
    assert!(
        duplicates.is_empty(),
        "{} duplicate change ids, e.g. {:?}",
        duplicates.len(),
        &duplicates[..duplicates.len().min(5)]
    );
    let created: BTreeSet<&str> = changes
        .iter()
        .filter(|change| matches!(&change.change, Some(Change::Upserted(upserted)) if upserted.created))
        .map(|change| change.resource_id.as_str())
        .collect();
    for id in users.iter().chain([&group_id]) {
        assert!(created.contains(id.as_str()), "the creation of {id} is on the changes topic");
    }
    // Per member, the membership changes of the group in topic order: added, removed, added, ...
    let mut history: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for change in changes.iter().filter(|change| change.resource_id == group_id) {
        match &change.change {
            Some(Change::MembersAdded(added)) => {
                for member in &added.members {
                    history.entry(member.value.clone()).or_default().push(true);
                }
            }
            Some(Change::MembersRemoved(removed)) => {
                for value in &removed.values {
                    history.entry(value.clone()).or_default().push(false);
                }
            }
            _ => {}
        }
    }
    let mut mismatches = Vec::new();
    for (id, (flips, member)) in &states {
        let events = history.remove(id).unwrap_or_default();
        let alternating = events.iter().enumerate().all(|(index, added)| *added == index.is_multiple_of(2));
        if events.len() != *flips || !alternating || events.last().copied().unwrap_or(false) != *member {
            mismatches
                .push(format!("{id}: {flips} acknowledged flips, ends member={member}; changes {events:?}"));
        }
    }
    assert!(history.is_empty(), "membership changes of users nobody touched: {history:?}");
    assert!(
        mismatches.is_empty(),
        "{} members whose changes disagree:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    let flips: usize = states.values().map(|(flips, _)| flips).sum();
    let logs: String = previous.iter().chain([&projector_process]).map(ScimflowProcess::output).collect();
    // `ChangesRepublished {from, to}`: a kill hit a batch after its store commit and before its
    // transaction, and the next member published that batch's changes.
    let republished: Vec<u64> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["fields"]["message"] == "ChangesRepublished")
        .map(|event| {
            let at = |name: &str| event["fields"][name].as_u64().unwrap_or(0);
            at("to") - at("from")
        })
        .collect();
    eprintln!(
        "kill -9 x3: {flips} acknowledged membership writes, {} members at the end, {} changes read once \
         each; folded-but-unpublished commands republished after a kill: {republished:?}; records \
         already folded skipped: {}",
        members.len(),
        changes.len(),
        logs.matches("ProjectorRecordsAlreadyFolded").count()
    );
    assert_no_violations(&harness);
    drop(api);
}
