//! The rebalance callback: partitions are assigned at the store's position, never at Kafka's
//! committed offset, and paused until the worker has checked which changes are published.
//!
//! librdkafka calls this on the polling thread, inside `poll`; the worker is then between two
//! rounds. Folded rounds may still be queued for the publisher thread: a revocation waits for
//! them to be published, so the next owner's committed offset covers everything this member
//! folded (otherwise their transaction would be refused for a stale generation and the next
//! owner would republish them from the store: correct, but slower). What changed is queued for
//! the worker, which acts on it as soon as `poll` returns.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use scimflow_log::kafka::context::{forward_error, forward_log};
use scimflow_store::StoreWriter;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Control;
use super::publisher::PublishQueue;

/// How long a revocation waits for folded rounds to be published.
const REVOKE_PUBLISH_WAIT: Duration = Duration::from_secs(10);

/// A change of this member's partitions, for the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalanced {
    /// Partitions now owned, each with the store position it was assigned at.
    Assigned(Vec<(u32, u64)>),
    /// Partitions no longer owned: forget their unfolded records.
    Revoked(Vec<u32>),
}

pub struct AssignmentContext<S> {
    store: Arc<S>,
    control: Arc<Control>,
    publishing: Arc<PublishQueue>,
    events: Mutex<Vec<Rebalanced>>,
}

impl<S: StoreWriter + 'static> AssignmentContext<S> {
    pub(crate) fn new(store: Arc<S>, control: Arc<Control>, publishing: Arc<PublishQueue>) -> Self {
        AssignmentContext { store, control, publishing, events: Mutex::new(Vec::new()) }
    }

    /// What happened since the last call, in order.
    pub fn take_events(&self) -> Vec<Rebalanced> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn push(&self, event: Rebalanced) {
        self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(event);
    }

    /// The store position of `partition`, retried until the store answers: without it the
    /// partition cannot start anywhere safe. While this blocks, the member stays in the group
    /// (heartbeats run on librdkafka's thread) until `max.poll.interval.ms`; past that it is
    /// removed and rejoins once the store is back. `None` when asked to stop meanwhile.
    fn store_position(&self, partition: u32) -> Option<u64> {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.store.next_offset(partition) {
                Ok(next) => return Some(next),
                Err(error) => {
                    tracing::error!(partition, error = %error, retry_in_ms = delay.as_millis() as u64, "ProjectorStoreUnavailable");
                }
            }
            if self.control.stopping() {
                return None;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, offered: &TopicPartitionList) {
        let mut positioned = TopicPartitionList::with_capacity(offered.count());
        let mut assigned = Vec::with_capacity(offered.count());
        let mut complete = true;
        for element in offered.elements() {
            let partition = element.partition();
            let offset = match self.store_position(partition as u32) {
                Some(next) => {
                    assigned.push((partition as u32, next));
                    Offset::Offset(next as i64)
                }
                None => {
                    // Stopping: take the partition (the protocol requires it) but never use it.
                    complete = false;
                    Offset::Stored
                }
            };
            if let Err(error) = positioned.add_partition_offset(element.topic(), partition, offset) {
                tracing::error!(partition, error = %error, "ProjectorAssignFailed");
            }
        }
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(&positioned),
            _ => consumer.assign(&positioned),
        };
        if let Err(error) = result {
            tracing::error!(error = %error, "ProjectorAssignFailed");
            return;
        }
        // Paused until the worker has compared the committed offset with the store position
        // and republished what a previous owner folded but did not publish.
        if let Err(error) = consumer.pause(&positioned) {
            tracing::error!(error = %error, "ProjectorPauseFailed");
        }
        tracing::info!(partitions = ?assigned, complete, "PartitionsAssigned");
        self.push(Rebalanced::Assigned(assigned));
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, revoked: &TopicPartitionList) {
        let partitions: Vec<u32> =
            revoked.elements().iter().map(|element| element.partition() as u32).collect();
        tracing::info!(partitions = ?partitions, lost = consumer.assignment_lost(), "PartitionsRevoked");
        if !consumer.assignment_lost() && !self.publishing.wait_idle(REVOKE_PUBLISH_WAIT) {
            tracing::warn!(partitions = ?partitions, "ProjectorRevokedBeforePublishing");
        }
        self.push(Rebalanced::Revoked(partitions));
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(revoked),
            _ => consumer.unassign(),
        };
        if let Err(error) = result {
            tracing::error!(error = %error, "ProjectorUnassignFailed");
        }
    }
}

impl<S: StoreWriter + 'static> ClientContext for AssignmentContext<S> {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log("projector-consumer", level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error("projector-consumer", &error, reason);
    }
}

impl<S: StoreWriter + 'static> ConsumerContext for AssignmentContext<S> {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        error: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        match error {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, partitions),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, partitions),
            other => {
                // librdkafka asks the application to drop its assignment on rebalance errors.
                tracing::error!(error = ?other, "ProjectorRebalanceFailed");
                self.revoke(consumer, partitions);
            }
        }
    }
}
