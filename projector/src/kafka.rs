//! The projector over the Kafka commands topic.
//!
//! Members of one consumer group (`scimflow-projector` by default) share the partitions of the
//! commands topic; each partition has one writer at a time. For its partitions a member folds
//! commands in batches with [`fold_records`](crate::fold_records) into the store, reports the
//! outcomes (outcomes topic, and the in-process hub when all-in-one), and publishes the changes
//! to the changes topic **in a Kafka transaction together with the consumer offsets**.
//!
//! ## Positions
//! The store is authoritative: on assignment each partition starts at `store.next_offset(p)`,
//! never at Kafka's committed offset, so a command below the store's position is never folded
//! twice, whatever happened to Kafka offsets.
//!
//! The committed consumer offset instead says how far the **changes** were published: every
//! transaction commits the changes of commands `[c, n)` together with offset `n`. On assignment
//! a member compares the committed offset `c` with the store position `s`:
//! - `c < s`: a previous owner crashed (or its transaction was aborted) after its store commit.
//!   The changes of `[c, s)` are read back with `changes_between` and published, in
//!   transactions that also commit the offset, before anything new is folded.
//! - `c > s`: the store lost its latest commits (e.g. the embedded store's unsynced tail after a
//!   power cut). Commands `[s, c)` are folded again (the fold is deterministic), but their changes
//!   are not published again.
//!
//! So each folded command's changes appear on the changes topic exactly once, as seen by a
//! `read_committed` consumer. See docs/kafka.md for the full argument and its limits.
//!
//! ## Threads
//! librdkafka runs rebalance callbacks on the thread that polls, and everything the loop does is
//! blocking (the store port is synchronous, transactions block), so the whole loop runs on one
//! dedicated OS thread; [`KafkaProjector`] is the async handle to it.
//!
//! ## Layout
//! - [`assignment`]: the rebalance callback positioning partitions at the store's offsets.
//! - [`worker`]: the loop: poll, fold, hand the round to the publisher; retries and recovery.
//! - `publisher`: the thread that publishes folded rounds in transactions, off the fold loop.
//! - `transactions`: the transactional producer of the changes topic.
//! - [`lag`]: [`LagMonitor`](lag::LagMonitor), the group's lag per partition for `/metrics`.

pub mod assignment;
pub mod lag;
mod publisher;
mod transactions;
pub mod worker;

use crate::metrics::ProjectorMetrics;
use scimflow_core::SchemaRegistry;
use scimflow_log::OutcomeHub;
use scimflow_log::kafka::{KafkaConfig, KafkaSetupError, ensure_topics};
use scimflow_store::StoreWriter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

#[derive(Debug, Clone)]
pub struct KafkaProjectorConfig {
    pub kafka: KafkaConfig,
    /// The consumer group; all projectors of one pipeline share it.
    pub group_id: String,
    /// Names this member's transactional producer (`<group>-<instance>`). A restarted member
    /// with the same id fences its previous incarnation at once and aborts its open
    /// transaction; with a fresh id (the default, random) an abandoned transaction holds back
    /// `read_committed` readers of the changes topic until `transaction_timeout`. In production
    /// use a stable per-slot id (e.g. the StatefulSet pod name); never give two live members
    /// the same id (the later one fences the other, which then stops).
    pub instance_id: String,
    /// Most records taken in one poll round (across this member's partitions), and most
    /// commands of a partition folded in one round.
    pub max_batch: usize,
    /// Most commands of one tenant in a partition's round while other tenants of the
    /// partition wait ([`RoundLimits::tenant_share`]).
    pub tenant_share: usize,
    /// `transaction.timeout.ms`: the longest a transaction may stay open; also how long an
    /// abandoned one can stall `read_committed` readers.
    pub transaction_timeout: Duration,
    /// Where the fold loop reports (folded commands, batch sizes, transactions); unregistered
    /// by default, register it to serve it (see [`ProjectorMetrics::register`]).
    pub metrics: ProjectorMetrics,
}

impl KafkaProjectorConfig {
    pub const DEFAULT_GROUP_ID: &'static str = "scimflow-projector";
    pub const DEFAULT_MAX_BATCH: usize = crate::embedded::MAX_BATCH;
    /// As on the embedded log: rounds are cheap since transactions run off the fold loop, so
    /// a small share costs a busy tenant's backlog little drain speed while another tenant's
    /// command waits for one short round (`scimflow-bench --log kafka backlog`).
    pub const DEFAULT_TENANT_SHARE: usize = crate::window::DEFAULT_TENANT_SHARE;
    pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);

    pub fn new(kafka: KafkaConfig) -> Self {
        KafkaProjectorConfig {
            kafka,
            group_id: Self::DEFAULT_GROUP_ID.to_owned(),
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
            max_batch: Self::DEFAULT_MAX_BATCH,
            tenant_share: Self::DEFAULT_TENANT_SHARE,
            transaction_timeout: Self::DEFAULT_TRANSACTION_TIMEOUT,
            metrics: ProjectorMetrics::default(),
        }
    }

    /// [`KafkaProjectorConfig::new`] plus `SCIMFLOW_PROJECTOR_GROUP_ID`,
    /// `SCIMFLOW_PROJECTOR_INSTANCE_ID`, `SCIMFLOW_PROJECTOR_MAX_BATCH`,
    /// `SCIMFLOW_PROJECTOR_TENANT_SHARE` and
    /// `SCIMFLOW_PROJECTOR_TRANSACTION_TIMEOUT_MS` from the environment.
    pub fn from_env(kafka: KafkaConfig) -> Result<Self, KafkaSetupError> {
        let mut config = Self::new(kafka);
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
        let number = |name: &str, value: String| {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| KafkaSetupError::Config(format!("{name}={value:?} is not a number")))
        };
        if let Some(group) = var("SCIMFLOW_PROJECTOR_GROUP_ID") {
            config.group_id = group;
        }
        if let Some(instance) = var("SCIMFLOW_PROJECTOR_INSTANCE_ID") {
            config.instance_id = instance;
        }
        if let Some(value) = var("SCIMFLOW_PROJECTOR_MAX_BATCH") {
            config.max_batch = number("SCIMFLOW_PROJECTOR_MAX_BATCH", value)?.max(1) as usize;
        }
        if let Some(value) = var("SCIMFLOW_PROJECTOR_TENANT_SHARE") {
            config.tenant_share = number("SCIMFLOW_PROJECTOR_TENANT_SHARE", value)?.max(1) as usize;
        }
        if let Some(value) = var("SCIMFLOW_PROJECTOR_TRANSACTION_TIMEOUT_MS") {
            config.transaction_timeout =
                Duration::from_millis(number("SCIMFLOW_PROJECTOR_TRANSACTION_TIMEOUT_MS", value)?);
        }
        Ok(config)
    }

    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.group_id, self.instance_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaProjectorError {
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    /// The transactional producer can no longer be used (fenced by a member with the same
    /// instance id, or a broker-side fatal error). The member re-opens itself with backoff
    /// (see `supervise`); this only ends a worker, never the projector.
    #[error("fatal kafka error, the projector stopped: {0}")]
    Fatal(String),
    #[error("the projector thread panicked")]
    Panicked,
}

/// Stop requests from the handle to the worker thread.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Finish the round in progress, then leave the group.
    stop: AtomicBool,
    /// Abandon work at the next step without publishing or committing (a simulated crash).
    kill: AtomicBool,
    /// The partitions the member owns, for [`KafkaProjector::assignment`].
    owned: Mutex<Vec<u32>>,
}

impl Control {
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.killed()
    }

    pub(crate) fn killed(&self) -> bool {
        self.kill.load(Ordering::Relaxed)
    }

    pub(crate) fn set_owned(&self, partitions: Vec<u32>) {
        *self.owned.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = partitions;
    }
}

/// A running Kafka projector member.
///
/// # Examples
/// ```no_run
/// # async fn example(store: std::sync::Arc<scimflow_store::embedded::EmbeddedStore>) -> Result<(), Box<dyn std::error::Error>> {
/// use scimflow_log::kafka::KafkaConfig;
/// use scimflow_projector::kafka::{KafkaProjector, KafkaProjectorConfig};
/// let registry = std::sync::Arc::new(scimflow_core::SchemaRegistry::standard());
/// let config = KafkaProjectorConfig::from_env(KafkaConfig::from_env()?)?;
/// let projector = KafkaProjector::start(registry, store, config, None).await?;
/// // ... until shutdown:
/// projector.stop().await?;
/// # Ok(()) }
/// ```
pub struct KafkaProjector {
    control: Arc<Control>,
    done: oneshot::Receiver<Result<(), KafkaProjectorError>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KafkaProjector {
    /// Ensures the topics, then starts the member: returns once its transactional producer is
    /// initialised and it has subscribed (partitions arrive with the first rebalance).
    /// `hub`: also deliver outcomes in-process (all-in-one); they go to the outcomes topic
    /// either way.
    pub async fn start<S: StoreWriter + 'static>(
        registry: Arc<SchemaRegistry>,
        store: Arc<S>,
        config: KafkaProjectorConfig,
        hub: Option<Arc<OutcomeHub>>,
    ) -> Result<Self, KafkaProjectorError> {
        ensure_topics(&config.kafka).await?;
        let control = Arc::new(Control::default());
        let (ready_sender, ready) = oneshot::channel();
        let (done_sender, done) = oneshot::channel();
        let worker_control = control.clone();
        let thread = std::thread::Builder::new()
            .name("scimflow-projector".into())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    supervise(registry, store, &config, hub, worker_control, ready_sender)
                }));
                let result = outcome.unwrap_or_else(|_| {
                    tracing::error!("ProjectorPanicked");
                    Err(KafkaProjectorError::Panicked)
                });
                let _ = done_sender.send(result);
            })
            .map_err(|error| {
                KafkaSetupError::Config(format!("cannot start the projector thread: {error}"))
            })?;
        let projector = KafkaProjector { control, done, thread: Some(thread) };
        match ready.await {
            Ok(Ok(())) => Ok(projector),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(KafkaProjectorError::Panicked),
        }
    }

    /// The command partitions this member owns now (for status pages and tests).
    pub fn assignment(&self) -> Vec<u32> {
        self.control.owned.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Waits until the member stops by itself (only if it panicked: fatal Kafka errors restart
    /// the worker).
    pub async fn stopped(&mut self) -> Result<(), KafkaProjectorError> {
        (&mut self.done).await.unwrap_or(Err(KafkaProjectorError::Panicked))
    }

    /// Graceful stop: finishes the round in progress (fold, publish, commit), then leaves the
    /// group so the partitions move at once.
    pub async fn stop(mut self) -> Result<(), KafkaProjectorError> {
        self.control.stop.store(true, Ordering::Relaxed);
        let result = self.stopped().await;
        self.join().await;
        result
    }

    /// Simulates a crash, for tests of recovery: the member abandons its work right after its
    /// next store commit (or after 2 s without one), without publishing the changes or
    /// committing offsets, and closes its clients.
    pub async fn kill(mut self) {
        self.control.kill.store(true, Ordering::Relaxed);
        let _ = self.stopped().await;
        self.join().await;
    }

    async fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for KafkaProjector {
    fn drop(&mut self) {
        // Dropped without `stop`: still stop the thread rather than leak a group member.
        self.control.stop.store(true, Ordering::Relaxed);
    }
}

/// First pause before re-opening a member whose producer failed fatally; doubles up to
/// [`MAX_RESTART_DELAY`] while re-opening keeps failing.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// Runs workers on the projector thread until stopped. The first open is reported on `ready`
/// (a bad configuration fails `start`); after that, a fatal producer error (for example the
/// broker aborting a transaction that outlived `transaction.timeout.ms` during an outage) does
/// not end the projector: the worker is dropped (its consumer leaves the group) and a fresh one
/// opens with the same transactional id, which fences the old producer. Positions come from the
/// store and publishing resumes from the committed offset, so a restart neither skips nor
/// repeats anything.
fn supervise<S: StoreWriter + 'static>(
    registry: Arc<SchemaRegistry>,
    store: Arc<S>,
    config: &KafkaProjectorConfig,
    hub: Option<Arc<OutcomeHub>>,
    control: Arc<Control>,
    ready: oneshot::Sender<Result<(), KafkaProjectorError>>,
) -> Result<(), KafkaProjectorError> {
    let open = || worker::Worker::open(registry.clone(), store.clone(), config, hub.clone(), control.clone());
    let mut worker = match open() {
        Ok(worker) => {
            let _ = ready.send(Ok(()));
            worker
        }
        Err(error) => {
            let _ = ready.send(Err(error));
            return Ok(());
        }
    };
    let mut delay = FIRST_RESTART_DELAY;
    loop {
        let started = Instant::now();
        let reason = match worker.run() {
            Err(KafkaProjectorError::Fatal(reason)) => reason,
            other => return other,
        };
        // A worker that ran a while before failing starts the backoff over.
        if started.elapsed() > MAX_RESTART_DELAY {
            delay = FIRST_RESTART_DELAY;
        }
        worker = loop {
            control.set_owned(Vec::new());
            tracing::error!(reason = %reason, restart_in_ms = delay.as_millis() as u64, "ProjectorRestarting");
            if sleep_unless_stopping(&control, delay) {
                return Ok(());
            }
            delay = (delay * 2).min(MAX_RESTART_DELAY);
            match open() {
                Ok(worker) => {
                    tracing::info!("ProjectorRestarted");
                    break worker;
                }
                Err(error) => tracing::warn!(error = %error, "ProjectorReopenFailed"),
            }
        };
    }
}

/// Sleeps for `delay` in short steps; true if a stop was requested meanwhile.
fn sleep_unless_stopping(control: &Control, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if control.stopping() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    control.stopping()
}

/// Runs a projector member until `shutdown` turns true (then stops gracefully) or it fails.
pub async fn run<S: StoreWriter + 'static>(
    registry: Arc<SchemaRegistry>,
    store: Arc<S>,
    config: KafkaProjectorConfig,
    hub: Option<Arc<OutcomeHub>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), KafkaProjectorError> {
    let mut projector = KafkaProjector::start(registry, store, config, hub).await?;
    let shutdown_requested = async {
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                // The sender is gone: nobody can ask for a shutdown any more; keep running.
                std::future::pending::<()>().await;
            }
        }
    };
    let failed = tokio::select! {
        result = projector.stopped() => Some(result),
        () = shutdown_requested => None,
    };
    match failed {
        Some(result) => result,
        None => projector.stop().await,
    }
}
