//! Outcomes across processes: the projector publishes each command's [`Outcome`] to the
//! outcomes topic ([`OutcomePublisher`]); every API instance reads the whole topic
//! ([`OutcomeListener`]) and hands each outcome to its [`OutcomeHub`], where the request that
//! sent the command (if it is one of this instance's) is waiting.
//!
//! Why every instance reads every outcome: the instance that appended a command is the one
//! holding the HTTP request, but Kafka cannot route a record to "whoever sent event X". Keying
//! outcomes to a partition per instance would need a registry of instances and would break when
//! instances come and go; reading all outcomes needs nothing. The listener uses `assign()` (no
//! consumer group: no join delay, no rebalances, no committed offsets) starting at the end of
//! each partition, because an instance only waits for commands it sends after it started.
//!
//! The cost, and the scaling limit: each instance receives all outcome traffic, so the total
//! outcome bytes read grow with (write rate × API instances). An outcome is a few hundred bytes
//! plus the resource, so at 10 000 writes/s and 20 instances that is ~200 000 small records/s
//! across the fleet. Outcomes of other instances' commands are skipped before JSON parsing when
//! nothing waits locally. Past that, partition outcomes by instance (a header naming the
//! sender, one partition per instance) — see docs/kafka.md.

use super::config::{KafkaConfig, KafkaSetupError, millis};
use super::context::{TracingContext, forward_error, forward_log};
use crate::outcome::{Outcome, OutcomeHub};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the listener thread looks at its stop flag when no outcome arrives.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Logs outcomes that could not be delivered: their waiters time out (the command is folded
/// either way), so there is nothing to retry.
struct OutcomeDeliveryContext;

impl ClientContext for OutcomeDeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log("outcome-publisher", level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error("outcome-publisher", &error, reason);
    }
}

impl ProducerContext for OutcomeDeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            let event_id = message.key().map(String::from_utf8_lossy).unwrap_or_default();
            tracing::warn!(event_id = %event_id, error = %error, "OutcomePublishFailed");
        }
    }
}

/// Produces outcomes to the outcomes topic, keyed by event id. Fire and forget: `publish`
/// enqueues and returns, librdkafka delivers in the background.
pub struct OutcomePublisher {
    producer: ThreadedProducer<OutcomeDeliveryContext>,
    topic: String,
}

impl OutcomePublisher {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaSetupError> {
        let producer = config
            .client_config(&[
                // Outcomes are on the request's critical path: send almost at once.
                ("linger.ms", "1"),
                // One replica is enough: a lost outcome costs one request a timeout, never data.
                ("acks", "1"),
            ])
            // An outcome older than the produce deadline has no waiter left worth the retry.
            .set("message.timeout.ms", millis(config.produce_deadline.max(Duration::from_secs(5))))
            .create_with_context(OutcomeDeliveryContext)?;
        Ok(OutcomePublisher { producer, topic: config.topics().outcomes })
    }

    pub fn publish(&self, outcomes: &[Outcome]) {
        for outcome in outcomes {
            let payload = outcome.to_json().to_string();
            let record = BaseRecord::to(&self.topic).key(outcome.event_id.as_str()).payload(payload.as_str());
            if let Err((error, _record)) = self.producer.send(record) {
                // Queue full (100 000 outcomes unsent): the brokers are far behind; the waiters
                // of these outcomes time out and their clients retry.
                tracing::warn!(event_id = %outcome.event_id, error = %error, "OutcomePublishFailed");
            }
        }
        if !outcomes.is_empty() {
            tracing::trace!(count = outcomes.len(), "OutcomesPublished");
        }
    }

    /// Waits until every enqueued outcome is delivered or failed (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(error = %error, "OutcomeFlushFailed");
        }
    }
}

/// Reads every partition of the outcomes topic from the end (as of `start`) and delivers to an
/// [`OutcomeHub`]. Start it before the API takes writes; stop it (or drop it) at shutdown.
///
/// Partitions added to the outcomes topic later are not picked up until restart.
pub struct OutcomeListener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OutcomeListener {
    /// Returns once the listener is positioned at the current end of every partition: any
    /// outcome produced after this returns will be delivered.
    pub async fn start(config: &KafkaConfig, hub: Arc<OutcomeHub>) -> Result<Self, KafkaSetupError> {
        let client_config = config
            .client_config(&[])
            // librdkafka needs a group id even for `assign()`; this one never joins (no
            // `subscribe`) and never commits, so every instance can share it.
            .set("group.id", "scimflow-outcome-listener")
            // Invariants: no offsets kept; a restart starts again from the end.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .clone();
        let topic = config.topics().outcomes;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_sender, ready) = oneshot::channel();
        let thread_stop = stop.clone();
        // The consumer lives and dies on its own thread: polling blocks, and the thread owns the
        // librdkafka handle from creation on.
        let thread = std::thread::Builder::new()
            .name("scimflow-outcomes".into())
            .spawn(move || match open_at_end(&client_config, &topic) {
                Ok(consumer) => {
                    let _ = ready_sender.send(Ok(()));
                    listen(&consumer, &hub, &thread_stop);
                }
                Err(error) => {
                    let _ = ready_sender.send(Err(error));
                }
            })
            .map_err(|error| {
                KafkaSetupError::Config(format!("cannot start the outcome listener thread: {error}"))
            })?;
        let listener = OutcomeListener { stop, thread: Some(thread) };
        match ready.await {
            Ok(Ok(())) => Ok(listener),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(KafkaSetupError::Config("the outcome listener thread stopped during start".into())),
        }
    }

    /// Stops the listener thread and waits for it.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for OutcomeListener {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn open_at_end(config: &ClientConfig, topic: &str) -> Result<BaseConsumer<TracingContext>, KafkaSetupError> {
    let consumer: BaseConsumer<TracingContext> =
        config.create_with_context(TracingContext { client: "outcome-listener" })?;
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|found| found.name() == topic && found.error().is_none())
        .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
        .collect();
    if partitions.is_empty() {
        return Err(KafkaSetupError::Topic {
            topic: topic.to_owned(),
            problem: "has no partitions (does it exist?)".into(),
            fix: "call ensure_topics first".into(),
        });
    }
    // Explicit end offsets rather than `Offset::End`: `End` is resolved asynchronously when
    // fetching starts, so an outcome produced right after `start` returned could be skipped.
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        let (_low, high) = consumer.fetch_watermarks(topic, *partition, METADATA_TIMEOUT)?;
        assignment.add_partition_offset(topic, *partition, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;
    tracing::info!(topic, partitions = partitions.len(), "OutcomeListenerStarted");
    Ok(consumer)
}

fn listen(consumer: &BaseConsumer<TracingContext>, hub: &OutcomeHub, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL_INTERVAL) {
            None => {}
            Some(Err(error)) => {
                tracing::warn!(error = %error, "OutcomeConsumeFailed");
            }
            Some(Ok(message)) => {
                // Most outcomes belong to other instances: do not parse when nobody waits here.
                if hub.waiting() == 0 {
                    continue;
                }
                let outcome = message
                    .payload()
                    .and_then(|payload| serde_json::from_slice(payload).ok())
                    .and_then(|value| Outcome::from_json(&value));
                match outcome {
                    Some(outcome) => hub.deliver(outcome),
                    None => tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        "OutcomeUnreadable"
                    ),
                }
            }
        }
    }
    tracing::info!("OutcomeListenerStopped");
}
