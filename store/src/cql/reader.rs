//! The API side: [`StoreReader`] on CQL, and the reads the fold's view shares.
//!
//! Point reads go to one partition (the bucket of a resource or membership is computed from its
//! id). Pages in id order (`resources_page`, `members_page`) span every bucket of a tenant's kind
//! or of a group, each bucket clustered by id, so they are a k-way merge (`merge_buckets`):
//! every bucket is asked for a few rows after `after` (about twice its fair share of the page),
//! the smallest head is taken until the page is full, and a bucket whose buffered rows run out
//! before it is known to be exhausted is asked for more. Memory and rows read stay
//! `O(limit + buckets × chunk)`, whatever the size of the tenant or the group.

use super::writer::OFFSET_BUCKET;
use super::{CqlStore, bucket_of, unavailable};
use crate::port::{ChangeRecord, StoreError, StoreReader, StoreResult};
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt, stream};
use scimflow_core::ResourceKind;
use scimflow_core::index::IndexName;
use scimflow_core::state::{Member, StoredResource};
use scylla::deserialize::row::DeserializeRow;
use scylla::response::PagingState;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use std::collections::VecDeque;
use std::ops::ControlFlow;

/// Most rows one bucket query returns: bounds a response even for very large pages.
const MAX_CHUNK: usize = 1000;
/// Bucket queries in flight for one page.
const MERGE_CONCURRENCY: usize = 64;

type ResourceRow = (String, i64, String);
type MemberRow = (String, String, String);

fn decode_resource(version: i64, body: &str) -> StoreResult<StoredResource> {
    let resource =
        serde_json::from_str(body).map_err(|error| StoreError::Corrupt(format!("resource row: {error}")))?;
    Ok(StoredResource { resource, version: version as u64 })
}

fn decode_member((member_id, kind, display): MemberRow) -> StoreResult<Member> {
    let kind = ResourceKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("membership row: unknown member kind {kind:?}")))?;
    // "" stands for "no display" (see the writer).
    Ok(Member { value: member_id, kind, display: (!display.is_empty()).then_some(display) })
}

/// Rows per bucket query for a page of `limit` over `buckets`: twice the fair share, so that
/// most pages need no second query to any bucket.
fn chunk_size(limit: usize, buckets: u32) -> usize {
    let fair_share = (limit * 2).div_ceil(buckets.max(1) as usize);
    fair_share.clamp(1, limit.clamp(1, MAX_CHUNK))
}

/// Fetches up to `n` rows of one bucket with ids after the given one, in id order.
pub(crate) type BucketFetch<'f, T> =
    dyn Fn(i32, Option<String>, usize) -> BoxFuture<'f, StoreResult<Vec<(String, T)>>> + Send + Sync + 'f;

/// Up to `limit` rows with ids after `after`, in id order, merged from `buckets` buckets.
pub(crate) async fn merge_buckets<T: Send>(
    buckets: u32,
    after: Option<&str>,
    limit: usize,
    fetch: &BucketFetch<'_, T>,
) -> StoreResult<Vec<(String, T)>> {
    struct Cursor<T> {
        bucket: i32,
        rows: VecDeque<(String, T)>,
        /// The last id fetched from this bucket: the next query starts after it.
        last: Option<String>,
        exhausted: bool,
    }
    if limit == 0 {
        return Ok(Vec::new());
    }
    let chunk = chunk_size(limit, buckets);
    let mut cursors: Vec<Cursor<T>> = (0..buckets as i32)
        .map(|bucket| Cursor {
            bucket,
            rows: VecDeque::new(),
            last: after.map(str::to_owned),
            exhausted: false,
        })
        .collect();
    let mut page = Vec::with_capacity(limit);
    while page.len() < limit {
        // A cursor that ran dry may still hold the smallest next id: refill before choosing.
        let dry: Vec<usize> = (0..cursors.len())
            .filter(|&index| cursors[index].rows.is_empty() && !cursors[index].exhausted)
            .collect();
        let fetched: Vec<(usize, Vec<(String, T)>)> = stream::iter(dry.into_iter().map(|index| {
            let cursor = &cursors[index];
            fetch(cursor.bucket, cursor.last.clone(), chunk).map(move |rows| rows.map(|rows| (index, rows)))
        }))
        .buffer_unordered(MERGE_CONCURRENCY)
        .try_collect()
        .await?;
        for (index, rows) in fetched {
            let cursor = &mut cursors[index];
            cursor.exhausted = rows.len() < chunk;
            if let Some((last, _)) = rows.last() {
                cursor.last = Some(last.clone());
            }
            cursor.rows.extend(rows);
        }
        let smallest = cursors
            .iter()
            .enumerate()
            .filter_map(|(index, cursor)| cursor.rows.front().map(|(id, _)| (id, index)))
            .min()
            .map(|(_, index)| index);
        let Some(index) = smallest else { break };
        page.extend(cursors[index].rows.pop_front());
    }
    Ok(page)
}

impl CqlStore {
    /// Reads a whole partition, a page (the statement's page size) per request. Pages are
    /// requested one by one rather than through the driver's pager, which runs a background task
    /// per query: most of these reads (index keys, groups of a member) return a row or none, on
    /// the fold's hot path.
    async fn read_all<R>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>,
    {
        let mut all = Vec::new();
        let mut paging = PagingState::start();
        loop {
            let (result, next) = self
                .inner
                .session
                .execute_single_page(statement, &values, paging)
                .await
                .map_err(|error| unavailable(what, error))?;
            let rows = result.into_rows_result().map_err(|error| unavailable(what, error))?;
            let typed = rows.rows::<R>().map_err(|error| StoreError::Corrupt(format!("{what}: {error}")))?;
            for row in typed {
                all.push(row.map_err(|error| StoreError::Corrupt(format!("{what}: {error}")))?);
            }
            match next.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(all),
                ControlFlow::Continue(state) => paging = state,
            }
        }
    }

    /// Reads at most one page of a bounded query (`LIMIT ?` in the statement).
    async fn read_bounded<R>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>,
    {
        let rows = self
            .inner
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(|error| unavailable(what, error))?
            .into_rows_result()
            .map_err(|error| unavailable(what, error))?;
        let typed = rows.rows::<R>().map_err(|error| StoreError::Corrupt(format!("{what}: {error}")))?;
        typed.map(|row| row.map_err(|error| StoreError::Corrupt(format!("{what}: {error}")))).collect()
    }

    pub(crate) async fn read_resource(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<StoredResource>> {
        let bucket = bucket_of(id, self.inner.layout.resource_buckets);
        let rows: Vec<(i64, String)> = self
            .read_bounded(
                &self.inner.statements.select_resource,
                (tenant, kind.name(), bucket, id),
                "read resource",
            )
            .await?;
        rows.first().map(|(version, body)| decode_resource(*version, body)).transpose()
    }

    pub(crate) async fn read_index(
        &self,
        tenant: &str,
        kind: ResourceKind,
        index: IndexName,
        key: &str,
    ) -> StoreResult<Vec<String>> {
        let values = (tenant, kind.name(), index.as_str(), key);
        let rows: Vec<(String,)> =
            self.read_all(&self.inner.statements.select_index, values, "read index").await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub(crate) async fn read_is_member(
        &self,
        tenant: &str,
        group_id: &str,
        member_id: &str,
    ) -> StoreResult<bool> {
        let bucket = bucket_of(member_id, self.inner.layout.member_buckets);
        let values = (tenant, group_id, bucket, member_id);
        let rows: Vec<(String,)> =
            self.read_bounded(&self.inner.statements.select_membership, values, "read membership").await?;
        Ok(!rows.is_empty())
    }

    pub(crate) async fn read_groups_of(&self, tenant: &str, member_id: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = self
            .read_all(&self.inner.statements.select_groups_of, (tenant, member_id), "read groups of member")
            .await?;
        Ok(rows.into_iter().map(|(group,)| group).collect())
    }

    async fn fetch_members(
        &self,
        tenant: &str,
        group_id: &str,
        bucket: i32,
        after: Option<String>,
        n: usize,
    ) -> StoreResult<Vec<(String, Member)>> {
        let s = &self.inner.statements;
        let n = n as i32;
        let rows: Vec<MemberRow> = match &after {
            None => {
                self.read_bounded(&s.members_first, (tenant, group_id, bucket, n), "read members").await?
            }
            Some(after) => {
                let values = (tenant, group_id, bucket, after.as_str(), n);
                self.read_bounded(&s.members_after, values, "read members").await?
            }
        };
        rows.into_iter().map(|row| decode_member(row).map(|member| (member.value.clone(), member))).collect()
    }

    async fn fetch_resources(
        &self,
        tenant: &str,
        kind: ResourceKind,
        bucket: i32,
        after: Option<String>,
        n: usize,
    ) -> StoreResult<Vec<(String, StoredResource)>> {
        let s = &self.inner.statements;
        let n = n as i32;
        let rows: Vec<ResourceRow> = match &after {
            None => {
                self.read_bounded(&s.resources_first, (tenant, kind.name(), bucket, n), "read resources")
                    .await?
            }
            Some(after) => {
                let values = (tenant, kind.name(), bucket, after.as_str(), n);
                self.read_bounded(&s.resources_after, values, "read resources").await?
            }
        };
        rows.into_iter().map(|(id, version, body)| Ok((id, decode_resource(version, &body)?))).collect()
    }

    /// The change feed of `partition` for commands with offsets in `[from, to)`, in order
    /// (offset, then index within the command): [`crate::StoreWriter::changes_between`], async.
    /// Only offsets below the partition's committed position are complete.
    pub async fn changes_for_offsets(
        &self,
        partition: u32,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<ChangeRecord>> {
        let mut changes = Vec::new();
        if from >= to {
            return Ok(changes);
        }
        for offset_bucket in from / OFFSET_BUCKET..=(to - 1) / OFFSET_BUCKET {
            let values = (partition as i32, offset_bucket as i64, from as i64, to as i64);
            let rows: Vec<(i64, i32, Vec<u8>)> =
                self.read_all(&self.inner.statements.select_changes, values, "read changes").await?;
            changes.extend(rows.into_iter().map(|(offset, index, envelope)| ChangeRecord {
                offset: offset as u64,
                index: index as u32,
                envelope,
            }));
        }
        Ok(changes)
    }
}

#[async_trait]
impl StoreReader for CqlStore {
    async fn resource(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<StoredResource>> {
        self.read_resource(tenant_id, kind, id).await
    }

    async fn index_lookup(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        index: IndexName,
        key: &str,
    ) -> StoreResult<Vec<String>> {
        self.read_index(tenant_id, kind, index, key).await
    }

    async fn groups_of(&self, tenant_id: &str, member_id: &str) -> StoreResult<Vec<String>> {
        self.read_groups_of(tenant_id, member_id).await
    }

    async fn members_page(
        &self,
        tenant_id: &str,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Member>> {
        let fetch = |bucket, after, n| self.fetch_members(tenant_id, group_id, bucket, after, n).boxed();
        let page = merge_buckets(self.inner.layout.member_buckets, after, limit, &fetch).await?;
        Ok(page.into_iter().map(|(_, member)| member).collect())
    }

    async fn resources_page(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoredResource)>> {
        let fetch = |bucket, after, n| self.fetch_resources(tenant_id, kind, bucket, after, n).boxed();
        merge_buckets(self.inner.layout.resource_buckets, after, limit, &fetch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Buckets in memory, with the number of rows each query returned.
    struct Fake {
        buckets: Vec<BTreeMap<String, ()>>,
        rows_read: AtomicUsize,
        queries: Mutex<Vec<i32>>,
    }

    impl Fake {
        fn new(buckets: u32, ids: impl IntoIterator<Item = String>) -> Self {
            let mut fake = Fake {
                buckets: vec![BTreeMap::new(); buckets as usize],
                rows_read: AtomicUsize::new(0),
                queries: Mutex::new(Vec::new()),
            };
            for id in ids {
                fake.buckets[bucket_of(&id, buckets) as usize].insert(id, ());
            }
            fake
        }

        fn fetch(&self, bucket: i32, after: Option<String>, n: usize) -> Vec<(String, ())> {
            self.queries.lock().unwrap().push(bucket);
            let rows: Vec<(String, ())> = self.buckets[bucket as usize]
                .iter()
                .filter(|(id, _)| after.as_ref().is_none_or(|after| *id > after))
                .take(n)
                .map(|(id, _)| (id.clone(), ()))
                .collect();
            self.rows_read.fetch_add(rows.len(), Ordering::Relaxed);
            rows
        }
    }

    fn page(fake: &Fake, buckets: u32, after: Option<&str>, limit: usize) -> Vec<String> {
        let fetch = |bucket, after, n| {
            let rows = fake.fetch(bucket, after, n);
            async move { Ok(rows) }.boxed()
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let page = runtime.block_on(merge_buckets(buckets, after, limit, &fetch)).unwrap();
        page.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn paging_through_buckets_yields_every_id_once_in_order() {
        let ids: Vec<String> = (0..1000).map(|i| format!("m{i:05}")).collect();
        for (buckets, limit) in [(16, 37), (64, 7), (1, 10), (16, 1), (16, 5000)] {
            let fake = Fake::new(buckets, ids.clone());
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let got = page(&fake, buckets, after.as_deref(), limit);
                assert!(got.len() <= limit);
                if got.is_empty() {
                    break;
                }
                after = got.last().cloned();
                let short = got.len() < limit;
                seen.extend(got);
                if short {
                    break;
                }
            }
            assert_eq!(seen, ids, "buckets {buckets}, limit {limit}");
        }
    }

    #[test]
    fn a_page_reads_a_bounded_number_of_rows() {
        let ids: Vec<String> = (0..100_000).map(|i| format!("{i:08x}")).collect();
        let fake = Fake::new(16, ids.clone());
        let got = page(&fake, 16, Some(&ids[50_000]), 37);
        assert_eq!(got, ids[50_001..50_038]);
        let rows = fake.rows_read.load(Ordering::Relaxed);
        assert!(rows <= 37 + 16 * chunk_size(37, 16) * 2, "read {rows} rows for a page of 37");
    }

    #[test]
    fn skewed_buckets_are_refilled() {
        // Every id in one bucket: that bucket must be queried repeatedly.
        let fake = Fake::new(1, (0..100).map(|i| format!("{i:03}")));
        let fake16 = Fake {
            buckets: {
                let mut b = vec![BTreeMap::new(); 16];
                b[3] = fake.buckets[0].clone();
                b
            },
            rows_read: AtomicUsize::new(0),
            queries: Mutex::new(Vec::new()),
        };
        let got = page(&fake16, 16, None, 50);
        assert_eq!(got, (0..50).map(|i| format!("{i:03}")).collect::<Vec<_>>());
        assert!(fake16.queries.lock().unwrap().iter().filter(|bucket| **bucket == 3).count() > 1);
    }
}
