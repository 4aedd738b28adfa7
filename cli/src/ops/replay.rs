//! `scimflow replay`: rebuild a projection by folding the command log into a store.
//!
//! The fold goes through [`fold_records`], the projector's own batch fold, which commits every
//! batch together with the log position it reaches (per partition). So a replay is exactly-once
//! and **resumable**: interrupted (Ctrl-C, crash, `--max-events`), the same command continues
//! from the target store's committed positions, and the result equals an uninterrupted replay.
//! The store's positions are the checkpoint; nothing else is kept.
//!
//! Sources: the embedded log (`--log embedded`, one partition) or the Kafka commands topic
//! (`--log kafka`, every partition, or one with `--partition`). Targets:
//! - the live store (`DATA_DIR/store.redb` with the server stopped, or the configured CQL
//!   keyspace): catches it up to the end of the log; to rebuild it from scratch, move it aside
//!   (or drop the keyspace) first;
//! - a fresh `--into DIR` (embedded) or `--into KEYSPACE` (CQL), for side-by-side comparison
//!   (`scimflow verify --store-dir`) or to swap in after checking it.
//!
//! A per-tenant replay (`--tenant`) folds only that tenant's commands but moves the store's log
//! positions over everyone's: in a store holding other tenants that would mark their commands as
//! folded when they were skipped. So it only writes into an `--into` store. An embedded `--into`
//! directory remembers its scope (`DIR/replay-scope`) and refuses a resume with another one.

use super::{Backends, OpsStore, READ_BATCH, StoreLocation, parse_instant};
use anyhow::Context;
use prost::Message as _;
use scimflow_core::SchemaRegistry;
use scimflow_log::LogReader;
use scimflow_projector::fold_records;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub backends: Backends,
    /// Replay into another store instead of the live one: a directory (`DIR/store.redb`) for the
    /// embedded store, a keyspace name for CQL. Created if missing; resumed if a previous replay
    /// into it was interrupted.
    #[arg(long, value_name = "DIR|KEYSPACE")]
    pub into: Option<PathBuf>,
    /// Fold only this tenant's commands (needs --into).
    #[arg(long, value_name = "TENANT_ID")]
    pub tenant: Option<String>,
    /// Only this partition of the log (Kafka).
    #[arg(long, value_name = "P")]
    pub partition: Option<u32>,
    /// Start at this log offset when the target store is empty (a store restored from a backup
    /// taken at that offset). A store that already holds a position resumes from it. Offsets
    /// are per partition: with Kafka, name one with --partition.
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub from_offset: Option<u64>,
    /// Like --from-offset, at the first command issued at or after this RFC 3339 instant, in
    /// every partition (Kafka finds it with its time index, offsetsForTimes).
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
    pub target: StoreLocation,
    /// Per partition: where the replay started, where it stopped, and the log's end.
    pub partitions: BTreeMap<u32, PartitionSummary>,
    pub events: u64,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct PartitionSummary {
    pub first_offset: u64,
    pub next_offset: u64,
    pub log_end: u64,
}

impl ReplaySummary {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn complete(&self) -> bool {
        self.partitions.values().all(|partition| partition.next_offset >= partition.log_end)
    }
}

fn scope_name(tenant: Option<&str>) -> String {
    match tenant {
        Some(tenant) => format!("tenant={tenant}"),
        None => "all".to_owned(),
    }
}

/// The target store, checked against the arguments.
fn target(args: &ReplayArgs) -> anyhow::Result<StoreLocation> {
    let live = args.backends.live_store()?;
    let Some(into) = &args.into else {
        anyhow::ensure!(
            args.tenant.is_none(),
            "a per-tenant replay writes only into a fresh store: add --into DIR|KEYSPACE (the live store's log \
             positions cover every tenant, see docs/operations.md)"
        );
        return Ok(live);
    };
    let location = args.backends.other_store(into)?;
    match &location {
        StoreLocation::Directory(dir) => {
            anyhow::ensure!(
                dir.canonicalize().ok() != args.backends.data_dir.canonicalize().ok(),
                "--into must name another directory than --data-dir (omit it to replay into the live store)"
            );
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let scope_file = dir.join("replay-scope");
            let scope = scope_name(args.tenant.as_deref());
            match std::fs::read_to_string(&scope_file) {
                Ok(previous) if previous.trim() != scope => anyhow::bail!(
                    "{} was replayed with scope `{}`, not `{scope}`: use another --into directory or the same \
                     --tenant",
                    dir.display(),
                    previous.trim()
                ),
                Ok(_) => {}
                Err(_) => std::fs::write(&scope_file, format!("{scope}\n"))
                    .with_context(|| format!("cannot write {}", scope_file.display()))?,
            }
        }
        StoreLocation::Keyspace(_) => anyhow::ensure!(
            location != live,
            "--into names the live keyspace (SCIMFLOW_CQL_KEYSPACE): omit it to replay into the live store"
        ),
    }
    Ok(location)
}

/// Where each partition's replay starts: the store's committed position, unless an empty store
/// is told to start later.
fn start_offset(log: &dyn LogReader, args: &ReplayArgs, partition: u32, stored: u64) -> anyhow::Result<u64> {
    let requested = match (&args.from_offset, &args.since) {
        (Some(offset), _) => Some(*offset),
        (None, Some(since)) => Some(log.offset_for_time(partition, parse_instant(since)?)?),
        (None, None) => None,
    };
    Ok(match requested {
        Some(requested) if stored == 0 => {
            if requested > 0 {
                eprintln!(
                    "replay: partition {partition} starts at offset {requested}: commands before it are NOT folded \
                     (the target must already hold their effect, e.g. a backup taken at that offset)"
                );
            }
            requested
        }
        Some(requested) if requested <= stored => {
            eprintln!(
                "replay: the target store already folded partition {partition} up to offset {stored}; resuming \
                 there (exactly-once)"
            );
            stored
        }
        Some(requested) => anyhow::bail!(
            "the target store is at offset {stored} of partition {partition}; starting at {requested} would skip \
             commands [{stored}, {requested}). Replay into a fresh --into store instead"
        ),
        None => {
            if stored > 0 {
                eprintln!(
                    "replay: partition {partition} resumes at offset {stored} (the target store's committed position)"
                );
            }
            stored
        }
    })
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ReplaySummary> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let log = args.backends.open_log()?;
    let location = target(&args)?;
    let store = args.backends.open_store(&location)?;
    let partitions = match args.partition {
        Some(partition) => {
            anyhow::ensure!(
                log.partitions()?.contains(&partition),
                "the log has no partition {partition} (it has {:?})",
                log.partitions()?
            );
            vec![partition]
        }
        None => {
            match args.tenant.as_deref().map(|tenant| log.tenant_partition(tenant)).transpose()?.flatten() {
                // A tenant's commands all live in one partition: the others have nothing to fold.
                Some(partition) => vec![partition],
                None => log.partitions()?,
            }
        }
    };
    anyhow::ensure!(
        args.from_offset.is_none() || partitions.len() == 1,
        "--from-offset is an offset of one partition: name it with --partition (or use --since)"
    );
    let mut plan = BTreeMap::new();
    for &partition in &partitions {
        let stored = store.next_offset(partition)?;
        let first_offset = start_offset(&*log, &args, partition, stored)?;
        let log_end = log.end_offset(partition)?;
        plan.insert(partition, PartitionSummary { first_offset, next_offset: first_offset, log_end });
    }
    let registry = SchemaRegistry::standard();
    let budget = args.max_events.unwrap_or(u64::MAX);
    let started = Instant::now();
    let total: u64 = plan.values().map(|p| p.log_end.saturating_sub(p.first_offset)).sum();
    let mut progress = Progress::new(total);
    let mut events = 0u64;
    for (&partition, summary) in plan.iter_mut() {
        while summary.next_offset < summary.log_end && events < budget {
            let limit = (args.batch as u64).min(budget - events).min(summary.log_end - summary.next_offset);
            let records = log.read(partition, summary.next_offset, limit as usize)?;
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
            fold_into(&registry, &*store, partition, &records, batch_end)?;
            summary.next_offset = batch_end;
            events += count;
            progress.tick(events, started);
        }
    }
    store.flush()?;
    let summary = ReplaySummary { target: location, partitions: plan, events, elapsed: started.elapsed() };
    progress.finish(&summary);
    Ok(summary)
}

/// Folds one batch and records that the log is folded up to `batch_end` even when its tail
/// belonged to other tenants (filtered out), so a resume does not scan it again.
fn fold_into(
    registry: &SchemaRegistry,
    store: &dyn OpsStore,
    partition: u32,
    records: &[scimflow_log::LogRecord],
    batch_end: u64,
) -> anyhow::Result<()> {
    fold_records(registry, store, partition, records)?;
    if records.last().map(|record| record.offset + 1) != Some(batch_end) {
        let position = store.position(partition)?;
        store.commit(partition, &position.advanced(batch_end, []), &[], &[])?;
    }
    Ok(())
}

/// Prints what `run` did, and how to continue when it stopped early.
pub fn report(summary: &ReplaySummary) {
    let ranges: Vec<String> = summary
        .partitions
        .iter()
        .filter(|(_, p)| p.next_offset > p.first_offset)
        .map(|(partition, p)| format!("{partition}:{}..{}", p.first_offset, p.next_offset))
        .collect();
    let ranges = match summary.partitions.values().collect::<Vec<_>>()[..] {
        [only] => format!("offsets {}..{}", only.first_offset, only.next_offset),
        _ if ranges.is_empty() => "partition:offsets none".to_owned(),
        _ => format!("partition:offsets {}", ranges.join(" ")),
    };
    println!(
        "replayed {} events ({ranges}) into {} in {:.2}s: {:.0} events/s",
        summary.events,
        summary.target,
        summary.elapsed.as_secs_f64(),
        summary.events_per_second()
    );
    if summary.complete() {
        println!("the store is at the end of the log");
    } else {
        for (partition, p) in summary.partitions.iter().filter(|(_, p)| p.next_offset < p.log_end) {
            if summary.partitions.len() == 1 {
                println!(
                    "stopped at offset {} of {}: run the same command again to resume",
                    p.next_offset, p.log_end
                );
            } else {
                println!(
                    "partition {partition} stopped at offset {} of {}: run the same command again to resume",
                    p.next_offset, p.log_end
                );
            }
        }
    }
}

/// The tenant of an encoded command (`None` for a poison record: a tenant replay drops it, the
/// fold would only skip it).
fn tenant_of(payload: &[u8]) -> Option<String> {
    scimflow_proto::CommandEnvelope::decode(payload).ok().map(|envelope| envelope.tenant_id)
}

/// The progress line on stderr, at most once a second: records done, rate and ETA.
struct Progress {
    total: u64,
    last_print: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress { total, last_print: Instant::now() }
    }

    fn tick(&mut self, events: u64, started: Instant) {
        if self.last_print.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_print = Instant::now();
        let rate = events as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let remaining = self.total.saturating_sub(events);
        let eta = if rate > 0.0 { remaining as f64 / rate } else { f64::INFINITY };
        let done = events as f64 / self.total.max(1) as f64 * 100.0;
        eprintln!("replay: {events}/{} records ({done:.1}%), {rate:.0} events/s, ETA {eta:.0}s", self.total);
        let _ = std::io::stderr().flush();
    }

    fn finish(&self, summary: &ReplaySummary) {
        eprintln!(
            "replay: {}/{} records (done), {:.0} events/s",
            summary.events,
            self.total,
            summary.events_per_second()
        );
    }
}

/// `scimflow replay`.
pub fn command(args: ReplayArgs) -> anyhow::Result<()> {
    let summary = run(args)?;
    report(&summary);
    Ok(())
}
