//! `scimflow history`: the change history of one User or Group, and the resource as it was at
//! an instant, both read from the command log (embedded or Kafka) by
//! [`scimflow_log::history`]: who (which IdP) changed what, when, with which outcome, and the raw
//! request kept for audit.
//!
//! `--at T` folds the longest log prefix issued at or before `T` and prints the resource as it
//! was then (for a Group, one page of its members at that time).

use super::{Backends, parse_instant};
use scimflow_core::SchemaRegistry;
use scimflow_core::decide::format_timestamp;
use scimflow_core::schema::ResourceKind;
use scimflow_log::history::{HistoryEntry, resource_json, state_at};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    User,
    Group,
}

impl From<KindArg> for ResourceKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::User => ResourceKind::User,
            KindArg::Group => ResourceKind::Group,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub backends: Backends,
    /// The tenant id (`scimflow tenant list` shows it).
    #[arg(long, value_name = "TENANT_ID")]
    pub tenant: String,
    /// `User` or `Group` (any case).
    #[arg(long = "type", value_enum, ignore_case = true)]
    pub kind: KindArg,
    /// The resource id.
    #[arg(long)]
    pub id: String,
    /// Print the resource as it was at this RFC 3339 instant instead of its history.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// With --at on a Group: members per page.
    #[arg(long, default_value_t = 100)]
    pub members_page: usize,
    /// With --at on a Group: start the page after this member id.
    #[arg(long, value_name = "MEMBER_ID")]
    pub members_after: Option<String>,
}

pub fn history(args: &HistoryArgs) -> anyhow::Result<Vec<HistoryEntry>> {
    let log = args.backends.open_log()?;
    let registry = SchemaRegistry::standard();
    Ok(scimflow_log::history::history(&*log, &registry, &args.tenant, args.kind.into(), &args.id)?)
}

pub fn print_history(args: &HistoryArgs, entries: &[HistoryEntry]) {
    if entries.is_empty() {
        println!(
            "no command in the log touches {:?} {} of tenant {} (`scimflow tenant list` shows tenant ids)",
            args.kind, args.id, args.tenant
        );
    }
    for entry in entries {
        println!(
            "{}  {}  {}  {} {}",
            format_timestamp(entry.issued_at_ms),
            position(entry.partition, entry.offset),
            entry.outcome,
            entry.method,
            entry.path
        );
        println!("  actor: {:?}  request: {}", entry.actor, entry.request_id);
        for effect in &entry.effects {
            println!("  {effect}");
        }
        if !entry.raw_body.is_empty() {
            println!("  body: {}", entry.raw_body);
        }
    }
}

fn position(partition: u32, offset: u64) -> String {
    if partition == 0 { format!("offset {offset}") } else { format!("partition {partition} offset {offset}") }
}

/// The resource as of `--at`, rendered as JSON (groups with one page of `members`), or `None`
/// when it did not exist then. Also returns the log offsets the state covers, per partition.
pub fn at(args: &HistoryArgs, at: &str) -> anyhow::Result<(Option<Value>, BTreeMap<u32, u64>)> {
    let instant = parse_instant(at)?;
    let log = args.backends.open_log()?;
    let registry = SchemaRegistry::standard();
    let (state, offsets) = state_at(&*log, &registry, &args.tenant, instant)?;
    let resource =
        resource_json(&state, args.kind.into(), &args.id, args.members_after.as_deref(), args.members_page);
    Ok((resource, offsets))
}

fn describe(offsets: &BTreeMap<u32, u64>) -> String {
    match offsets.iter().collect::<Vec<_>>()[..] {
        [(_, offset)] => format!("log offsets before {offset}"),
        _ => format!(
            "log offsets before {}",
            offsets
                .iter()
                .map(|(partition, offset)| format!("{partition}:{offset}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// `scimflow history`.
pub fn command(args: HistoryArgs) -> anyhow::Result<()> {
    match &args.at {
        Some(instant) => {
            let (resource, offsets) = at(&args, instant)?;
            match resource {
                Some(resource) => {
                    eprintln!("as of {instant} ({})", describe(&offsets));
                    println!("{}", serde_json::to_string_pretty(&resource)?);
                }
                None => anyhow::bail!(
                    "{:?} {} did not exist in tenant {} at {instant} ({}); run without --at to see its history",
                    args.kind,
                    args.id,
                    args.tenant,
                    describe(&offsets)
                ),
            }
        }
        None => print_history(&args, &history(&args)?),
    }
    Ok(())
}
