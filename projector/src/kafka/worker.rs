//! The projector loop on its dedicated thread.
//!
//! One round: apply rebalances; prepare newly assigned partitions (fetch the committed offset,
//! republish what a previous owner folded but did not publish, resume); poll what is available
//! into each partition's window (waiting only when idle, so an idle projector answers at once
//! and a busy one folds big rounds; a full window pauses its partition); fold a round of each
//! ready partition's window (each tenant's share, see [`crate::window`]) into the store; report
//! the outcomes; hand the changes and the new watermarks to the publisher thread
//! (`super::publisher`), which publishes them in a transaction while the next rounds fold.
//!
//! Failures never skip or reorder: a store error keeps the partition's records, pauses the
//! partition and retries with backoff; an aborted transaction sends the partition back through
//! preparation, which republishes the missing changes from the store's change feed.

use super::Control;
use super::assignment::{AssignmentContext, Rebalanced};
use super::publisher::ChangePublisher;
use super::transactions::{ChangeTransactions, KAFKA_CALL_TIMEOUT, PartitionPublish, TransactionFailure};
use super::{KafkaProjectorConfig, KafkaProjectorError};
use crate::batch::{BatchResult, fold_round};
use crate::window::{RoundLimits, Window};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use scimflow_core::SchemaRegistry;
use scimflow_log::kafka::{KafkaSetupError, OutcomePublisher, TopicNames};
use scimflow_log::{LogRecord, OutcomeHub};
use scimflow_store::{ChangeRecord, PartitionPosition, StoreError, StoreWriter};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `poll` waits when there is nothing to fold; bounds the reaction to a stop request.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Command offsets whose changes go into one recovery transaction.
const REPUBLISH_CHUNK: u64 = 1024;
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// How long a killed member keeps polling for a batch to abandon after its store commit.
const KILL_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Assigned and paused; the committed offset is not known yet.
    FetchCommitted,
    /// Paused; changes between the committed offset and the store position must be published
    /// before anything new is folded.
    Republish,
    /// Folding.
    Ready,
}

struct Retry {
    delay: Duration,
    not_before: Option<Instant>,
}

impl Retry {
    fn new() -> Self {
        Retry { delay: FIRST_RETRY, not_before: None }
    }

    fn due(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }

    /// Schedules the next attempt; returns the delay for the log.
    fn failed(&mut self) -> Duration {
        let delay = self.delay;
        self.not_before = Some(Instant::now() + delay);
        self.delay = (self.delay * 2).min(MAX_RETRY);
        delay
    }

    fn succeeded(&mut self) {
        *self = Retry::new();
    }
}

struct PartitionState {
    phase: Phase,
    /// The offset after the last record taken; anything below is a redelivery (librdkafka
    /// refetches after pause/resume) and is dropped.
    next_expected: u64,
    /// Kafka's committed offset as of our last transaction, or the commit offset of the last
    /// round handed to the publisher: the changes of every command below it are on the changes
    /// topic or queued for it (if that transaction fails, preparation fetches the real one).
    published_until: u64,
    /// Records taken but not folded yet, in offset order.
    window: Window,
    retry: Retry,
    paused: bool,
}

impl PartitionState {
    fn assigned(store_next: u64) -> Self {
        PartitionState {
            phase: Phase::FetchCommitted,
            next_expected: store_next,
            published_until: 0,
            window: Window::starting_at(store_next),
            retry: Retry::new(),
            paused: true,
        }
    }

    fn foldable(&self, now: Instant) -> bool {
        self.phase == Phase::Ready && !self.window.is_empty() && self.retry.due(now)
    }
}

enum RepublishFailure {
    Store(StoreError),
    Transaction(TransactionFailure),
}

pub(crate) struct Worker<S: StoreWriter + 'static> {
    registry: Arc<SchemaRegistry>,
    store: Arc<S>,
    consumer: BaseConsumer<AssignmentContext<S>>,
    /// Declared after the consumer: dropped after it, so a revocation while the consumer
    /// closes can still wait for the publisher.
    publisher: ChangePublisher,
    outcomes: OutcomePublisher,
    hub: Option<Arc<OutcomeHub>>,
    topics: TopicNames,
    rounds: RoundLimits,
    partitions: BTreeMap<u32, PartitionState>,
    control: Arc<Control>,
    config: KafkaProjectorConfig,
}

impl<S: StoreWriter + 'static> Worker<S> {
    pub(crate) fn open(
        registry: Arc<SchemaRegistry>,
        store: Arc<S>,
        config: &KafkaProjectorConfig,
        hub: Option<Arc<OutcomeHub>>,
        control: Arc<Control>,
    ) -> Result<Self, KafkaProjectorError> {
        let kafka = &config.kafka;
        let topics = kafka.topics();
        let publisher =
            ChangePublisher::start(ChangeTransactions::open(config)?, control.clone()).map_err(|error| {
                KafkaSetupError::Config(format!("cannot start the change publisher thread: {error}"))
            })?;
        let consumer: BaseConsumer<AssignmentContext<S>> = kafka
            .client_config(&[
                // Only moved partitions pause on a rebalance; the rest keep folding.
                ("partition.assignment.strategy", "cooperative-sticky"),
            ])
            .set("group.id", &config.group_id)
            // Offsets are committed only inside our transactions.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Commands are produced without transactions today; read_committed keeps it right if
            // a transactional writer ever appends, and makes committed-offset fetches wait for
            // a previous owner's pending transaction (KIP-447).
            .set("isolation.level", "read_committed")
            // Partitions start at the store's position; if that is outside the log, the store
            // and the topic do not belong together: stop that partition loudly, never jump.
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "false")
            .create_with_context(AssignmentContext::new(store.clone(), control.clone(), publisher.queue()))
            .map_err(KafkaSetupError::from)?;
        consumer.subscribe(&[&topics.commands]).map_err(KafkaSetupError::from)?;
        let outcomes = OutcomePublisher::new(kafka)?;
        tracing::info!(
            group = %config.group_id, transactional_id = %config.transactional_id(), topic = %topics.commands,
            "ProjectorStarted"
        );
        Ok(Worker {
            registry,
            store,
            consumer,
            publisher,
            outcomes,
            hub,
            topics,
            rounds: RoundLimits {
                tenant_share: config.tenant_share.max(1),
                ..RoundLimits::for_round(config.max_batch)
            },
            partitions: BTreeMap::new(),
            control,
            config: config.clone(),
        })
    }

    pub(crate) fn run(mut self) -> Result<(), KafkaProjectorError> {
        let mut kill_deadline: Option<Instant> = None;
        loop {
            if self.control.killed() {
                // Keep going until the next fold, which is abandoned right after its store
                // commit (the crash point that needs recovery); when idle, give up sooner.
                let deadline = *kill_deadline.get_or_insert_with(|| Instant::now() + KILL_GRACE);
                if Instant::now() >= deadline {
                    tracing::warn!("ProjectorKilled");
                    return Ok(());
                }
            } else if self.control.stopping() {
                break;
            }
            self.apply_rebalances();
            for failure in self.publisher.take_failures() {
                self.publishing_failed(failure)?;
            }
            if let Err(failure) = self.prepare_partitions() {
                self.publishing_failed(failure)?;
                continue;
            }
            self.poll_round();
            self.apply_rebalances();
            if self.fold_round() == RoundEnd::Abandoned {
                tracing::warn!("ProjectorKilled");
                return Ok(());
            }
        }
        // Publish what was folded before leaving the group: the next owner starts from it.
        self.publisher.finish();
        self.outcomes.flush(Duration::from_secs(5));
        tracing::info!("ProjectorStopped");
        // Dropping the consumer closes it: it leaves the group, so the partitions move now
        // rather than after the session timeout.
        Ok(())
    }

    /// A transaction failed (in the publisher, or republishing): what was queued after it is
    /// dropped, and only Kafka knows how far the changes are published, so every owned
    /// partition goes back through preparation, which fetches the committed offset and
    /// republishes the rest from the store. No rebalance, nothing skipped. After a fatal error
    /// the producer was replaced with one of the same transactional id (fencing the old one);
    /// if a stop came first, this worker ends.
    fn publishing_failed(&mut self, failure: TransactionFailure) -> Result<(), KafkaProjectorError> {
        match failure {
            TransactionFailure::Aborted(error) => {
                tracing::warn!(error = %error, "ProjectorTransactionAborted")
            }
            TransactionFailure::Fatal { reason, replaced: false } => {
                return Err(KafkaProjectorError::Fatal(reason));
            }
            TransactionFailure::Fatal { reason, replaced: true } => {
                tracing::warn!(reason = %reason, "ProjectorPublishingRestarted");
            }
        }
        let owned: Vec<u32> = self.partitions.keys().copied().collect();
        for partition in owned {
            self.after_failed_transaction(partition);
        }
        self.publisher.resume();
        Ok(())
    }

    fn apply_rebalances(&mut self) {
        for event in self.consumer.context().take_events() {
            match event {
                Rebalanced::Assigned(assigned) => {
                    for (partition, store_next) in assigned {
                        self.partitions.insert(partition, PartitionState::assigned(store_next));
                    }
                }
                Rebalanced::Revoked(revoked) => {
                    for partition in revoked {
                        if let Some(state) = self.partitions.remove(&partition) {
                            tracing::debug!(partition, dropped = state.window.len(), "PartitionReleased");
                        }
                    }
                }
            }
        }
        self.control.set_owned(self.partitions.keys().copied().collect());
    }

    /// Moves assigned partitions to `Ready`: committed offset, then republishing.
    fn prepare_partitions(&mut self) -> Result<(), TransactionFailure> {
        let now = Instant::now();
        let to_fetch: Vec<u32> = self
            .partitions
            .iter()
            .filter(|(_, state)| state.phase == Phase::FetchCommitted && state.retry.due(now))
            .map(|(partition, _)| *partition)
            .collect();
        if !to_fetch.is_empty() {
            self.fetch_committed(&to_fetch);
        }
        let to_republish: Vec<u32> = self
            .partitions
            .iter()
            .filter(|(_, state)| state.phase == Phase::Republish && state.retry.due(now))
            .map(|(partition, _)| *partition)
            .collect();
        for partition in to_republish {
            if self.control.stopping() {
                break;
            }
            match self.republish(partition) {
                Ok(()) => {
                    if let Some(state) = self.partitions.get_mut(&partition) {
                        state.phase = Phase::Ready;
                        state.retry.succeeded();
                    }
                    self.set_paused(partition, false);
                }
                Err(RepublishFailure::Transaction(TransactionFailure::Fatal { reason, replaced })) => {
                    return Err(TransactionFailure::Fatal { reason, replaced });
                }
                Err(RepublishFailure::Transaction(TransactionFailure::Aborted(error))) => {
                    tracing::warn!(partition, error = %error, "ProjectorTransactionAborted");
                    self.after_failed_transaction(partition);
                }
                Err(RepublishFailure::Store(error)) => {
                    if let Some(state) = self.partitions.get_mut(&partition) {
                        let delay = state.retry.failed();
                        tracing::error!(
                            partition, error = %error, retry_in_ms = delay.as_millis() as u64,
                            "ChangesRepublishFailed"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn fetch_committed(&mut self, partitions: &[u32]) {
        let mut wanted = TopicPartitionList::with_capacity(partitions.len());
        for partition in partitions {
            wanted.add_partition(&self.topics.commands, *partition as i32);
        }
        // With read_committed this waits for offsets of a pending transaction of the previous
        // owner to be committed or aborted.
        let committed = match self.consumer.committed_offsets(wanted, KAFKA_CALL_TIMEOUT) {
            Ok(committed) => committed,
            Err(error) => {
                for partition in partitions {
                    if let Some(state) = self.partitions.get_mut(partition) {
                        let delay = state.retry.failed();
                        tracing::warn!(partition, error = %error, retry_in_ms = delay.as_millis() as u64, "CommittedOffsetFetchFailed");
                    }
                }
                return;
            }
        };
        for element in committed.elements() {
            let partition = element.partition() as u32;
            let Some(state) = self.partitions.get_mut(&partition) else { continue };
            if let Err(error) = element.error() {
                // Unknown is not "none": guessing 0 would publish everything again.
                let delay = state.retry.failed();
                tracing::warn!(partition, error = %error, retry_in_ms = delay.as_millis() as u64, "CommittedOffsetFetchFailed");
                continue;
            }
            // No committed offset: nothing was ever published for this partition in this group.
            let published_until = match element.offset() {
                Offset::Offset(offset) if offset >= 0 => offset as u64,
                _ => 0,
            };
            if published_until > state.next_expected {
                tracing::warn!(
                    partition,
                    position = state.next_expected,
                    committed = published_until,
                    "ProjectorStoreBehindCommittedOffset"
                );
            }
            state.published_until = published_until;
            state.phase = Phase::Republish;
            state.retry.succeeded();
        }
    }

    /// Publishes the store's changes between the committed offset and the store position, each
    /// chunk in a transaction that also commits its end offset.
    fn republish(&mut self, partition: u32) -> Result<(), RepublishFailure> {
        let target = self.store.next_offset(partition).map_err(RepublishFailure::Store)?;
        loop {
            let Some(state) = self.partitions.get(&partition) else { return Ok(()) };
            let from = state.published_until;
            if from >= target {
                return Ok(());
            }
            let to = (from + REPUBLISH_CHUNK).min(target);
            let changes = self.store.changes_between(partition, from, to).map_err(RepublishFailure::Store)?;
            let count = changes.len();
            let publish = PartitionPublish { partition, changes, commit_offset: to };
            let group = self
                .group_metadata()
                .map_err(|error| RepublishFailure::Transaction(TransactionFailure::Aborted(error)))?;
            self.publisher.publish_now(&publish, &group).map_err(RepublishFailure::Transaction)?;
            if let Some(state) = self.partitions.get_mut(&partition) {
                state.published_until = to;
            }
            tracing::info!(partition, from, to, changes = count, "ChangesRepublished");
        }
    }

    fn poll_round(&mut self) {
        let now = Instant::now();
        let busy = self.partitions.values().any(|state| state.foldable(now));
        let mut timeout = if busy { Duration::ZERO } else { IDLE_POLL };
        let mut taken = 0;
        // Everything already fetched, up to the windows' size: the commands of other tenants
        // behind one tenant's backlog must reach the window for the round to give them their
        // share. A full window pauses its partition.
        while taken < self.rounds.window_commands {
            match self.consumer.poll(timeout) {
                // Nothing available now, or a rebalance was served (handled before folding).
                None => break,
                Some(Ok(message)) => {
                    if let Some(partition) =
                        take_record(&mut self.partitions, &self.topics.commands, &message)
                        && self
                            .partitions
                            .get(&partition)
                            .is_some_and(|state| state.window.is_full(&self.rounds))
                    {
                        // Read no further ahead until rounds make room.
                        self.set_paused(partition, true);
                    }
                    taken += 1;
                    // Take what is already here, but do not wait for more.
                    timeout = Duration::ZERO;
                }
                Some(Err(error)) => {
                    let level_error = matches!(
                        error.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
                    );
                    if level_error {
                        tracing::error!(error = %error, "ProjectorPositionOutsideLog");
                    } else {
                        tracing::warn!(error = %error, "ProjectorConsumeFailed");
                    }
                    break;
                }
            }
        }
    }

    fn fold_round(&mut self) -> RoundEnd {
        let now = Instant::now();
        let foldable: Vec<u32> = self
            .partitions
            .iter()
            .filter(|(_, state)| state.foldable(now))
            .map(|(partition, _)| *partition)
            .collect();
        if foldable.is_empty() {
            return RoundEnd::Continue;
        }
        let mut publishes = Vec::with_capacity(foldable.len());
        let mut outcomes = Vec::new();
        for partition in foldable {
            let Some(state) = self.partitions.get_mut(&partition) else { continue };
            let started = Instant::now();
            match fold_partition(&self.registry, &*self.store, partition, &mut state.window, &self.rounds) {
                Ok((result, next)) => {
                    let folded_until = next.next_offset;
                    tracing::debug!(
                        partition,
                        elapsed_us = started.elapsed().as_micros() as u64,
                        outcomes = result.outcomes.len(),
                        watermark = folded_until,
                        waiting = state.window.len(),
                        changes = result.changes.len(),
                        poison = result.poison,
                        "EventsProjected"
                    );
                    self.config.metrics.batch_folded(partition, result.outcomes.len(), result.poison);
                    self.config.metrics.window(partition, state.window.len(), next.tenants_ahead.len());
                    state.retry.succeeded();
                    let was_paused = state.paused && !state.window.is_full(&self.rounds);
                    // Changes below the committed offset were published before a store loss.
                    let published_until = state.published_until;
                    let changes: Vec<ChangeRecord> = result
                        .changes
                        .into_iter()
                        .filter(|change| change.offset >= published_until)
                        .collect();
                    let commit_offset = folded_until.max(published_until);
                    if commit_offset > published_until || !changes.is_empty() {
                        publishes.push(PartitionPublish { partition, changes, commit_offset });
                    }
                    outcomes.extend(result.outcomes);
                    if was_paused {
                        self.set_paused(partition, false);
                    }
                }
                Err(error) => {
                    self.config.metrics.fold_failed(partition);
                    let delay = state.retry.failed();
                    let pending = state.window.len();
                    tracing::error!(
                        partition, error = %error, pending, retry_in_ms = delay.as_millis() as u64,
                        "ProjectorBatchFailed"
                    );
                    // Stop fetching while the store is down; the records taken stay, in order.
                    self.set_paused(partition, true);
                }
            }
        }
        if !outcomes.is_empty() {
            self.outcomes.publish(&outcomes);
            if let Some(hub) = &self.hub {
                for outcome in outcomes {
                    hub.deliver(outcome);
                }
            }
        }
        if self.control.killed() {
            // The crash point that matters: folded and committed to the store, nothing
            // published, no offset committed.
            return RoundEnd::Abandoned;
        }
        if publishes.is_empty() {
            return RoundEnd::Continue;
        }
        match self.group_metadata() {
            Ok(group) => {
                for publish in &publishes {
                    if let Some(state) = self.partitions.get_mut(&publish.partition) {
                        state.published_until = publish.commit_offset;
                    }
                }
                // Published off this loop: the next round folds while the transaction runs.
                self.publisher.submit(publishes, group);
            }
            Err(error) => {
                for publish in &publishes {
                    tracing::warn!(partition = publish.partition, error = %error, "ProjectorTransactionAborted");
                    self.after_failed_transaction(publish.partition);
                }
            }
        }
        RoundEnd::Continue
    }

    /// The consumer's group metadata, which a transaction commits offsets with.
    fn group_metadata(&self) -> Result<ConsumerGroupMetadata, KafkaError> {
        self.consumer
            .group_metadata()
            .ok_or_else(|| KafkaError::Subscription("the consumer has no group metadata".into()))
    }

    /// After a failed transaction only Kafka knows how far the changes are published (if the
    /// commit timed out it may still have happened): fetch the committed offset again, which
    /// waits for our transaction's outcome, and republish from there before folding more.
    fn after_failed_transaction(&mut self, partition: u32) {
        self.set_paused(partition, true);
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.phase = Phase::FetchCommitted;
            state.retry.failed();
        }
    }

    fn set_paused(&mut self, partition: u32, paused: bool) {
        let Some(state) = self.partitions.get_mut(&partition) else { return };
        if state.paused == paused {
            return;
        }
        let mut list = TopicPartitionList::with_capacity(1);
        list.add_partition(&self.topics.commands, partition as i32);
        let result = if paused { self.consumer.pause(&list) } else { self.consumer.resume(&list) };
        match result {
            Ok(()) => state.paused = paused,
            Err(error) => tracing::warn!(partition, paused, error = %error, "ProjectorPauseFailed"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RoundEnd {
    Continue,
    Abandoned,
}

/// Takes one polled record into its partition's window, dropping redeliveries and records of
/// partitions this member does not own (any more). Returns the partition when taken.
fn take_record(
    partitions: &mut BTreeMap<u32, PartitionState>,
    commands_topic: &str,
    message: &BorrowedMessage<'_>,
) -> Option<u32> {
    let partition = message.partition() as u32;
    let offset = message.offset() as u64;
    let Some(state) = partitions.get_mut(&partition).filter(|_| message.topic() == commands_topic) else {
        tracing::debug!(partition, offset, "RecordOfUnownedPartitionDropped");
        return None;
    };
    // Below: a redelivery. Records that arrive after a pause for a full window are still
    // taken: the window's bound is soft by what librdkafka had already queued.
    if offset < state.next_expected {
        return None;
    }
    state.next_expected = offset + 1;
    // A record without payload decodes as poison and is skipped by the fold, with a log.
    state.window.push(LogRecord {
        partition,
        offset,
        payload: message.payload().unwrap_or_default().to_vec(),
    });
    Some(partition)
}

/// Folds the next round of `window` (what the store's position counts as folded is skipped)
/// and removes it from the window. Returns the result and the partition's new position.
fn fold_partition<S: StoreWriter + ?Sized>(
    registry: &SchemaRegistry,
    store: &S,
    partition: u32,
    window: &mut Window,
    limits: &RoundLimits,
) -> Result<(BatchResult, PartitionPosition), StoreError> {
    // Re-read the position: if anyone else advanced it (a member that lost the partition but
    // did not notice yet), those records must not be folded again.
    let position = store.position(partition)?;
    let round = window.next_round(limits);
    let (result, next) = fold_round(registry, store, partition, window, &round, &position)?;
    if result.already_folded > 0 {
        tracing::warn!(
            partition,
            store_next = position.next_offset,
            skipped = result.already_folded,
            "ProjectorRecordsAlreadyFolded"
        );
    }
    window.remove(&round);
    Ok((result, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimflow_store::embedded::EmbeddedStore;

    fn poison(offset: u64) -> LogRecord {
        LogRecord { partition: 0, offset, payload: b"not a command".to_vec() }
    }

    fn fold(registry: &SchemaRegistry, store: &EmbeddedStore, records: &[LogRecord]) -> (BatchResult, u64) {
        let next = store.next_offset(0).unwrap();
        let mut window = Window::starting_at(next);
        for record in records {
            window.push(record.clone());
        }
        let (result, next) =
            fold_partition(registry, store, 0, &mut window, &RoundLimits::for_round(16)).unwrap();
        assert!(window.is_empty(), "one round takes everything here");
        (result, next.next_offset)
    }

    #[test]
    fn records_below_the_store_position_are_never_folded_again() {
        let _turn =
            crate::batch::tests::SPAN_CALLSITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let registry = SchemaRegistry::standard();
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        let (result, reached) = fold(&registry, &store, &[poison(0), poison(1), poison(2)]);
        assert_eq!((result.poison, reached), (3, 3));
        // A redelivery overlapping what the store has: only 3 and 4 are folded.
        let (result, reached) = fold(&registry, &store, &[poison(1), poison(2), poison(3), poison(4)]);
        assert_eq!((result.poison, result.already_folded, reached), (2, 2, 5));
        assert_eq!(store.next_offset(0).unwrap(), 5);
        // Nothing new: the position stays.
        let (result, reached) = fold(&registry, &store, &[poison(4)]);
        assert_eq!((result.poison, result.already_folded, reached), (0, 1, 5));
    }

    #[test]
    fn retries_back_off_up_to_a_cap_and_reset_on_success() {
        let mut retry = Retry::new();
        assert!(retry.due(Instant::now()));
        let delays: Vec<Duration> = (0..10).map(|_| retry.failed()).collect();
        assert_eq!(delays[0], FIRST_RETRY);
        assert_eq!(delays[1], FIRST_RETRY * 2);
        assert_eq!(*delays.last().unwrap(), MAX_RETRY);
        assert!(!retry.due(Instant::now()));
        retry.succeeded();
        assert!(retry.due(Instant::now()));
    }
}
