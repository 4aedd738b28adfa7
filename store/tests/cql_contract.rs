//! The store contract (`contract/mod.rs`) against the CQL store on a real cluster, plus what only
//! the CQL store has: recovery of an interrupted (non-atomic) commit, versioned migrations, a
//! keyspace-fixed bucket layout, and the view's read cache. Ends with rough timings.
//!
//! Needs `SCIMFLOW_CQL_NODES` (e.g. `deploy/local/services.sh up cassandra` prints it). Unset:
//! every test prints `SKIPPED` and passes. Set: the tests must reach the cluster, or fail.
//! All tests of one run share a fresh keyspace `scimflow_test_<time>_<pid>`; each check works in
//! its own tenants and log partitions. Keyspaces of runs older than an hour are dropped.

mod contract;

use contract::Scope;
use scimflow_core::ResourceKind;
use scimflow_core::state::{Member, Mutation, StoredResource};
use scimflow_store::cql::{CqlConfig, CqlStore, CrashPoint};
use scimflow_store::{
    ChangeRecord, PartitionPosition, StoreError, StoreReader, StoreResult, StoreWriter, TenantCommit,
    TenantView,
};
use serde_json::json;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PREFIX: &str = "scimflow_test_";

fn run_keyspace() -> &'static str {
    static KEYSPACE: OnceLock<String> = OnceLock::new();
    KEYSPACE.get_or_init(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        format!("{PREFIX}{now}_{}", std::process::id())
    })
}

fn config() -> Option<CqlConfig> {
    match CqlConfig::from_env() {
        Ok(Some(config)) => Some(config),
        Ok(None) => {
            eprintln!(
                "SKIPPED: SCIMFLOW_CQL_NODES is not set, so the CQL store is not tested. Start a node with \
                 `deploy/local/services.sh up cassandra` and export SCIMFLOW_CQL_NODES=127.0.0.1:9042."
            );
            None
        }
        Err(error) => panic!("invalid SCIMFLOW_CQL_* configuration: {error}"),
    }
}

/// Connects to `keyspace` (migrating it if new). Connections are serialised so that the first
/// one creates the keyspace alone.
async fn connect(mut config: CqlConfig, keyspace: &str) -> CqlStore {
    static CONNECTING: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);
    let mut cleaned = CONNECTING.lock().await;
    config.keyspace = keyspace.to_owned();
    let nodes = config.nodes.join(",");
    let store = CqlStore::connect(config).await.unwrap_or_else(|error| {
        panic!("SCIMFLOW_CQL_NODES={nodes} is set, but the CQL store cannot be reached: {error}")
    });
    if !*cleaned {
        drop_stale_keyspaces(&store).await;
        *cleaned = true;
    }
    store
}

/// The run's shared store, or `None` (skip) when no cluster is configured.
async fn store() -> Option<CqlStore> {
    Some(connect(config()?, run_keyspace()).await)
}

async fn drop_stale_keyspaces(store: &CqlStore) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let rows = store
        .session()
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    for row in rows.rows::<(String,)>().unwrap() {
        let (name,) = row.unwrap();
        let created = name.strip_prefix(PREFIX).and_then(|rest| rest.split('_').next()?.parse::<u64>().ok());
        if created.is_some_and(|created| created + 3600 < now) {
            let _ = store.session().query_unpaged(format!("DROP KEYSPACE IF EXISTS {name}"), ()).await;
        }
    }
}

macro_rules! contract_tests {
    ($($check:ident: $partition:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let Some(store) = store().await else { return };
            contract::$check(&store, &Scope::new(stringify!($check), $partition)).await;
        }
    )*};
}

// Partitions are spaced so that checks using several (`+ round`) never meet.
contract_tests!(
    folds_like_the_reference_in_any_batching: 10,
    tenants_never_see_each_others_rows: 20,
    accepted_commands_publish_changes_and_rejected_ones_do_not: 30,
    large_groups_page_in_member_order_and_clear: 40,
    resources_page_in_id_order: 50,
    mutations_on_one_row_apply_in_batch_order: 60,
    recommitting_a_batch_is_idempotent: 70,
    empty_batches_advance_the_position: 80,
    positions_keep_the_tenants_folded_ahead: 90,
);

/// A writer that dies at `crash` in its commit (for [`contract::fold`]).
#[derive(Clone)]
struct Crashing {
    store: CqlStore,
    crash: CrashPoint,
}

impl StoreWriter for Crashing {
    fn tenant_view(&self, tenant_id: &str) -> StoreResult<Box<dyn TenantView + '_>> {
        self.store.tenant_view(tenant_id)
    }
    fn position(&self, partition: u32) -> StoreResult<PartitionPosition> {
        self.store.position(partition)
    }
    fn commit(
        &self,
        partition: u32,
        position: &PartitionPosition,
        tenants: &[TenantCommit],
        changes: &[ChangeRecord],
    ) -> StoreResult<()> {
        let handle = tokio::runtime::Handle::current();
        handle.block_on(self.store.commit_until_crash(partition, position, tenants, changes, self.crash))
    }
    fn changes_between(&self, partition: u32, from: u64, to: u64) -> StoreResult<Vec<ChangeRecord>> {
        self.store.changes_between(partition, from, to)
    }
}

#[async_trait::async_trait]
impl StoreReader for Crashing {
    async fn resource(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<StoredResource>> {
        self.store.resource(tenant_id, kind, id).await
    }
    async fn index_lookup(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        index: scimflow_core::index::IndexName,
        key: &str,
    ) -> StoreResult<Vec<String>> {
        self.store.index_lookup(tenant_id, kind, index, key).await
    }
    async fn groups_of(&self, tenant_id: &str, member_id: &str) -> StoreResult<Vec<String>> {
        self.store.groups_of(tenant_id, member_id).await
    }
    async fn members_page(
        &self,
        tenant_id: &str,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Member>> {
        self.store.members_page(tenant_id, group_id, after, limit).await
    }
    async fn resources_page(
        &self,
        tenant_id: &str,
        kind: ResourceKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoredResource)>> {
        self.store.resources_page(tenant_id, kind, after, limit).await
    }
}

/// The projector dies in the middle of committing a batch, at every step of the commit; after a
/// restart the store holds exactly the reference state of all commands (none folded twice,
/// none lost), the change feed is complete, and folding goes on normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_commit_is_completed_before_anything_new_is_folded() {
    let Some(store) = store().await else { return };
    let crashes = [
        ("header", CrashPoint::BeforeIntentHeader),
        ("norows", CrashPoint::AfterSomeRows { keep_one_in: 0 }),
        ("allrows", CrashPoint::AfterSomeRows { keep_one_in: 1 }),
        ("half", CrashPoint::AfterSomeRows { keep_one_in: 2 }),
        ("third", CrashPoint::AfterSomeRows { keep_one_in: 3 }),
        ("noclears", CrashPoint::AfterSomeClears { buckets: 0 }),
        ("someclears", CrashPoint::AfterSomeClears { buckets: 5 }),
        ("position", CrashPoint::BeforeIntentDelete),
    ];
    let mut partition = 100;
    for (name, crash) in crashes {
        partition += 1;
        let tenant = format!("crash-{name}");
        let commands = contract::scripted_commands(&tenant);
        let (first, second) = commands.split_at(50);
        let first_changes = contract::fold_in_batches(&store, partition, first, 0, 50).await;
        let crashing = Crashing { store: store.clone(), crash };
        let died = contract::fold(&crashing, partition, contract::records(second, partition, 50)).await;

        // Restart: a new process, a new session.
        let restarted = connect(config().unwrap(), run_keyspace()).await;
        let next = contract::next_offset(&restarted, partition).await;
        let second_changes = if matches!(crash, CrashPoint::BeforeIntentHeader) {
            // The batch never began: it is folded again, against untouched rows.
            assert_eq!(next, 50, "{name}");
            contract::fold_in_batches(&restarted, partition, second, 50, 1000).await
        } else {
            assert_eq!(next, commands.len() as u64, "{name}: the interrupted batch counts as committed");
            died.changes
        };
        contract::assert_store_matches(&restarted, &tenant, &contract::reference_state(&commands)).await;
        let feed = contract::changes_between(&restarted, partition, 0, commands.len() as u64).await;
        let expected = [first_changes, second_changes].concat();
        assert_eq!(contract::envelopes(&feed), contract::envelopes(&expected), "{name}: change feed");

        // Business as usual afterwards (timestamps continue above the replayed ones).
        let mut more = contract::Script::new(&tenant);
        more.commands = commands.clone();
        more.create(ResourceKind::User, "late", json!({"userName": "late"}));
        more.patch(
            ResourceKind::Group,
            "g1",
            json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": "late"}]}]}),
        );
        more.patch(
            ResourceKind::Group,
            "g1",
            json!({"Operations": [{"op": "remove", "path": "members[value eq \"u010\"]"}]}),
        );
        let tail = &more.commands[commands.len()..];
        contract::fold_in_batches(&restarted, partition, tail, commands.len() as u64, 10).await;
        contract::assert_store_matches(&restarted, &tenant, &contract::reference_state(&more.commands)).await;
    }
}

/// A commit that finds an interrupted batch does not apply its own (folded against half-written
/// rows): it completes the old one and fails, so the projector folds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_over_an_interrupted_batch_is_refused() {
    let Some(store) = store().await else { return };
    let (tenant, partition) = ("refused", 200);
    let commands = contract::scripted_commands(tenant);
    let crashing = Crashing { store: store.clone(), crash: CrashPoint::AfterSomeRows { keep_one_in: 2 } };
    contract::fold(&crashing, partition, contract::records(&commands, partition, 0)).await;
    let late = TenantCommit {
        tenant_id: tenant.into(),
        mutations: vec![Mutation::DeleteResource { kind: ResourceKind::User, id: "u001".into() }],
    };
    let refused = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.commit(partition, &PartitionPosition::at(999), &[late], &[])
        })
        .await
        .unwrap()
    };
    assert!(
        matches!(refused, Err(StoreError::Unavailable(ref message)) if message.contains("fold again")),
        "{refused:?}"
    );
    assert_eq!(contract::next_offset(&store, partition).await, commands.len() as u64);
    contract::assert_store_matches(&store, tenant, &contract::reference_state(&commands)).await;
}

/// An intent larger than one chunk (here ~2.5 MB in 5 chunks) is reassembled and replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_interrupted_batch_is_replayed_from_several_chunks() {
    let Some(store) = store().await else { return };
    let (tenant, partition) = ("large", 210);
    let filler = "x".repeat(2400);
    let mutations: Vec<Mutation> = (0..1000)
        .map(|i| Mutation::PutResource {
            kind: ResourceKind::User,
            id: format!("big{i:04}"),
            stored: StoredResource { resource: json!({"i": i, "filler": filler}), version: i },
        })
        .collect();
    let changes: Vec<ChangeRecord> =
        (0..10).map(|i| ChangeRecord { offset: i, index: 0, envelope: vec![i as u8; 1000] }).collect();
    let commits = [TenantCommit { tenant_id: tenant.into(), mutations }];
    let crash = CrashPoint::AfterSomeRows { keep_one_in: 0 };
    // With a tenant folded ahead of the watermark: the intent carries it too.
    let position = PartitionPosition::at(0).advanced(10, [("ahead", 25)]);
    store.commit_until_crash(partition, &position, &commits, &changes, crash).await.unwrap();
    assert!(store.resource(tenant, ResourceKind::User, "big0000").await.unwrap().is_none(), "no row yet");
    assert_eq!(store.recover_partition(partition).await.unwrap(), position);
    let page = contract::all_resources(&store, tenant, ResourceKind::User, 400).await;
    assert_eq!(page.len(), 1000);
    assert!(
        page.iter()
            .enumerate()
            .all(|(i, (id, stored))| *id == format!("big{i:04}") && stored.version == i as u64)
    );
    let feed = store.changes_for_offsets(partition, 0, 10).await.unwrap();
    assert_eq!(contract::envelopes(&feed), contract::envelopes(&changes));
    assert!(feed.iter().enumerate().all(|(i, change)| (change.offset, change.index) == (9, i as u32)));
}

/// Migrations are recorded once and re-running them changes nothing; the bucket layout is the
/// one the keyspace was created with, whatever a later configuration says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_the_layout_is_fixed_at_creation() {
    let Some(mut config) = config() else { return };
    let keyspace = format!("{}_layout", run_keyspace());
    config.resource_buckets = 3;
    config.member_buckets = 2;
    let store = connect(config.clone(), &keyspace).await;
    assert_eq!((store.layout().resource_buckets, store.layout().member_buckets), (3, 2));
    config.resource_buckets = 64;
    config.member_buckets = 16;
    let again = connect(config.clone(), &keyspace).await;
    assert_eq!((again.layout().resource_buckets, again.layout().member_buckets), (3, 2));
    let versions = |store: CqlStore| {
        let keyspace = keyspace.clone();
        async move {
            let mut versions = store
                .session()
                .query_unpaged(format!("SELECT version FROM {keyspace}.schema_migrations"), ())
                .await
                .unwrap()
                .into_rows_result()
                .unwrap()
                .rows::<(i32,)>()
                .unwrap()
                .map(|row| row.unwrap().0)
                .collect::<Vec<_>>();
            versions.sort_unstable();
            versions
        }
    };
    assert_eq!(versions(again.clone()).await, [1, 2]);
    // A migration interrupted after its ALTER (the column is there, the version not recorded)
    // completes when run again.
    again
        .session()
        .query_unpaged(format!("DELETE FROM {keyspace}.schema_migrations WHERE version = 2"), ())
        .await
        .unwrap();
    let again = connect(config.clone(), &keyspace).await;
    assert_eq!(versions(again.clone()).await, [1, 2]);
    // The contract holds with very few buckets too (many rows per bucket, many refills).
    contract::large_groups_page_in_member_order_and_clear(&again, &Scope::new("few-buckets", 1)).await;
    contract::resources_page_in_id_order(&again, &Scope::new("few-buckets-r", 2)).await;
    again.session().query_unpaged(format!("DROP KEYSPACE {keyspace}"), ()).await.unwrap();
}

/// A view answers a repeated read from its cache: the fold asks for the same rows many times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_reads_each_row_once() {
    let Some(store) = store().await else { return };
    let tenant = "cached";
    let stored = StoredResource { resource: json!({"userName": "c"}), version: 1 };
    let put = Mutation::PutResource { kind: ResourceKind::User, id: "c1".into(), stored: stored.clone() };
    contract::commit(&store, 300, 1, vec![TenantCommit { tenant_id: tenant.into(), mutations: vec![put] }])
        .await;
    let keyspace = store.keyspace().to_owned();
    tokio::task::spawn_blocking(move || {
        let handle = tokio::runtime::Handle::current();
        let view = store.tenant_view(tenant).unwrap();
        assert_eq!(view.resource(ResourceKind::User, "c1"), Some(stored.clone()));
        // Remove the row behind the view's back: a cached view still answers as before.
        let delete = format!("DELETE FROM {keyspace}.resources WHERE tenant = 'cached' AND kind = 'User' AND bucket = ? AND id = 'c1'");
        let bucket = scimflow_store::cql::bucket_of("c1", store.layout().resource_buckets);
        handle.block_on(store.session().query_unpaged(delete, (bucket,))).unwrap();
        assert_eq!(view.resource(ResourceKind::User, "c1"), Some(stored));
        assert!(view.failure().is_none());
        assert_eq!(store.tenant_view(tenant).unwrap().resource(ResourceKind::User, "c1"), None);
    })
    .await
    .unwrap();
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time<T>(future: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let value = future.await;
    (value, start.elapsed())
}

/// Rough timings on the configured cluster (printed; bounds are only sanity limits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timings() {
    let Some(store) = store().await else { return };
    let (tenant, partition) = ("timed", 400);
    let user = |i: usize| StoredResource {
        resource: json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": format!("t{i:04}"),
            "userName": format!("timed-user-{i}@example.org"), "name": {"givenName": "Timed", "familyName": format!("User {i}")},
            "emails": [{"value": format!("timed-user-{i}@example.org"), "type": "work", "primary": true}], "active": true}),
        version: 1,
    };
    let puts: Vec<Mutation> = (0..1000)
        .map(|i| Mutation::PutResource { kind: ResourceKind::User, id: format!("t{i:04}"), stored: user(i) })
        .collect();
    let (_, commit_puts) = time(contract::commit(
        &store,
        partition,
        1,
        vec![TenantCommit { tenant_id: tenant.into(), mutations: puts }],
    ))
    .await;
    let adds: Vec<Mutation> = (0..1000)
        .map(|i| Mutation::AddMember {
            group_id: "tg".into(),
            member: Member { value: format!("t{i:04}"), kind: ResourceKind::User, display: None },
        })
        .collect();
    let (_, commit_adds) = time(contract::commit(
        &store,
        partition,
        2,
        vec![TenantCommit { tenant_id: tenant.into(), mutations: adds }],
    ))
    .await;

    let mut script = contract::Script::new("timed-fold");
    script.users((0..1000).map(|i| format!("f{i:04}")));
    let (_, fold_creates) =
        time(contract::fold_in_batches(&store, partition + 1, &script.commands, 0, 1000)).await;

    let (mut page100, mut page37, mut resources100, mut point) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..30 {
        let after = format!("t{:04}", round * 30);
        let (page, elapsed) = time(store.members_page(tenant, "tg", Some(&after), 100)).await;
        assert_eq!(page.unwrap().len(), 100);
        page100.push(elapsed);
        let (page, elapsed) = time(store.members_page(tenant, "tg", Some(&after), 37)).await;
        assert_eq!(page.unwrap().len(), 37);
        page37.push(elapsed);
        let (page, elapsed) = time(store.resources_page(tenant, ResourceKind::User, Some(&after), 100)).await;
        assert_eq!(page.unwrap().len(), 100);
        resources100.push(elapsed);
        let (row, elapsed) = time(store.resource(tenant, ResourceKind::User, &after)).await;
        assert!(row.unwrap().is_some());
        point.push(elapsed);
    }
    let clear = Mutation::ClearMembers { group_id: "tg".into() };
    let (_, commit_clear) = time(contract::commit(
        &store,
        partition,
        3,
        vec![TenantCommit { tenant_id: tenant.into(), mutations: vec![clear] }],
    ))
    .await;
    assert!(store.members_page(tenant, "tg", None, 10).await.unwrap().is_empty());
    assert!(store.groups_of(tenant, "t0001").await.unwrap().is_empty());

    let layout = store.layout();
    eprintln!(
        "CQL timings ({} resource / {} member buckets):",
        layout.resource_buckets, layout.member_buckets
    );
    eprintln!("  commit 1,000 PutResource (~450 B bodies)       {commit_puts:?}");
    eprintln!("  commit 1,000 AddMember (2,000 rows)            {commit_adds:?}");
    eprintln!("  commit ClearMembers of a 1,000-member group    {commit_clear:?}");
    eprintln!("  fold + commit 1,000 user creates (one batch)   {fold_creates:?}");
    eprintln!("  members_page(100), median of 30               {:?}", median(page100));
    eprintln!("  members_page(37), median of 30                {:?}", median(page37));
    eprintln!("  resources_page(100), median of 30             {:?}", median(resources100));
    eprintln!("  resource point read, median of 30             {:?}", median(point));
    assert!(commit_puts < Duration::from_secs(60));
}
