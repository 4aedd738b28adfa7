//! `scimflow replay`: rebuild a projection by folding the command log into a store.
//!
//! The fold goes through [`fold_records`], the projector's own batch fold, which commits every
//! batch together with the log position it reaches. So a replay is exactly-once and
//! **resumable**: interrupted (Ctrl-C, crash, `--max-events`), the same command continues from
//! the target store's committed position, and the result equals an uninterrupted replay.
//!
//! Targets:
//! - the live `DATA_DIR/store.redb` (server stopped): catches it up to the end of the log; to
//!   rebuild it from scratch, move it aside first;
//! - a fresh `--into DIR/store.redb`, for side-by-side comparison (`scimflow verify --store-dir`)
//!   or to swap in after checking it.
//!
//! A per-tenant replay (`--tenant`) folds only that tenant's commands but moves the store's one
//! log position over everyone's: in a store holding other tenants that would mark their
//! commands as folded when they were skipped. So it only writes into an `--into` store, which
//! remembers its scope (`DIR/replay-scope`) and refuses a resume with another one.

use super::{READ_BATCH, open_log, open_store, parse_instant};
use anyhow::Context;
use prost::Message as _;
use scimflow_core::SchemaRegistry;
use scimflow_log::embedded::EMBEDDED_PARTITION;
use scimflow_projector::fold_records;
use scimflow_store::StoreWriter;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The data directory whose `log.redb` is replayed (and whose `store.redb` is the default
    /// target).
    #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Replay into `DIR/store.redb` instead of the live store (created if missing; resumed if a
    /// previous replay into it was interrupted).
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    /// Fold only this tenant's commands (needs --into).
    #[arg(long, value_name = "TENANT_ID")]
    pub tenant: Option<String>,
    /// Start at this log offset when the target store is empty (a store restored from a backup
    /// taken at that offset). A store that already holds a position resumes from it.
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub from_offset: Option<u64>,
    /// Like --from-offset, at the first command issued at or after this RFC 3339 instant.
    #[arg(long, value_name = "RFC3339")]
    pub since: Option<String>,
    /// Stop after this many log records (the next run resumes); for staged rebuilds and tests.
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
    /// Records folded per store commit.
    #[arg(long, default_value_t = READ_BATCH)]
    pub batch: usize,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplaySummary {
    pub first_offset: u64,
    pub next_offset: u64,
    pub log_end: u64,
    pub events: u64,
    pub elapsed: Duration,
}

impl ReplaySummary {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn scope_name(tenant: Option<&str>) -> String {
    match tenant {
        Some(tenant) => format!("tenant={tenant}"),
        None => "all".to_owned(),
    }
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ReplaySummary> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    if args.tenant.is_some() && args.into.is_none() {
        anyhow::bail!(
            "a per-tenant replay writes only into a fresh store: add --into DIR (the live store's log position \
             covers every tenant, see docs/operations.md)"
        );
    }
    let log = open_log(&args.data_dir)?;
    let target_dir = args.into.clone().unwrap_or_else(|| args.data_dir.clone());
    if let Some(into) = &args.into {
        anyhow::ensure!(
            into.canonicalize().ok() != args.data_dir.canonicalize().ok(),
            "--into must name another directory than --data-dir (omit it to replay into the live store)"
        );
        std::fs::create_dir_all(into).with_context(|| format!("cannot create {}", into.display()))?;
        let scope_file = into.join("replay-scope");
        let scope = scope_name(args.tenant.as_deref());
        match std::fs::read_to_string(&scope_file) {
            Ok(previous) if previous.trim() != scope => anyhow::bail!(
                "{} was replayed with scope `{}`, not `{scope}`: use another --into directory or the same --tenant",
                into.display(),
                previous.trim()
            ),
            Ok(_) => {}
            Err(_) => std::fs::write(&scope_file, format!("{scope}\n"))
                .with_context(|| format!("cannot write {}", scope_file.display()))?,
        }
    }
    let store = open_store(&target_dir)?;
    let registry = SchemaRegistry::standard();
    let log_end = log.end_offset();
    let stored = store.next_offset(EMBEDDED_PARTITION)?;
    let requested = match (&args.from_offset, &args.since) {
        (Some(offset), _) => Some(*offset),
        (None, Some(since)) => Some(first_offset_since(&log, parse_instant(since)?)?),
        (None, None) => None,
    };
    let start = match requested {
        Some(requested) if stored == 0 => {
            if requested > 0 {
                eprintln!(
                    "replay: starting at offset {requested}: commands before it are NOT folded (the target must \
                     already hold their effect, e.g. a backup taken at that offset)"
                );
            }
            requested
        }
        Some(requested) if requested <= stored => {
            eprintln!(
                "replay: the target store already folded up to offset {stored}; resuming there (exactly-once)"
            );
            stored
        }
        Some(requested) => anyhow::bail!(
            "the target store is at offset {stored}; starting at {requested} would skip commands [{stored}, {requested}). \
             Replay into a fresh --into directory instead"
        ),
        None => stored,
    };
    if start > 0 && requested.is_none() {
        eprintln!("replay: resuming at offset {start} (the target store's committed position)");
    }
    let budget = args.max_events.unwrap_or(u64::MAX);
    let started = Instant::now();
    let mut progress = Progress::new(start, log_end);
    let mut next = start;
    let mut events = 0u64;
    while next < log_end && events < budget {
        let limit = (args.batch as u64).min(budget - events).min(log_end - next) as usize;
        let records = log.read(next, limit)?;
        let Some(last) = records.last() else { break };
        let batch_end = last.offset + 1;
        let count = records.len() as u64;
        let records: Vec<_> = match &args.tenant {
            Some(tenant) => records
                .into_iter()
                .filter(|record| tenant_of(&record.payload).as_deref() == Some(tenant.as_str()))
                .collect(),
            None => records,
        };
        if records.last().map(|record| record.offset + 1) == Some(batch_end) {
            fold_records(&registry, &store, EMBEDDED_PARTITION, &records)?;
        } else {
            // The tail of the batch belongs to other tenants: fold ours, then record that the
            // whole batch is done, so a resume does not scan it again.
            fold_records(&registry, &store, EMBEDDED_PARTITION, &records)?;
            store.commit(EMBEDDED_PARTITION, batch_end, &[], &[])?;
        }
        next = batch_end;
        events += count;
        progress.tick(next, events, started);
    }
    store.checkpoint()?;
    let summary =
        ReplaySummary { first_offset: start, next_offset: next, log_end, events, elapsed: started.elapsed() };
    progress.finish(&summary);
    Ok(summary)
}

/// Prints what `run` did, and how to continue when it stopped early.
pub fn report(args: &ReplayArgs, summary: &ReplaySummary) {
    let target = args.into.as_ref().unwrap_or(&args.data_dir).join("store.redb");
    println!(
        "replayed {} events (offsets {}..{}) into {} in {:.2}s: {:.0} events/s",
        summary.events,
        summary.first_offset,
        summary.next_offset,
        target.display(),
        summary.elapsed.as_secs_f64(),
        summary.events_per_second()
    );
    if summary.next_offset < summary.log_end {
        println!(
            "stopped at offset {} of {}: run the same command again to resume",
            summary.next_offset, summary.log_end
        );
    } else {
        println!("the store is at the end of the log (offset {})", summary.log_end);
    }
}

/// The tenant of an encoded command (`None` for a poison record: a tenant replay drops it, the
/// fold would only skip it).
fn tenant_of(payload: &[u8]) -> Option<String> {
    scimflow_proto::CommandEnvelope::decode(payload).ok().map(|envelope| envelope.tenant_id)
}

/// The offset of the first command issued at or after `since_ms` (the log end if none).
fn first_offset_since(log: &scimflow_log::embedded::EmbeddedLog, since_ms: i64) -> anyhow::Result<u64> {
    let mut next = 0;
    loop {
        let records = log.read(next, READ_BATCH)?;
        let Some(last) = records.last() else { return Ok(log.end_offset()) };
        for record in &records {
            if let Ok(envelope) = scimflow_proto::CommandEnvelope::decode(record.payload.as_slice())
                && envelope.issued_at_unix_ms >= since_ms
            {
                return Ok(record.offset);
            }
        }
        next = last.offset + 1;
    }
}

/// The progress line on stderr, at most once a second: position, rate and ETA.
struct Progress {
    start: u64,
    end: u64,
    last_print: Instant,
}

impl Progress {
    fn new(start: u64, end: u64) -> Self {
        Progress { start, end, last_print: Instant::now() }
    }

    fn tick(&mut self, offset: u64, events: u64, started: Instant) {
        if self.last_print.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_print = Instant::now();
        let rate = events as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let remaining = self.end.saturating_sub(offset);
        let eta = if rate > 0.0 { remaining as f64 / rate } else { f64::INFINITY };
        let done = (offset - self.start) as f64 / (self.end - self.start).max(1) as f64 * 100.0;
        eprintln!("replay: offset {offset}/{} ({done:.1}%), {rate:.0} events/s, ETA {eta:.0}s", self.end);
        let _ = std::io::stderr().flush();
    }

    fn finish(&self, summary: &ReplaySummary) {
        eprintln!(
            "replay: offset {}/{} (done), {:.0} events/s",
            summary.next_offset,
            self.end,
            summary.events_per_second()
        );
    }
}

/// `scimflow replay`.
pub fn command(args: ReplayArgs) -> anyhow::Result<()> {
    let summary = run(args.clone())?;
    report(&args, &summary);
    Ok(())
}
