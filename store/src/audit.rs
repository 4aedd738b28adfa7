//! Reading one tenant's rows back through the [`StoreReader`] port, in bounded pages, into a
//! [`MemoryState`] that `verify` compares with a re-fold of the log.
//!
//! Resources and memberships are enumerated in id order with `resources_page` / `members_page`
//! (on CQL a bucket merge whose memory is `O(page + buckets × chunk)`, whatever the tenant's
//! size). Index entries and reverse-membership rows are partitioned by key, so they are looked
//! up for every key either side knows of: the keys the log's state has and the keys derived from
//! the stored resources and memberships. A stray index entry under a key that neither names is
//! the one drift this cannot see.
//!
//! The result holds the whole tenant, as the reference it is compared with does.

use crate::port::{StoreReader, StoreResult};
use futures_util::{StreamExt, TryStreamExt, stream};
use scimflow_core::ResourceKind;
use scimflow_core::index::{IndexName, index_entries};
use scimflow_core::memory::MemoryState;
use std::collections::BTreeSet;

/// Rows per page read.
pub const PAGE: usize = 1000;
/// Point lookups (index keys, reverse rows) in flight at once.
const LOOKUP_CONCURRENCY: usize = 64;

/// Every row of `tenant` that `reader` can serve, guided by `expected` (see the module docs).
pub async fn read_tenant_rows(
    reader: &dyn StoreReader,
    tenant: &str,
    expected: &MemoryState,
) -> StoreResult<MemoryState> {
    let mut state = MemoryState::default();
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let mut after: Option<String> = None;
        loop {
            let page = reader.resources_page(tenant, kind, after.as_deref(), PAGE).await?;
            let full = page.len() == PAGE;
            after = page.last().map(|(id, _)| id.clone());
            for (id, stored) in page {
                state.resources.insert((kind, id), stored);
            }
            if !full {
                break;
            }
        }
    }
    let groups: BTreeSet<String> = state
        .resources
        .keys()
        .chain(expected.resources.keys())
        .filter(|(kind, _)| *kind == ResourceKind::Group)
        .map(|(_, id)| id.clone())
        .chain(expected.members.keys().cloned())
        .collect();
    for group in &groups {
        let mut after: Option<String> = None;
        loop {
            let page = reader.members_page(tenant, group, after.as_deref(), PAGE).await?;
            let full = page.len() == PAGE;
            after = page.last().map(|member| member.value.clone());
            for member in page {
                state.members.entry(group.clone()).or_default().insert(member.value.clone(), member);
            }
            if !full {
                break;
            }
        }
    }
    let mut keys: BTreeSet<(ResourceKind, IndexName, String)> = expected.index.keys().cloned().collect();
    for ((kind, _), stored) in &state.resources {
        keys.extend(
            index_entries(*kind, &stored.resource).into_iter().map(|(index, key)| (*kind, index, key)),
        );
    }
    let found: Vec<((ResourceKind, IndexName, String), Vec<String>)> =
        stream::iter(keys.into_iter().map(|slot| async move {
            let ids = reader.index_lookup(tenant, slot.0, slot.1, &slot.2).await?;
            Ok::<_, crate::StoreError>((slot, ids))
        }))
        .buffer_unordered(LOOKUP_CONCURRENCY)
        .try_collect()
        .await?;
    for (slot, ids) in found {
        if !ids.is_empty() {
            state.index.insert(slot, ids.into_iter().collect());
        }
    }
    let mut members: BTreeSet<String> = BTreeSet::new();
    for source in [&state, expected] {
        members.extend(source.resources.keys().map(|(_, id)| id.clone()));
        members.extend(source.members.values().flat_map(|rows| rows.keys().cloned()));
        members.extend(source.member_of.keys().cloned());
    }
    let found: Vec<(String, Vec<String>)> = stream::iter(members.into_iter().map(|member| async move {
        let groups = reader.groups_of(tenant, &member).await?;
        Ok::<_, crate::StoreError>((member, groups))
    }))
    .buffer_unordered(LOOKUP_CONCURRENCY)
    .try_collect()
    .await?;
    for (member, groups) in found {
        if !groups.is_empty() {
            state.member_of.insert(member, groups.into_iter().collect());
        }
    }
    Ok(state)
}
