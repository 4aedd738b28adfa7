//! The store contract: what every adapter of the store ports must do, checked the same way
//! against each (`embedded_contract.rs`, `cql_contract.rs`).
//!
//! Scripted commands are folded through the real projector (`fold_records`) and the store is
//! compared, row by row and page by page, with the core's in-memory reference state
//! ([`MemoryState`]) folded from the same commands. Each check works in its own tenants and
//! log partition ([`Scope`]), so checks can share one database (a CQL keyspace is costly to
//! create) and run concurrently.
//!
//! The fold runs on a blocking thread, as in the projector: the CQL adapter's synchronous
//! writer methods block on the driver and must never run on an async worker.

#![allow(dead_code)] // each test binary uses a different subset

use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::fold::BatchFold;
use scimflow_core::index::IndexName;
use scimflow_core::memory::MemoryState;
use scimflow_core::patch::parse_patch_request;
use scimflow_core::resource::normalize_resource;
use scimflow_core::state::{Member, Mutation, StoredResource};
use scimflow_core::{ResourceKind, SchemaRegistry};
use scimflow_log::LogRecord;
use scimflow_projector::{BatchResult, fold_records};
use scimflow_store::{ChangeRecord, PartitionPosition, StoreReader, StoreWriter, TenantCommit};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// What the contract needs of a store: both ports, shareable with a blocking thread.
pub trait TestStore: StoreWriter + StoreReader + Clone + 'static {}
impl<T: StoreWriter + StoreReader + Clone + 'static> TestStore for T {}

/// The tenants and log partition one check may touch.
#[derive(Debug, Clone)]
pub struct Scope {
    pub tenant: String,
    pub partition: u32,
}

impl Scope {
    pub fn new(tenant: &str, partition: u32) -> Self {
        Scope { tenant: tenant.to_owned(), partition }
    }

    /// Another tenant owned by the same check.
    pub fn other_tenant(&self) -> String {
        format!("{}-other", self.tenant)
    }
}

pub fn registry() -> Arc<SchemaRegistry> {
    static REGISTRY: OnceLock<Arc<SchemaRegistry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Arc::new(SchemaRegistry::standard())).clone()
}

// --- scripted commands ---

pub fn command(tenant: &str, n: usize, kind: ResourceKind, id: &str, action: Action) -> Command {
    Command {
        event_id: format!("{tenant}-e{n}"),
        tenant_id: tenant.into(),
        kind,
        resource_id: id.into(),
        issued_at_ms: 1_700_000_000_000 + n as i64,
        if_match: None,
        action,
        metadata: CommandMetadata::default(),
    }
}

/// Builds commands with consecutive event numbers.
pub struct Script {
    tenant: String,
    pub commands: Vec<Command>,
}

impl Script {
    pub fn new(tenant: &str) -> Self {
        Script { tenant: tenant.to_owned(), commands: Vec::new() }
    }

    fn push(&mut self, kind: ResourceKind, id: &str, action: Action) -> &mut Self {
        let n = self.commands.len() + 1;
        self.commands.push(command(&self.tenant, n, kind, id, action));
        self
    }

    pub fn create(&mut self, kind: ResourceKind, id: &str, body: Value) -> &mut Self {
        let resource = normalize_resource(&registry(), kind, &body).expect("valid resource");
        self.push(kind, id, Action::Create(resource))
    }

    pub fn replace(&mut self, kind: ResourceKind, id: &str, body: Value) -> &mut Self {
        let resource = normalize_resource(&registry(), kind, &body).expect("valid resource");
        self.push(kind, id, Action::Replace(resource))
    }

    pub fn patch(&mut self, kind: ResourceKind, id: &str, body: Value) -> &mut Self {
        self.push(kind, id, Action::Patch(parse_patch_request(&body).expect("valid patch")))
    }

    pub fn delete(&mut self, kind: ResourceKind, id: &str) -> &mut Self {
        self.push(kind, id, Action::Delete)
    }

    pub fn users(&mut self, ids: impl IntoIterator<Item = String>) -> &mut Self {
        for id in ids {
            let body = json!({"userName": format!("name-{id}"), "externalId": format!("Ext-{id}"),
                "emails": [{"value": format!("{id}@Example.org"), "type": "work"}]});
            self.create(ResourceKind::User, &id, body);
        }
        self
    }
}

/// The embedded store's original scenario: users, a group built up by PATCH, a removal, a user
/// deletion while a member, a rename, a rejected duplicate, a nested group; then membership
/// replaced (a clear) and a group deleted.
pub fn scripted_commands(tenant: &str) -> Vec<Command> {
    let mut script = Script::new(tenant);
    for index in 0..50 {
        let body = json!({"userName": format!("user{index}"), "emails": [{"value": format!("U{index}@x.org"), "type": "work"}]});
        script.create(ResourceKind::User, &format!("u{index:03}"), body);
    }
    script.create(ResourceKind::Group, "g1", json!({"displayName": "All", "members": [{"value": "u000"}]}));
    let members: Vec<Value> = (1..40).map(|i| json!({"value": format!("u{i:03}")})).collect();
    script.patch(
        ResourceKind::Group,
        "g1",
        json!({"Operations": [{"op": "add", "path": "members", "value": members}]}),
    );
    script.patch(
        ResourceKind::Group,
        "g1",
        json!({"Operations": [{"op": "remove", "path": "members[value eq \"u005\"]"}]}),
    );
    script.delete(ResourceKind::User, "u007");
    script.patch(
        ResourceKind::User,
        "u008",
        json!({"Operations": [{"op": "replace", "path": "userName", "value": "renamed"}]}),
    );
    // rejected: duplicate userName
    script.create(ResourceKind::User, "dup", json!({"userName": "USER9"}));
    script.create(
        ResourceKind::Group,
        "g2",
        json!({"displayName": "Nested", "members": [{"value": "g1"}, {"value": "u001"}]}),
    );
    script.create(
        ResourceKind::Group,
        "g3",
        json!({"displayName": "Third", "members": [{"value": "u002"}, {"value": "u003"}]}),
    );
    // A clear followed by adds in one command, then a group deletion (a clear of its members).
    script.patch(
        ResourceKind::Group,
        "g1",
        json!({"Operations": [{"op": "replace", "path": "members", "value": [{"value": "u010"}, {"value": "u011"}, {"value": "u002"}]}]}),
    );
    script.delete(ResourceKind::Group, "g3");
    script.replace(
        ResourceKind::Group,
        "g2",
        json!({"displayName": "Nested again", "members": [{"value": "u020"}]}),
    );
    script.commands
}

pub fn records(commands: &[Command], partition: u32, first_offset: u64) -> Vec<LogRecord> {
    commands
        .iter()
        .enumerate()
        .map(|(index, command)| LogRecord {
            partition,
            offset: first_offset + index as u64,
            payload: command.encode(),
        })
        .collect()
}

/// Folds every command one by one into the in-memory reference (which also shows the fold
/// per batch equals the fold per command).
pub fn reference_state(commands: &[Command]) -> MemoryState {
    let registry = registry();
    let mut state = MemoryState::default();
    for command in commands {
        let mut fold = BatchFold::new(&registry, &state);
        let _ = fold.fold(command);
        let mutations = fold.into_mutations();
        state.apply_all(&mutations);
    }
    state
}

// --- running the writer on a blocking thread ---

pub async fn fold<S: TestStore>(store: &S, partition: u32, records: Vec<LogRecord>) -> BatchResult {
    let store = store.clone();
    tokio::task::spawn_blocking(move || fold_records(&registry(), &store, partition, &records))
        .await
        .expect("fold panicked")
        .expect("fold failed")
}

/// Folds `commands` as consecutive log records from `first_offset`, in batches of `batch_size`.
pub async fn fold_in_batches<S: TestStore>(
    store: &S,
    partition: u32,
    commands: &[Command],
    first_offset: u64,
    batch_size: usize,
) -> Vec<ChangeRecord> {
    let mut changes = Vec::new();
    for batch in records(commands, partition, first_offset).chunks(batch_size) {
        changes.extend(fold(store, partition, batch.to_vec()).await.changes);
    }
    changes
}

/// The encoded envelopes of `changes`, in order: what the feed must hold, whatever its keys.
pub fn envelopes(changes: &[ChangeRecord]) -> Vec<Vec<u8>> {
    changes.iter().map(|change| change.envelope.clone()).collect()
}

pub async fn commit<S: TestStore>(store: &S, partition: u32, next_offset: u64, tenants: Vec<TenantCommit>) {
    commit_at(store, partition, PartitionPosition::at(next_offset), tenants, Vec::new()).await
}

pub async fn commit_at<S: TestStore>(
    store: &S,
    partition: u32,
    position: PartitionPosition,
    tenants: Vec<TenantCommit>,
    changes: Vec<ChangeRecord>,
) {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.commit(partition, &position, &tenants, &changes))
        .await
        .expect("commit panicked")
        .expect("commit failed");
}

pub async fn next_offset<S: TestStore>(store: &S, partition: u32) -> u64 {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.next_offset(partition)).await.unwrap().unwrap()
}

pub async fn changes_between<S: TestStore>(
    store: &S,
    partition: u32,
    from: u64,
    to: u64,
) -> Vec<ChangeRecord> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.changes_between(partition, from, to)).await.unwrap().unwrap()
}

// --- comparing with the reference ---

/// Every row of `reference` reads back the same, pages list exactly the reference's rows in id
/// order (also when paged in small steps), and rows the reference does not have are absent.
pub async fn assert_store_matches<S: TestStore>(store: &S, tenant: &str, reference: &MemoryState) {
    for ((kind, id), expected) in &reference.resources {
        let stored = store.resource(tenant, *kind, id).await.unwrap();
        assert_eq!(stored.as_ref(), Some(expected), "{kind:?} {id}");
    }
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let expected: Vec<(String, StoredResource)> = reference
            .resources
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, id), stored)| (id.clone(), stored.clone()))
            .collect();
        let page = store.resources_page(tenant, kind, None, 10_000).await.unwrap();
        assert_eq!(page, expected, "{kind:?} page");
        assert_eq!(all_resources(store, tenant, kind, 7).await, expected, "{kind:?} paged by 7");
        // A store may not keep counts (then the API counts by scanning); one that does is exact.
        if let Some(count) = store.resource_count(tenant, kind).await.unwrap() {
            assert_eq!(count, expected.len() as u64, "{kind:?} count");
        }
    }
    for (group, members) in &reference.members {
        let expected: Vec<Member> = members.values().cloned().collect();
        let page = store.members_page(tenant, group, None, 10_000).await.unwrap();
        assert_eq!(page, expected, "members of {group}");
        assert_eq!(all_members(store, tenant, group, 3).await, expected, "members of {group} paged by 3");
    }
    for (member, groups) in &reference.member_of {
        let stored = store.groups_of(tenant, member).await.unwrap();
        assert_eq!(stored, groups.iter().cloned().collect::<Vec<_>>(), "groups of {member}");
    }
    for ((kind, index, key), ids) in &reference.index {
        let stored = store.index_lookup(tenant, *kind, *index, key).await.unwrap();
        assert_eq!(stored, ids.iter().cloned().collect::<Vec<_>>(), "{kind:?} {index:?} {key}");
    }
    // Rows the reference lacks: every id the script ever touched.
    for (kind, id) in reference.resources.keys() {
        // groups the reference says are empty have no membership rows
        if *kind == ResourceKind::Group && !reference.members.contains_key(id) {
            assert!(store.members_page(tenant, id, None, 10).await.unwrap().is_empty(), "members of {id}");
        }
        if !reference.member_of.contains_key(id) {
            assert!(store.groups_of(tenant, id).await.unwrap().is_empty(), "groups of {id}");
        }
    }
}

pub async fn all_members<S: TestStore>(
    store: &S,
    tenant: &str,
    group: &str,
    page_size: usize,
) -> Vec<Member> {
    let mut all: Vec<Member> = Vec::new();
    loop {
        let after = all.last().map(|member| member.value.clone());
        let page = store.members_page(tenant, group, after.as_deref(), page_size).await.unwrap();
        assert!(page.len() <= page_size);
        let done = page.len() < page_size;
        all.extend(page);
        if done {
            return all;
        }
    }
}

pub async fn all_resources<S: TestStore>(
    store: &S,
    tenant: &str,
    kind: ResourceKind,
    page_size: usize,
) -> Vec<(String, StoredResource)> {
    let mut all: Vec<(String, StoredResource)> = Vec::new();
    loop {
        let after = all.last().map(|(id, _)| id.clone());
        let page = store.resources_page(tenant, kind, after.as_deref(), page_size).await.unwrap();
        assert!(page.len() <= page_size);
        let done = page.len() < page_size;
        all.extend(page);
        if done {
            return all;
        }
    }
}

// --- the checks ---

/// Folding in batches of any size gives the reference state, and the position follows.
pub async fn folds_like_the_reference_in_any_batching<S: TestStore>(store: &S, scope: &Scope) {
    for (round, batch_size) in [1, 7, 1000].into_iter().enumerate() {
        let tenant = format!("{}-b{batch_size}", scope.tenant);
        let partition = scope.partition + round as u32;
        let commands = scripted_commands(&tenant);
        let reference = reference_state(&commands);
        fold_in_batches(store, partition, &commands, 0, batch_size).await;
        assert_eq!(next_offset(store, partition).await, commands.len() as u64);
        assert_store_matches(store, &tenant, &reference).await;
    }
}

/// Nothing of one tenant is visible to another, and equal ids in two tenants are independent.
pub async fn tenants_never_see_each_others_rows<S: TestStore>(store: &S, scope: &Scope) {
    let (acme, globex) = (scope.tenant.as_str(), scope.other_tenant());
    let first = scripted_commands(acme);
    fold(store, scope.partition, records(&first, scope.partition, 0)).await;
    assert!(store.resource(&globex, ResourceKind::User, "u001").await.unwrap().is_none());
    assert!(store.resources_page(&globex, ResourceKind::User, None, 100).await.unwrap().is_empty());
    assert!(store.members_page(&globex, "g1", None, 100).await.unwrap().is_empty());
    assert!(store.groups_of(&globex, "u010").await.unwrap().is_empty());
    assert!(
        store
            .index_lookup(&globex, ResourceKind::User, IndexName::UserName, "user1")
            .await
            .unwrap()
            .is_empty()
    );
    let second = scripted_commands(&globex);
    let result = fold(store, scope.partition, records(&second, scope.partition, first.len() as u64)).await;
    assert!(result.outcomes.iter().filter(|outcome| outcome.result.is_ok()).count() > 50);
    assert_store_matches(store, acme, &reference_state(&first)).await;
    assert_store_matches(store, &globex, &reference_state(&second)).await;
}

/// The change feed holds the changes of accepted commands only, in order, under the feed key
/// of their commit (the offset below its watermark).
pub async fn accepted_commands_publish_changes_and_rejected_ones_do_not<S: TestStore>(
    store: &S,
    scope: &Scope,
) {
    use prost::Message;
    let commands = scripted_commands(&scope.tenant);
    let result = fold(store, scope.partition, records(&commands, scope.partition, 100)).await;
    let rejected: Vec<_> =
        result.outcomes.iter().filter(|o| o.result.is_err()).map(|o| o.event_id.clone()).collect();
    assert_eq!(rejected.len(), 1, "only the duplicate userName is rejected");
    let watermark = 100 + commands.len() as u64;
    let feed = changes_between(store, scope.partition, 0, watermark).await;
    assert_eq!(envelopes(&feed), envelopes(&result.changes));
    for (index, change) in feed.iter().enumerate() {
        assert_eq!((change.offset, change.index), (watermark - 1, index as u32), "keyed by the commit");
    }
    for (change, folded) in feed.iter().zip(&result.changes) {
        let envelope = scimflow_proto::ChangeEnvelope::decode(change.envelope.as_slice()).unwrap();
        assert_eq!(envelope.change_id, format!("{}/{}", envelope.command_event_id, folded.index));
        assert!(!rejected.contains(&envelope.command_event_id));
    }
    // A range between two watermarks holds the commits that moved between them.
    assert_eq!(changes_between(store, scope.partition, watermark - 1, watermark).await, feed);
    assert!(changes_between(store, scope.partition, 0, watermark - 1).await.is_empty());
    assert!(changes_between(store, scope.partition, watermark, watermark + 10).await.is_empty());
    assert!(changes_between(store, scope.partition + 1, 0, 1000).await.is_empty(), "other partition");
}

/// A 1,000-member group pages in member-id order with any page size and `after` anywhere,
/// and replacing its members (a clear) drops every membership and reverse row.
pub async fn large_groups_page_in_member_order_and_clear<S: TestStore>(store: &S, scope: &Scope) {
    let tenant = &scope.tenant;
    let mut script = Script::new(tenant);
    let ids: Vec<String> = (0..1000).map(|i| format!("m{:04}", (i * 7919) % 1000)).collect();
    script.users(ids.iter().cloned());
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    script.create(ResourceKind::Group, "big", json!({"displayName": "Big", "members": members}));
    script.create(
        ResourceKind::Group,
        "small",
        json!({"displayName": "Small", "members": [{"value": "m0001"}]}),
    );
    fold_in_batches(store, scope.partition, &script.commands, 0, 500).await;
    let reference = reference_state(&script.commands);
    let expected = reference.members_of("big");
    assert_eq!(expected.len(), 1000);
    assert_eq!(all_members(store, tenant, "big", 37).await, expected, "paged by 37");
    assert_eq!(all_members(store, tenant, "big", 1).await.len(), 1000, "paged by 1");
    // `after` between ids, before all and after all.
    let page = store.members_page(tenant, "big", Some("m0499x"), 5).await.unwrap();
    assert_eq!(page, expected[500..505]);
    assert_eq!(store.members_page(tenant, "big", Some(""), 2).await.unwrap(), expected[..2]);
    assert!(store.members_page(tenant, "big", Some("m0999"), 10).await.unwrap().is_empty());
    assert_eq!(store.groups_of(tenant, "m0001").await.unwrap(), ["big", "small"]);
    // Replace all members: one clear of 1,000 memberships, then one add.
    let first_offset = script.commands.len() as u64;
    let mut more = Script::new(tenant);
    more.commands = script.commands.clone();
    more.patch(
        ResourceKind::Group,
        "big",
        json!({"Operations": [{"op": "replace", "path": "members", "value": [{"value": "m0500"}]}]}),
    );
    fold_in_batches(store, scope.partition, &more.commands[first_offset as usize..], first_offset, 10).await;
    let reference = reference_state(&more.commands);
    assert_eq!(reference.members_of("big").len(), 1);
    assert_store_matches(store, tenant, &reference).await;
    assert_eq!(store.groups_of(tenant, "m0001").await.unwrap(), ["small"]);
    assert!(store.groups_of(tenant, "m0002").await.unwrap().is_empty());
}

/// Resources of a kind page in id order, across however the store partitions them.
pub async fn resources_page_in_id_order<S: TestStore>(store: &S, scope: &Scope) {
    let tenant = &scope.tenant;
    let mut script = Script::new(tenant);
    script.users((0..300).map(|i| format!("{:08x}", (i as u64 * 2_654_435_761) % 4_294_967_296)));
    fold_in_batches(store, scope.partition, &script.commands, 0, 300).await;
    let reference = reference_state(&script.commands);
    let expected: Vec<String> = reference.resources.keys().map(|(_, id)| id.clone()).collect();
    for page_size in [1, 7, 64, 299, 300, 301] {
        let ids: Vec<String> = all_resources(store, tenant, ResourceKind::User, page_size)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, expected, "page size {page_size}");
    }
    let after = &expected[150];
    let page = store.resources_page(tenant, ResourceKind::User, Some(after), 10).await.unwrap();
    assert_eq!(
        page.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        expected[151..161].iter().collect::<Vec<_>>()
    );
    assert!(store.resources_page(tenant, ResourceKind::Group, None, 10).await.unwrap().is_empty());
    assert!(store.resources_page(tenant, ResourceKind::User, None, 0).await.unwrap().is_empty());
}

/// Mutations of one batch that touch the same row apply in order, as the fold emitted them.
pub async fn mutations_on_one_row_apply_in_batch_order<S: TestStore>(store: &S, scope: &Scope) {
    let tenant = &scope.tenant;
    let user = ResourceKind::User;
    let member = |id: &str| Member { value: id.into(), kind: user, display: Some(format!("Name {id}")) };
    let stored = |version: u64| StoredResource { resource: json!({"id": "r", "v": version}), version };
    let add = |group: &str, id: &str| Mutation::AddMember { group_id: group.into(), member: member(id) };
    let remove =
        |group: &str, id: &str| Mutation::RemoveMember { group_id: group.into(), member_id: id.into() };
    let clear = |group: &str| Mutation::ClearMembers { group_id: group.into() };
    let index = |put: bool, key: &str, id: &str| {
        let (kind, index, key, id) = (user, IndexName::EmailValue, key.to_owned(), id.to_owned());
        if put {
            Mutation::PutIndex { kind, index, key, id }
        } else {
            Mutation::DeleteIndex { kind, index, key, id }
        }
    };
    let batches = vec![
        vec![
            Mutation::PutResource { kind: user, id: "r".into(), stored: stored(1) },
            Mutation::PutResource { kind: user, id: "r".into(), stored: stored(2) },
            Mutation::PutResource { kind: user, id: "gone".into(), stored: stored(1) },
            Mutation::DeleteResource { kind: user, id: "gone".into() },
            index(true, "k", "a"),
            index(false, "k", "a"),
            index(false, "k2", "b"),
            index(true, "k2", "b"),
            add("g", "a"),
            remove("g", "a"),
            remove("g", "b"),
            add("g", "b"),
            add("h", "x"),
            clear("h"),
            clear("i"),
            add("i", "y"),
            add("j", "z"),
            clear("j"),
            add("j", "z2"),
            clear("j"),
            add("j", "z3"),
        ],
        vec![
            // The next batch: rows written earlier are overwritten and deleted in order too.
            Mutation::DeleteResource { kind: user, id: "r".into() },
            Mutation::PutResource { kind: user, id: "r".into(), stored: stored(3) },
            index(false, "k2", "b"),
            add("g", "c"),
            clear("g"),
            add("g", "b"),
            remove("j", "z3"),
            add("j", "z"),
        ],
    ];
    let mut reference = MemoryState::default();
    for (offset, mutations) in batches.into_iter().enumerate() {
        reference.apply_all(&mutations);
        let commits = vec![TenantCommit { tenant_id: tenant.clone(), mutations }];
        commit(store, scope.partition, offset as u64 + 1, commits).await;
        assert_store_matches(store, tenant, &reference).await;
    }
    assert_eq!(store.resource(tenant, user, "r").await.unwrap(), Some(stored(3)));
    assert!(store.resource(tenant, user, "gone").await.unwrap().is_none());
    assert!(store.index_lookup(tenant, user, IndexName::EmailValue, "k").await.unwrap().is_empty());
    assert!(store.index_lookup(tenant, user, IndexName::EmailValue, "k2").await.unwrap().is_empty());
    let ids = |members: Vec<Member>| members.into_iter().map(|m| m.value).collect::<Vec<_>>();
    assert_eq!(ids(store.members_page(tenant, "g", None, 10).await.unwrap()), ["b"]);
    assert!(store.members_page(tenant, "h", None, 10).await.unwrap().is_empty());
    assert_eq!(ids(store.members_page(tenant, "i", None, 10).await.unwrap()), ["y"]);
    assert_eq!(ids(store.members_page(tenant, "j", None, 10).await.unwrap()), ["z"]);
    assert!(store.groups_of(tenant, "z2").await.unwrap().is_empty());
    assert!(store.groups_of(tenant, "x").await.unwrap().is_empty());
    assert_eq!(store.groups_of(tenant, "b").await.unwrap(), ["g"]);
    let members = store.members_page(tenant, "g", None, 10).await.unwrap();
    assert_eq!(members[0].display.as_deref(), Some("Name b"), "display is kept");
}

/// Committing the same batch again (a projector that crashed after its commit but before
/// acknowledging it) leaves the same state.
pub async fn recommitting_a_batch_is_idempotent<S: TestStore>(store: &S, scope: &Scope) {
    let tenant = &scope.tenant;
    let commands = scripted_commands(tenant);
    let reference = reference_state(&commands);
    let registry = registry();
    // Fold once to get the batch's mutations, then commit them twice.
    let mutations = {
        let mut state = MemoryState::default();
        let mut fold = BatchFold::new(&registry, &state);
        for command in &commands {
            let _ = fold.fold(command);
        }
        let mutations = fold.into_mutations();
        state.apply_all(&mutations);
        assert_eq!(state, reference);
        mutations
    };
    let next = commands.len() as u64;
    for _ in 0..2 {
        commit(
            store,
            scope.partition,
            next,
            vec![TenantCommit { tenant_id: tenant.clone(), mutations: mutations.clone() }],
        )
        .await;
        assert_eq!(next_offset(store, scope.partition).await, next);
        assert_store_matches(store, tenant, &reference).await;
    }
}

/// A position keeps the tenants folded ahead of its watermark until the watermark passes them,
/// and each commit's changes are keyed by its watermark: the range between two watermarks is
/// the commits between them, whichever offsets their commands had.
pub async fn positions_keep_the_tenants_folded_ahead<S: TestStore>(store: &S, scope: &Scope) {
    use prost::Message;
    let change = |id: &str| {
        let envelope = scimflow_proto::ChangeEnvelope { change_id: id.into(), ..Default::default() };
        ChangeRecord { offset: 0, index: 0, envelope: envelope.encode_to_vec() }
    };
    let partition = scope.partition;
    let first = PartitionPosition::at(0).advanced(2, [("b", 9), ("c", 4)]);
    commit_at(store, partition, first.clone(), Vec::new(), vec![change("b-8"), change("a-0")]).await;
    let read = |store: &S| {
        let store = store.clone();
        async move { tokio::task::spawn_blocking(move || store.position(partition)).await.unwrap().unwrap() }
    };
    assert_eq!(read(store).await, first);
    assert!(read(store).await.is_folded("b", 8) && !read(store).await.is_folded("a", 2));
    let second = first.advanced(5, [("a", 5)]);
    assert_eq!(second.tenants_ahead.len(), 1, "c's entry is passed by the watermark");
    commit_at(store, partition, second.clone(), Vec::new(), vec![change("a-2")]).await;
    assert_eq!(read(store).await, second);
    let ids = |changes: Vec<ChangeRecord>| {
        changes
            .iter()
            .map(|c| scimflow_proto::ChangeEnvelope::decode(c.envelope.as_slice()).unwrap().change_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(changes_between(store, partition, 0, 2).await), ["b-8", "a-0"]);
    assert_eq!(ids(changes_between(store, partition, 2, 5).await), ["a-2"]);
    assert_eq!(ids(changes_between(store, partition, 0, 5).await), ["b-8", "a-0", "a-2"]);
    // Everything folded: nobody ahead any more.
    commit_at(store, partition, second.advanced(9, []), Vec::new(), Vec::new()).await;
    assert_eq!(read(store).await, PartitionPosition::at(9));
}

/// A batch whose commands were all rejected or poison still advances the position.
pub async fn empty_batches_advance_the_position<S: TestStore>(store: &S, scope: &Scope) {
    assert_eq!(next_offset(store, scope.partition).await, 0);
    let poison = LogRecord { partition: scope.partition, offset: 0, payload: b"not a command".to_vec() };
    let result = fold(store, scope.partition, vec![poison]).await;
    assert_eq!(result.poison, 1);
    assert_eq!(next_offset(store, scope.partition).await, 1);
    commit(store, scope.partition, 5, Vec::new()).await;
    assert_eq!(next_offset(store, scope.partition).await, 5);
}
