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
//! - The queue holds at most [`MAX_QUEUED_BYTES`] of changes (and [`MAX_QUEUED_ROUNDS`]
//!   rounds): a broker slower than the fold slows folding rather than growing memory. The bound
//!   is on what waits, not on what is in flight, so the fold loop only waits when the publisher
//!   is behind by that much (blocking it for every transaction's duration once a few rounds
//!   are queued made a busy tenant's backlog delay other tenants' answers by whole
//!   transactions).

use super::Control;
use super::transactions::{ChangeTransactions, PartitionPublish, TransactionFailure};
use rdkafka::consumer::ConsumerGroupMetadata;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Change bytes waiting for a transaction before `submit` blocks.
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Rounds waiting for a transaction before `submit` blocks (rounds without changes are small
/// but not free).
const MAX_QUEUED_ROUNDS: usize = 4096;
/// Changes merged into one transaction at most (a round is never split): bounds how long one
/// transaction takes and what a failed one has to republish.
const MAX_TRANSACTION_CHANGES: usize = 10_000;
/// How often an idle publisher thread looks at the kill switch.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// What publishes a transaction: [`ChangeTransactions`], or a scripted stand-in in tests.
pub(crate) trait Transact: Send + 'static {
    /// What a transaction's offsets are committed with (the consumer's group metadata).
    type Group: Send + 'static;

    /// Publishes `publishes` in one transaction (see [`ChangeTransactions::publish`]).
    fn publish(
        &mut self,
        publishes: &[PartitionPublish],
        group: &Self::Group,
        control: &Control,
    ) -> Result<(), TransactionFailure>;
}

impl Transact for ChangeTransactions {
    type Group = ConsumerGroupMetadata;

    fn publish(
        &mut self,
        publishes: &[PartitionPublish],
        group: &ConsumerGroupMetadata,
        control: &Control,
    ) -> Result<(), TransactionFailure> {
        ChangeTransactions::publish(self, publishes, group, control)
    }
}

/// A folded round waiting to be published.
struct QueuedRound<G> {
    publishes: Vec<PartitionPublish>,
    changes: usize,
    bytes: usize,
    /// The consumer's group metadata when the round was folded: the coordinator refuses the
    /// offsets if the member was fenced since.
    group: G,
}

struct Queue<G> {
    rounds: VecDeque<QueuedRound<G>>,
    /// The change bytes of `rounds`.
    bytes: usize,
    /// A transaction is in flight.
    busy: bool,
    /// A transaction failed and the loop has not resumed the queue yet.
    halted: bool,
    /// No more rounds: publish what is queued, then end the thread.
    finishing: bool,
    /// Failed transactions the fold loop has not taken yet.
    failures: Vec<TransactionFailure>,
}

impl<G> Queue<G> {
    /// After a failed transaction: what is queued is dropped (republished from the store once
    /// the loop has prepared the partitions again), and so is what comes until it resumes.
    fn halt(&mut self, failure: TransactionFailure) {
        self.busy = false;
        self.halted = true;
        self.drop_rounds();
        self.failures.push(failure);
    }

    fn drop_rounds(&mut self) {
        self.rounds.clear();
        self.bytes = 0;
    }
}

impl<G> Default for Queue<G> {
    fn default() -> Self {
        Queue {
            rounds: VecDeque::new(),
            bytes: 0,
            busy: false,
            halted: false,
            finishing: false,
            failures: Vec::new(),
        }
    }
}

/// The state shared by the fold loop, the rebalance callback and the publisher thread.
pub(crate) struct PublishQueue<T: Transact = ChangeTransactions> {
    queue: Mutex<Queue<T::Group>>,
    changed: Condvar,
    transactions: Mutex<T>,
    control: Arc<Control>,
}

impl<T: Transact> PublishQueue<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T::Group>> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn transactions(&self) -> MutexGuard<'_, T> {
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
pub(crate) struct ChangePublisher<T: Transact = ChangeTransactions> {
    shared: Arc<PublishQueue<T>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Transact> ChangePublisher<T> {
    pub(crate) fn start(transactions: T, control: Arc<Control>) -> std::io::Result<Self> {
        let shared = Arc::new(PublishQueue {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            transactions: Mutex::new(transactions),
            control,
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("scimflow-change-publisher".into())
            .spawn(move || publish_or_report_panic(&thread_shared))?;
        Ok(ChangePublisher { shared, thread: Some(thread) })
    }

    /// For the rebalance callback.
    pub(crate) fn queue(&self) -> Arc<PublishQueue<T>> {
        self.shared.clone()
    }

    /// Queues a folded round; blocks while the queue is full (see the module docs). Dropped
    /// while the queue is halted (the loop republishes it from the store).
    pub(crate) fn submit(&self, publishes: Vec<PartitionPublish>, group: T::Group) {
        let changes = publishes.iter().map(|publish| publish.changes.len()).sum();
        let bytes =
            publishes.iter().flat_map(|publish| &publish.changes).map(|change| change.envelope.len()).sum();
        let mut queue = self.shared.lock();
        while (queue.bytes >= MAX_QUEUED_BYTES || queue.rounds.len() >= MAX_QUEUED_ROUNDS)
            && !queue.halted
            && !self.shared.control.killed()
        {
            queue = self.shared.changed.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if queue.halted {
            return;
        }
        queue.bytes += bytes;
        queue.rounds.push_back(QueuedRound { publishes, changes, bytes, group });
        self.shared.changed.notify_all();
    }

    /// Failed transactions since the last call. After any, every partition must go back through
    /// preparation before [`ChangePublisher::resume`].
    pub(crate) fn take_failures(&self) -> Vec<TransactionFailure> {
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
        group: &T::Group,
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

impl<T: Transact> Drop for ChangePublisher<T> {
    fn drop(&mut self) {
        // Without `finish` (a killed or failed worker): the thread publishes what is queued
        // unless killed, and ends; nobody waits for it.
        self.shared.lock().finishing = true;
        self.shared.changed.notify_all();
    }
}

/// Runs the thread; a panic (a bug) must not leave the fold loop waiting for an idle queue
/// forever: it is reported as a fatal failure with no producer, so the worker ends and is
/// re-opened (positions from the store, publishing from the committed offset).
fn publish_or_report_panic<T: Transact>(shared: &PublishQueue<T>) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| publish_until_finished(shared)));
    if outcome.is_err() {
        tracing::error!("ChangePublisherPanicked");
        let failure =
            TransactionFailure::Fatal { reason: "the change publisher panicked".into(), replaced: false };
        shared.lock().halt(failure);
        shared.changed.notify_all();
    }
}

fn publish_until_finished<T: Transact>(shared: &PublishQueue<T>) {
    loop {
        let rounds: Vec<QueuedRound<T::Group>> = {
            let mut queue = shared.lock();
            loop {
                if shared.control.killed() {
                    // A simulated crash: what is queued is never published (republished by the
                    // next owner from the store).
                    queue.drop_rounds();
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
            let mut taken = Vec::new();
            let mut changes = 0;
            while let Some(round) = queue.rounds.front() {
                if !taken.is_empty() && changes + round.changes > MAX_TRANSACTION_CHANGES {
                    break;
                }
                changes += round.changes;
                let round = queue.rounds.pop_front().expect("front exists");
                queue.bytes -= round.bytes;
                taken.push(round);
            }
            // Room for the fold loop while this transaction runs.
            shared.changed.notify_all();
            taken
        };
        let (publishes, groups): (Vec<_>, Vec<_>) =
            rounds.into_iter().map(|round| (round.publishes, round.group)).unzip();
        // The freshest metadata: a rebalance since an older round does not fence this member.
        let group = groups.into_iter().last().expect("a transaction takes at least one round");
        let result = shared.transactions().publish(&merge(publishes), &group, &shared.control);
        let mut queue = shared.lock();
        match result {
            Ok(()) => queue.busy = false,
            Err(failure) => queue.halt(failure),
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
    use rdkafka::error::KafkaError;
    use scimflow_store::ChangeRecord;
    use std::sync::mpsc;

    fn change(offset: u64, index: u32) -> ChangeRecord {
        ChangeRecord { offset, index, envelope: vec![offset as u8, index as u8] }
    }

    /// (partition, offsets of its changes, commit offset) of each partition in a transaction.
    type Published = Vec<(u32, Vec<u64>, u64)>;

    /// A transaction stand-in: reports what each transaction publishes when it begins, then
    /// ends it as the test answers, so the test decides what is queued while one runs.
    struct Scripted {
        begun: mpsc::Sender<Published>,
        answers: mpsc::Receiver<Result<(), TransactionFailure>>,
    }

    impl Transact for Scripted {
        type Group = ();

        fn publish(
            &mut self,
            publishes: &[PartitionPublish],
            _group: &(),
            _control: &Control,
        ) -> Result<(), TransactionFailure> {
            let published = publishes
                .iter()
                .map(|publish| {
                    let offsets = publish.changes.iter().map(|change| change.offset).collect();
                    (publish.partition, offsets, publish.commit_offset)
                })
                .collect();
            self.begun.send(published).expect("the test listens");
            self.answers.recv().expect("the test answers")
        }
    }

    /// A round of partition 0 folding the command at `offset` (one change).
    fn round(offset: u64) -> Vec<PartitionPublish> {
        vec![PartitionPublish { partition: 0, changes: vec![change(offset, 0)], commit_offset: offset + 1 }]
    }

    struct Script {
        publisher: ChangePublisher<Scripted>,
        begun: mpsc::Receiver<Published>,
        answers: mpsc::Sender<Result<(), TransactionFailure>>,
    }

    impl Script {
        fn start() -> Script {
            let (begun_sender, begun) = mpsc::channel();
            let (answers, answers_receiver) = mpsc::channel();
            let scripted = Scripted { begun: begun_sender, answers: answers_receiver };
            let publisher = ChangePublisher::start(scripted, Arc::new(Control::default())).unwrap();
            Script { publisher, begun, answers }
        }

        fn submit(&self, offset: u64) {
            self.publisher.submit(round(offset), ());
        }

        fn next_transaction(&self) -> Published {
            self.begun.recv_timeout(Duration::from_secs(10)).expect("a transaction begins")
        }

        fn end_transaction(&self, result: Result<(), TransactionFailure>) {
            self.answers.send(result).unwrap();
        }
    }

    #[test]
    fn rounds_folded_while_a_transaction_runs_go_out_together_in_the_next_one() {
        let script = Script::start();
        script.submit(0);
        assert_eq!(script.next_transaction(), vec![(0, vec![0], 1)]);
        // The fold loop goes on while the transaction runs.
        script.submit(1);
        script.submit(2);
        script.end_transaction(Ok(()));
        assert_eq!(script.next_transaction(), vec![(0, vec![1, 2], 3)]);
        script.submit(3);
        script.end_transaction(Ok(()));
        assert_eq!(script.next_transaction(), vec![(0, vec![3], 4)]);
        script.end_transaction(Ok(()));
        assert!(script.publisher.queue().wait_idle(Duration::from_secs(10)));
        assert!(script.publisher.take_failures().is_empty());
        script.publisher.finish();
    }

    #[test]
    fn after_a_failed_transaction_nothing_is_published_until_the_loop_resumes_the_queue() {
        let script = Script::start();
        script.submit(0);
        assert_eq!(script.next_transaction(), vec![(0, vec![0], 1)]);
        script.submit(1);
        script.submit(2);
        let aborted = KafkaError::Subscription("scripted abort".into());
        script.end_transaction(Err(TransactionFailure::Aborted(aborted)));
        assert!(script.publisher.queue().wait_idle(Duration::from_secs(10)));
        let failures = script.publisher.take_failures();
        assert!(
            matches!(failures.as_slice(), [TransactionFailure::Aborted(error)] if error.to_string().contains("scripted abort"))
        );
        // Handed in before the loop has dealt with the failure: dropped too (republished from
        // the store once the partitions are prepared again).
        script.submit(3);
        script.publisher.resume();
        script.submit(7);
        // Rounds 1, 2 and 3 never went out: publishing them after the gap of round 0 would
        // move the committed offset past changes that are not on the topic.
        assert_eq!(script.next_transaction(), vec![(0, vec![7], 8)]);
        script.end_transaction(Ok(()));
        script.publisher.finish();
        assert!(script.begun.try_recv().is_err(), "no other transaction");
    }

    #[test]
    fn a_panic_in_the_publisher_is_reported_as_fatal_instead_of_leaving_the_loop_waiting() {
        let script = Script::start();
        script.submit(0);
        assert_eq!(script.next_transaction(), vec![(0, vec![0], 1)]);
        // The stand-in panics when nobody can answer it any more.
        let Script { publisher, begun: _begun, answers } = script;
        drop(answers);
        assert!(publisher.queue().wait_idle(Duration::from_secs(10)), "not left busy");
        let failures = publisher.take_failures();
        assert!(
            matches!(failures.as_slice(), [TransactionFailure::Fatal { replaced: false, .. }]),
            "{failures:?}"
        );
    }

    #[test]
    fn a_full_queue_makes_the_fold_loop_wait_until_a_transaction_takes_from_it() {
        let script = Script::start();
        script.submit(0);
        assert_eq!(script.next_transaction(), vec![(0, vec![0], 1)]);
        // While that transaction runs, one round fills the queue's bytes.
        let envelope = vec![0; MAX_QUEUED_BYTES];
        let full = PartitionPublish {
            partition: 0,
            changes: vec![ChangeRecord { offset: 1, index: 0, envelope }],
            commit_offset: 2,
        };
        script.publisher.submit(vec![full], ());
        let (submitted, returned) = mpsc::channel();
        std::thread::scope(|scope| {
            let publisher = &script.publisher;
            scope.spawn(move || {
                publisher.submit(round(2), ());
                submitted.send(()).unwrap();
            });
            assert!(
                returned.recv_timeout(Duration::from_millis(300)).is_err(),
                "waits while the queue is full"
            );
            // The next transaction takes the full round off the queue: room again.
            script.end_transaction(Ok(()));
            returned.recv_timeout(Duration::from_secs(10)).expect("queued once there is room");
        });
        assert_eq!(script.next_transaction(), vec![(0, vec![1], 2)]);
        script.end_transaction(Ok(()));
        assert_eq!(script.next_transaction(), vec![(0, vec![2], 3)]);
        script.end_transaction(Ok(()));
        script.publisher.finish();
    }

    #[test]
    fn finishing_publishes_what_is_queued_first() {
        let script = Script::start();
        script.submit(0);
        assert_eq!(script.next_transaction(), vec![(0, vec![0], 1)]);
        script.submit(1);
        // Both transactions may end: the second one is answered before it begins.
        script.end_transaction(Ok(()));
        script.end_transaction(Ok(()));
        script.publisher.finish();
        let second = script.begun.recv_timeout(Duration::from_secs(10)).expect("published before the end");
        assert_eq!(second, vec![(0, vec![1], 2)]);
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
