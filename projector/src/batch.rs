//! Folding one batch: decode, group by tenant (order within a tenant is the log order), fold each
//! tenant's commands on an overlay of its rows, commit all mutations and change events with the
//! batch's end position in one store transaction, and return the outcomes to report.

use prost::Message;
use scimflow_core::SchemaRegistry;
use scimflow_core::command::Command;
use scimflow_core::fold::BatchFold;
use scimflow_log::LogRecord;
use scimflow_log::outcome::{Accepted, Outcome};
use scimflow_store::{ChangeRecord, StoreError, StoreWriter, TenantCommit};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct BatchResult {
    pub outcomes: Vec<Outcome>,
    /// Encoded `ChangeEnvelope`s committed to the change feed, in order.
    pub changes: Vec<ChangeRecord>,
    /// Records that could not be decoded (poison): skipped, never blocking the partition.
    pub poison: usize,
}

/// Folds `records` (consecutive, from one partition) and commits the result. On error nothing
/// was committed and the caller retries the same records.
pub fn fold_records<S: StoreWriter + ?Sized>(
    registry: &SchemaRegistry,
    store: &S,
    partition: u32,
    records: &[LogRecord],
) -> Result<BatchResult, StoreError> {
    let Some(last) = records.last() else { return Ok(BatchResult::default()) };
    let mut result = BatchResult::default();
    let mut by_tenant: BTreeMap<String, Vec<(u64, Command)>> = BTreeMap::new();
    for record in records {
        match Command::decode(&record.payload) {
            Ok(command) => {
                by_tenant.entry(command.tenant_id.clone()).or_default().push((record.offset, command))
            }
            Err(error) => {
                tracing::error!(partition, offset = record.offset, error = %error, "PoisonCommandSkipped");
                result.poison += 1;
            }
        }
    }
    let mut commits = Vec::with_capacity(by_tenant.len());
    for (tenant_id, commands) in by_tenant {
        let view = store.tenant_view(&tenant_id)?;
        view.warm(&mut |probe| {
            let mut fold = BatchFold::new(registry, probe);
            for (_, command) in &commands {
                let _ = fold.fold(command);
            }
        });
        let mut fold = BatchFold::new(registry, &*view);
        let mut outcomes = Vec::with_capacity(commands.len());
        let mut changes = Vec::new();
        for (offset, command) in &commands {
            let decision = fold.fold(command);
            let result = decision.map(|accepted| {
                for (index, change) in accepted.changes.iter().enumerate() {
                    let envelope = change.to_proto(
                        &tenant_id,
                        &command.event_id,
                        index,
                        &command.metadata.correlation_id,
                    );
                    changes.push(ChangeRecord {
                        offset: *offset,
                        index: index as u32,
                        envelope: envelope.encode_to_vec(),
                    });
                }
                Accepted {
                    status: accepted.status,
                    resource: accepted.resource,
                    skipped_members: accepted.skipped_members,
                }
            });
            outcomes.push(Outcome { event_id: command.event_id.clone(), result });
        }
        let mutations = fold.into_mutations();
        // Decisions made after a failed read may be wrong: drop the whole batch and retry.
        if let Some(failure) = view.failure() {
            return Err(failure);
        }
        commits.push(TenantCommit { tenant_id, mutations });
        result.outcomes.extend(outcomes);
        result.changes.extend(changes);
    }
    // Tenants were folded one after another; the feed is in log order.
    result.changes.sort_by_key(|change| (change.offset, change.index));
    store.commit(partition, last.offset + 1, &commits, &result.changes)?;
    Ok(result)
}
