//! Operating a pipeline from its command log: `scimflow replay`, `scimflow verify` and
//! `scimflow history`. The log is the source of truth and the fold is deterministic, so every
//! projection can be rebuilt ([`replay`]), checked ([`verify`]) and explained ([`history`]) by
//! folding the log again. These tools work on the embedded log and store of a data directory,
//! which are single-process redb files: stop `scimflow serve` first (see docs/operations.md).
//!
//! ## Layout
//! - [`replay`]: fold the log into the live store or a fresh one, resumable, with progress.
//! - [`verify`]: compare the store with a re-fold of the log, name drifted rows, `--repair` them.
//! - [`history`]: the change history of one resource, and the resource as of an instant.

pub mod history;
pub mod replay;
pub mod verify;

use anyhow::Context;
use scimflow_core::SchemaRegistry;
use scimflow_core::command::Command;
use scimflow_core::decide::Decision;
use scimflow_core::fold::BatchFold;
use scimflow_core::memory::MemoryState;
use scimflow_log::embedded::EmbeddedLog;
use scimflow_store::embedded::EmbeddedStore;
use std::collections::BTreeMap;
use std::path::Path;

/// Records read from the log per round trip.
pub const READ_BATCH: usize = 2048;

fn lock_hint(path: &Path, error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot open {}: {error}\nredb files belong to one process at a time: if `scimflow serve` is running on \
         this data directory, stop it (Ctrl-C / SIGTERM) and run this command again",
        path.display()
    )
}

/// Opens `DATA_DIR/log.redb`, which must exist (replaying a log that is not there would only
/// create an empty one).
pub fn open_log(data_dir: &Path) -> anyhow::Result<EmbeddedLog> {
    let path = data_dir.join("log.redb");
    anyhow::ensure!(
        path.exists(),
        "no command log at {}: pass the --data-dir that `scimflow serve` uses",
        path.display()
    );
    EmbeddedLog::open(&path).map_err(|error| lock_hint(&path, error))
}

/// Opens (or creates) the store file `DIR/store.redb`.
pub fn open_store(dir: &Path) -> anyhow::Result<EmbeddedStore> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let path = dir.join("store.redb");
    EmbeddedStore::open(&path).map_err(|error| lock_hint(&path, error))
}

/// Parses an RFC 3339 instant into Unix milliseconds.
pub fn parse_instant(text: &str) -> anyhow::Result<i64> {
    let instant = chrono::DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("{text:?} is not an RFC 3339 instant; write e.g. 2026-11-29T23:15:00Z or 2026-11-29T23:15:00.250+01:00")
    })?;
    Ok(instant.timestamp_millis())
}

/// Where a scan of the log stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// Before this offset.
    Offset(u64),
    /// Before the first (scanned tenant's) command issued after this instant (Unix ms): the
    /// longest log prefix issued at or before it, so the state is one the pipeline really went
    /// through.
    Instant(i64),
}

/// Folds the log in order into one [`MemoryState`] per tenant (only `tenant`, if given), the way
/// the projector folds it, calling `each` with every command's decision and the tenant's state
/// just before it. Returns the states and the offset the scan stopped at.
pub fn fold_log(
    log: &EmbeddedLog,
    registry: &SchemaRegistry,
    tenant: Option<&str>,
    until: Until,
    mut each: impl FnMut(u64, &Command, &Decision, &MemoryState),
) -> anyhow::Result<(BTreeMap<String, MemoryState>, u64)> {
    let mut states: BTreeMap<String, MemoryState> = BTreeMap::new();
    let mut next = 0;
    let end = match until {
        Until::Offset(offset) => offset.min(log.end_offset()),
        Until::Instant(_) => log.end_offset(),
    };
    while next < end {
        let limit = READ_BATCH.min((end - next) as usize);
        let records = log.read(next, limit)?;
        let Some(last) = records.last() else { break };
        let last_offset = last.offset;
        for record in &records {
            // Poison records are skipped by the projector too (it logs them); so here.
            let Ok(command) = Command::decode(&record.payload) else { continue };
            if tenant.is_some_and(|tenant| tenant != command.tenant_id) {
                continue;
            }
            // Only the scanned tenant's own timestamps cut the prefix: another tenant's command
            // stamped by a node with a skewed clock must not hide this tenant's later state.
            if let Until::Instant(limit) = until
                && command.issued_at_ms > limit
            {
                return Ok((states, record.offset));
            }
            let state = states.entry(command.tenant_id.clone()).or_default();
            // One fold per command: an overlay over the state folds exactly like the projector's
            // batches (the overlay guarantees batch folding equals one-by-one folding).
            let mut fold = BatchFold::new(registry, &*state);
            let decision = fold.fold(&command);
            let mutations = fold.into_mutations();
            each(record.offset, &command, &decision, state);
            state.apply_all(&mutations);
        }
        next = last_offset + 1;
    }
    Ok((states, next))
}
