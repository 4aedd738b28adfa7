//! `scimflow verify`: detect drift between the command log and a store, and repair it.
//!
//! The log is folded again, up to the store's committed position, into an in-memory reference
//! per tenant (the same decide/apply code the projector runs). Then every row of the store is
//! compared with the reference: resources (version and canonical JSON), lookup-index entries,
//! memberships, the reverse membership index and the per-kind resource counts. Each tenant gets a
//! checksum of both sides ([`scimflow_core::checksum`]) and every differing row is named.
//!
//! `--repair` writes the reference rows over the drifted ones without moving the log positions
//! (embedded: one durable transaction; CQL: row writes timestamped above every batch so far),
//! then verifies again.
//!
//! Works on any log and store ([`super::Backends`]). On Kafka + CQL it runs beside the live
//! pipeline: the store's per-partition positions are read first and the log is folded only up to
//! them, so commands folded meanwhile are not mistaken for drift (rows they changed after the
//! positions were read can show up as drift: run it again, or stop the projectors for a repair).
//! The store's rows are read back per tenant in bounded pages ([`scimflow_store::audit`]).

use super::{Backends, OpsStore, Until, fold_log};
use scimflow_core::SchemaRegistry;
use scimflow_core::checksum::{TenantChecksum, resource_digest, state_checksum};
use scimflow_core::memory::MemoryState;
use scimflow_core::schema::ResourceKind;
use scimflow_core::state::Mutation;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub backends: Backends,
    /// Verify another store than the live one (e.g. a `replay --into`): a directory holding
    /// `store.redb`, or a CQL keyspace.
    #[arg(long, value_name = "DIR|KEYSPACE")]
    pub store_dir: Option<PathBuf>,
    /// Only this tenant.
    #[arg(long, value_name = "TENANT_ID")]
    pub tenant: Option<String>,
    /// Overwrite drifted rows with what the log says.
    #[arg(long)]
    pub repair: bool,
}

/// The verdict for one tenant.
#[derive(Debug, Clone)]
pub struct TenantReport {
    pub tenant: String,
    pub log: TenantChecksum,
    pub store: TenantChecksum,
    /// One line per differing row.
    pub drift: Vec<String>,
    pub repaired: bool,
}

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The store's committed position per log partition: the log is compared up to it.
    pub positions: BTreeMap<u32, u64>,
    pub tenants: Vec<TenantReport>,
}

impl VerifyReport {
    pub fn drifted_rows(&self) -> usize {
        self.tenants.iter().filter(|tenant| !tenant.repaired).map(|tenant| tenant.drift.len()).sum()
    }
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<VerifyReport> {
    let log = args.backends.open_log()?;
    let location = match &args.store_dir {
        Some(other) => args.backends.other_store(other)?,
        None => args.backends.live_store()?,
    };
    let store = args.backends.open_store(&location)?;
    let registry = SchemaRegistry::standard();
    // Compare with the log as far as the store says it folded it: a store that lags the log
    // (the projector was stopped mid-way, or is running) is behind, not drifted.
    let mut positions = BTreeMap::new();
    for partition in log.partitions()? {
        let position = store.next_offset(partition)?;
        let end = log.end_offset(partition)?;
        if position > end {
            eprintln!(
                "verify: the store is at offset {position} of partition {partition} but the log ends at {end}: the \
                 log lost records the store folded (restore the log from a backup); comparing with what it still has"
            );
        }
        positions.insert(partition, position);
    }
    let tenant = args.tenant.as_deref();
    let reference =
        fold_log(&*log, &registry, tenant, &Until::Positions(positions.clone()), |_, _, _, _| {})?.states;
    let mut names: BTreeSet<String> = reference.keys().cloned().collect();
    match tenant {
        Some(tenant) => {
            names.insert(tenant.to_owned());
        }
        None => names.extend(store.stored_tenants()?),
    }
    let mut tenants = Vec::new();
    for name in &names {
        let expected = reference.get(name).cloned().unwrap_or_default();
        let (actual, counts) = store.tenant_rows(name, &expected)?;
        let empty = MemoryState::default();
        if expected == empty && actual == empty && counts.is_none_or(|counts| counts == [0, 0]) {
            // Listed by the store (e.g. a count row) but holding nothing, like the log says.
            continue;
        }
        let mut report = compare(name, &expected, &actual, counts);
        if args.repair && !report.drift.is_empty() {
            repair(&*store, name, &expected, &actual)?;
            let (after, after_counts) = store.tenant_rows(name, &expected)?;
            let check = compare(name, &expected, &after, after_counts);
            anyhow::ensure!(
                check.drift.is_empty(),
                "tenant {name}: rows still differ after the repair: {:?}; please report this",
                check.drift
            );
            report.store = check.store;
            report.repaired = true;
        }
        tenants.push(report);
    }
    Ok(VerifyReport { positions, tenants })
}

/// Prints the per-tenant checksums and every differing row.
pub fn print(report: &VerifyReport) {
    if let [(_, position)] = report.positions.iter().collect::<Vec<_>>()[..] {
        println!("verified against the log up to offset {position}");
    } else {
        let positions: Vec<String> =
            report.positions.iter().map(|(partition, offset)| format!("{partition}:{offset}")).collect();
        println!("verified against the log up to partition:offset {}", positions.join(" "));
    }
    for tenant in &report.tenants {
        let verdict = match (tenant.drift.is_empty(), tenant.repaired) {
            (true, _) => "ok".to_owned(),
            (false, true) => format!("REPAIRED {} rows", tenant.drift.len()),
            (false, false) => format!("DRIFT in {} rows", tenant.drift.len()),
        };
        println!(
            "tenant {}: log {} store {} ({} users, {} groups, {} memberships): {verdict}",
            tenant.tenant,
            tenant.log.total.short(),
            tenant.store.total.short(),
            tenant.log.users,
            tenant.log.groups,
            tenant.log.membership_rows,
        );
        for line in &tenant.drift {
            println!("  {line}");
        }
    }
}

fn kind_name(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::User => "User",
        ResourceKind::Group => "Group",
    }
}

fn compare(
    tenant: &str,
    expected: &MemoryState,
    actual: &MemoryState,
    counts: Option<[u64; 2]>,
) -> TenantReport {
    let mut drift = Vec::new();
    let keys: BTreeSet<_> = expected.resources.keys().chain(actual.resources.keys()).collect();
    for key @ (kind, id) in keys {
        let kind_text = kind_name(*kind);
        match (expected.resources.get(key), actual.resources.get(key)) {
            (Some(want), Some(have)) if want.version != have.version => drift.push(format!(
                "{kind_text} {id}: stored version {}, log says {}",
                have.version, want.version
            )),
            (Some(want), Some(have)) => {
                let (want_digest, have_digest) =
                    (resource_digest(*kind, id, want), resource_digest(*kind, id, have));
                if want_digest != have_digest {
                    drift.push(format!(
                        "{kind_text} {id}: stored JSON differs from the log at version {} (digest {} vs {})",
                        want.version,
                        have_digest.short(),
                        want_digest.short()
                    ));
                }
            }
            (Some(want), None) => drift.push(format!(
                "{kind_text} {id}: missing from the store (log says version {})",
                want.version
            )),
            (None, Some(have)) => drift.push(format!(
                "{kind_text} {id}: stored (version {}) but the log deleted or never created it",
                have.version
            )),
            (None, None) => {}
        }
    }
    let index = |state: &MemoryState| -> BTreeSet<(ResourceKind, &'static str, String, String)> {
        let mut rows = BTreeSet::new();
        for ((kind, index, key), ids) in &state.index {
            for id in ids {
                rows.insert((*kind, index.as_str(), key.clone(), id.clone()));
            }
        }
        rows
    };
    let (want_index, have_index) = (index(expected), index(actual));
    for (kind, name, key, id) in want_index.difference(&have_index) {
        drift.push(format!("index {} {name} {key:?} -> {id} missing", kind_name(*kind)));
    }
    for (kind, name, key, id) in have_index.difference(&want_index) {
        drift.push(format!("index {} {name} {key:?} -> {id} unexpected", kind_name(*kind)));
    }
    let pairs = |state: &MemoryState| -> BTreeMap<(String, String), scimflow_core::state::Member> {
        let mut rows = BTreeMap::new();
        for (group, members) in &state.members {
            for (id, member) in members {
                rows.insert((group.clone(), id.clone()), member.clone());
            }
        }
        rows
    };
    let (want_members, have_members) = (pairs(expected), pairs(actual));
    let keys: BTreeSet<_> = want_members.keys().chain(have_members.keys()).collect();
    for key @ (group, member) in keys {
        match (want_members.get(key), have_members.get(key)) {
            (Some(_), None) => drift.push(format!("membership {group} ∋ {member} missing")),
            (None, Some(_)) => drift.push(format!("membership {group} ∋ {member} unexpected")),
            (Some(want), Some(have)) if want != have => drift.push(format!(
                "membership {group} ∋ {member} differs: stored {:?}/{:?}, log says {:?}/{:?}",
                have.kind, have.display, want.kind, want.display
            )),
            _ => {}
        }
    }
    let reverse = |state: &MemoryState| -> BTreeSet<(String, String)> {
        state
            .member_of
            .iter()
            .flat_map(|(member, groups)| groups.iter().map(move |group| (member.clone(), group.clone())))
            .collect()
    };
    let (want_reverse, have_reverse) = (reverse(expected), reverse(actual));
    for (member, group) in want_reverse.difference(&have_reverse) {
        drift.push(format!("reverse index {member} ∈ {group} missing"));
    }
    for (member, group) in have_reverse.difference(&want_reverse) {
        drift.push(format!("reverse index {member} ∈ {group} unexpected"));
    }
    let want_counts = reference_counts(expected);
    // A store that keeps no counts (CQL) has none to drift.
    let counts = counts.unwrap_or(want_counts);
    for (slot, kind) in [ResourceKind::User, ResourceKind::Group].into_iter().enumerate() {
        if counts[slot] != want_counts[slot] {
            drift.push(format!(
                "resource count {}: stored {}, log says {}",
                kind_name(kind),
                counts[slot],
                want_counts[slot]
            ));
        }
    }
    TenantReport {
        tenant: tenant.to_owned(),
        log: state_checksum(expected),
        store: state_checksum(actual),
        drift,
        repaired: false,
    }
}

fn reference_counts(state: &MemoryState) -> [u64; 2] {
    let users = state.resources.keys().filter(|(kind, _)| *kind == ResourceKind::User).count() as u64;
    [users, state.resources.len() as u64 - users]
}

/// The row writes that turn `actual` into `expected`. Removals come first so a pair that is
/// rewritten ends up in its expected form.
fn repair(
    store: &dyn OpsStore,
    tenant: &str,
    expected: &MemoryState,
    actual: &MemoryState,
) -> anyhow::Result<()> {
    let mut removals = Vec::new();
    let mut writes = Vec::new();
    for (kind, id) in actual.resources.keys() {
        if !expected.resources.contains_key(&(*kind, id.clone())) {
            removals.push(Mutation::DeleteResource { kind: *kind, id: id.clone() });
        }
    }
    for ((kind, id), want) in &expected.resources {
        if actual.resources.get(&(*kind, id.clone())) != Some(want) {
            writes.push(Mutation::PutResource { kind: *kind, id: id.clone(), stored: want.clone() });
        }
    }
    for ((kind, index, key), ids) in &actual.index {
        for id in ids {
            let wanted =
                expected.index.get(&(*kind, *index, key.clone())).is_some_and(|want| want.contains(id));
            if !wanted {
                removals.push(Mutation::DeleteIndex {
                    kind: *kind,
                    index: *index,
                    key: key.clone(),
                    id: id.clone(),
                });
            }
        }
    }
    for ((kind, index, key), ids) in &expected.index {
        for id in ids {
            let present =
                actual.index.get(&(*kind, *index, key.clone())).is_some_and(|have| have.contains(id));
            if !present {
                writes.push(Mutation::PutIndex {
                    kind: *kind,
                    index: *index,
                    key: key.clone(),
                    id: id.clone(),
                });
            }
        }
    }
    // Membership rows and their reverse rows are written together by the store; any pair whose
    // two rows are not both exactly as expected is removed (if the log does not have it) or
    // rewritten (if it does).
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    for state in [expected, actual] {
        for (group, members) in &state.members {
            pairs.extend(members.keys().map(|member| (group.clone(), member.clone())));
        }
        for (member, groups) in &state.member_of {
            pairs.extend(groups.iter().map(|group| (group.clone(), member.clone())));
        }
    }
    for (group, member) in pairs {
        let row =
            |state: &MemoryState| state.members.get(&group).and_then(|members| members.get(&member)).cloned();
        let reverse =
            |state: &MemoryState| state.member_of.get(&member).is_some_and(|groups| groups.contains(&group));
        let (want, have) = (row(expected), row(actual));
        if want == have && reverse(expected) == reverse(actual) {
            continue;
        }
        match want {
            Some(member_row) => writes.push(Mutation::AddMember { group_id: group, member: member_row }),
            None => removals.push(Mutation::RemoveMember { group_id: group, member_id: member }),
        }
    }
    removals.extend(writes);
    store.repair(tenant, &removals, reference_counts(expected))?;
    Ok(())
}

/// `scimflow verify`: fails (exit status 1) while drift remains, so scripts and probes notice.
pub fn command(args: VerifyArgs) -> anyhow::Result<()> {
    let report = run(&args)?;
    print(&report);
    let drifted = report.drifted_rows();
    anyhow::ensure!(
        drifted == 0,
        "{drifted} rows differ from the log; `scimflow verify --repair` rewrites them from the log"
    );
    Ok(())
}
