//! The transactional producer of the changes topic: one transaction publishes the changes of
//! some folded rounds together with the consumer offsets after them (KIP-447), so a
//! `read_committed` reader sees each folded command's changes exactly once.

use super::{Control, KafkaProjectorConfig, KafkaProjectorError};
use crate::metrics::TransactionResult;
use prost::Message as _;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use scimflow_log::kafka::context::TracingContext;
use scimflow_log::kafka::{KafkaSetupError, TopicNames};
use scimflow_log::trace_context;
use scimflow_store::ChangeRecord;
use std::time::{Duration, Instant};

/// Timeout of blocking Kafka calls (transactions, committed offsets).
pub(crate) const KAFKA_CALL_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_REOPEN_DELAY: Duration = Duration::from_millis(50);
const MAX_REOPEN_DELAY: Duration = Duration::from_secs(5);

/// One partition's share of a transaction: its changes and the offset to commit.
#[derive(Debug)]
pub(crate) struct PartitionPublish {
    pub partition: u32,
    pub changes: Vec<ChangeRecord>,
    pub commit_offset: u64,
}

#[derive(Debug)]
pub(crate) enum TransactionFailure {
    /// Aborted cleanly; nothing of it is visible. The partitions need republishing.
    Aborted(KafkaError),
    /// The producer was unusable (fenced, or a fatal broker-side error). `replaced`: a fresh
    /// producer with the same transactional id took its place; false only when a stop was
    /// requested before one could be opened.
    Fatal { reason: String, replaced: bool },
}

pub(crate) struct ChangeTransactions {
    producer: ThreadedProducer<TracingContext>,
    topics: TopicNames,
    config: KafkaProjectorConfig,
}

/// The transactional producer of the changes topic.
fn open_change_producer(
    config: &KafkaProjectorConfig,
) -> Result<ThreadedProducer<TracingContext>, KafkaProjectorError> {
    let transaction_timeout = config.transaction_timeout.as_millis().to_string();
    let producer: ThreadedProducer<TracingContext> = config
        .kafka
        .client_config(&[("linger.ms", "5"), ("compression.type", "lz4")])
        .set("transactional.id", config.transactional_id())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("transaction.timeout.ms", &transaction_timeout)
        // The coordinator answers CONCURRENT_TRANSACTIONS to the first AddPartitionsToTxn
        // right after a commit while it writes the markers; the default 100 ms backoff
        // before retrying would be added to every transaction.
        .set("retry.backoff.ms", "10")
        // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        .set("message.timeout.ms", &transaction_timeout)
        .create_with_context(TracingContext { client: "change-producer" })
        .map_err(KafkaSetupError::from)?;
    // Fences any earlier producer with this transactional.id and aborts its open transaction.
    producer.init_transactions(KAFKA_CALL_TIMEOUT).map_err(KafkaSetupError::from)?;
    Ok(producer)
}

impl ChangeTransactions {
    pub(crate) fn open(config: &KafkaProjectorConfig) -> Result<Self, KafkaProjectorError> {
        Ok(ChangeTransactions {
            producer: open_change_producer(config)?,
            topics: config.kafka.topics(),
            config: config.clone(),
        })
    }

    /// Publishes `publishes` in one transaction with their commit offsets. After a fatal error
    /// the producer is replaced before returning (see [`TransactionFailure::Fatal`]).
    pub(crate) fn publish(
        &mut self,
        publishes: &[PartitionPublish],
        group: &ConsumerGroupMetadata,
        control: &Control,
    ) -> Result<(), TransactionFailure> {
        let started = Instant::now();
        let result = match self.attempt(publishes, group) {
            Ok(count) => {
                tracing::debug!(
                    partitions = publishes.len(),
                    changes = count,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "ChangesPublished"
                );
                Ok(())
            }
            Err(error) => Err(self.abort_after(error)),
        };
        let ended = match &result {
            Ok(()) => TransactionResult::Committed,
            Err(TransactionFailure::Aborted(_)) => TransactionResult::Aborted,
            Err(TransactionFailure::Fatal { .. }) => TransactionResult::Fatal,
        };
        self.config.metrics.transaction_ended(ended, started.elapsed());
        match result {
            Err(TransactionFailure::Fatal { reason, .. }) => {
                let replaced = self.reopen(&reason, control);
                Err(TransactionFailure::Fatal { reason, replaced })
            }
            other => other,
        }
    }

    fn attempt(
        &self,
        publishes: &[PartitionPublish],
        group: &ConsumerGroupMetadata,
    ) -> Result<usize, KafkaError> {
        self.producer.begin_transaction()?;
        let mut count = 0;
        for publish in publishes {
            for change in &publish.changes {
                self.send_change(publish.partition, change)?;
                count += 1;
            }
        }
        let mut offsets = TopicPartitionList::with_capacity(publishes.len());
        for publish in publishes {
            offsets.add_partition_offset(
                &self.topics.commands,
                publish.partition as i32,
                Offset::Offset(publish.commit_offset as i64),
            )?;
        }
        // KIP-447: the group coordinator refuses these offsets if this member was fenced by a
        // rebalance (the metadata's generation is stale), and the transaction (with its
        // changes) is then aborted.
        self.producer.send_offsets_to_transaction(&offsets, group, KAFKA_CALL_TIMEOUT)?;
        self.wait_for_deliveries(KAFKA_CALL_TIMEOUT);
        let mut attempts = 0;
        loop {
            match self.producer.commit_transaction(KAFKA_CALL_TIMEOUT) {
                Ok(()) => return Ok(count),
                // A timed-out commit may still be in progress: librdkafka resumes it when asked
                // again (aborting instead would leave its outcome unknown).
                Err(KafkaError::Transaction(error)) if error.is_retriable() && attempts < 3 => {
                    attempts += 1;
                    tracing::warn!(error = %error, attempts, "ProjectorCommitRetried");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// After a fatal producer error (typically: the broker aborted a transaction that outlived
    /// `transaction.timeout.ms` during an outage, and librdkafka fails the next EndTxn with
    /// INVALID_TXN_STATE) the producer is unusable. A new one with the same transactional id
    /// fences the old one. Retries with backoff while the broker is unreachable; gives up
    /// (false) only on a stop request.
    fn reopen(&mut self, reason: &str, control: &Control) -> bool {
        tracing::error!(reason, "ChangeProducerFailed");
        let mut delay = FIRST_REOPEN_DELAY;
        loop {
            if control.stopping() {
                return false;
            }
            match open_change_producer(&self.config) {
                Ok(producer) => {
                    self.producer = producer;
                    tracing::info!("ChangeProducerReplaced");
                    return true;
                }
                Err(error) => {
                    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "ChangeProducerReopenFailed");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(MAX_REOPEN_DELAY);
                }
            }
        }
    }

    /// Waits until every change sent is acknowledged (or `timeout` passes). rdkafka's
    /// `commit_transaction` flushes first, and its flush on a `ThreadedProducer` sleeps in
    /// 100 ms polls for delivery events that the producer's own thread takes; with nothing left
    /// in flight it returns at once. This cut a commit from ~110 ms to the broker round trips.
    fn wait_for_deliveries(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    fn abort_after(&self, error: KafkaError) -> TransactionFailure {
        let fatal = |reason: String| TransactionFailure::Fatal { reason, replaced: false };
        if is_fatal(&error) {
            return fatal(error.to_string());
        }
        for _ in 0..3 {
            match self.producer.abort_transaction(KAFKA_CALL_TIMEOUT) {
                Ok(()) => return TransactionFailure::Aborted(error),
                Err(abort_error) if is_fatal(&abort_error) => return fatal(abort_error.to_string()),
                // No transaction open (it failed at `begin`): nothing to abort.
                Err(abort_error) if abort_error.rdkafka_error_code() == Some(RDKafkaErrorCode::State) => {
                    return TransactionFailure::Aborted(error);
                }
                Err(abort_error) => {
                    tracing::warn!(error = %abort_error, "ProjectorTransactionAbortRetried");
                }
            }
        }
        fatal(format!("the transaction could not be aborted after: {error}"))
    }

    fn send_change(&self, partition: u32, change: &ChangeRecord) -> Result<(), KafkaError> {
        let envelope = scimflow_proto::ChangeEnvelope::decode(change.envelope.as_slice()).ok();
        let tenant = envelope.as_ref().map(|envelope| envelope.tenant_id.as_str()).unwrap_or_default();
        let change_id = envelope.as_ref().map(|envelope| envelope.change_id.as_str()).unwrap_or_default();
        let mut headers = OwnedHeaders::new().insert(Header { key: "change-id", value: Some(change_id) });
        let traceparent = envelope.as_ref().map(|envelope| envelope.traceparent.as_str()).unwrap_or_default();
        if !traceparent.is_empty() {
            headers = headers.insert(Header { key: trace_context::TRACEPARENT, value: Some(traceparent) });
        }
        let mut record = BaseRecord::to(&self.topics.changes)
            // The changes of command partition p go to changes partition p: per-partition log
            // order, and republished changes land where the originals would have.
            .partition(partition as i32)
            .key(tenant)
            .payload(change.envelope.as_slice())
            .headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((error, _)) => return Err(error),
            }
        }
    }
}

fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(transaction_error) => transaction_error.is_fatal(),
        other => other.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal),
    }
}
