//! Publishing folded rounds off the fold loop.
//!
//! A transaction takes a few broker round trips (~10 ms here). The fold loop used to run it
//! after every round, so a command arriving meanwhile waited for it before being folded: the
//! busier the partition, the more often a write waited, which is how one tenant's admitted
//! writes raised another tenant's tail latency. Outcomes do not depend on the transaction (they
//! follow the store commit), so the loop now hands each round's changes and commit offsets to
//! this publisher thread and goes on folding. The thread merges whatever rounds are queued into
//! one transaction, in order.
//!
//! Nothing about recovery changes: a round's changes are in the store's change feed before they
//! are queued here, so whatever is queued or in flight when something fails is republished from
//! the committed offset (the path a crash after the store commit always took).
//! - A failed transaction (aborted, or fatal: the producer is then replaced) **halts** the
//!   queue: the queued rounds are dropped and rounds handed in are dropped until the loop has
//!   seen the failure, sent every partition back through preparation (committed offset, then
//!   republishing) and called [`ChangePublisher::resume`]. Nothing published after a gap.
//! - A revocation waits for the queue to be idle ([`PublishQueue::wait_idle`]), so the next
//!   owner's committed offset covers what this member folded.
//! - The queue holds at most [`MAX_QUEUED_ROUNDS`] rounds: a slow broker slows folding rather
//!   than growing memory.

use super::Control;
use super::transactions::{ChangeTransactions, PartitionPublish, TransactionFailure};
use rdkafka::consumer::ConsumerGroupMetadata;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Rounds waiting for a transaction before `submit` blocks.
const MAX_QUEUED_ROUNDS: usize = 32;
/// Rounds merged into one transaction at most.
const MAX_MERGED_ROUNDS: usize = 64;
/// How often an idle publisher thread looks at the kill switch.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// A folded round waiting to be published.
struct QueuedRound {
    publishes: Vec<PartitionPublish>,
    /// The consumer's group metadata when the round was folded: the coordinator refuses the
    /// offsets if the member was fenced since.
    group: ConsumerGroupMetadata,
}

/// A failed transaction, for the fold loop.
#[derive(Debug)]
pub(crate) enum PublishFailure {
    Aborted(String),
    /// The producer failed; `replaced` as in [`TransactionFailure::Fatal`].
    Fatal {
        reason: String,
        replaced: bool,
    },
}

#[derive(Default)]
struct Queue {
    rounds: VecDeque<QueuedRound>,
    /// A transaction is in flight.
    busy: bool,
    /// A transaction failed and the loop has not resumed the queue yet.
    halted: bool,
    /// No more rounds: publish what is queued, then end the thread.
    finishing: bool,
    failures: Vec<PublishFailure>,
}

/// The state shared by the fold loop, the rebalance callback and the publisher thread.
pub(crate) struct PublishQueue {
    queue: Mutex<Queue>,
    changed: Condvar,
    transactions: Mutex<ChangeTransactions>,
    control: Arc<Control>,
}

impl PublishQueue {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn transactions(&self) -> MutexGuard<'_, ChangeTransactions> {
        self.transactions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until nothing is queued or in flight (or `timeout` passed); true when idle.
    pub(crate) fn wait_idle(&self, timeout: Duration) -> bool {
        // `Duration::MAX` (no deadline) does not fit in an Instant.
        let deadline = Instant::now().checked_add(timeout);
        let mut queue = self.lock();
        while queue.busy || !queue.rounds.is_empty() {
            let now = Instant::now();
            let left = deadline.map_or(IDLE_WAKE, |deadline| deadline.saturating_duration_since(now));
            if left.is_zero() {
                return false;
            }
            queue = self.changed.wait_timeout(queue, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
        true
    }
}

/// The fold loop's handle to the publisher thread.
pub(crate) struct ChangePublisher {
    shared: Arc<PublishQueue>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ChangePublisher {
    pub(crate) fn start(transactions: ChangeTransactions, control: Arc<Control>) -> std::io::Result<Self> {
        let shared = Arc::new(PublishQueue {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            transactions: Mutex::new(transactions),
            control,
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("scimflow-change-publisher".into())
            .spawn(move || publish_until_finished(&thread_shared))?;
        Ok(ChangePublisher { shared, thread: Some(thread) })
    }

    /// For the rebalance callback.
    pub(crate) fn queue(&self) -> Arc<PublishQueue> {
        self.shared.clone()
    }

    /// Queues a folded round; blocks while [`MAX_QUEUED_ROUNDS`] are waiting. Dropped while the
    /// queue is halted (the loop republishes it from the store).
    pub(crate) fn submit(&self, publishes: Vec<PartitionPublish>, group: ConsumerGroupMetadata) {
        let mut queue = self.shared.lock();
        while queue.rounds.len() >= MAX_QUEUED_ROUNDS && !queue.halted && !self.shared.control.killed() {
            queue = self.shared.changed.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if queue.halted {
            return;
        }
        queue.rounds.push_back(QueuedRound { publishes, group });
        self.shared.changed.notify_all();
    }

    /// Failed transactions since the last call. After any, every partition must go back through
    /// preparation before [`ChangePublisher::resume`].
    pub(crate) fn take_failures(&self) -> Vec<PublishFailure> {
        std::mem::take(&mut self.shared.lock().failures)
    }

    pub(crate) fn resume(&self) {
        self.shared.lock().halted = false;
    }

    /// Publishes in a transaction now, on the caller's thread, after what is queued (for
    /// republishing, which must finish before its partition folds again).
    pub(crate) fn publish_now(
        &self,
        publish: &PartitionPublish,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TransactionFailure> {
        self.shared.wait_idle(Duration::MAX);
        self.shared.transactions().publish(std::slice::from_ref(publish), group, &self.shared.control)
    }

    /// Publishes what is queued, then ends the thread (graceful stop).
    pub(crate) fn finish(mut self) {
        self.shared.lock().finishing = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ChangePublisher {
    fn drop(&mut self) {
        // Without `finish` (a killed or failed worker): the thread publishes what is queued
        // unless killed, and ends; nobody waits for it.
        self.shared.lock().finishing = true;
        self.shared.changed.notify_all();
    }
}

fn publish_until_finished(shared: &PublishQueue) {
    loop {
        let rounds: Vec<QueuedRound> = {
            let mut queue = shared.lock();
            loop {
                if shared.control.killed() {
                    // A simulated crash: what is queued is never published (republished by the
                    // next owner from the store).
                    queue.rounds.clear();
                    shared.changed.notify_all();
                    return;
                }
                if !queue.rounds.is_empty() {
                    break;
                }
                if queue.finishing {
                    return;
                }
                queue = shared
                    .changed
                    .wait_timeout(queue, IDLE_WAKE)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            queue.busy = true;
            let take = queue.rounds.len().min(MAX_MERGED_ROUNDS);
            queue.rounds.drain(..take).collect()
        };
        // The freshest metadata: a rebalance since an older round does not fence this member.
        let mut group = None;
        let mut publishes = Vec::with_capacity(rounds.len());
        for round in rounds {
            group = Some(round.group);
            publishes.push(round.publishes);
        }
        let publishes = merge(publishes);
        let result = match &group {
            Some(group) => shared.transactions().publish(&publishes, group, &shared.control),
            None => Ok(()),
        };
        let mut queue = shared.lock();
        queue.busy = false;
        if let Err(failure) = result {
            queue.halted = true;
            queue.rounds.clear();
            queue.failures.push(match failure {
                TransactionFailure::Aborted(error) => PublishFailure::Aborted(error.to_string()),
                TransactionFailure::Fatal { reason, replaced } => PublishFailure::Fatal { reason, replaced },
            });
        }
        shared.changed.notify_all();
    }
}

/// Merges rounds, in order, into one publish per partition: the changes one after the other,
/// the commit offset of the last.
fn merge(rounds: impl IntoIterator<Item = Vec<PartitionPublish>>) -> Vec<PartitionPublish> {
    let mut merged: BTreeMap<u32, PartitionPublish> = BTreeMap::new();
    for round in rounds {
        for publish in round {
            match merged.get_mut(&publish.partition) {
                Some(into) => {
                    into.changes.extend(publish.changes);
                    into.commit_offset = into.commit_offset.max(publish.commit_offset);
                }
                None => {
                    merged.insert(publish.partition, publish);
                }
            }
        }
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimflow_store::ChangeRecord;

    fn change(offset: u64, index: u32) -> ChangeRecord {
        ChangeRecord { offset, index, envelope: vec![offset as u8, index as u8] }
    }

    #[test]
    fn merging_keeps_each_partitions_changes_in_order_and_commits_after_the_last_round() {
        let rounds = vec![
            vec![
                PartitionPublish {
                    partition: 1,
                    changes: vec![change(10, 0), change(10, 1)],
                    commit_offset: 11,
                },
                PartitionPublish { partition: 0, changes: vec![change(3, 0)], commit_offset: 4 },
            ],
            vec![PartitionPublish { partition: 1, changes: vec![], commit_offset: 12 }],
            vec![PartitionPublish { partition: 1, changes: vec![change(14, 0)], commit_offset: 15 }],
        ];
        let merged = merge(rounds);
        // (partition, [(offset, index) of each change], commit offset)
        type Summary = (u32, Vec<(u64, u32)>, u64);
        let summary: Vec<Summary> = merged
            .iter()
            .map(|publish| {
                let changes = publish.changes.iter().map(|change| (change.offset, change.index)).collect();
                (publish.partition, changes, publish.commit_offset)
            })
            .collect();
        assert_eq!(summary, vec![(0, vec![(3, 0)], 4), (1, vec![(10, 0), (10, 1), (14, 0)], 15)]);
    }
}
