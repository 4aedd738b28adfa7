//! Folding one round: group the round's commands by tenant (order within a tenant is the log
//! order), fold each tenant's commands on an overlay of its rows, commit all mutations and
//! change events with the partition's new position in one store transaction, and return the
//! outcomes to report.

use crate::window::{Round, RoundLimits, Window};
use scimflow_core::SchemaRegistry;
use scimflow_core::command::Command;
use scimflow_core::fold::BatchFold;
use scimflow_log::LogRecord;
use scimflow_log::outcome::{Accepted, Outcome};
use scimflow_log::trace_context;
use scimflow_store::{ChangeRecord, PartitionPosition, StoreError, StoreWriter, TenantCommit};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct BatchResult {
    pub outcomes: Vec<Outcome>,
    /// Encoded `ChangeEnvelope`s committed to the change feed, in order.
    pub changes: Vec<ChangeRecord>,
    /// Records that could not be decoded (poison): skipped, never blocking the partition.
    pub poison: usize,
    /// Commands of the round the position already counted as folded (a redelivery): skipped.
    pub already_folded: usize,
}

/// Folds `records` (consecutive, from one partition) in log order, except what the store's
/// position says is folded already, and commits the result. On error nothing was committed
/// and the caller retries the same records.
pub fn fold_records<S: StoreWriter + ?Sized>(
    registry: &SchemaRegistry,
    store: &S,
    partition: u32,
    records: &[LogRecord],
) -> Result<BatchResult, StoreError> {
    let position = store.position(partition)?;
    let mut window = Window::starting_at(position.next_offset);
    for record in records {
        window.push(record.clone());
    }
    let round = window.next_round(&RoundLimits::unbounded());
    fold_round(registry, store, partition, &window, &round, &position).map(|(result, _)| result)
}

/// Folds the commands `round` takes from `window`, skipping what `position` (the store's
/// current position of the partition) counts as folded, and commits them with the position
/// they lead to, which is returned. On error nothing was committed.
pub fn fold_round<S: StoreWriter + ?Sized>(
    registry: &SchemaRegistry,
    store: &S,
    partition: u32,
    window: &Window,
    round: &Round,
    position: &PartitionPosition,
) -> Result<(BatchResult, PartitionPosition), StoreError> {
    let offsets = round.taken.iter().map(|index| window.get(*index).offset);
    let (first_offset, last_offset) = (offsets.clone().min().unwrap_or(0), offsets.max().unwrap_or(0));
    // The round belongs to no single trace: its span links the trace of every command in it.
    let batch_span = tracing::info_span!(
        "projector_batch",
        partition,
        first_offset,
        last_offset,
        commands = round.taken.len(),
    );
    let _in_batch = batch_span.enter();
    let mut result = BatchResult::default();
    let mut by_tenant: BTreeMap<String, Vec<(u64, Command)>> = BTreeMap::new();
    for index in &round.taken {
        let pending = window.get(*index);
        if pending.offset < position.next_offset {
            result.already_folded += 1;
            continue;
        }
        match pending.decode() {
            Ok(command) if position.is_folded(&command.tenant_id, pending.offset) => {
                result.already_folded += 1;
            }
            Ok(command) => {
                trace_context::link_to(&batch_span, &command.metadata.traceparent);
                by_tenant.entry(command.tenant_id.clone()).or_default().push((pending.offset, command))
            }
            Err(error) => {
                tracing::error!(partition, offset = pending.offset, error = %error, "PoisonCommandSkipped");
                result.poison += 1;
            }
        }
    }
    let mut commits = Vec::with_capacity(by_tenant.len());
    let mut folded_until = Vec::with_capacity(by_tenant.len());
    for (tenant_id, commands) in &by_tenant {
        let tenant_id = tenant_id.as_str();
        let view = store.tenant_view(tenant_id)?;
        view.warm(&mut |probe| {
            let mut fold = BatchFold::new(registry, probe);
            for (_, command) in commands {
                let _ = fold.fold(command);
            }
        });
        let mut fold = BatchFold::new(registry, &*view);
        let mut outcomes = Vec::with_capacity(commands.len());
        let mut changes = Vec::new();
        for (offset, command) in commands {
            let apply_span = command_span(partition, *offset, command);
            let _applying = apply_span.enter();
            let decision = fold.fold(command);
            let status = match &decision {
                Ok(accepted) => accepted.status,
                Err(error) => error.status,
            };
            apply_span.record("status", status);
            // Fanout's delivery spans continue from here; without this span (export off here, or
            // filtered out) the trace goes on from the command's own context.
            let traceparent = trace_context::traceparent_of(&apply_span)
                .unwrap_or_else(|| command.metadata.traceparent.clone());
            let result = decision.map(|accepted| {
                for (index, change) in accepted.changes.iter().enumerate() {
                    let mut envelope = change.to_proto(
                        tenant_id,
                        &command.event_id,
                        index,
                        &command.metadata.correlation_id,
                    );
                    envelope.traceparent = traceparent.clone();
                    changes.push(ChangeRecord {
                        offset: *offset,
                        index: index as u32,
                        envelope: prost::Message::encode_to_vec(&envelope),
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
        // Decisions made after a failed read may be wrong: drop the whole round and retry.
        if let Some(failure) = view.failure() {
            return Err(failure);
        }
        if let Some((last, _)) = commands.last() {
            folded_until.push((tenant_id, last + 1));
        }
        commits.push(TenantCommit { tenant_id: tenant_id.to_owned(), mutations });
        result.outcomes.extend(outcomes);
        result.changes.extend(changes);
    }
    // Tenants were folded one after another; the feed is in log order.
    result.changes.sort_by_key(|change| (change.offset, change.index));
    let next = position.advanced(window.watermark_after(round), folded_until);
    store.commit(partition, &next, &commits, &result.changes)?;
    Ok((result, next))
}

/// The span of one command's fold: a child of the span that appended it (the API's), so the
/// write's trace runs through the projector; its fields are what a log line of the fold needs.
fn command_span(partition: u32, offset: u64, command: &Command) -> tracing::Span {
    let span = tracing::info_span!(
        "command_apply",
        tenant_id = %command.tenant_id,
        event_id = %command.event_id,
        request_id = %command.metadata.causation_id,
        trace_id = %command.metadata.correlation_id,
        kind = command.kind.name(),
        action = command.action.name(),
        partition,
        offset,
        status = tracing::field::Empty,
    );
    trace_context::continue_trace(&span, &command.metadata.traceparent, None);
    span
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use prost::Message as _;
    use scimflow_core::ResourceKind;
    use scimflow_core::command::{Action, CommandMetadata};
    use scimflow_core::resource::normalize_resource;
    use scimflow_store::embedded::EmbeddedStore;
    use scimflow_store::{PartitionPosition, StoreWriter};

    const API_CONTEXT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn traced_create(registry: &SchemaRegistry) -> LogRecord {
        let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen"});
        let command = Command {
            event_id: "e-1".into(),
            tenant_id: "acme".into(),
            kind: ResourceKind::User,
            resource_id: "u-1".into(),
            issued_at_ms: 1_700_000_000_000,
            if_match: None,
            action: Action::Create(normalize_resource(registry, ResourceKind::User, &body).unwrap()),
            metadata: CommandMetadata { traceparent: API_CONTEXT.into(), ..CommandMetadata::default() },
        };
        LogRecord { partition: 0, offset: 0, payload: command.encode() }
    }

    /// Every test that folds hits the same span callsites; tracing caches a callsite's interest from the
    /// dispatchers alive when it is first hit, so a test without a subscriber running at the same
    /// moment can leave the spans disabled for the other. They take turns (`kafka::worker`'s too).
    pub(crate) static SPAN_CALLSITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn change_traceparents(result: &BatchResult) -> Vec<String> {
        let decode =
            |change: &ChangeRecord| scimflow_proto::ChangeEnvelope::decode(change.envelope.as_slice());
        result.changes.iter().map(|change| decode(change).unwrap().traceparent).collect()
    }

    fn create_user(registry: &SchemaRegistry, offset: u64, tenant: &str) -> LogRecord {
        let body = serde_json::json!({"userName": format!("user-{offset}")});
        let command = Command {
            event_id: format!("e-{offset}"),
            tenant_id: tenant.into(),
            kind: ResourceKind::User,
            resource_id: format!("u-{offset}"),
            issued_at_ms: 1_700_000_000_000,
            if_match: None,
            action: Action::Create(normalize_resource(registry, ResourceKind::User, &body).unwrap()),
            metadata: CommandMetadata::default(),
        };
        LogRecord { partition: 0, offset, payload: command.encode() }
    }

    #[test]
    fn a_round_folded_ahead_of_a_backlog_is_not_folded_again_after_a_restart() {
        let _turn = SPAN_CALLSITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let registry = SchemaRegistry::standard();
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        // Tenant a has 8 commands waiting before b's one.
        let records: Vec<LogRecord> = (0..9)
            .map(|offset| create_user(&registry, offset, if offset == 8 { "b" } else { "a" }))
            .collect();
        let mut window = Window::starting_at(0);
        for record in &records {
            window.push(record.clone());
        }
        let limits =
            RoundLimits { max_round: 4, tenant_share: 2, window_commands: 100, window_bytes: usize::MAX };
        let round = window.next_round(&limits);
        let (result, position) =
            fold_round(&registry, &store, 0, &window, &round, &PartitionPosition::default()).unwrap();
        let folded: Vec<&str> = result.outcomes.iter().map(|outcome| outcome.event_id.as_str()).collect();
        assert_eq!(folded, ["e-0", "e-1", "e-8"], "b's command is folded in the first round");
        assert_eq!(position.next_offset, 2);
        assert_eq!(store.position(0).unwrap(), position, "the position is committed with the round");

        // A restart reads the log again from the watermark: b's command must not be folded
        // twice (it would answer 409 and, for other commands, change the state again).
        let result = fold_records(&registry, &store, 0, &records[2..]).unwrap();
        assert_eq!(result.already_folded, 1);
        assert_eq!(result.outcomes.len(), 6);
        assert!(
            result.outcomes.iter().all(|outcome| outcome.result.as_ref().is_ok_and(|ok| ok.status == 201))
        );
        assert_eq!(store.position(0).unwrap(), PartitionPosition::at(9));
        // The feed holds each change once: three from the first round, six from the second.
        assert_eq!(store.changes_between(0, 0, 9).unwrap().len(), 9);
    }

    #[test]
    fn without_a_span_of_its_own_the_fold_passes_the_commands_context_to_its_changes() {
        let _turn = SPAN_CALLSITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let registry = SchemaRegistry::standard();
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        let result = fold_records(&registry, &store, 0, &[traced_create(&registry)]).unwrap();
        assert_eq!(change_traceparents(&result), vec![API_CONTEXT.to_owned()]);
    }

    #[test]
    fn with_opentelemetry_the_changes_carry_the_context_of_the_fold_span_in_the_commands_trace() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let _turn = SPAN_CALLSITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("batch-test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let registry = SchemaRegistry::standard();
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        let result = tracing::subscriber::with_default(subscriber, || {
            // Interest cached while no subscriber was around would keep the spans disabled.
            tracing::callsite::rebuild_interest_cache();
            fold_records(&registry, &store, 0, &[traced_create(&registry)]).unwrap()
        });
        let traceparents = change_traceparents(&result);
        assert_eq!(traceparents.len(), 1);
        let parts: Vec<&str> = traceparents[0].split('-').collect();
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "the command's trace");
        assert_ne!(parts[2], "00f067aa0ba902b7", "the fold span's own id");
    }
}
