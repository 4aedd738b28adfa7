//! The embedded store folds exactly like the in-memory reference state, reads back what was
//! folded, and a restarted projector continues from the committed log position.

use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::fold::BatchFold;
use scimflow_core::memory::MemoryState;
use scimflow_core::patch::parse_patch_request;
use scimflow_core::resource::normalize_resource;
use scimflow_core::state::StateView;
use scimflow_core::{ResourceKind, SchemaRegistry};
use scimflow_log::LogRecord;
use scimflow_projector::fold_records;
use scimflow_store::StoreReader;
use scimflow_store::StoreWriter;
use scimflow_store::embedded::EmbeddedStore;
use serde_json::{Value, json};

fn command(tenant: &str, n: i64, kind: ResourceKind, id: &str, action: Action) -> Command {
    Command {
        event_id: format!("e{n}"),
        tenant_id: tenant.into(),
        kind,
        resource_id: id.into(),
        issued_at_ms: 1_700_000_000_000 + n,
        if_match: None,
        action,
        metadata: CommandMetadata::default(),
    }
}

fn scripted_commands(tenant: &str) -> Vec<Command> {
    let registry = SchemaRegistry::standard();
    let create = |kind, body: Value| Action::Create(normalize_resource(&registry, kind, &body).unwrap());
    let patch = |body: Value| Action::Patch(parse_patch_request(&body).unwrap());
    let mut commands = Vec::new();
    let mut n = 0;
    let mut push = |kind, id: &str, action| {
        n += 1;
        commands.push(command(tenant, n, kind, id, action));
    };
    for index in 0..50 {
        let body = json!({"userName": format!("user{index}"), "emails": [{"value": format!("U{index}@x.org"), "type": "work"}]});
        push(ResourceKind::User, &format!("u{index:03}"), create(ResourceKind::User, body));
    }
    push(ResourceKind::Group, "g1", create(ResourceKind::Group, json!({"displayName": "All", "members": [{"value": "u000"}]})));
    let members: Vec<Value> = (1..40).map(|i| json!({"value": format!("u{i:03}")})).collect();
    push(ResourceKind::Group, "g1", patch(json!({"Operations": [{"op": "add", "path": "members", "value": members}]})));
    push(ResourceKind::Group, "g1", patch(json!({"Operations": [{"op": "remove", "path": "members[value eq \"u005\"]"}]})));
    push(ResourceKind::User, "u007", Action::Delete);
    push(ResourceKind::User, "u008", patch(json!({"Operations": [{"op": "replace", "path": "userName", "value": "renamed"}]})));
    // rejected: duplicate userName
    push(ResourceKind::User, "dup", create(ResourceKind::User, json!({"userName": "USER9"})));
    push(ResourceKind::Group, "g2", create(ResourceKind::Group, json!({"displayName": "Nested", "members": [{"value": "g1"}]})));
    commands
}

fn records(commands: &[Command], first_offset: u64) -> Vec<LogRecord> {
    commands
        .iter()
        .enumerate()
        .map(|(index, command)| LogRecord { partition: 0, offset: first_offset + index as u64, payload: command.encode() })
        .collect()
}

fn reference_state(commands: &[Command]) -> MemoryState {
    let registry = SchemaRegistry::standard();
    let mut state = MemoryState::default();
    for command in commands {
        let mut fold = BatchFold::new(&registry, &state);
        let _ = fold.fold(command);
        let mutations = fold.into_mutations();
        state.apply_all(&mutations);
    }
    state
}

async fn assert_store_matches(store: &EmbeddedStore, tenant: &str, reference: &MemoryState) {
    for ((kind, id), expected) in &reference.resources {
        let stored = store.resource(tenant, *kind, id).await.unwrap();
        assert_eq!(stored.as_ref(), Some(expected), "{kind:?} {id}");
    }
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let page = store.resources_page(tenant, kind, None, 10_000).await.unwrap();
        let expected = reference.resources.keys().filter(|(k, _)| *k == kind).count();
        assert_eq!(page.len(), expected, "{kind:?} count");
    }
    for (group, members) in &reference.members {
        let page = store.members_page(tenant, group, None, 10_000).await.unwrap();
        let expected: Vec<_> = members.values().cloned().collect();
        assert_eq!(page, expected, "members of {group}");
    }
    for (member, groups) in &reference.member_of {
        let stored = store.groups_of(tenant, member).await.unwrap();
        assert_eq!(stored, groups.iter().cloned().collect::<Vec<_>>());
    }
    for ((kind, index, key), ids) in &reference.index {
        let stored = store.index_lookup(tenant, *kind, *index, key).await.unwrap();
        assert_eq!(stored, ids.iter().cloned().collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn the_embedded_store_folds_like_the_reference_state_in_any_batching() {
    let registry = SchemaRegistry::standard();
    let commands = scripted_commands("acme");
    let reference = reference_state(&commands);
    for batch_size in [1, 7, commands.len()] {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        let all = records(&commands, 0);
        for batch in all.chunks(batch_size) {
            fold_records(&registry, &store, 0, batch).unwrap();
        }
        assert_eq!(store.next_offset(0).unwrap(), commands.len() as u64);
        assert_store_matches(&store, "acme", &reference).await;
    }
}

#[tokio::test]
async fn tenants_never_see_each_others_rows() {
    let registry = SchemaRegistry::standard();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    let acme = scripted_commands("acme");
    fold_records(&registry, &store, 0, &records(&acme, 0)).unwrap();
    assert!(store.resource("globex", ResourceKind::User, "u001").await.unwrap().is_none());
    assert!(store.resources_page("globex", ResourceKind::User, None, 100).await.unwrap().is_empty());
    assert!(store.members_page("globex", "g1", None, 100).await.unwrap().is_empty());
    // The same ids in another tenant are independent resources.
    let globex = scripted_commands("globex");
    let result = fold_records(&registry, &store, 0, &records(&globex, acme.len() as u64)).unwrap();
    assert!(result.outcomes.iter().filter(|o| o.result.is_ok()).count() > 50);
    let view = store.tenant_view("globex").unwrap();
    assert!(view.resource(ResourceKind::User, "u001").is_some());
}

#[tokio::test]
async fn accepted_commands_publish_changes_and_rejected_ones_do_not() {
    let registry = SchemaRegistry::standard();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    let commands = scripted_commands("acme");
    let result = fold_records(&registry, &store, 0, &records(&commands, 0)).unwrap();
    let rejected: Vec<_> = result.outcomes.iter().filter(|o| o.result.is_err()).map(|o| o.event_id.clone()).collect();
    assert_eq!(rejected.len(), 1, "only the duplicate userName is rejected");
    let feed = store.changes_between(0, 0, commands.len() as u64).unwrap();
    assert_eq!(feed, result.changes);
    use prost::Message;
    for change in &feed {
        let envelope = scimflow_proto::ChangeEnvelope::decode(change.envelope.as_slice()).unwrap();
        assert_eq!(envelope.change_id, format!("{}/{}", envelope.command_event_id, change.index));
        assert!(!rejected.contains(&envelope.command_event_id));
    }
}
