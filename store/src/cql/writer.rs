//! The projector side: [`StoreWriter`] on CQL, and what makes a non-atomic commit safe.
//!
//! A CQL commit is many independent row writes, so a crash can leave a batch half-written while
//! `log_positions` still points before it. Folding those records again would then decide
//! against rows the batch itself wrote (a create would meet its own row and answer 409). So a
//! commit is done in steps, each finished before the next begins:
//!
//! 1. **Intent**: the whole batch (mutations and change envelopes, [`super::intent`]) is written
//!    to `pending_batches` as chunks, then a header row that makes it valid.
//! 2. **Rows, phase 1**: every row write of every mutation, concurrently, plus deleting the
//!    reverse rows of cleared groups (which needs the group's membership, read here).
//! 3. **Rows, phase 2**: the partition deletes of cleared groups' membership buckets. They come
//!    last because phase 1 of a replay re-reads the membership to find the reverse rows to
//!    delete: once a bucket is gone, its reverse rows must already be.
//! 4. **Position**: `log_positions` gets the batch's end offset (and its last timestamp).
//! 5. The intent is deleted.
//!
//! Whoever next asks for the partition's position ([`StoreWriter::next_offset`], which the
//! projector calls before every batch, and `commit` itself) first finishes a valid intent by
//! replaying steps 2–5, or drops an intent without header (the batch never began). Nothing new
//! is folded until then, so every fold sees either none or all of a batch.
//!
//! Replay and concurrency are safe because every write carries an explicit timestamp
//! (`USING TIMESTAMP`): the batch gets a base `B` (wall clock in µs, but always above the
//! partition's last used timestamp, kept in `log_positions`, so it never goes back across
//! restarts or hosts), mutation `i` writes at `B + i`, and the position and intent deletion at
//! `B + m + 1`. Cells resolve by timestamp, so issuing the writes in any order, or twice, gives
//! exactly the state of applying the mutations one by one: a later `DeleteIndex` beats an
//! earlier `PutIndex` of the same row, an `AddMember` after a `ClearMembers` (a partition delete
//! at a lower timestamp) survives it, and a replay rewrites identical cells.

use super::intent::{self, CHUNK_BYTES};
use super::statements::Statements;
use super::view::CqlView;
use super::{CqlStore, bucket_of, now_micros, unavailable};
use crate::port::{ChangeRecord, StoreError, StoreResult, StoreWriter, TenantCommit, TenantView};
use crate::position::PartitionPosition;
use futures_util::{StreamExt, TryStreamExt, stream};
use scimflow_core::ResourceKind;
use scimflow_core::index::IndexName;
use scimflow_core::state::{Member, Mutation, StoredResource};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// Log offsets per `changes` partition: a partition holds the changes of 4,096 commands
/// (a few MiB), and a range read touches `(to - from) / 4096 + 1` partitions.
pub const OFFSET_BUCKET: u64 = 4096;

/// Where a test makes a commit stop as if the process died there ([`CqlStore::commit_until_crash`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum CrashPoint {
    /// Some intent chunks are written but not the header: the batch never began.
    BeforeIntentHeader,
    /// The intent, then only every `keep_one_in`-th phase-1 row write (0: none at all).
    AfterSomeRows { keep_one_in: usize },
    /// Phase 1 complete, then the first `buckets` membership partition deletes of phase 2.
    AfterSomeClears { buckets: usize },
    /// Everything including the position, but the intent is still there.
    BeforeIntentDelete,
}

/// A partition's row in `log_positions`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Position {
    pub folded: PartitionPosition,
    pub last_timestamp: i64,
}

/// The static columns of a partition's `pending_batches` rows; `None` fields mean the header
/// was never written (only chunks were).
#[derive(Debug, Clone, Copy)]
struct Header {
    next_offset: Option<i64>,
    base_timestamp: Option<i64>,
    end_timestamp: Option<i64>,
    chunk_count: Option<i32>,
    total_bytes: Option<i64>,
}

/// One row write of a mutation.
pub(super) enum RowWrite<'a> {
    PutResource {
        tenant: &'a str,
        kind: ResourceKind,
        id: &'a str,
        stored: &'a StoredResource,
    },
    DeleteResource {
        tenant: &'a str,
        kind: ResourceKind,
        id: &'a str,
    },
    PutIndex {
        tenant: &'a str,
        kind: ResourceKind,
        index: IndexName,
        key: &'a str,
        id: &'a str,
    },
    DeleteIndex {
        tenant: &'a str,
        kind: ResourceKind,
        index: IndexName,
        key: &'a str,
        id: &'a str,
    },
    PutMembership {
        tenant: &'a str,
        group: &'a str,
        member: &'a Member,
    },
    DeleteMembership {
        tenant: &'a str,
        group: &'a str,
        member_id: &'a str,
    },
    PutMemberOf {
        tenant: &'a str,
        member_id: &'a str,
        group: &'a str,
    },
    DeleteMemberOf {
        tenant: &'a str,
        member_id: Cow<'a, str>,
        group: &'a str,
    },
    ClearMembershipBucket {
        tenant: &'a str,
        group: &'a str,
        bucket: i32,
    },
    /// A change of the batch under its feed key and its index within the batch.
    PutChange {
        partition: u32,
        feed_key: u64,
        index: u32,
        change: &'a ChangeRecord,
    },
}

/// The last `ClearMembers` of one group in a batch.
struct Clear<'a> {
    tenant: &'a str,
    group: &'a str,
    timestamp: i64,
    /// Members added to the group earlier in the batch. Phase 1 finishes before the membership
    /// is read, so their rows are normally visible to that read; they are unlinked explicitly
    /// anyway, so that correctness never rests on read visibility.
    added_before: Vec<&'a str>,
}

/// The writes of a batch with their timestamps.
pub(super) struct Plan<'a> {
    pub(super) rows: Vec<(i64, RowWrite<'a>)>,
    clears: Vec<Clear<'a>>,
}

pub(super) fn plan<'a>(
    partition: u32,
    feed_key: u64,
    base: i64,
    tenants: &'a [TenantCommit],
    changes: &'a [ChangeRecord],
) -> Plan<'a> {
    let mut rows = Vec::new();
    let mut last_clear: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut added: HashMap<(&str, &str), Vec<(i64, &str)>> = HashMap::new();
    let mut timestamp = base;
    for commit in tenants {
        let tenant = commit.tenant_id.as_str();
        for mutation in &commit.mutations {
            match mutation {
                Mutation::PutResource { kind, id, stored } => {
                    rows.push((timestamp, RowWrite::PutResource { tenant, kind: *kind, id, stored }));
                }
                Mutation::DeleteResource { kind, id } => {
                    rows.push((timestamp, RowWrite::DeleteResource { tenant, kind: *kind, id }));
                }
                Mutation::PutIndex { kind, index, key, id } => {
                    rows.push((
                        timestamp,
                        RowWrite::PutIndex { tenant, kind: *kind, index: *index, key, id },
                    ));
                }
                Mutation::DeleteIndex { kind, index, key, id } => {
                    rows.push((
                        timestamp,
                        RowWrite::DeleteIndex { tenant, kind: *kind, index: *index, key, id },
                    ));
                }
                Mutation::AddMember { group_id, member } => {
                    rows.push((timestamp, RowWrite::PutMembership { tenant, group: group_id, member }));
                    rows.push((
                        timestamp,
                        RowWrite::PutMemberOf { tenant, member_id: &member.value, group: group_id },
                    ));
                    added.entry((tenant, group_id)).or_default().push((timestamp, &member.value));
                }
                Mutation::RemoveMember { group_id, member_id } => {
                    rows.push((timestamp, RowWrite::DeleteMembership { tenant, group: group_id, member_id }));
                    rows.push((
                        timestamp,
                        RowWrite::DeleteMemberOf {
                            tenant,
                            member_id: Cow::Borrowed(member_id),
                            group: group_id,
                        },
                    ));
                }
                Mutation::ClearMembers { group_id } => {
                    // Only the last clear of a group matters: its deletes (at a higher
                    // timestamp) cover everything an earlier one would delete.
                    last_clear.insert((tenant, group_id), timestamp);
                }
            }
            timestamp += 1;
        }
    }
    for (index, change) in changes.iter().enumerate() {
        rows.push((base, RowWrite::PutChange { partition, feed_key, index: index as u32, change }));
    }
    let clears = last_clear
        .into_iter()
        .map(|((tenant, group), timestamp)| Clear {
            tenant,
            group,
            timestamp,
            added_before: added
                .get(&(tenant, group))
                .into_iter()
                .flatten()
                .filter(|(added_at, _)| *added_at < timestamp)
                .map(|(_, member)| *member)
                .collect(),
        })
        .collect();
    Plan { rows, clears }
}

/// The number of timestamps a batch uses after its base: one per mutation, then one for the
/// position and the intent deletion.
fn end_timestamp(base: i64, tenants: &[TenantCommit]) -> i64 {
    let mutations: usize = tenants.iter().map(|commit| commit.mutations.len()).sum();
    base + mutations as i64 + 1
}

impl CqlStore {
    fn statements(&self) -> &Statements {
        &self.inner.statements
    }

    /// Like [`StoreWriter::commit`] but stops at `crash`, as if the process died there
    /// (crash-recovery tests only).
    #[doc(hidden)]
    pub async fn commit_until_crash(
        &self,
        partition: u32,
        position: &PartitionPosition,
        tenants: &[TenantCommit],
        changes: &[ChangeRecord],
        crash: CrashPoint,
    ) -> StoreResult<()> {
        self.commit_steps(partition, position, tenants, changes, Some(crash)).await
    }

    /// [`StoreWriter::commit`], async: the steps of the module docs.
    pub async fn commit_batch(
        &self,
        partition: u32,
        position: &PartitionPosition,
        tenants: &[TenantCommit],
        changes: &[ChangeRecord],
    ) -> StoreResult<()> {
        self.commit_steps(partition, position, tenants, changes, None).await
    }

    async fn commit_steps(
        &self,
        partition: u32,
        next: &PartitionPosition,
        tenants: &[TenantCommit],
        changes: &[ChangeRecord],
        crash: Option<CrashPoint>,
    ) -> StoreResult<()> {
        let (position, header) =
            futures_util::try_join!(self.read_position(partition), self.read_header(partition))?;
        if header.is_some() {
            // The fold that produced this batch may have read a half-written earlier batch.
            self.recover_partition(partition).await?;
            return Err(StoreError::Unavailable(format!(
                "partition {partition} had an interrupted batch, completed now; fold again"
            )));
        }
        if !changes.is_empty() && next.next_offset <= position.folded.next_offset {
            return Err(StoreError::Corrupt(format!(
                "partition {partition}: a commit with changes must raise the watermark ({} -> {})",
                position.folded.next_offset, next.next_offset
            )));
        }
        let base = now_micros().max(position.last_timestamp + 1);
        let end = end_timestamp(base, tenants);
        if tenants.iter().all(|commit| commit.mutations.is_empty()) && changes.is_empty() {
            // Nothing to write but the position: already atomic, no intent needed.
            return self.write_position(partition, next, end).await;
        }
        let bytes = intent::encode(next, tenants, changes);
        self.write_intent(partition, next.next_offset, base, end, &bytes, crash).await?;
        if matches!(crash, Some(CrashPoint::BeforeIntentHeader)) {
            return Ok(());
        }
        if !self.apply(partition, next.feed_key(), base, tenants, changes, crash).await? {
            return Ok(());
        }
        self.write_position(partition, next, end).await?;
        if matches!(crash, Some(CrashPoint::BeforeIntentDelete)) {
            return Ok(());
        }
        self.delete_intent(partition, end).await
    }

    /// Finishes or drops an interrupted batch of `partition`, then returns the partition's
    /// position. Idempotent; [`StoreWriter::position`] calls it.
    pub async fn recover_partition(&self, partition: u32) -> StoreResult<PartitionPosition> {
        let (position, header) =
            futures_util::try_join!(self.read_position(partition), self.read_header(partition))?;
        let Some(header) = header else { return Ok(position.folded) };
        let (Some(next_offset), Some(base), Some(end), Some(chunk_count), Some(total_bytes)) = (
            header.next_offset,
            header.base_timestamp,
            header.end_timestamp,
            header.chunk_count,
            header.total_bytes,
        ) else {
            // Chunks without a header: the batch never began writing rows. Drop them with a
            // timestamp above theirs and record that timestamp as used, so the next batch's
            // intent is written above the deletion.
            let written = self.max_chunk_writetime(partition).await?;
            let deletion = now_micros().max(position.last_timestamp + 1).max(written + 1);
            self.delete_intent(partition, deletion).await?;
            self.write_position(partition, &position.folded, deletion).await?;
            tracing::warn!(partition, "CqlIncompleteIntentDropped");
            return Ok(position.folded);
        };
        if position.last_timestamp < end {
            // The position was not written by this batch: replay it, identically.
            let bytes = self.read_chunks(partition, chunk_count, total_bytes).await?;
            let intent = intent::decode(&bytes)?;
            if intent.position.next_offset as i64 != next_offset {
                return Err(StoreError::Corrupt(format!(
                    "pending batch of partition {partition}: header says next offset {next_offset}, body {}",
                    intent.position.next_offset
                )));
            }
            let feed_key = intent.position.feed_key();
            self.apply(partition, feed_key, base, &intent.tenants, &intent.changes, None).await?;
            self.write_position(partition, &intent.position, end).await?;
            tracing::warn!(
                partition,
                next_offset = intent.position.next_offset,
                "CqlInterruptedBatchReplayed"
            );
        }
        self.delete_intent(partition, end.max(position.last_timestamp)).await?;
        let recovered = self.read_position(partition).await?;
        Ok(recovered.folded)
    }

    /// Steps 2 and 3; `false` when a test crash point stopped them.
    async fn apply(
        &self,
        partition: u32,
        feed_key: u64,
        base: i64,
        tenants: &[TenantCommit],
        changes: &[ChangeRecord],
        crash: Option<CrashPoint>,
    ) -> StoreResult<bool> {
        let plan = plan(partition, feed_key, base, tenants, changes);
        let keep = |index: usize| match crash {
            Some(CrashPoint::AfterSomeRows { keep_one_in }) => index.checked_rem(keep_one_in) == Some(0),
            _ => true,
        };
        let rows = plan.rows.iter().enumerate().filter(|(index, _)| keep(*index)).map(|(_, row)| row);
        self.run_writes(rows.map(|(timestamp, write)| (*timestamp, write))).await?;
        if matches!(crash, Some(CrashPoint::AfterSomeRows { .. })) {
            return Ok(false);
        }
        for clear in &plan.clears {
            self.unlink_cleared_members(clear).await?;
        }
        let buckets = self.inner.layout.member_buckets as i32;
        let deletes: Vec<(i64, RowWrite<'_>)> = plan
            .clears
            .iter()
            .flat_map(|clear| {
                (0..buckets).map(|bucket| {
                    let write =
                        RowWrite::ClearMembershipBucket { tenant: clear.tenant, group: clear.group, bucket };
                    (clear.timestamp, write)
                })
            })
            .collect();
        let limit = match crash {
            Some(CrashPoint::AfterSomeClears { buckets }) => buckets,
            _ => deletes.len(),
        };
        self.run_writes(deletes.iter().take(limit).map(|(timestamp, write)| (*timestamp, write))).await?;
        Ok(!matches!(crash, Some(CrashPoint::AfterSomeClears { .. })))
    }

    /// Deletes the reverse rows of every member of a cleared group, at the clear's timestamp.
    /// Reads the group's membership in pages: the one commit cost that grows with a group.
    /// Deleting more than needed is harmless (a member added after the clear writes at a higher
    /// timestamp), deleting fewer is not, hence the members added earlier in the batch.
    async fn unlink_cleared_members(&self, clear: &Clear<'_>) -> StoreResult<()> {
        let unlink = |member_id: Cow<'static, str>| RowWrite::DeleteMemberOf {
            tenant: clear.tenant,
            member_id,
            group: clear.group,
        };
        let earlier: Vec<RowWrite<'_>> = clear
            .added_before
            .iter()
            .map(|member| RowWrite::DeleteMemberOf {
                tenant: clear.tenant,
                member_id: Cow::Borrowed(member),
                group: clear.group,
            })
            .collect();
        self.run_writes(earlier.iter().map(|write| (clear.timestamp, write))).await?;
        let page = super::statements::PAGE_SIZE as usize;
        for bucket in 0..self.inner.layout.member_buckets as i32 {
            let mut rows = self
                .inner
                .session
                .execute_iter(self.statements().member_ids.clone(), (clear.tenant, clear.group, bucket))
                .await
                .map_err(|error| unavailable("read members to unlink", error))?
                .rows_stream::<(String,)>()
                .map_err(|error| unavailable("read members to unlink", error))?;
            let mut pending = Vec::with_capacity(page);
            loop {
                let row = rows
                    .next()
                    .await
                    .transpose()
                    .map_err(|error| unavailable("read members to unlink", error))?;
                let done = row.is_none();
                if let Some((member_id,)) = row {
                    pending.push(unlink(Cow::Owned(member_id)));
                }
                if pending.len() >= page || (done && !pending.is_empty()) {
                    self.run_writes(pending.iter().map(|write| (clear.timestamp, write))).await?;
                    pending.clear();
                }
                if done {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Runs writes with bounded concurrency; their order does not matter (see the module docs).
    pub(super) async fn run_writes<'w, 'a: 'w>(
        &self,
        writes: impl Iterator<Item = (i64, &'w RowWrite<'a>)>,
    ) -> StoreResult<()> {
        stream::iter(writes.map(|(timestamp, write)| self.execute_write(timestamp, write)))
            .buffer_unordered(self.inner.config.write_concurrency.max(1))
            .try_collect::<()>()
            .await
    }

    async fn execute_write(&self, timestamp: i64, write: &RowWrite<'_>) -> StoreResult<()> {
        let s = self.statements();
        let session = &self.inner.session;
        let resource_buckets = self.inner.layout.resource_buckets;
        let member_buckets = self.inner.layout.member_buckets;
        let result = match write {
            RowWrite::PutResource { tenant, kind, id, stored } => {
                // Serialising a serde_json::Value cannot fail.
                let body = serde_json::to_string(&stored.resource).unwrap_or_default();
                let bucket = bucket_of(id, resource_buckets);
                let values = (*tenant, kind.name(), bucket, *id, stored.version as i64, body, timestamp);
                session.execute_unpaged(&s.insert_resource, values).await
            }
            RowWrite::DeleteResource { tenant, kind, id } => {
                let values = (timestamp, *tenant, kind.name(), bucket_of(id, resource_buckets), *id);
                session.execute_unpaged(&s.delete_resource, values).await
            }
            RowWrite::PutIndex { tenant, kind, index, key, id } => {
                let values = (*tenant, kind.name(), index.as_str(), *key, *id, timestamp);
                session.execute_unpaged(&s.insert_index, values).await
            }
            RowWrite::DeleteIndex { tenant, kind, index, key, id } => {
                let values = (timestamp, *tenant, kind.name(), index.as_str(), *key, *id);
                session.execute_unpaged(&s.delete_index, values).await
            }
            RowWrite::PutMembership { tenant, group, member } => {
                // No display is stored as "" rather than null: binding null writes a tombstone
                // per membership row (the embedded store encodes it the same way).
                let display = member.display.as_deref().unwrap_or_default();
                let bucket = bucket_of(&member.value, member_buckets);
                let values =
                    (*tenant, *group, bucket, member.value.as_str(), member.kind.name(), display, timestamp);
                session.execute_unpaged(&s.insert_membership, values).await
            }
            RowWrite::DeleteMembership { tenant, group, member_id } => {
                let values = (timestamp, *tenant, *group, bucket_of(member_id, member_buckets), *member_id);
                session.execute_unpaged(&s.delete_membership, values).await
            }
            RowWrite::PutMemberOf { tenant, member_id, group } => {
                session.execute_unpaged(&s.insert_member_of, (*tenant, *member_id, *group, timestamp)).await
            }
            RowWrite::DeleteMemberOf { tenant, member_id, group } => {
                let values = (timestamp, *tenant, member_id.as_ref(), *group);
                session.execute_unpaged(&s.delete_member_of, values).await
            }
            RowWrite::ClearMembershipBucket { tenant, group, bucket } => {
                session
                    .execute_unpaged(&s.clear_membership_bucket, (timestamp, *tenant, *group, *bucket))
                    .await
            }
            RowWrite::PutChange { partition, feed_key, index, change } => {
                let values = (
                    *partition as i32,
                    (*feed_key / OFFSET_BUCKET) as i64,
                    *feed_key as i64,
                    *index as i32,
                    change.envelope.as_slice(),
                    timestamp,
                );
                session.execute_unpaged(&s.insert_change, values).await
            }
        };
        result.map(|_| ()).map_err(|error| unavailable("write", error))
    }

    // --- positions and intents ---

    pub(crate) async fn read_position(&self, partition: u32) -> StoreResult<Position> {
        let rows = self
            .inner
            .session
            .execute_unpaged(&self.statements().select_position, (partition as i32,))
            .await
            .map_err(|error| unavailable("read log position", error))?
            .into_rows_result()
            .map_err(|error| unavailable("read log position", error))?;
        let row = rows
            .maybe_first_row::<(Option<i64>, Option<i64>, Option<Vec<u8>>)>()
            .map_err(|error| StoreError::Corrupt(format!("log position: {error}")))?;
        let Some((next_offset, last_timestamp, ahead)) = row else { return Ok(Position::default()) };
        let tenants_ahead =
            PartitionPosition::decode_tenants_ahead(&ahead.unwrap_or_default()).map_err(|error| {
                StoreError::Corrupt(format!("log position of partition {partition}: {error}"))
            })?;
        Ok(Position {
            folded: PartitionPosition { next_offset: next_offset.unwrap_or_default() as u64, tenants_ahead },
            last_timestamp: last_timestamp.unwrap_or_default(),
        })
    }

    async fn write_position(
        &self,
        partition: u32,
        position: &PartitionPosition,
        timestamp: i64,
    ) -> StoreResult<()> {
        // An empty blob, not null: binding null would write a tombstone with every commit.
        let ahead = position.encode_tenants_ahead();
        let values = (partition as i32, position.next_offset as i64, timestamp, ahead, timestamp);
        self.inner
            .session
            .execute_unpaged(&self.statements().upsert_position, values)
            .await
            .map(|_| ())
            .map_err(|error| unavailable("write log position", error))
    }

    async fn read_header(&self, partition: u32) -> StoreResult<Option<Header>> {
        type Row = (i32, Option<i64>, Option<i64>, Option<i64>, Option<i32>, Option<i64>);
        let rows = self
            .inner
            .session
            .execute_unpaged(&self.statements().select_pending_header, (partition as i32,))
            .await
            .map_err(|error| unavailable("read pending batch", error))?
            .into_rows_result()
            .map_err(|error| unavailable("read pending batch", error))?;
        let row = rows
            .maybe_first_row::<Row>()
            .map_err(|error| StoreError::Corrupt(format!("pending batch header: {error}")))?;
        Ok(row.map(|(_, next_offset, base_timestamp, end_timestamp, chunk_count, total_bytes)| Header {
            next_offset,
            base_timestamp,
            end_timestamp,
            chunk_count,
            total_bytes,
        }))
    }

    async fn write_intent(
        &self,
        partition: u32,
        next_offset: u64,
        base: i64,
        end: i64,
        bytes: &[u8],
        crash: Option<CrashPoint>,
    ) -> StoreResult<()> {
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
        let session = &self.inner.session;
        let statement = &self.statements().insert_pending_chunk;
        let writes = chunks.iter().enumerate().map(|(index, chunk)| async move {
            session
                .execute_unpaged(statement, (partition as i32, index as i32, *chunk, base))
                .await
                .map(|_| ())
                .map_err(|error| unavailable("write pending batch", error))
        });
        // Chunks are large: a few at a time.
        stream::iter(writes).buffer_unordered(4).try_collect::<()>().await?;
        if matches!(crash, Some(CrashPoint::BeforeIntentHeader)) {
            return Ok(());
        }
        let header =
            (base, next_offset as i64, base, end, chunks.len() as i32, bytes.len() as i64, partition as i32);
        session
            .execute_unpaged(&self.statements().insert_pending_header, header)
            .await
            .map(|_| ())
            .map_err(|error| unavailable("write pending batch header", error))
    }

    async fn read_chunks(&self, partition: u32, chunk_count: i32, total_bytes: i64) -> StoreResult<Vec<u8>> {
        let corrupt = |message: String| {
            StoreError::Corrupt(format!("pending batch of partition {partition}: {message}"))
        };
        let mut rows = self
            .inner
            .session
            .execute_iter(self.statements().select_pending_chunks.clone(), (partition as i32,))
            .await
            .map_err(|error| unavailable("read pending batch", error))?
            .rows_stream::<(Option<i32>, Option<Vec<u8>>)>()
            .map_err(|error| unavailable("read pending batch", error))?;
        let mut bytes = Vec::with_capacity(usize::try_from(total_bytes).unwrap_or_default());
        let mut expected = 0;
        while let Some(row) = rows.next().await {
            let (chunk, data) = row.map_err(|error| unavailable("read pending batch", error))?;
            let (Some(chunk), Some(data)) = (chunk, data) else { continue };
            if chunk != expected {
                return Err(corrupt(format!("chunk {expected} is missing")));
            }
            bytes.extend(data);
            expected += 1;
        }
        if expected != chunk_count || bytes.len() as i64 != total_bytes {
            return Err(corrupt(format!(
                "{expected} chunks / {} bytes instead of {chunk_count} / {total_bytes}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    async fn max_chunk_writetime(&self, partition: u32) -> StoreResult<i64> {
        let mut rows = self
            .inner
            .session
            .execute_iter(self.statements().select_pending_writetimes.clone(), (partition as i32,))
            .await
            .map_err(|error| unavailable("read pending batch", error))?
            .rows_stream::<(Option<i32>, Option<i64>)>()
            .map_err(|error| unavailable("read pending batch", error))?;
        let mut max = 0;
        while let Some(row) = rows.next().await {
            let (_, written) = row.map_err(|error| unavailable("read pending batch", error))?;
            max = max.max(written.unwrap_or_default());
        }
        Ok(max)
    }

    async fn delete_intent(&self, partition: u32, timestamp: i64) -> StoreResult<()> {
        self.inner
            .session
            .execute_unpaged(&self.statements().delete_pending, (timestamp, partition as i32))
            .await
            .map(|_| ())
            .map_err(|error| unavailable("delete pending batch", error))
    }
}

impl StoreWriter for CqlStore {
    /// Must be called from a blocking thread (the fold runs in `spawn_blocking`); its reads
    /// block on the driver.
    fn tenant_view(&self, tenant_id: &str) -> StoreResult<Box<dyn TenantView + '_>> {
        Ok(Box::new(CqlView::new(self, tenant_id)))
    }

    /// Finishes an interrupted batch first (see the module docs). Blocking, like every method
    /// of this trait.
    fn position(&self, partition: u32) -> StoreResult<PartitionPosition> {
        self.block_on(self.recover_partition(partition))
    }

    fn commit(
        &self,
        partition: u32,
        position: &PartitionPosition,
        tenants: &[TenantCommit],
        changes: &[ChangeRecord],
    ) -> StoreResult<()> {
        self.block_on(self.commit_steps(partition, position, tenants, changes, None))
    }

    fn changes_between(&self, partition: u32, from: u64, to: u64) -> StoreResult<Vec<ChangeRecord>> {
        self.block_on(self.changes_for_offsets(partition, from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_follow_mutation_order_and_only_the_last_clear_counts() {
        let member = |id: &str| Member { value: id.into(), kind: ResourceKind::User, display: None };
        let mutations = vec![
            Mutation::AddMember { group_id: "g".into(), member: member("a") },
            Mutation::ClearMembers { group_id: "g".into() },
            Mutation::AddMember { group_id: "g".into(), member: member("b") },
            Mutation::ClearMembers { group_id: "g".into() },
            Mutation::AddMember { group_id: "g".into(), member: member("c") },
        ];
        let tenants = [TenantCommit { tenant_id: "t".into(), mutations }];
        let plan = plan(0, 0, 100, &tenants, &[]);
        let stamps: Vec<i64> = plan.rows.iter().map(|(timestamp, _)| *timestamp).collect();
        assert_eq!(stamps, [100, 100, 102, 102, 104, 104]);
        assert_eq!(plan.clears.len(), 1);
        assert_eq!(plan.clears[0].timestamp, 103);
        assert_eq!(plan.clears[0].added_before, ["a", "b"]);
        assert_eq!(end_timestamp(100, &tenants), 106);
    }
}
