//! The fold: decisions (uniqueness, existence, preconditions, membership deltas), determinism,
//! batch equivalence, and cost independent of group size.

use proptest::prelude::*;
use scimflow_core::change::ChangeBody;
use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::decide::decide;
use scimflow_core::fold::BatchFold;
use scimflow_core::index::IndexName;
use scimflow_core::memory::MemoryState;
use scimflow_core::patch::parse_patch_request;
use scimflow_core::resource::normalize_resource;
use scimflow_core::state::{StateView, StoredResource};
use scimflow_core::{ResourceKind, SchemaRegistry};
use serde_json::{Value, json};
use std::cell::Cell;

struct Tenant {
    registry: SchemaRegistry,
    state: MemoryState,
    clock: i64,
}

impl Tenant {
    fn new() -> Self {
        Tenant {
            registry: SchemaRegistry::standard(),
            state: MemoryState::default(),
            clock: 1_700_000_000_000,
        }
    }

    fn command(&mut self, kind: ResourceKind, id: &str, action: Action) -> Command {
        self.clock += 1;
        Command {
            event_id: format!("event-{}", self.clock),
            tenant_id: "tenant-a".into(),
            kind,
            resource_id: id.into(),
            issued_at_ms: self.clock,
            if_match: None,
            action,
            metadata: CommandMetadata::default(),
        }
    }

    fn create(&mut self, kind: ResourceKind, id: &str, body: Value) -> Command {
        let resource = normalize_resource(&self.registry, kind, &body).expect("valid body");
        self.command(kind, id, Action::Create(resource))
    }

    fn patch(&mut self, kind: ResourceKind, id: &str, body: Value) -> Command {
        let operations = parse_patch_request(&body).expect("valid patch");
        self.command(kind, id, Action::Patch(operations))
    }

    /// Folds one command in its own batch and applies it to the state.
    fn run(
        &mut self,
        command: &Command,
    ) -> Result<scimflow_core::decide::Accepted, scimflow_core::ScimError> {
        let mut fold = BatchFold::new(&self.registry, &self.state);
        let decision = fold.fold(command);
        let mutations = fold.into_mutations();
        self.state.apply_all(&mutations);
        decision
    }
}

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

fn group(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name})
}

fn add_members(ids: &[&str]) -> Value {
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "Add", "path": "members", "value": members}]})
}

#[test]
fn create_assigns_id_meta_and_version_one() {
    let mut tenant = Tenant::new();
    let command = tenant.create(ResourceKind::User, "u1", user("bjensen"));
    let accepted = tenant.run(&command).unwrap();
    assert_eq!(accepted.status, 201);
    let stored = accepted.resource.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.resource["id"], "u1");
    assert_eq!(stored.resource["meta"]["version"], "W/\"1\"");
    assert_eq!(stored.resource["meta"]["resourceType"], "User");
    assert_eq!(stored.resource["meta"]["created"], stored.resource["meta"]["lastModified"]);
    assert_eq!(tenant.state.index_lookup(ResourceKind::User, IndexName::UserName, "bjensen"), vec!["u1"]);
}

#[test]
fn duplicate_user_name_is_rejected_case_insensitively_with_409() {
    let mut tenant = Tenant::new();
    let first = tenant.create(ResourceKind::User, "u1", user("BJensen@example.com"));
    tenant.run(&first).unwrap();
    let second = tenant.create(ResourceKind::User, "u2", user("bjensen@EXAMPLE.com"));
    let error = tenant.run(&second).unwrap_err();
    assert_eq!(error.status, 409);
    assert_eq!(error.to_json()["scimType"], "uniqueness");
    assert!(tenant.state.resource(ResourceKind::User, "u2").is_none());
}

#[test]
fn duplicate_group_display_name_and_external_id_are_rejected() {
    let mut tenant = Tenant::new();
    let first = tenant.create(ResourceKind::Group, "g1", group("Sales"));
    tenant.run(&first).unwrap();
    let second = tenant.create(ResourceKind::Group, "g2", group("sales"));
    assert_eq!(tenant.run(&second).unwrap_err().status, 409);
    let with_external = tenant.create(ResourceKind::User, "u1", json!({"userName": "a", "externalId": "X1"}));
    tenant.run(&with_external).unwrap();
    let clash = tenant.create(ResourceKind::User, "u2", json!({"userName": "b", "externalId": "X1"}));
    assert_eq!(tenant.run(&clash).unwrap_err().status, 409);
    let case_differs = tenant.create(ResourceKind::User, "u3", json!({"userName": "c", "externalId": "x1"}));
    tenant.run(&case_differs).expect("externalId is caseExact");
}

#[test]
fn renaming_frees_the_old_unique_key() {
    let mut tenant = Tenant::new();
    let create = tenant.create(ResourceKind::User, "u1", user("old"));
    tenant.run(&create).unwrap();
    let rename = tenant.patch(
        ResourceKind::User,
        "u1",
        json!({"Operations": [{"op": "replace", "path": "userName", "value": "new"}]}),
    );
    tenant.run(&rename).unwrap();
    let reuse = tenant.create(ResourceKind::User, "u2", user("old"));
    tenant.run(&reuse).expect("the old userName is free again");
    assert!(
        tenant.state.index_lookup(ResourceKind::User, IndexName::UserName, "new").contains(&"u1".to_owned())
    );
}

#[test]
fn unknown_resource_is_404_and_stale_if_match_is_412() {
    let mut tenant = Tenant::new();
    let missing = tenant.command(ResourceKind::User, "nope", Action::Delete);
    assert_eq!(tenant.run(&missing).unwrap_err().status, 404);
    let create = tenant.create(ResourceKind::User, "u1", user("a"));
    tenant.run(&create).unwrap();
    let mut stale = tenant.patch(
        ResourceKind::User,
        "u1",
        json!({"Operations": [{"op": "replace", "path": "active", "value": false}]}),
    );
    stale.if_match = Some("W/\"7\"".into());
    assert_eq!(tenant.run(&stale).unwrap_err().status, 412);
    stale.if_match = Some("W/\"1\"".into());
    assert_eq!(tenant.run(&stale).unwrap().resource.unwrap().version, 2);
}

#[test]
fn membership_add_is_a_union_and_unknown_members_are_skipped() {
    let mut tenant = Tenant::new();
    for id in ["u1", "u2"] {
        let create = tenant.create(ResourceKind::User, id, user(id));
        tenant.run(&create).unwrap();
    }
    let create_group = tenant.create(ResourceKind::Group, "g1", group("Team"));
    tenant.run(&create_group).unwrap();
    let first = tenant.patch(ResourceKind::Group, "g1", add_members(&["u1", "ghost"]));
    let accepted = tenant.run(&first).unwrap();
    assert_eq!(accepted.skipped_members, vec!["ghost"]);
    let again = tenant.patch(ResourceKind::Group, "g1", add_members(&["u1", "u2"]));
    let accepted = tenant.run(&again).unwrap();
    let added: Vec<_> = accepted
        .changes
        .iter()
        .filter_map(|change| match &change.body {
            ChangeBody::MembersAdded(members) => {
                Some(members.iter().map(|m| m.value.clone()).collect::<Vec<_>>())
            }
            _ => None,
        })
        .collect();
    assert_eq!(added, vec![vec!["u2".to_owned()]], "u1 was already a member");
    let members: Vec<_> = tenant.state.members_of("g1").into_iter().map(|m| m.value).collect();
    assert_eq!(members, vec!["u1", "u2"]);
    assert_eq!(tenant.state.groups_of("u2"), vec!["g1"]);
    assert_eq!(tenant.state.resource(ResourceKind::Group, "g1").unwrap().version, 3);
}

#[test]
fn deleting_a_user_removes_it_from_its_groups_through_the_reverse_index() {
    let mut tenant = Tenant::new();
    let create = tenant.create(ResourceKind::User, "u1", user("a"));
    tenant.run(&create).unwrap();
    for id in ["g1", "g2"] {
        let body = json!({"displayName": id, "members": [{"value": "u1"}]});
        let create = tenant.create(ResourceKind::Group, id, body);
        tenant.run(&create).unwrap();
    }
    assert_eq!(tenant.state.groups_of("u1"), vec!["g1", "g2"]);
    let delete = tenant.command(ResourceKind::User, "u1", Action::Delete);
    assert_eq!(tenant.run(&delete).unwrap().status, 204);
    assert!(tenant.state.groups_of("u1").is_empty());
    assert!(tenant.state.members_of("g1").is_empty());
    assert_eq!(tenant.state.resource(ResourceKind::Group, "g2").unwrap().version, 2);
    assert!(tenant.state.index_lookup(ResourceKind::User, IndexName::UserName, "a").is_empty());
}

#[test]
fn replace_members_clears_then_adds_and_empty_replace_empties() {
    let mut tenant = Tenant::new();
    for id in ["u1", "u2", "u3"] {
        let create = tenant.create(ResourceKind::User, id, user(id));
        tenant.run(&create).unwrap();
    }
    let create = tenant.create(
        ResourceKind::Group,
        "g1",
        json!({"displayName": "G", "members": [{"value": "u1"}, {"value": "u2"}]}),
    );
    tenant.run(&create).unwrap();
    let replace = tenant.patch(
        ResourceKind::Group,
        "g1",
        json!({"Operations": [{"op": "replace", "path": "members", "value": [{"value": "u3"}]}]}),
    );
    tenant.run(&replace).unwrap();
    let members: Vec<_> = tenant.state.members_of("g1").into_iter().map(|m| m.value).collect();
    assert_eq!(members, vec!["u3"]);
    assert!(tenant.state.groups_of("u1").is_empty());
    let empty = tenant.patch(
        ResourceKind::Group,
        "g1",
        json!({"Operations": [{"op": "replace", "path": "members", "value": []}]}),
    );
    tenant.run(&empty).unwrap();
    assert!(tenant.state.members_of("g1").is_empty());
}

/// A view that counts reads, to show a membership PATCH never reads more as the group grows.
struct CountingView<'a> {
    inner: &'a MemoryState,
    reads: Cell<usize>,
}

impl StateView for CountingView<'_> {
    fn resource(&self, kind: ResourceKind, id: &str) -> Option<StoredResource> {
        self.reads.set(self.reads.get() + 1);
        self.inner.resource(kind, id)
    }
    fn index_lookup(&self, kind: ResourceKind, index: IndexName, key: &str) -> Vec<String> {
        self.reads.set(self.reads.get() + 1);
        self.inner.index_lookup(kind, index, key)
    }
    fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        self.reads.set(self.reads.get() + 1);
        self.inner.is_member(group_id, member_id)
    }
    fn groups_of(&self, member_id: &str) -> Vec<String> {
        self.reads.set(self.reads.get() + 1);
        self.inner.groups_of(member_id)
    }
}

fn reads_and_mutations_to_add_one_member(group_size: usize) -> (usize, usize) {
    let mut tenant = Tenant::new();
    let mut ids = Vec::new();
    for index in 0..=group_size {
        let id = format!("u{index:07}");
        let create = tenant.create(ResourceKind::User, &id, user(&id));
        tenant.run(&create).unwrap();
        ids.push(id);
    }
    let create = tenant.create(ResourceKind::Group, "g1", group("big"));
    tenant.run(&create).unwrap();
    let existing: Vec<&str> = ids[..group_size].iter().map(String::as_str).collect();
    for chunk in existing.chunks(1000) {
        let add = tenant.patch(ResourceKind::Group, "g1", add_members(chunk));
        tenant.run(&add).unwrap();
    }
    let newcomer = ids[group_size].clone();
    let command = tenant.patch(ResourceKind::Group, "g1", add_members(&[&newcomer]));
    let view = CountingView { inner: &tenant.state, reads: Cell::new(0) };
    let mut fold = BatchFold::new(&tenant.registry, &view);
    fold.fold(&command).unwrap();
    let mutations = fold.into_mutations().len();
    (view.reads.get(), mutations)
}

#[test]
fn adding_a_member_reads_and_writes_the_same_rows_at_any_group_size() {
    let small = reads_and_mutations_to_add_one_member(10);
    let large = reads_and_mutations_to_add_one_member(20_000);
    assert_eq!(small, large, "(reads, mutations) must not grow with the group");
    assert!(small.0 <= 6, "a single-member add needs a handful of point reads, got {}", small.0);
}

// --- determinism and batching -------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    CreateUser(u8),
    CreateGroup(u8),
    AddMembers(u8, Vec<u8>),
    RemoveMembers(u8, Vec<u8>),
    ReplaceMembers(u8, Vec<u8>),
    RenameUser(u8, u8),
    DeleteUser(u8),
    DeleteGroup(u8),
}

fn step() -> impl Strategy<Value = Step> {
    let ids = || proptest::collection::vec(0u8..8, 0..4);
    prop_oneof![
        (0u8..8).prop_map(Step::CreateUser),
        (0u8..3).prop_map(Step::CreateGroup),
        ((0u8..3), ids()).prop_map(|(g, m)| Step::AddMembers(g, m)),
        ((0u8..3), ids()).prop_map(|(g, m)| Step::RemoveMembers(g, m)),
        ((0u8..3), ids()).prop_map(|(g, m)| Step::ReplaceMembers(g, m)),
        ((0u8..8), (0u8..8)).prop_map(|(u, n)| Step::RenameUser(u, n)),
        (0u8..8).prop_map(Step::DeleteUser),
        (0u8..3).prop_map(Step::DeleteGroup),
    ]
}

fn members_value(ids: &[u8]) -> Value {
    Value::Array(ids.iter().map(|id| json!({"value": format!("u{id}")})).collect())
}

fn commands_for(steps: &[Step]) -> Vec<Command> {
    let mut tenant = Tenant::new();
    steps
        .iter()
        .map(|step| match step {
            Step::CreateUser(u) => tenant.create(ResourceKind::User, &format!("u{u}"), user(&format!("user{u}"))),
            Step::CreateGroup(g) => tenant.create(ResourceKind::Group, &format!("g{g}"), group(&format!("group{g}"))),
            Step::AddMembers(g, ids) if !ids.is_empty() => tenant.patch(
                ResourceKind::Group,
                &format!("g{g}"),
                json!({"Operations": [{"op": "add", "path": "members", "value": members_value(ids)}]}),
            ),
            Step::RemoveMembers(g, ids) if !ids.is_empty() => tenant.patch(
                ResourceKind::Group,
                &format!("g{g}"),
                json!({"Operations": [{"op": "remove", "path": "members", "value": members_value(ids)}]}),
            ),
            Step::AddMembers(g, _) | Step::RemoveMembers(g, _) | Step::ReplaceMembers(g, _) => {
                let ids = match step {
                    Step::ReplaceMembers(_, ids) => ids.clone(),
                    _ => Vec::new(),
                };
                tenant.patch(
                    ResourceKind::Group,
                    &format!("g{g}"),
                    json!({"Operations": [{"op": "replace", "path": "members", "value": members_value(&ids)}]}),
                )
            }
            Step::RenameUser(u, n) => tenant.patch(
                ResourceKind::User,
                &format!("u{u}"),
                json!({"Operations": [{"op": "replace", "path": "userName", "value": format!("user{n}")}]}),
            ),
            Step::DeleteUser(u) => tenant.command(ResourceKind::User, &format!("u{u}"), Action::Delete),
            Step::DeleteGroup(g) => tenant.command(ResourceKind::Group, &format!("g{g}"), Action::Delete),
        })
        .collect()
}

/// Folds every command in its own batch; returns the state and each decision's status.
fn fold_one_by_one(commands: &[Command]) -> (MemoryState, Vec<u16>) {
    let registry = SchemaRegistry::standard();
    let mut state = MemoryState::default();
    let mut statuses = Vec::new();
    for command in commands {
        let mut fold = BatchFold::new(&registry, &state);
        statuses.push(fold.fold(command).map(|a| a.status).unwrap_or_else(|e| e.status));
        let mutations = fold.into_mutations();
        state.apply_all(&mutations);
    }
    (state, statuses)
}

/// Folds all commands in one batch over an overlay, then applies the batch's mutations.
fn fold_as_one_batch(commands: &[Command]) -> (MemoryState, Vec<u16>) {
    let registry = SchemaRegistry::standard();
    let base = MemoryState::default();
    let mut fold = BatchFold::new(&registry, &base);
    let statuses =
        commands.iter().map(|c| fold.fold(c).map(|a| a.status).unwrap_or_else(|e| e.status)).collect();
    let mutations = fold.into_mutations();
    let mut state = MemoryState::default();
    state.apply_all(&mutations);
    (state, statuses)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn folding_the_same_commands_twice_yields_the_same_state(steps in proptest::collection::vec(step(), 0..40)) {
        let commands = commands_for(&steps);
        prop_assert_eq!(fold_one_by_one(&commands), fold_one_by_one(&commands));
    }

    #[test]
    fn folding_a_batch_equals_folding_its_commands_one_by_one(steps in proptest::collection::vec(step(), 0..40)) {
        let commands = commands_for(&steps);
        prop_assert_eq!(fold_as_one_batch(&commands), fold_one_by_one(&commands));
    }

    #[test]
    fn membership_adds_of_existing_users_commute(first in proptest::collection::vec(0u8..8, 1..5), second in proptest::collection::vec(0u8..8, 1..5)) {
        let mut setup: Vec<Step> = (0..8).map(Step::CreateUser).collect();
        setup.push(Step::CreateGroup(0));
        let forward = [setup.clone(), vec![Step::AddMembers(0, first.clone()), Step::AddMembers(0, second.clone())]].concat();
        let backward = [setup, vec![Step::AddMembers(0, second), Step::AddMembers(0, first)]].concat();
        let (forward_state, _) = fold_one_by_one(&commands_for(&forward));
        let (backward_state, _) = fold_one_by_one(&commands_for(&backward));
        prop_assert_eq!(&forward_state.members, &backward_state.members);
        prop_assert_eq!(&forward_state.member_of, &backward_state.member_of);
    }

    #[test]
    fn deciding_any_command_sequence_never_panics(steps in proptest::collection::vec(step(), 0..20)) {
        // decide is total: every command gets a decision (accept or SCIM error), never a panic.
        let registry = SchemaRegistry::standard();
        let state = MemoryState::default();
        for command in commands_for(&steps) {
            let _ = decide(&registry, &state, &command);
        }
    }
}
