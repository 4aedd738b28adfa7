//! The embedded projector loop folds a quiet tenant's commands ahead of a busy tenant's backlog,
//! and a projector stopped at that moment (its store holding tenants ahead of the watermark)
//! picks up after a restart without folding anything twice: the state equals folding the log
//! in order.

use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::fold::BatchFold;
use scimflow_core::memory::MemoryState;
use scimflow_core::patch::parse_patch_request;
use scimflow_core::resource::normalize_resource;
use scimflow_core::state::StateView;
use scimflow_core::{ResourceKind, SchemaRegistry};
use scimflow_log::embedded::EmbeddedLog;
use scimflow_log::{CommandLog, OutcomeHub};
use scimflow_projector::RoundLimits;
use scimflow_projector::metrics::ProjectorMetrics;
use scimflow_store::embedded::EmbeddedStore;
use scimflow_store::{StoreReader, StoreWriter};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

fn command(registry: &SchemaRegistry, tenant: &str, index: usize, action: &str) -> Command {
    let id = format!("{tenant}-user");
    let action = match action {
        "create" => Action::Create(
            normalize_resource(
                registry,
                ResourceKind::User,
                &json!({"userName": format!("{tenant}-{index}")}),
            )
            .unwrap(),
        ),
        // Every replace raises the version: a command folded twice would show.
        _ => Action::Patch(
            parse_patch_request(&json!({"Operations": [
                {"op": "replace", "path": "displayName", "value": format!("{tenant} {index}")}
            ]}))
            .unwrap(),
        ),
    };
    Command {
        event_id: format!("{tenant}-{index}"),
        tenant_id: tenant.into(),
        kind: ResourceKind::User,
        resource_id: id,
        issued_at_ms: 0,
        if_match: None,
        action,
        metadata: CommandMetadata::default(),
    }
}

fn start(
    store: &Arc<EmbeddedStore>,
    log: &EmbeddedLog,
    hub: &Arc<OutcomeHub>,
    limits: RoundLimits,
) -> (tokio::task::JoinHandle<()>, watch::Sender<bool>) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(scimflow_projector::embedded::run(
        Arc::new(SchemaRegistry::standard()),
        store.clone(),
        log.clone(),
        hub.clone(),
        ProjectorMetrics::default(),
        limits,
        stopped,
    ));
    (task, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_tenant_is_folded_ahead_of_a_backlog_and_a_restart_folds_nothing_twice() {
    let registry = SchemaRegistry::standard();
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log.redb")).unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let hub = Arc::new(OutcomeHub::new());

    // The log before the projector starts: 400 commands of "busy", then 3 of "quiet".
    let mut commands: Vec<Command> = (0..400)
        .map(|index| command(&registry, "busy", index, if index == 0 { "create" } else { "patch" }))
        .collect();
    commands.extend(
        (0..3).map(|index| command(&registry, "quiet", index, if index == 0 { "create" } else { "patch" })),
    );
    for command in &commands {
        log.append(&command.tenant_id, command.encode(), Vec::new()).await.unwrap();
    }
    let quiet_last = hub.register("quiet-2");

    // Rounds of 8, each waiting tenant's share at least 2: the quiet tenant's commands are
    // folded in the first rounds, the backlog 8 at a time.
    let limits =
        RoundLimits { max_round: 8, tenant_share: 2, window_commands: 1000, window_bytes: usize::MAX };
    let (task, _stop) = start(&store, &log, &hub, limits);
    let outcome = tokio::time::timeout(Duration::from_secs(10), quiet_last).await.unwrap().unwrap();
    assert!(outcome.result.is_ok());
    // Stop it abruptly there, like a crash between two rounds.
    task.abort();
    let _ = task.await;
    let position = store.position(0).unwrap();
    assert!(position.next_offset < 400, "the backlog is not folded yet: {position:?}");
    assert_eq!(position.tenants_ahead.get("quiet"), Some(&403), "the quiet tenant is folded ahead");

    // Restart on the same log and store: the rest is folded, the quiet tenant's not again.
    let (task, stop) = start(&store, &log, &hub, limits);
    let busy_last = hub.register("busy-399");
    // Registered after the restart: it may already be folded; then the store shows it.
    let _ = tokio::time::timeout(Duration::from_secs(20), busy_last).await;
    for _ in 0..200 {
        if store.position(0).unwrap().next_offset == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(store.position(0).unwrap(), scimflow_store::PartitionPosition::at(403));

    // Exactly the state of folding each tenant's commands in log order, once.
    for tenant in ["busy", "quiet"] {
        let mut reference = MemoryState::default();
        let mut fold = BatchFold::new(&registry, &reference);
        for command in commands.iter().filter(|command| command.tenant_id == tenant) {
            let _ = fold.fold(command);
        }
        let mutations = fold.into_mutations();
        reference.apply_all(&mutations);
        let id = format!("{tenant}-user");
        let stored = store.resource(tenant, ResourceKind::User, &id).await.unwrap().expect("stored");
        let expected = reference.resource(ResourceKind::User, &id).unwrap();
        assert_eq!(stored.version, expected.version, "{tenant}: each command folded once");
        assert_eq!(stored, expected, "{tenant}");
    }
}
