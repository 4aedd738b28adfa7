//! The projector loop over the embedded log: fold whatever is new, in batches, as soon as it
//! arrives; report outcomes to the in-process hub after each commit.

use crate::batch::fold_records;
use crate::metrics::ProjectorMetrics;
use scimflow_core::SchemaRegistry;
use scimflow_log::OutcomeHub;
use scimflow_log::embedded::{EMBEDDED_PARTITION, EmbeddedLog};
use scimflow_store::StoreWriter;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most commands folded into one store commit.
pub const MAX_BATCH: usize = 2048;

/// Runs until `shutdown` turns true, after folding everything appended before that. Reports
/// folds and its lag behind the log into `metrics` (partition 0).
pub async fn run<S: StoreWriter + 'static>(
    registry: Arc<SchemaRegistry>,
    store: Arc<S>,
    log: EmbeddedLog,
    hub: Arc<OutcomeHub>,
    metrics: ProjectorMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut end = log.watch_end();
    let mut retry_delay = Duration::from_millis(50);
    loop {
        // Stores may block on I/O here (the CQL store does): keep it off the async workers.
        let position_store = store.clone();
        let position =
            tokio::task::spawn_blocking(move || position_store.next_offset(EMBEDDED_PARTITION)).await;
        let next = match position
            .unwrap_or_else(|join| Err(scimflow_store::StoreError::Unavailable(join.to_string())))
        {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(error = %error, "ProjectorStoreUnavailable");
                tokio::time::sleep(retry_delay).await;
                continue;
            }
        };
        let log_end = *end.borrow_and_update();
        // One partition; the store's position plays the committed offset.
        metrics.partition_position(EMBEDDED_PARTITION, 0, log_end as i64, Some(next as i64));
        if next >= log_end {
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                changed = end.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let records = match log.read(next, MAX_BATCH) {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(error = %error, "ProjectorLogReadFailed");
                tokio::time::sleep(retry_delay).await;
                continue;
            }
        };
        let (registry_ref, store_ref) = (registry.clone(), store.clone());
        let folded = tokio::task::spawn_blocking(move || {
            fold_records(&registry_ref, &*store_ref, EMBEDDED_PARTITION, &records)
        })
        .await;
        match folded {
            Ok(Ok(result)) => {
                retry_delay = Duration::from_millis(50);
                metrics.batch_folded(EMBEDDED_PARTITION, result.outcomes.len(), result.poison);
                tracing::debug!(
                    outcomes = result.outcomes.len(),
                    changes = result.changes.len(),
                    "EventsProjected"
                );
                for outcome in result.outcomes {
                    hub.deliver(outcome);
                }
            }
            Ok(Err(error)) => {
                metrics.fold_failed(EMBEDDED_PARTITION);
                tracing::error!(error = %error, retry_in_ms = retry_delay.as_millis() as u64, "ProjectorBatchFailed");
                tokio::time::sleep(retry_delay).await;
                retry_delay = (retry_delay * 2).min(Duration::from_secs(5));
            }
            Err(join_error) => {
                tracing::error!(error = %join_error, "ProjectorBatchPanicked");
                tokio::time::sleep(retry_delay).await;
            }
        }
    }
}
