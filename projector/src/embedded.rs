//! The projector loop over the embedded log: read ahead into a window, fold a round of it
//! (each tenant's share, see [`crate::window`]) as soon as anything is there; report outcomes to
//! the in-process hub after each commit.

use crate::batch::fold_round;
use crate::metrics::ProjectorMetrics;
use crate::window::{RoundLimits, Window};
use scimflow_core::SchemaRegistry;
use scimflow_log::OutcomeHub;
use scimflow_log::embedded::{EMBEDDED_PARTITION, EmbeddedLog};
use scimflow_store::{PartitionPosition, StoreError, StoreWriter};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Most commands folded into one store commit.
pub const MAX_BATCH: usize = 2048;
/// Most records read from the log at once.
const READ_CHUNK: usize = 4096;

/// Runs until `shutdown` turns true, after folding everything appended before that. Reports
/// folds and its lag behind the log into `metrics` (partition 0).
pub async fn run<S: StoreWriter + 'static>(
    registry: Arc<SchemaRegistry>,
    store: Arc<S>,
    log: EmbeddedLog,
    hub: Arc<OutcomeHub>,
    metrics: ProjectorMetrics,
    limits: RoundLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut end = log.watch_end();
    let mut retry_delay = Duration::from_millis(50);
    // The store's position and the window read ahead of it; both are re-read from the store
    // after a failed round.
    let mut state: Option<(PartitionPosition, Window)> = None;
    loop {
        let (position, window) = match &mut state {
            Some(state) => state,
            None => {
                // Stores may block on I/O here (the CQL store does): keep it off the async workers.
                let position_store = store.clone();
                let position =
                    tokio::task::spawn_blocking(move || position_store.position(EMBEDDED_PARTITION)).await;
                match position.unwrap_or_else(|join| Err(StoreError::Unavailable(join.to_string()))) {
                    Ok(position) => {
                        let window = Window::starting_at(position.next_offset);
                        state.insert((position, window))
                    }
                    Err(error) => {
                        tracing::error!(error = %error, "ProjectorStoreUnavailable");
                        tokio::time::sleep(retry_delay).await;
                        continue;
                    }
                }
            }
        };
        let log_end = *end.borrow_and_update();
        // One partition; the store's watermark plays the committed offset.
        metrics.partition_position(EMBEDDED_PARTITION, 0, log_end as i64, Some(position.next_offset as i64));
        // Nothing to fold in the window: read the next records before anything else.
        if window.is_empty() && window.end() < log_end {
            match log.read(window.end(), READ_CHUNK) {
                Ok(records) => records.into_iter().for_each(|record| window.push(record)),
                Err(error) => {
                    tracing::error!(error = %error, "ProjectorLogReadFailed");
                    tokio::time::sleep(retry_delay).await;
                }
            }
            continue;
        }
        if window.is_empty() {
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                changed = end.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let round = window.next_round(&limits);
        // After the round, the next records are read: the window runs ahead of the fold, a
        // chunk per round (commands of other tenants behind a backlog must reach it to get their
        // share).
        let read_ahead = (window.end() < log_end && !window.is_full(&limits)).then(|| {
            (window.end(), limits.window_commands.saturating_sub(window.len()).clamp(1, READ_CHUNK))
        });
        let (mut owned_window, owned_position) = (std::mem::take(window), position.clone());
        let (registry_ref, store_ref) = (registry.clone(), store.clone());
        let started = Instant::now();
        let folding = tokio::task::spawn_blocking(move || {
            let folded = fold_round(
                &registry_ref,
                &*store_ref,
                EMBEDDED_PARTITION,
                &owned_window,
                &round,
                &owned_position,
            );
            if folded.is_ok() {
                owned_window.remove(&round);
            }
            (owned_window, folded)
        });
        let folded = folding.await;
        match folded {
            Ok((returned_window, Ok((result, next)))) => {
                retry_delay = Duration::from_millis(50);
                *window = returned_window;
                *position = next;
                metrics.batch_folded(EMBEDDED_PARTITION, result.outcomes.len(), result.poison);
                metrics.window(EMBEDDED_PARTITION, window.len(), position.tenants_ahead.len());
                tracing::debug!(
                    elapsed_us = started.elapsed().as_micros() as u64,
                    outcomes = result.outcomes.len(),
                    changes = result.changes.len(),
                    "EventsProjected"
                );
                for outcome in result.outcomes {
                    hub.deliver(outcome);
                }
                // Only after the outcomes: the read must not delay a single answer.
                if let Some((from, wanted)) = read_ahead {
                    match log.read(from, wanted) {
                        Ok(records) => records.into_iter().for_each(|record| window.push(record)),
                        Err(error) => tracing::error!(error = %error, "ProjectorLogReadFailed"),
                    }
                }
            }
            Ok((_, Err(error))) => {
                metrics.fold_failed(EMBEDDED_PARTITION);
                tracing::error!(error = %error, retry_in_ms = retry_delay.as_millis() as u64, "ProjectorBatchFailed");
                state = None;
                tokio::time::sleep(retry_delay).await;
                retry_delay = (retry_delay * 2).min(Duration::from_secs(5));
            }
            Err(join_error) => {
                tracing::error!(error = %join_error, "ProjectorBatchPanicked");
                state = None;
                tokio::time::sleep(retry_delay).await;
            }
        }
    }
}
