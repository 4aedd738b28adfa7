//! Folding the command log again, in order, into an in-memory state per tenant: the reference
//! that replay, `verify` and the history reads are checked against. The fold is the projector's
//! own decide/apply ([`BatchFold`]), so the state it reaches is the one the store should hold.
//!
//! Works on any [`LogReader`]: the embedded log (one partition) or Kafka (a tenant's commands
//! all live in one partition, so partitions fold independently, one after the other).

use crate::port::{LogError, LogReader};
use scimflow_core::SchemaRegistry;
use scimflow_core::command::Command;
use scimflow_core::decide::Decision;
use scimflow_core::fold::BatchFold;
use scimflow_core::memory::MemoryState;
use std::collections::BTreeMap;

/// Records read from the log per round trip.
pub const READ_BATCH: usize = 2048;

/// Where a scan of each partition stops.
#[derive(Debug, Clone)]
pub enum Until {
    /// At each partition's current end.
    End,
    /// Before these offsets (a store's committed positions); partitions not named are not read.
    Positions(BTreeMap<u32, u64>),
    /// Before the first (scanned tenant's) command issued after this instant (Unix ms), in each
    /// partition: the longest prefix issued at or before it, so the state is one the pipeline
    /// really went through.
    Instant(i64),
}

/// Where a record sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    pub partition: u32,
    pub offset: u64,
}

/// The states a scan reached and, per partition, the offset it stopped before.
#[derive(Debug, Default)]
pub struct Folded {
    pub states: BTreeMap<String, MemoryState>,
    pub stopped_at: BTreeMap<u32, u64>,
}

/// Folds the log into one [`MemoryState`] per tenant (only `tenant`, if given), calling `each`
/// with every command's decision and the tenant's state just before it.
pub fn fold_log(
    log: &dyn LogReader,
    registry: &SchemaRegistry,
    tenant: Option<&str>,
    until: &Until,
    mut each: impl FnMut(LogPosition, &Command, &Decision, &MemoryState),
) -> Result<Folded, LogError> {
    let mut folded = Folded::default();
    let mut partitions: Vec<u32> = match until {
        Until::Positions(positions) => positions.keys().copied().collect(),
        _ => log.partitions()?,
    };
    // One tenant's commands all live in one partition: read only that one when it is known.
    if let Some(tenant) = tenant
        && let Some(only) = log.tenant_partition(tenant)?
    {
        partitions.retain(|partition| *partition == only);
    }
    for partition in partitions {
        let end = match until {
            Until::Positions(positions) => positions[&partition].min(log.end_offset(partition)?),
            _ => log.end_offset(partition)?,
        };
        let stopped =
            fold_partition(log, registry, tenant, until, partition, end, &mut folded.states, &mut each)?;
        folded.stopped_at.insert(partition, stopped);
    }
    Ok(folded)
}

#[allow(clippy::too_many_arguments)]
fn fold_partition(
    log: &dyn LogReader,
    registry: &SchemaRegistry,
    tenant: Option<&str>,
    until: &Until,
    partition: u32,
    end: u64,
    states: &mut BTreeMap<String, MemoryState>,
    each: &mut impl FnMut(LogPosition, &Command, &Decision, &MemoryState),
) -> Result<u64, LogError> {
    let mut next = 0;
    while next < end {
        let limit = READ_BATCH.min((end - next) as usize);
        let records = log.read(partition, next, limit)?;
        let Some(last) = records.last() else { break };
        let last_offset = last.offset;
        for record in records.iter().filter(|record| record.offset < end) {
            // Poison records are skipped by the projector too (it logs them); so here.
            let Ok(command) = Command::decode(&record.payload) else { continue };
            if tenant.is_some_and(|tenant| tenant != command.tenant_id) {
                continue;
            }
            // Only the scanned tenant's own timestamps cut the prefix: another tenant's command
            // stamped by a node with a skewed clock must not hide this tenant's later state.
            if let Until::Instant(limit) = until
                && command.issued_at_ms > *limit
            {
                return Ok(record.offset);
            }
            let state = states.entry(command.tenant_id.clone()).or_default();
            // One fold per command: an overlay over the state folds exactly like the projector's
            // batches (the overlay guarantees batch folding equals one-by-one folding).
            let mut fold = BatchFold::new(registry, &*state);
            let decision = fold.fold(&command);
            let mutations = fold.into_mutations();
            each(LogPosition { partition, offset: record.offset }, &command, &decision, state);
            state.apply_all(&mutations);
        }
        next = last_offset + 1;
    }
    Ok(next)
}

/// The offset of the first command of `partition` at or after `from` issued at or after
/// `unix_ms` (the end offset if none).
pub fn first_issued_at_or_after(
    log: &dyn LogReader,
    partition: u32,
    from: u64,
    unix_ms: i64,
) -> Result<u64, LogError> {
    let end = log.end_offset(partition)?;
    let mut next = from;
    while next < end {
        let records = log.read(partition, next, READ_BATCH)?;
        let Some(last) = records.last() else { break };
        for record in &records {
            if let Ok(command) = Command::decode(&record.payload)
                && command.issued_at_ms >= unix_ms
            {
                return Ok(record.offset);
            }
        }
        next = last.offset + 1;
    }
    Ok(end)
}

/// One change the fold applied, encoded as the projector encodes it for fanout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedChange {
    pub position: LogPosition,
    /// Index of the change within its command.
    pub index: u32,
    pub issued_at_ms: i64,
    /// An encoded `ChangeEnvelope`; `change_id` `<event id>/<index>` is the one first delivered.
    pub envelope: Vec<u8>,
}

/// The changes `tenant`'s commands issued in `[from_ms, to_ms)` applied, in log order, rebuilt
/// by folding the tenant's log: the fold is deterministic, so each envelope is the one the
/// projector produced (same `change_id`, same content), whether or not the change feed or the
/// changes topic still holds it. Folds with the standard schemas, as the projector does.
pub fn applied_changes(
    log: &dyn LogReader,
    tenant: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<AppliedChange>, LogError> {
    use prost::Message as _;
    let registry = SchemaRegistry::standard();
    let mut changes = Vec::new();
    // The whole log, not a prefix: commands from several API nodes can be logged slightly out
    // of their issue order, and every one issued in the range counts.
    fold_log(log, &registry, Some(tenant), &Until::End, |position, command, decision, _| {
        let Ok(accepted) = decision else { return };
        if command.issued_at_ms < from_ms || command.issued_at_ms >= to_ms {
            return;
        }
        for (index, change) in accepted.changes.iter().enumerate() {
            let envelope = change.to_proto(
                &command.tenant_id,
                &command.event_id,
                index,
                &command.metadata.correlation_id,
            );
            changes.push(AppliedChange {
                position,
                index: index as u32,
                issued_at_ms: command.issued_at_ms,
                envelope: envelope.encode_to_vec(),
            });
        }
    })?;
    Ok(changes)
}
