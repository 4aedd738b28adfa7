//! The commands of one partition read ahead of the fold, and which of them the next round folds.
//!
//! A partition is one ordered stream for many tenants. Folding it strictly in log order would
//! make every tenant wait behind the backlog of the busiest one. Tenants are independent (a
//! tenant's state depends only on its own commands, in log order), so while several tenants
//! have commands waiting, a round takes at most `tenant_share` of each one's oldest: a busy
//! tenant's backlog is folded a share at a time, in small rounds, while the commands of the
//! others, read ahead past it, are folded in the very next round. A tenant alone gets whole
//! rounds. Within a tenant the order is always the log order; the partition's
//! [`PartitionPosition`](scimflow_store::PartitionPosition) records who is folded how far.
//!
//! The window holds the records as read (payload bytes and tenant, the only field decoded
//! here), so its memory is bounded by the payload bytes; commands are decoded when folded.

use scimflow_core::command::Command;
use scimflow_log::LogRecord;
use std::collections::{HashMap, VecDeque};

/// A tenant's share of a round while others wait: see `scimflow-bench backlog` in the README
/// for what it trades (a quiet tenant's latency against the busy one's round size).
pub const DEFAULT_TENANT_SHARE: usize = 64;

/// How much one round folds and how far the window reads ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundLimits {
    /// Most commands folded in one round (one store commit).
    pub max_round: usize,
    /// Most commands of one tenant in a round while other tenants have commands waiting (a
    /// tenant alone in the window gets the whole round). Smaller shares make smaller rounds
    /// while tenants compete, so a quiet tenant's command waits less behind a busy one's.
    pub tenant_share: usize,
    /// Most commands held in the window; reading stops (Kafka: the partition pauses) while full.
    pub window_commands: usize,
    /// Most payload bytes held in the window.
    pub window_bytes: usize,
}

impl RoundLimits {
    /// `max_round` per round, [`DEFAULT_TENANT_SHARE`] per tenant (at most the round), and a
    /// window of 64 rounds or 64 MiB of payload.
    pub fn for_round(max_round: usize) -> Self {
        let max_round = max_round.max(1);
        RoundLimits {
            max_round,
            tenant_share: DEFAULT_TENANT_SHARE.min(max_round),
            window_commands: max_round * 64,
            window_bytes: 64 * 1024 * 1024,
        }
    }

    /// A tenant alone in the window gets rounds of four shares (at most `max_round`): large
    /// enough to fold a backlog fast, small enough that a command of another tenant arriving
    /// meanwhile waits for one short round, not a long one.
    pub fn lone_round(&self) -> usize {
        self.tenant_share.max(1).saturating_mul(4).min(self.max_round)
    }

    /// Everything at once, in log order: replay, where nobody waits.
    pub fn unbounded() -> Self {
        RoundLimits {
            max_round: usize::MAX,
            tenant_share: usize::MAX,
            window_commands: usize::MAX,
            window_bytes: usize::MAX,
        }
    }
}

/// A record read from the log, waiting to be folded.
#[derive(Debug)]
pub struct PendingCommand {
    pub offset: u64,
    /// The encoded command.
    pub payload: Vec<u8>,
    /// The tenant's index in the window's tenant table; a record without a readable tenant
    /// (poison) has none.
    tenant: Option<u32>,
}

/// The tenant of an encoded command, decoding nothing else; `None` for a record without one.
fn tenant_of(payload: &[u8]) -> Option<String> {
    <TenantOfCommand as prost::Message>::decode(payload)
        .ok()
        .map(|decoded| decoded.tenant_id)
        .filter(|tenant_id| !tenant_id.is_empty())
}

impl PendingCommand {
    /// The command, or why it cannot be decoded (poison: skipped, never blocking anything).
    pub fn decode(&self) -> Result<Command, String> {
        Command::decode(&self.payload).map_err(|error| error.to_string())
    }
}

/// Just the tenant of an encoded `CommandEnvelope` (field 3); prost skips the other fields, so
/// the window learns whose a record is without decoding the resource in it.
#[derive(Clone, PartialEq, prost::Message)]
struct TenantOfCommand {
    #[prost(string, tag = "3")]
    tenant_id: String,
}

/// Pending commands of one partition, in offset order.
#[derive(Debug, Default)]
pub struct Window {
    pending: VecDeque<PendingCommand>,
    bytes: usize,
    /// The offset after the last record pushed: the watermark once everything is folded.
    end: u64,
    tenant_index: HashMap<String, u32>,
    /// Pending commands per tenant index.
    tenant_pending: Vec<usize>,
}

/// The commands a round takes: positions in the window, ascending.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub taken: Vec<usize>,
}

impl Window {
    /// An empty window whose watermark is `start` until something is pushed.
    pub fn starting_at(start: u64) -> Self {
        Window { end: start, ..Window::default() }
    }

    /// Adds the next record of the partition (offsets must increase).
    pub fn push(&mut self, record: LogRecord) {
        let tenant = tenant_of(&record.payload).map(|tenant_id| self.intern(&tenant_id));
        if let Some(tenant) = tenant {
            self.tenant_pending[tenant as usize] += 1;
        }
        self.end = self.end.max(record.offset + 1);
        self.bytes += record.payload.len();
        self.pending.push_back(PendingCommand { offset: record.offset, payload: record.payload, tenant });
    }

    fn intern(&mut self, tenant_id: &str) -> u32 {
        if let Some(index) = self.tenant_index.get(tenant_id) {
            return *index;
        }
        let index = self.tenant_pending.len() as u32;
        self.tenant_index.insert(tenant_id.to_owned(), index);
        self.tenant_pending.push(0);
        index
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether the window holds as much as `limits` allow (read no further for now).
    pub fn is_full(&self, limits: &RoundLimits) -> bool {
        self.pending.len() >= limits.window_commands || self.bytes >= limits.window_bytes
    }

    /// The offset after the last record pushed.
    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn get(&self, index: usize) -> &PendingCommand {
        &self.pending[index]
    }

    /// The next round: commands in offset order, each tenant's oldest first, at most its share
    /// (`tenant_share`; the whole round for a tenant alone) and at most `max_round` in all.
    /// The oldest pending command is always taken, so every round raises the watermark.
    pub fn next_round(&self, limits: &RoundLimits) -> Round {
        let waiting = self.tenant_pending.iter().filter(|count| **count > 0).count();
        let share = if waiting > 1 { limits.tenant_share.max(1) } else { limits.lone_round() };
        let mut taken_per_tenant = vec![0usize; self.tenant_pending.len()];
        let mut taken = Vec::new();
        for (index, pending) in self.pending.iter().enumerate() {
            if taken.len() >= limits.max_round {
                break;
            }
            match pending.tenant {
                // Poison belongs to nobody and costs nothing: always skipped right away.
                None => taken.push(index),
                Some(tenant) => {
                    let count = &mut taken_per_tenant[tenant as usize];
                    if *count < share {
                        *count += 1;
                        taken.push(index);
                    }
                }
            }
        }
        Round { taken }
    }

    /// The watermark once `round` is folded: the first command it leaves, or the window's end.
    pub fn watermark_after(&self, round: &Round) -> u64 {
        let mut taken = round.taken.iter().peekable();
        for (index, pending) in self.pending.iter().enumerate() {
            if taken.peek() == Some(&&index) {
                taken.next();
            } else {
                return pending.offset;
            }
        }
        self.end
    }

    /// Removes the commands of a folded round.
    pub fn remove(&mut self, round: &Round) {
        // A round is mostly the front of the window (the oldest commands) plus a few commands
        // of other tenants further back: pop the front, remove the rest one by one from the
        // back, and only for many scattered ones pass over the whole window.
        let front = round.taken.iter().enumerate().take_while(|(position, index)| position == *index).count();
        let scattered = &round.taken[front..];
        if scattered.len() > 64 {
            self.retain_all_but(round);
        } else {
            for index in scattered.iter().rev() {
                if let Some(pending) = self.pending.remove(*index) {
                    self.forget(&pending);
                }
            }
            for _ in 0..front {
                if let Some(pending) = self.pending.pop_front() {
                    self.forget(&pending);
                }
            }
        }
        if self.pending.is_empty() {
            // Tenants come and go; the table must not grow without bound.
            self.tenant_index.clear();
            self.tenant_pending.clear();
        }
    }

    fn forget(&mut self, pending: &PendingCommand) {
        self.bytes -= pending.payload.len();
        if let Some(tenant) = pending.tenant {
            self.tenant_pending[tenant as usize] -= 1;
        }
    }

    fn retain_all_but(&mut self, round: &Round) {
        let mut taken = round.taken.iter().peekable();
        let mut index = 0;
        let (mut bytes, tenant_pending) = (self.bytes, &mut self.tenant_pending);
        self.pending.retain(|pending| {
            let keep = if taken.peek() == Some(&&index) {
                taken.next();
                bytes -= pending.payload.len();
                if let Some(tenant) = pending.tenant {
                    tenant_pending[tenant as usize] -= 1;
                }
                false
            } else {
                true
            };
            index += 1;
            keep
        });
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimflow_core::ResourceKind;
    use scimflow_core::command::{Action, CommandMetadata};

    fn record(offset: u64, tenant: &str) -> LogRecord {
        let command = Command {
            event_id: format!("e-{offset}"),
            tenant_id: tenant.into(),
            kind: ResourceKind::User,
            resource_id: format!("u-{offset}"),
            issued_at_ms: 0,
            if_match: None,
            action: Action::Delete,
            metadata: CommandMetadata::default(),
        };
        LogRecord { partition: 0, offset, payload: command.encode() }
    }

    fn window(tenants: &[&str]) -> Window {
        let mut window = Window::starting_at(0);
        for (offset, tenant) in tenants.iter().enumerate() {
            window.push(record(offset as u64, tenant));
        }
        window
    }

    fn offsets(window: &Window, round: &Round) -> Vec<u64> {
        round.taken.iter().map(|index| window.get(*index).offset).collect()
    }

    fn limits(max_round: usize, tenant_share: usize) -> RoundLimits {
        RoundLimits { max_round, tenant_share, window_commands: 100, window_bytes: usize::MAX }
    }

    #[test]
    fn a_backlog_of_one_tenant_does_not_hold_back_the_commands_of_another() {
        // Tenant a has 8 commands waiting before b's one.
        let window = window(&["a", "a", "a", "a", "a", "a", "a", "a", "b"]);
        let round = window.next_round(&limits(4, 2));
        // Two waiting tenants: a share of 2 each.
        assert_eq!(offsets(&window, &round), vec![0, 1, 8]);
        assert_eq!(window.watermark_after(&round), 2);
    }

    #[test]
    fn a_tenant_alone_gets_the_whole_round() {
        let window = window(&["a", "a", "a", "a", "a", "a"]);
        let round = window.next_round(&limits(4, 1));
        assert_eq!(offsets(&window, &round), vec![0, 1, 2, 3]);
    }

    #[test]
    fn each_tenant_stays_in_log_order_and_the_oldest_command_is_always_taken() {
        let mut window = window(&["a", "b", "a", "b", "a", "c", "b", "a"]);
        let limits = limits(3, 1);
        let mut folded: Vec<u64> = Vec::new();
        let mut watermark = 0;
        while !window.is_empty() {
            let round = window.next_round(&limits);
            let taken = offsets(&window, &round);
            assert!(taken.contains(&window.get(0).offset), "the oldest pending command is taken");
            let next = window.watermark_after(&round);
            assert!(next > watermark, "the watermark rises every round");
            watermark = next;
            folded.extend(taken);
            window.remove(&round);
        }
        assert_eq!(watermark, 8);
        for tenant in ["a", "b", "c"] {
            let all = window_offsets_of(tenant);
            let order: Vec<u64> = folded.iter().copied().filter(|offset| all.contains(offset)).collect();
            assert_eq!(order, all, "tenant {tenant} folded in log order");
        }
    }

    fn window_offsets_of(tenant: &str) -> Vec<u64> {
        ["a", "b", "a", "b", "a", "c", "b", "a"]
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == tenant)
            .map(|(offset, _)| offset as u64)
            .collect()
    }

    #[test]
    fn removing_a_round_leaves_exactly_the_commands_it_did_not_take() {
        // Rounds with few and with many scattered commands take the two removal paths.
        // A backlog of "a", then 10 commands of "b" (few scattered), or of 100 tenants (many).
        for (others, share) in [(1, 5), (100, 1)] {
            let names: Vec<String> = (0..600)
                .map(|offset| if offset < 300 { "a".to_owned() } else { format!("t{}", offset % others) })
                .collect();
            let mut window = window(&names.iter().map(String::as_str).collect::<Vec<_>>());
            let round = window.next_round(&limits(200, share));
            let taken = offsets(&window, &round);
            let before: Vec<u64> = (0..window.len()).map(|index| window.get(index).offset).collect();
            window.remove(&round);
            let after: Vec<u64> = (0..window.len()).map(|index| window.get(index).offset).collect();
            let expected: Vec<u64> = before.into_iter().filter(|offset| !taken.contains(offset)).collect();
            assert!(taken.len() > share, "the round reaches past the front");
            assert_eq!(after, expected, "{others} other tenants");
            let payload: usize = (0..window.len()).map(|index| window.get(index).payload.len()).sum();
            assert_eq!(window.bytes, payload);
        }
    }

    #[test]
    fn poison_is_always_taken_and_a_full_window_says_so() {
        let mut window = window(&["a", "a"]);
        window.push(LogRecord { partition: 0, offset: 2, payload: b"not a command".to_vec() });
        let round = window.next_round(&limits(10, 1));
        assert_eq!(offsets(&window, &round), vec![0, 1, 2], "one tenant alone: the whole round");
        assert!(!window.is_full(&limits(10, 1)));
        assert!(window.is_full(&RoundLimits { window_commands: 3, ..limits(10, 1) }));
        window.remove(&round);
        assert!(window.is_empty());
        assert_eq!(window.watermark_after(&Round::default()), 3);
    }
}
