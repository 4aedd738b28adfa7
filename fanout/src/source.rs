//! Where applied changes come from.
//!
//! - [`KafkaChangeSource`]: the changes topic, consumer group `scimflow-fanout`,
//!   `read_committed` (only changes of committed projector transactions, never of aborted ones),
//!   offsets committed by hand only after the batch was delivered.
//! - [`StoreFeedSource`]: the store's change feed (`StoreWriter::changes_between`) with a cursor
//!   in fanout's database, for the all-in-one mode without Kafka.
//!
//! Both give changes of one partition in log order; the runner commits only after every sink
//! has the batch (Kafka acknowledged, webhook outbox written), so a crash re-delivers rather
//! than loses.

use crate::db::FanoutDb;
use async_trait::async_trait;
use futures_util::FutureExt;
use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use scimflow_log::kafka::KafkaConfig;
use scimflow_proto as pb;
use scimflow_store::StoreWriter;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_GROUP_ID: &str = "scimflow-fanout";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("store: {0}")]
    Store(String),
}

/// One change as read: decoded, or `None` when the bytes are not a `ChangeEnvelope` (skipped
/// and counted, never retried: retrying cannot make them readable).
#[derive(Debug, Clone)]
pub struct SourceRecord {
    pub partition: u32,
    pub offset: u64,
    pub envelope: Option<pb::ChangeEnvelope>,
}

#[async_trait]
pub trait ChangeSource: Send {
    /// Up to `max` records, waiting up to `wait` for the first; an empty batch when idle.
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceRecord>, SourceError>;

    /// Everything returned by `next_batch` so far is delivered: do not return it again after a
    /// restart.
    async fn commit(&mut self) -> Result<(), SourceError>;
}

pub struct KafkaChangeSource {
    consumer: Arc<StreamConsumer>,
    topic: String,
    /// Partition → next offset to commit, for what was returned but not yet committed.
    pending: BTreeMap<i32, i64>,
}

impl KafkaChangeSource {
    /// Joins `group_id` on `<prefix>changes`. A group without committed offsets starts at the
    /// oldest retained change (a new fanout replays history; consumers deduplicate on
    /// `change_id`).
    pub fn new(kafka: &KafkaConfig, group_id: &str) -> Result<Self, SourceError> {
        let mut config = kafka.client_config(&[("session.timeout.ms", "10000"), ("fetch.wait.max.ms", "20")]);
        // Invariants, after the passthrough settings so they cannot be weakened.
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        let consumer: StreamConsumer = config.create()?;
        let topic = kafka.topics().changes;
        consumer.subscribe(&[&topic])?;
        Ok(KafkaChangeSource { consumer: Arc::new(consumer), topic, pending: BTreeMap::new() })
    }

    fn take(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) -> SourceRecord {
        self.pending.insert(message.partition(), message.offset() + 1);
        SourceRecord {
            partition: message.partition() as u32,
            offset: message.offset() as u64,
            envelope: message.payload().and_then(|bytes| pb::ChangeEnvelope::decode(bytes).ok()),
        }
    }
}

#[async_trait]
impl ChangeSource for KafkaChangeSource {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceRecord>, SourceError> {
        let consumer = self.consumer.clone();
        let mut batch = Vec::new();
        match tokio::time::timeout(wait, consumer.recv()).await {
            Err(_) => return Ok(batch),
            Ok(message) => batch.push(self.take(&message?)),
        }
        // Whatever is already fetched, without waiting again: a busy stream makes big batches,
        // an idle one answers at once.
        while batch.len() < max {
            match consumer.recv().now_or_never() {
                Some(message) => batch.push(self.take(&message?)),
                None => break,
            }
        }
        Ok(batch)
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &self.pending {
            offsets.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))?;
        }
        // Async: the next commit supersedes a lost one, and a commit lost in a crash only means
        // redelivery (at-least-once), never loss.
        self.consumer.commit(&offsets, CommitMode::Async)?;
        self.pending.clear();
        Ok(())
    }
}

/// Reads the store's change feed of `partitions` (the embedded log has one, partition 0).
pub struct StoreFeedSource {
    store: Arc<dyn StoreWriter>,
    db: FanoutDb,
    cursors: BTreeMap<u32, u64>,
    /// Cursors reached by the batches returned so far, written on commit.
    pending: BTreeMap<u32, u64>,
    poll_interval: Duration,
}

impl StoreFeedSource {
    /// Most commands read per partition and batch.
    const COMMANDS_PER_READ: u64 = 1024;

    pub fn new(store: Arc<dyn StoreWriter>, db: FanoutDb, partitions: Vec<u32>) -> Result<Self, SourceError> {
        let mut cursors = BTreeMap::new();
        for partition in &partitions {
            cursors.insert(*partition, db.cursor(*partition).map_err(|e| SourceError::Store(e.to_string()))?);
        }
        Ok(StoreFeedSource {
            store,
            db,
            cursors,
            pending: BTreeMap::new(),
            poll_interval: Duration::from_millis(10),
        })
    }
}

/// Reads up to `COMMANDS_PER_READ` commands' changes of each partition from its cursor,
/// advancing `cursors` to what was read.
fn read_available(
    store: &dyn StoreWriter,
    cursors: &mut BTreeMap<u32, u64>,
    max: usize,
) -> Result<Vec<SourceRecord>, SourceError> {
    let store_error = |error: scimflow_store::StoreError| SourceError::Store(error.to_string());
    let mut batch = Vec::new();
    for (&partition, cursor) in cursors.iter_mut() {
        let end = store.next_offset(partition).map_err(store_error)?;
        if *cursor >= end || batch.len() >= max {
            continue;
        }
        let to = end.min(*cursor + StoreFeedSource::COMMANDS_PER_READ);
        let records = store.changes_between(partition, *cursor, to).map_err(store_error)?;
        batch.extend(records.into_iter().map(|record| SourceRecord {
            partition,
            offset: record.offset,
            envelope: pb::ChangeEnvelope::decode(record.envelope.as_slice()).ok(),
        }));
        *cursor = to;
    }
    Ok(batch)
}

#[async_trait]
impl ChangeSource for StoreFeedSource {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceRecord>, SourceError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Store reads may block on I/O (the CQL store does): keep them off the async workers.
            let (store, mut cursors) = (self.store.clone(), self.cursors.clone());
            let (batch, cursors) = tokio::task::spawn_blocking(move || {
                read_available(&*store, &mut cursors, max).map(|batch| (batch, cursors))
            })
            .await
            .map_err(|join| SourceError::Store(join.to_string()))??;
            if !batch.is_empty() {
                self.pending.extend(cursors.iter().filter(|(p, c)| self.cursors.get(p) != Some(c)));
                self.cursors = cursors;
                return Ok(batch);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(batch);
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let cursors: Vec<(u32, u64)> = std::mem::take(&mut self.pending).into_iter().collect();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.set_cursors(&cursors))
            .await
            .map_err(|join| SourceError::Store(join.to_string()))?
            .map_err(|error| SourceError::Store(error.to_string()))
    }
}
