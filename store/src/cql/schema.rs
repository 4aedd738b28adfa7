//! Versioned schema migrations. [`migrate`] creates the keyspace, then applies every numbered
//! migration not yet recorded in `schema_migrations`, in order, recording each once applied.
//!
//! Every DDL statement is `IF NOT EXISTS`, so a migration interrupted half-way (or run by two
//! processes at once) is simply applied again; on an up-to-date keyspace `migrate` issues no
//! schema change at all. A migration is never edited once released: changes are new migrations.
//! Run it from one process at a time where possible (concurrent DDL on Cassandra can briefly
//! disagree on the schema; the driver waits for agreement after each statement).

use super::config::{CqlConfig, MAX_BUCKETS};
use super::unavailable;
use crate::port::{StoreError, StoreResult};
use scylla::client::session::Session;
use std::collections::BTreeSet;

/// One numbered migration: its statements, with `{ks}` standing for the keyspace.
pub struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub statements: &'static [&'static str],
}

/// All migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial layout: bucketed resources and memberships, lookup index, reverse \
                  membership index, log positions, change feed, pending batches",
        statements: &[
            // Fixed at keyspace creation: the bucket counts every stored row depends on.
            "CREATE TABLE IF NOT EXISTS {ks}.store_settings (name text PRIMARY KEY, value bigint)",
            "CREATE TABLE IF NOT EXISTS {ks}.resources (
            tenant text, kind text, bucket int, id text, version bigint, body text,
            PRIMARY KEY ((tenant, kind, bucket), id)
        ) WITH CLUSTERING ORDER BY (id ASC)",
            "CREATE TABLE IF NOT EXISTS {ks}.lookup_index (
            tenant text, kind text, index_name text, index_key text, id text,
            PRIMARY KEY ((tenant, kind, index_name, index_key), id)
        )",
            "CREATE TABLE IF NOT EXISTS {ks}.memberships (
            tenant text, group_id text, bucket int, member_id text, member_kind text, display text,
            PRIMARY KEY ((tenant, group_id, bucket), member_id)
        ) WITH CLUSTERING ORDER BY (member_id ASC)",
            "CREATE TABLE IF NOT EXISTS {ks}.member_of (
            tenant text, member_id text, group_id text,
            PRIMARY KEY ((tenant, member_id), group_id)
        )",
            "CREATE TABLE IF NOT EXISTS {ks}.log_positions (
            log_partition int PRIMARY KEY, next_offset bigint, last_timestamp bigint
        )",
            "CREATE TABLE IF NOT EXISTS {ks}.changes (
            log_partition int, offset_bucket bigint, log_offset bigint, change_index int, envelope blob,
            PRIMARY KEY ((log_partition, offset_bucket), log_offset, change_index)
        )",
            "CREATE TABLE IF NOT EXISTS {ks}.pending_batches (
            log_partition int, chunk int, data blob,
            next_offset bigint static, base_timestamp bigint static, end_timestamp bigint static,
            chunk_count int static, total_bytes bigint static,
            PRIMARY KEY ((log_partition), chunk)
        )",
        ],
    },
    Migration {
        version: 2,
        description: "log positions carry the tenants folded ahead of the watermark",
        statements: &["ALTER TABLE {ks}.log_positions ADD tenants_ahead blob"],
    },
];

/// The bucket counts of a keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub resource_buckets: u32,
    pub member_buckets: u32,
}

const RESOURCE_BUCKETS: &str = "resource_buckets";
const MEMBER_BUCKETS: &str = "member_buckets";

/// Creates the keyspace and applies the missing migrations; returns the keyspace's layout
/// (the configured bucket counts for a new keyspace, the recorded ones otherwise).
pub async fn migrate(session: &Session, config: &CqlConfig) -> StoreResult<Layout> {
    let ks = &config.keyspace;
    super::config::validate_keyspace(ks).map_err(StoreError::Unavailable)?;
    let ddl = |text: String| async move {
        session
            .query_unpaged(text.as_str(), ())
            .await
            .map_err(|error| unavailable(&format!("schema: {text}"), error))
    };
    ddl(format!(
        "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {} AND durable_writes = true",
        config.replication.to_cql()
    ))
    .await?;
    ddl(format!(
        "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (
            version int PRIMARY KEY, description text, applied_at timestamp
        )"
    ))
    .await?;
    let applied = applied_versions(session, ks).await?;
    for migration in MIGRATIONS.iter().filter(|migration| !applied.contains(&migration.version)) {
        tracing::info!(keyspace = %ks, version = migration.version, "CqlMigrationApplying");
        for statement in migration.statements {
            let statement = statement.replace("{ks}", ks);
            // ALTER TABLE .. ADD has no IF NOT EXISTS: a migration interrupted after it must
            // not fail when run again.
            if let Some((table, column)) = added_column(&statement)
                && column_exists(session, ks, table, column).await?
            {
                continue;
            }
            ddl(statement).await?;
        }
        if migration.version == 1 {
            record_layout(session, config).await?;
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.schema_migrations (version, description, applied_at) \
                     VALUES (?, ?, toTimestamp(now()))"
                ),
                (migration.version, migration.description),
            )
            .await
            .map_err(|error| unavailable("schema: record migration", error))?;
    }
    read_layout(session, ks).await
}

/// The table and column of an `ALTER TABLE ks.table ADD column type` statement.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let rest = statement.strip_prefix("ALTER TABLE ")?;
    let (qualified, rest) = rest.split_once(" ADD ")?;
    let table = qualified.rsplit('.').next()?;
    let column = rest.split_whitespace().next()?;
    Some((table, column))
}

async fn column_exists(session: &Session, ks: &str, table: &str, column: &str) -> StoreResult<bool> {
    let rows = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? \
             AND column_name = ?",
            (ks, table, column),
        )
        .await
        .map_err(|error| unavailable("schema: read columns", error))?
        .into_rows_result()
        .map_err(|error| unavailable("schema: read columns", error))?;
    Ok(rows.rows_num() > 0)
}

async fn applied_versions(session: &Session, ks: &str) -> StoreResult<BTreeSet<i32>> {
    let rows = session
        .query_unpaged(format!("SELECT version FROM {ks}.schema_migrations"), ())
        .await
        .map_err(|error| unavailable("schema: read migrations", error))?
        .into_rows_result()
        .map_err(|error| unavailable("schema: read migrations", error))?;
    let mut versions = BTreeSet::new();
    for row in rows.rows::<(i32,)>().map_err(|error| unavailable("schema: read migrations", error))? {
        versions.insert(row.map_err(|error| unavailable("schema: read migrations", error))?.0);
    }
    Ok(versions)
}

/// Records the configured bucket counts unless the keyspace already has some: they are fixed
/// for the keyspace's life.
async fn record_layout(session: &Session, config: &CqlConfig) -> StoreResult<()> {
    let ks = &config.keyspace;
    let existing = read_settings(session, ks).await?;
    for (name, value) in
        [(RESOURCE_BUCKETS, config.resource_buckets), (MEMBER_BUCKETS, config.member_buckets)]
    {
        if existing.iter().any(|(existing, _)| existing == name) {
            continue;
        }
        session
            .query_unpaged(
                format!("INSERT INTO {ks}.store_settings (name, value) VALUES (?, ?)"),
                (name, i64::from(value)),
            )
            .await
            .map_err(|error| unavailable("schema: record layout", error))?;
    }
    Ok(())
}

async fn read_settings(session: &Session, ks: &str) -> StoreResult<Vec<(String, i64)>> {
    let rows = session
        .query_unpaged(format!("SELECT name, value FROM {ks}.store_settings"), ())
        .await
        .map_err(|error| unavailable("schema: read settings", error))?
        .into_rows_result()
        .map_err(|error| unavailable("schema: read settings", error))?;
    let mut settings = Vec::new();
    for row in
        rows.rows::<(String, Option<i64>)>().map_err(|error| unavailable("schema: read settings", error))?
    {
        let (name, value) = row.map_err(|error| unavailable("schema: read settings", error))?;
        settings.push((name, value.unwrap_or_default()));
    }
    Ok(settings)
}

async fn read_layout(session: &Session, ks: &str) -> StoreResult<Layout> {
    let settings = read_settings(session, ks).await?;
    let get = |name: &str| -> StoreResult<u32> {
        let value = settings
            .iter()
            .find(|(setting, _)| setting == name)
            .map(|(_, value)| *value)
            .ok_or_else(|| StoreError::Corrupt(format!("{ks}.store_settings has no {name}")))?;
        u32::try_from(value).ok().filter(|value| (1..=MAX_BUCKETS).contains(value)).ok_or_else(|| {
            StoreError::Corrupt(format!("{ks}.store_settings {name} = {value} is out of range"))
        })
    };
    Ok(Layout { resource_buckets: get(RESOURCE_BUCKETS)?, member_buckets: get(MEMBER_BUCKETS)? })
}
