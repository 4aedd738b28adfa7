//! Cost of one command through the core: parse (normalise / PATCH parse) + decide + apply, and
//! the fold's cost against group size (it must not grow with the group).
//!
//! `cargo bench -p scimflow-core --bench fold`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::fold::BatchFold;
use scimflow_core::memory::MemoryState;
use scimflow_core::patch::parse_patch_request;
use scimflow_core::resource::normalize_resource;
use scimflow_core::{ResourceKind, SchemaRegistry};
use serde_json::{Value, json};
use std::hint::black_box;

fn command(kind: ResourceKind, id: &str, action: Action) -> Command {
    Command {
        event_id: "bench".into(),
        tenant_id: "tenant".into(),
        kind,
        resource_id: id.into(),
        issued_at_ms: 1_700_000_000_000,
        if_match: None,
        action,
        metadata: CommandMetadata::default(),
    }
}

fn entra_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@example.com",
        "active": true,
        "displayName": "Test User",
        "emails": [{"primary": true, "type": "work", "value": "Test_User@example.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "employeeNumber": "1234"}
    })
}

/// A state with `users` users and one group `g` holding the first `members` of them.
fn state_with_group(users: usize, members: usize) -> MemoryState {
    let registry = SchemaRegistry::standard();
    let mut state = MemoryState::default();
    let mut commands = Vec::new();
    for index in 0..users {
        let body = json!({"userName": format!("user{index}")});
        let resource = normalize_resource(&registry, ResourceKind::User, &body).unwrap();
        commands.push(command(ResourceKind::User, &format!("u{index:08}"), Action::Create(resource)));
    }
    let group = normalize_resource(&registry, ResourceKind::Group, &json!({"displayName": "g"})).unwrap();
    commands.push(command(ResourceKind::Group, "g", Action::Create(group)));
    for start in (0..members).step_by(1000) {
        let values: Vec<Value> =
            (start..(start + 1000).min(members)).map(|i| json!({"value": format!("u{i:08}")})).collect();
        let patch = json!({"Operations": [{"op": "add", "path": "members", "value": values}]});
        commands.push(command(ResourceKind::Group, "g", Action::Patch(parse_patch_request(&patch).unwrap())));
    }
    for chunk in commands.chunks(5000) {
        let mut fold = BatchFold::new(&registry, &state);
        for command in chunk {
            fold.fold(command).unwrap();
        }
        let mutations = fold.into_mutations();
        state.apply_all(&mutations);
    }
    state
}

fn per_command(criterion: &mut Criterion) {
    let registry = SchemaRegistry::standard();
    let state = state_with_group(10, 5);
    let mut group = criterion.benchmark_group("command");
    let user_body = entra_user();
    group.bench_function("create_user: normalise + decide + apply", |bench| {
        bench.iter(|| {
            let resource = normalize_resource(&registry, ResourceKind::User, black_box(&user_body)).unwrap();
            let command = command(ResourceKind::User, "new-user", Action::Create(resource));
            let mut fold = BatchFold::new(&registry, &state);
            fold.fold(&command).unwrap();
            black_box(fold.into_mutations())
        })
    });
    let user_patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"}]});
    group.bench_function("patch_user (Entra, 3 ops): parse + decide + apply", |bench| {
        bench.iter(|| {
            let operations = parse_patch_request(black_box(&user_patch)).unwrap();
            let command = command(ResourceKind::User, "u00000001", Action::Patch(operations));
            let mut fold = BatchFold::new(&registry, &state);
            fold.fold(&command).unwrap();
            black_box(fold.into_mutations())
        })
    });
    group.finish();
}

fn membership_vs_group_size(criterion: &mut Criterion) {
    let registry = SchemaRegistry::standard();
    let mut group = criterion.benchmark_group("add_one_member_vs_group_size");
    for size in [1_000usize, 100_000] {
        let state = state_with_group(size + 1, size);
        let newcomer = format!("u{size:08}");
        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Add", "path": "members", "value": [{"value": newcomer}]}]});
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |bench, _| {
            bench.iter(|| {
                let operations = parse_patch_request(&patch).unwrap();
                let command = command(ResourceKind::Group, "g", Action::Patch(operations));
                let mut fold = BatchFold::new(&registry, &state);
                fold.fold(&command).unwrap();
                black_box(fold.into_mutations())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, per_command, membership_vs_group_size);
criterion_main!(benches);
