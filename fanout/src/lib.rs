//! Fanout: delivers applied identity changes to product teams.
//!
//! ```text
//! source (changes topic | store change feed)
//!   └─ dispatcher: per record, per subscription: filter/trim ─┬─ Kafka: <prefix>product.<name>
//!                                                             ├─ Kafka: <prefix>state.* (compacted)
//!                                                             └─ webhook outbox (redb) ─ lane workers ─ POST SET
//! ```
//!
//! The dispatcher handles one batch at a time and commits the source only once every sink has
//! it: Kafka records acknowledged (`acks=all`), webhook items in the durable outbox. So delivery
//! is at-least-once: after a crash the uncommitted tail is delivered again, with the same
//! `change_id`. Webhook subscribers are drained by their own workers from the outbox, so a slow
//! or dead one never delays the source or the others. See `docs/consumers.md`.

pub mod config;
pub mod db;
pub mod exporter;
pub mod filter;
pub mod metrics;
pub mod redeliver;
pub mod set;
pub mod sinks;
pub mod source;
#[cfg(feature = "testing")]
pub mod testing;

use crate::config::{Delivery, FanoutConfig};
use crate::db::{DbError, DeadLetter, FanoutDb};
use crate::filter::Selector;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::sinks::kafka::{KafkaSink, await_deliveries};
use crate::sinks::webhook::{WebhookSubscriber, run_lane};
use crate::source::ChangeSource;
use prost::Message as _;
use scimflow_log::kafka::KafkaConfig;
use scimflow_proto as pb;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Records handled per dispatcher round.
const MAX_BATCH: usize = 1024;
/// How long an idle dispatcher waits for the first record before checking for shutdown.
const IDLE_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("source: {0}")]
    Source(#[from] source::SourceError),
    #[error("{0}")]
    Setup(String),
}

enum Target {
    Kafka,
    Webhook(Arc<WebhookSubscriber>),
}

struct Route {
    product: String,
    selector: Selector,
    target: Target,
}

/// A running fanout: the dispatcher and every webhook lane worker.
pub struct Fanout {
    metrics: Arc<Metrics>,
    db: FanoutDb,
    webhooks: Vec<Arc<WebhookSubscriber>>,
    shutdown: watch::Sender<bool>,
    dispatcher: JoinHandle<Result<(), FanoutError>>,
    workers: Vec<JoinHandle<()>>,
}

impl Fanout {
    /// Opens the data dir, creates the Kafka topics it needs (when `kafka` is given), starts one
    /// worker per webhook lane (they first drain what an earlier run left in the outbox) and
    /// the dispatcher over `source`.
    pub async fn start(
        config: FanoutConfig,
        kafka: Option<&KafkaConfig>,
        source: Box<dyn ChangeSource>,
    ) -> Result<Self, FanoutError> {
        let db = FanoutDb::open(&config.data_dir)?;
        Self::start_with_db(config, kafka, source, db).await
    }

    /// As [`Fanout::start`], with the database already open (the store-feed source keeps its
    /// cursor in the same file).
    pub async fn start_with_db(
        config: FanoutConfig,
        kafka: Option<&KafkaConfig>,
        source: Box<dyn ChangeSource>,
        db: FanoutDb,
    ) -> Result<Self, FanoutError> {
        config.validate()?;
        let metrics = Arc::new(Metrics::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut routes = Vec::new();
        let mut webhooks = Vec::new();
        let mut kafka_products = Vec::new();
        for subscription in &config.subscriptions {
            let counters = metrics.product(&subscription.product);
            let target = match &subscription.delivery {
                Delivery::Kafka {} => {
                    kafka_products.push(subscription.product.clone());
                    Target::Kafka
                }
                Delivery::Webhook(webhook) => {
                    let subscriber = Arc::new(WebhookSubscriber::new(
                        &subscription.product,
                        webhook.clone(),
                        &config.issuer,
                        counters,
                    )?);
                    webhooks.push(subscriber.clone());
                    Target::Webhook(subscriber)
                }
            };
            routes.push(Route {
                product: subscription.product.clone(),
                selector: Selector::new(subscription),
                target,
            });
        }
        let kafka_sink = match kafka {
            Some(kafka) => Some(
                KafkaSink::start(kafka, &kafka_products, config.state_topics, config.topic_partitions)
                    .await?,
            ),
            None if !kafka_products.is_empty() => {
                return Err(FanoutError::Setup(format!(
                    "products {kafka_products:?} want Kafka delivery, but no Kafka is configured"
                )));
            }
            None => None,
        };
        let mut workers = Vec::new();
        for subscriber in &webhooks {
            for lane in 0..subscriber.config.lanes {
                workers.push(tokio::spawn(run_lane(
                    subscriber.clone(),
                    lane,
                    db.clone(),
                    shutdown_rx.clone(),
                )));
            }
        }
        let dispatcher = tokio::spawn(dispatch(
            routes,
            kafka_sink.map(|sink| (sink, config.state_topics)),
            source,
            db.clone(),
            metrics.clone(),
            shutdown_rx,
        ));
        tracing::info!(subscriptions = config.subscriptions.len(), "FanoutStarted");
        Ok(Fanout { metrics, db, webhooks, shutdown, dispatcher, workers })
    }

    /// Delivery counters: read, per product delivered / retries / dead-lettered / lag.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The same counters as a Prometheus collector, to register on the registry a process
    /// serves at `/metrics`.
    pub fn prometheus_collector(&self) -> exporter::FanoutCollector {
        exporter::FanoutCollector::new(self.metrics.clone())
    }

    /// Events waiting in a webhook product's outbox.
    pub fn outbox_depth(&self, product: &str) -> Result<u64, FanoutError> {
        Ok(self.db.depth(product)?)
    }

    pub fn dead_letters(&self, product: &str) -> Result<Vec<DeadLetter>, FanoutError> {
        Ok(self.db.dead_letters(product)?)
    }

    /// Queues every dead letter of `product` again (behind what is queued now) and wakes its
    /// workers. Returns how many were requeued.
    pub fn redrive(&self, product: &str) -> Result<usize, FanoutError> {
        let Some(subscriber) = self.webhooks.iter().find(|s| s.product == product) else {
            return Err(FanoutError::Setup(format!("{product} is not a webhook subscription")));
        };
        let count = redrive(&self.db, product, subscriber.config.lanes)?;
        subscriber.wake_all();
        Ok(count)
    }

    /// True once the dispatcher stopped (after `stop`, or on a fatal error).
    pub fn is_finished(&self) -> bool {
        self.dispatcher.is_finished()
    }

    /// Stops the dispatcher after its current batch and the workers after their current
    /// request; returns the dispatcher's error if it failed.
    pub async fn stop(self) -> Result<(), FanoutError> {
        let _ = self.shutdown.send(true);
        let result = self.dispatcher.await.map_err(|join| FanoutError::Setup(join.to_string()))?;
        for worker in self.workers {
            let _ = worker.await;
        }
        tracing::info!("FanoutStopped");
        result
    }

    /// Runs until `shutdown` turns true (then stops gracefully) or the dispatcher fails.
    pub async fn run_until(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), FanoutError> {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => self.stop().await,
            result = self.failed() => result,
        }
    }

    /// Waits for the dispatcher to end on its own (a fatal error); a process hosting fanout
    /// beside other work selects on this to stop when fanout cannot go on.
    /// The webhook workers are stopped too (the outbox keeps what they had not delivered).
    pub async fn failed(&mut self) -> Result<(), FanoutError> {
        let result = (&mut self.dispatcher).await;
        let _ = self.shutdown.send(true);
        result.map_err(|join| FanoutError::Setup(join.to_string()))?
    }
}

/// Requeues a product's dead letters in an open database (also usable while fanout is
/// stopped: `scimflow fanout redrive`). Workers pick them up within a second.
pub fn redrive(db: &FanoutDb, product: &str, lanes: u32) -> Result<usize, FanoutError> {
    let count = db.redrive(product, |bytes| {
        pb::ChangeEnvelope::decode(bytes).map_or(0, |envelope| sinks::webhook::lane_of(&envelope, lanes))
    })?;
    tracing::info!(product = %product, count, "DeadLettersRedriven");
    Ok(count)
}

/// Runs fanout until `shutdown` turns true; `Err` on a fatal error (restart the process: it
/// resumes from the last committed position).
pub async fn run(
    config: FanoutConfig,
    kafka: Option<&KafkaConfig>,
    source: Box<dyn ChangeSource>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), FanoutError> {
    let fanout = Fanout::start(config, kafka, source).await?;
    fanout.run_until(shutdown).await
}

async fn dispatch(
    routes: Vec<Route>,
    kafka: Option<(KafkaSink, bool)>,
    mut source: Box<dyn ChangeSource>,
    db: FanoutDb,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), FanoutError> {
    let mut retry_delay = Duration::from_millis(50);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let batch = tokio::select! {
            batch = source.next_batch(MAX_BATCH, IDLE_WAIT) => batch,
            _ = shutdown.changed() => continue,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                // A store or broker hiccup: wait and read again; nothing was taken yet.
                tracing::error!(error = %error, retry_in_ms = retry_delay.as_millis() as u64, "FanoutSourceFailed");
                tokio::time::sleep(retry_delay).await;
                retry_delay = (retry_delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        retry_delay = Duration::from_millis(50);
        if batch.is_empty() {
            continue;
        }
        let mut deliveries = Vec::new();
        // Delivery spans end once the sinks have the batch (acknowledged or in the outbox).
        let mut delivery_spans = Vec::new();
        let mut queued: Vec<(String, u32, Vec<u8>)> = Vec::new();
        let mut woken: Vec<(Arc<WebhookSubscriber>, u32)> = Vec::new();
        for record in &batch {
            metrics.read.fetch_add(1, Ordering::Relaxed);
            let Some(envelope) = &record.envelope else {
                metrics.unreadable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    partition = record.partition,
                    offset = record.offset,
                    "FanoutRecordUnreadable"
                );
                continue;
            };
            for route in &routes {
                let Some(selected) = route.selector.select(envelope) else { continue };
                let sink_name = match route.target {
                    Target::Kafka => "kafka",
                    Target::Webhook(_) => "outbox",
                };
                let span = sinks::delivery_span(sink_name, &route.product, envelope);
                let _delivering = span.enter();
                match &route.target {
                    Target::Kafka => {
                        let (sink, _) = kafka.as_ref().expect("Kafka routes exist only with a sink");
                        deliveries.push(sink.send_product(&route.product, &selected)?);
                    }
                    Target::Webhook(subscriber) => {
                        let lane = subscriber.lane_of(&selected);
                        queued.push((route.product.clone(), lane, selected.encode_to_vec()));
                        woken.push((subscriber.clone(), lane));
                    }
                }
                delivery_spans.push(span.clone());
            }
            if let Some((sink, true)) = &kafka {
                let span = sinks::delivery_span("state", "", envelope);
                let _delivering = span.enter();
                delivery_spans.push(span.clone());
                let state = sink.send_state(envelope)?;
                metrics.state_records.fetch_add(state.len() as u64, Ordering::Relaxed);
                deliveries.extend(state);
            }
        }
        if !queued.is_empty() {
            let db = db.clone();
            tokio::task::spawn_blocking(move || {
                let items: Vec<(&str, u32, Vec<u8>)> = queued
                    .iter()
                    .map(|(product, lane, bytes)| (product.as_str(), *lane, bytes.clone()))
                    .collect();
                db.enqueue(&items)
            })
            .await
            .map_err(|join| FanoutError::Setup(join.to_string()))??;
            for (subscriber, lane) in woken {
                subscriber.wake[lane as usize].notify_one();
            }
        }
        // With `message.timeout.ms=0` a delivery only fails on a fatal producer error; the
        // batch is then not committed and the process must restart to redeliver it in order.
        await_deliveries(deliveries).await?;
        drop(delivery_spans);
        source.commit().await?;
    }
}
