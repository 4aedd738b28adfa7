//! Every statement the store runs, prepared once at connect time.
//!
//! Writes carry `USING TIMESTAMP ?` (see the writer for why) and are marked idempotent, which
//! they are with an explicit timestamp, so the driver may retry them after a timeout. Reads that
//! could return many rows are paged ([`PAGE_SIZE`]); page reads bound their rows with `LIMIT ?`.
//! The consistency comes from the session's default execution profile.

use super::unavailable;
use crate::port::StoreResult;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

/// Rows per page for reads that return a whole partition (index keys, groups of a member,
/// member ids of a group being cleared, change feed ranges).
pub const PAGE_SIZE: i32 = 1000;
/// Pending-batch chunks are up to [`super::intent::CHUNK_BYTES`] each: few per page.
const CHUNK_PAGE_SIZE: i32 = 4;

pub struct Statements {
    pub select_resource: PreparedStatement,
    pub resources_first: PreparedStatement,
    pub resources_after: PreparedStatement,
    pub insert_resource: PreparedStatement,
    pub delete_resource: PreparedStatement,

    pub select_index: PreparedStatement,
    pub insert_index: PreparedStatement,
    pub delete_index: PreparedStatement,

    pub select_membership: PreparedStatement,
    pub members_first: PreparedStatement,
    pub members_after: PreparedStatement,
    pub member_ids: PreparedStatement,
    pub insert_membership: PreparedStatement,
    pub delete_membership: PreparedStatement,
    pub clear_membership_bucket: PreparedStatement,

    pub select_groups_of: PreparedStatement,
    pub insert_member_of: PreparedStatement,
    pub delete_member_of: PreparedStatement,

    pub select_position: PreparedStatement,
    pub upsert_position: PreparedStatement,

    pub insert_change: PreparedStatement,
    pub select_changes: PreparedStatement,

    pub select_pending_header: PreparedStatement,
    pub select_pending_chunks: PreparedStatement,
    pub select_pending_writetimes: PreparedStatement,
    pub insert_pending_chunk: PreparedStatement,
    pub insert_pending_header: PreparedStatement,
    pub delete_pending: PreparedStatement,
}

impl Statements {
    pub async fn prepare(session: &Session, ks: &str) -> StoreResult<Self> {
        let prepare = |text: String, page_size: Option<i32>| async move {
            let mut statement = session
                .prepare(text.as_str())
                .await
                .map_err(|error| unavailable(&format!("prepare {text}"), error))?;
            statement.set_is_idempotent(true);
            if let Some(page_size) = page_size {
                statement.set_page_size(page_size);
            }
            StoreResult::Ok(statement)
        };
        let q = |text: &str| text.replace("{ks}", ks);
        Ok(Statements {
            select_resource: prepare(
                q("SELECT version, body FROM {ks}.resources WHERE tenant = ? AND kind = ? AND bucket = ? AND id = ?"),
                None,
            )
            .await?,
            resources_first: prepare(
                q("SELECT id, version, body FROM {ks}.resources \
                   WHERE tenant = ? AND kind = ? AND bucket = ? LIMIT ?"),
                None,
            )
            .await?,
            resources_after: prepare(
                q("SELECT id, version, body FROM {ks}.resources \
                   WHERE tenant = ? AND kind = ? AND bucket = ? AND id > ? LIMIT ?"),
                None,
            )
            .await?,
            insert_resource: prepare(
                q("INSERT INTO {ks}.resources (tenant, kind, bucket, id, version, body) \
                   VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"),
                None,
            )
            .await?,
            delete_resource: prepare(
                q("DELETE FROM {ks}.resources USING TIMESTAMP ? \
                   WHERE tenant = ? AND kind = ? AND bucket = ? AND id = ?"),
                None,
            )
            .await?,

            select_index: prepare(
                q("SELECT id FROM {ks}.lookup_index \
                   WHERE tenant = ? AND kind = ? AND index_name = ? AND index_key = ?"),
                Some(PAGE_SIZE),
            )
            .await?,
            insert_index: prepare(
                q("INSERT INTO {ks}.lookup_index (tenant, kind, index_name, index_key, id) \
                   VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"),
                None,
            )
            .await?,
            delete_index: prepare(
                q("DELETE FROM {ks}.lookup_index USING TIMESTAMP ? \
                   WHERE tenant = ? AND kind = ? AND index_name = ? AND index_key = ? AND id = ?"),
                None,
            )
            .await?,

            select_membership: prepare(
                q("SELECT member_id FROM {ks}.memberships \
                   WHERE tenant = ? AND group_id = ? AND bucket = ? AND member_id = ?"),
                None,
            )
            .await?,
            members_first: prepare(
                q("SELECT member_id, member_kind, display FROM {ks}.memberships \
                   WHERE tenant = ? AND group_id = ? AND bucket = ? LIMIT ?"),
                None,
            )
            .await?,
            members_after: prepare(
                q("SELECT member_id, member_kind, display FROM {ks}.memberships \
                   WHERE tenant = ? AND group_id = ? AND bucket = ? AND member_id > ? LIMIT ?"),
                None,
            )
            .await?,
            member_ids: prepare(
                q("SELECT member_id FROM {ks}.memberships WHERE tenant = ? AND group_id = ? AND bucket = ?"),
                Some(PAGE_SIZE),
            )
            .await?,
            insert_membership: prepare(
                q("INSERT INTO {ks}.memberships (tenant, group_id, bucket, member_id, member_kind, display) \
                   VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"),
                None,
            )
            .await?,
            delete_membership: prepare(
                q("DELETE FROM {ks}.memberships USING TIMESTAMP ? \
                   WHERE tenant = ? AND group_id = ? AND bucket = ? AND member_id = ?"),
                None,
            )
            .await?,
            clear_membership_bucket: prepare(
                q("DELETE FROM {ks}.memberships USING TIMESTAMP ? WHERE tenant = ? AND group_id = ? AND bucket = ?"),
                None,
            )
            .await?,

            select_groups_of: prepare(
                q("SELECT group_id FROM {ks}.member_of WHERE tenant = ? AND member_id = ?"),
                Some(PAGE_SIZE),
            )
            .await?,
            insert_member_of: prepare(
                q("INSERT INTO {ks}.member_of (tenant, member_id, group_id) VALUES (?, ?, ?) USING TIMESTAMP ?"),
                None,
            )
            .await?,
            delete_member_of: prepare(
                q("DELETE FROM {ks}.member_of USING TIMESTAMP ? WHERE tenant = ? AND member_id = ? AND group_id = ?"),
                None,
            )
            .await?,

            select_position: prepare(
                q("SELECT next_offset, last_timestamp, tenants_ahead FROM {ks}.log_positions WHERE log_partition = ?"),
                None,
            )
            .await?,
            upsert_position: prepare(
                q("INSERT INTO {ks}.log_positions (log_partition, next_offset, last_timestamp, tenants_ahead) \
                   VALUES (?, ?, ?, ?) USING TIMESTAMP ?"),
                None,
            )
            .await?,

            insert_change: prepare(
                q("INSERT INTO {ks}.changes (log_partition, offset_bucket, log_offset, change_index, envelope) \
                   VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"),
                None,
            )
            .await?,
            select_changes: prepare(
                q("SELECT log_offset, change_index, envelope FROM {ks}.changes \
                   WHERE log_partition = ? AND offset_bucket = ? AND log_offset >= ? AND log_offset < ?"),
                Some(PAGE_SIZE),
            )
            .await?,

            select_pending_header: prepare(
                q("SELECT DISTINCT log_partition, next_offset, base_timestamp, end_timestamp, chunk_count, \
                   total_bytes FROM {ks}.pending_batches WHERE log_partition = ?"),
                None,
            )
            .await?,
            select_pending_chunks: prepare(
                q("SELECT chunk, data FROM {ks}.pending_batches WHERE log_partition = ?"),
                Some(CHUNK_PAGE_SIZE),
            )
            .await?,
            select_pending_writetimes: prepare(
                q("SELECT chunk, WRITETIME(data) FROM {ks}.pending_batches WHERE log_partition = ?"),
                Some(PAGE_SIZE),
            )
            .await?,
            insert_pending_chunk: prepare(
                q("INSERT INTO {ks}.pending_batches (log_partition, chunk, data) VALUES (?, ?, ?) USING TIMESTAMP ?"),
                None,
            )
            .await?,
            insert_pending_header: prepare(
                q("UPDATE {ks}.pending_batches USING TIMESTAMP ? \
                   SET next_offset = ?, base_timestamp = ?, end_timestamp = ?, chunk_count = ?, total_bytes = ? \
                   WHERE log_partition = ?"),
                None,
            )
            .await?,
            delete_pending: prepare(
                q("DELETE FROM {ks}.pending_batches USING TIMESTAMP ? WHERE log_partition = ?"),
                None,
            )
            .await?,
        })
    }
}
