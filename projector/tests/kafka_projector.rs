//! The Kafka projector against a real broker, with the embedded store:
//! - commands submitted through the write path get the outcomes the reference fold decides;
//! - a member that crashed after its store commit (changes unpublished) is recovered: the
//!   changes appear exactly once;
//! - a second member joining and then taking over from a killed one: no change lost or
//!   duplicated on the changes topic (read with `read_committed`), store equal to folding every
//!   command once;
//! - a store that lost its latest commits refolds them without publishing their changes again.
//!
//! Needs `SCIMFLOW_KAFKA_BROKERS` (e.g. `deploy/local/services.sh up kafka`); without it each
//! test prints that it is skipped. With it set, an unreachable broker fails them.

use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_core::fold::BatchFold;
use scimflow_core::memory::MemoryState;
use scimflow_core::patch::parse_patch_request;
use scimflow_core::resource::normalize_resource;
use scimflow_core::{ResourceKind, SchemaRegistry};
use scimflow_log::kafka::{KafkaConfig, KafkaLog, OutcomeListener, ensure_topics};
use scimflow_log::{Appended, CommandLog, LogRecord, OutcomeHub, WritePath};
use scimflow_projector::fold_records;
use scimflow_projector::kafka::{KafkaProjector, KafkaProjectorConfig};
use scimflow_store::embedded::EmbeddedStore;
use scimflow_store::{StoreReader, StoreWriter};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PARTITIONS: u32 = 3;

fn brokers() -> Option<String> {
    // `RUST_LOG=scimflow_projector=debug cargo test ... -- --nocapture` shows the projector's events.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    match std::env::var("SCIMFLOW_KAFKA_BROKERS") {
        Ok(brokers) if !brokers.trim().is_empty() => Some(brokers),
        _ => {
            eprintln!(
                "skipped: SCIMFLOW_KAFKA_BROKERS is not set (start one with `deploy/local/services.sh up kafka`)"
            );
            None
        }
    }
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{:x}{}", nanos, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Fresh topics and a fresh consumer group for each test.
fn fresh_config(brokers: &str) -> KafkaProjectorConfig {
    let mut kafka = KafkaConfig::new(brokers);
    kafka.topic_prefix = format!("test.{}.", unique_suffix());
    kafka.command_partitions = PARTITIONS as i32;
    let mut config = KafkaProjectorConfig::new(kafka);
    config.group_id = format!("test-projector-{}", unique_suffix());
    config.max_batch = 64;
    config
}

/// Another member of the same group, with its own transactional id.
fn second_member(config: &KafkaProjectorConfig) -> KafkaProjectorConfig {
    let mut second = config.clone();
    second.instance_id = format!("second-{}", unique_suffix());
    second
}

async fn delete_topics(config: &KafkaConfig) {
    let admin: AdminClient<DefaultClientContext> = config.client_config(&[]).create().unwrap();
    let topics = config.topics();
    let names = [topics.commands.as_str(), topics.outcomes.as_str(), topics.changes.as_str()];
    let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
}

fn open_store(dir: &tempfile::TempDir, name: &str) -> Arc<EmbeddedStore> {
    Arc::new(EmbeddedStore::open(&dir.path().join(name)).unwrap())
}

// --- commands and the reference fold ---------------------------------------------------------

fn command(tenant: &str, n: i64, kind: ResourceKind, id: &str, action: Action) -> Command {
    Command {
        event_id: format!("{tenant}-e{n}"),
        tenant_id: tenant.into(),
        kind,
        resource_id: id.into(),
        issued_at_ms: 1_700_000_000_000 + n,
        if_match: None,
        action,
        metadata: CommandMetadata { causation_id: format!("req-{n}"), ..CommandMetadata::default() },
    }
}

/// Users, a group and membership changes, a delete, a rename, a rejected duplicate, a nested
/// group, then `extra_patches` renames: every kind of change.
fn scripted_commands(tenant: &str, extra_patches: usize) -> Vec<Command> {
    let registry = SchemaRegistry::standard();
    let create = |kind, body: Value| Action::Create(normalize_resource(&registry, kind, &body).unwrap());
    let patch = |body: Value| Action::Patch(parse_patch_request(&body).unwrap());
    let mut commands = Vec::new();
    let mut n = 0;
    let mut push = |kind, id: &str, action| {
        n += 1;
        commands.push(command(tenant, n, kind, id, action));
    };
    for index in 0..30 {
        let body = json!({"userName": format!("user{index}"), "emails": [{"value": format!("U{index}@x.org"), "type": "work"}]});
        push(ResourceKind::User, &format!("u{index:03}"), create(ResourceKind::User, body));
    }
    push(
        ResourceKind::Group,
        "g1",
        create(ResourceKind::Group, json!({"displayName": "All", "members": [{"value": "u000"}]})),
    );
    let members: Vec<Value> = (1..20).map(|i| json!({"value": format!("u{i:03}")})).collect();
    push(
        ResourceKind::Group,
        "g1",
        patch(json!({"Operations": [{"op": "add", "path": "members", "value": members}]})),
    );
    push(
        ResourceKind::Group,
        "g1",
        patch(json!({"Operations": [{"op": "remove", "path": "members[value eq \"u005\"]"}]})),
    );
    push(ResourceKind::User, "u007", Action::Delete);
    push(ResourceKind::User, "dup", create(ResourceKind::User, json!({"userName": "USER9"})));
    push(
        ResourceKind::Group,
        "g2",
        create(ResourceKind::Group, json!({"displayName": "Nested", "members": [{"value": "g1"}]})),
    );
    for index in 0..extra_patches {
        let user = format!("u{:03}", 10 + index % 10);
        push(
            ResourceKind::User,
            &user,
            patch(
                json!({"Operations": [{"op": "replace", "path": "displayName", "value": format!("name {index}")}]}),
            ),
        );
    }
    commands
}

struct Reference {
    state: MemoryState,
    /// `<event id>/<index>` of every change, in fold order.
    change_ids: Vec<String>,
    /// HTTP status each command is answered with.
    statuses: Vec<u16>,
}

fn reference_fold(commands: &[Command]) -> Reference {
    let registry = SchemaRegistry::standard();
    let mut reference =
        Reference { state: MemoryState::default(), change_ids: Vec::new(), statuses: Vec::new() };
    for command in commands {
        let mut fold = BatchFold::new(&registry, &reference.state);
        let decision = fold.fold(command);
        match &decision {
            Ok(accepted) => {
                reference.statuses.push(accepted.status);
                reference
                    .change_ids
                    .extend((0..accepted.changes.len()).map(|index| format!("{}/{index}", command.event_id)));
            }
            Err(error) => reference.statuses.push(error.status),
        }
        let mutations = fold.into_mutations();
        reference.state.apply_all(&mutations);
    }
    reference
}

async fn assert_store_matches(store: &EmbeddedStore, tenant: &str, reference: &MemoryState) {
    for ((kind, id), expected) in &reference.resources {
        let stored = store.resource(tenant, *kind, id).await.unwrap();
        assert_eq!(stored.as_ref(), Some(expected), "{tenant} {kind:?} {id}");
    }
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let page = store.resources_page(tenant, kind, None, 10_000).await.unwrap();
        let expected = reference.resources.keys().filter(|(k, _)| *k == kind).count();
        assert_eq!(page.len(), expected, "{tenant} {kind:?} count");
    }
    for (group, members) in &reference.members {
        let page = store.members_page(tenant, group, None, 10_000).await.unwrap();
        let expected: Vec<_> = members.values().cloned().collect();
        assert_eq!(page, expected, "{tenant} members of {group}");
    }
    for (member, groups) in &reference.member_of {
        let stored = store.groups_of(tenant, member).await.unwrap();
        assert_eq!(stored, groups.iter().cloned().collect::<Vec<_>>(), "{tenant} groups of {member}");
    }
}

// --- driving and observing -------------------------------------------------------------------

/// Appends each tenant's commands in order (tenants concurrently), `pace` apart.
async fn append_all(
    log: Arc<KafkaLog>,
    tenants: BTreeMap<String, Vec<Command>>,
    pace: Duration,
) -> Vec<(Appended, Command)> {
    let mut tasks = Vec::new();
    for commands in tenants.into_values() {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut appended = Vec::new();
            for command in commands {
                let position = log.append(&command.tenant_id, command.encode(), vec![]).await.unwrap();
                appended.push((position, command));
                tokio::time::sleep(pace).await;
            }
            appended
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// The store position each partition must reach.
fn targets(appended: &[(Appended, Command)]) -> BTreeMap<u32, u64> {
    let mut targets = BTreeMap::new();
    for (position, _) in appended {
        let target = targets.entry(position.partition).or_insert(0);
        *target = (*target).max(position.offset + 1);
    }
    targets
}

fn folded(store: &EmbeddedStore) -> u64 {
    (0..PARTITIONS).map(|partition| store.next_offset(partition).unwrap()).sum()
}

async fn wait_until_folded(store: &EmbeddedStore, targets: &BTreeMap<u32, u64>) {
    let started = Instant::now();
    while targets.iter().any(|(partition, target)| store.next_offset(*partition).unwrap() < *target) {
        assert!(started.elapsed() < Duration::from_secs(90), "not folded in time: {targets:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every change id in the store's change feed, per partition, in order.
fn store_feed(store: &EmbeddedStore) -> Vec<String> {
    let mut ids = Vec::new();
    for partition in 0..PARTITIONS {
        let next = store.next_offset(partition).unwrap();
        for change in store.changes_between(partition, 0, next).unwrap() {
            ids.push(scimflow_proto::ChangeEnvelope::decode(change.envelope.as_slice()).unwrap().change_id);
        }
    }
    ids
}

/// Reads the changes topic from the start with `read_committed` until `expected` changes have
/// arrived, then two more seconds to catch duplicates. Returns the change ids in arrival order.
fn read_changes(config: &KafkaConfig, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = config
        .client_config(&[])
        .set("group.id", format!("test-reader-{}", unique_suffix()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(&config.topics().changes, partition as i32, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut ids = Vec::new();
    let started = Instant::now();
    let mut complete_at: Option<Instant> = None;
    loop {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let envelope = scimflow_proto::ChangeEnvelope::decode(message.payload().unwrap()).unwrap();
            let header = message
                .headers()
                .and_then(|headers| {
                    use rdkafka::message::Headers;
                    headers
                        .iter()
                        .find(|header| header.key == "change-id")
                        .and_then(|header| header.value.map(<[u8]>::to_vec))
                })
                .unwrap();
            assert_eq!(header, envelope.change_id.as_bytes(), "change-id header");
            assert_eq!(message.key(), Some(envelope.tenant_id.as_bytes()), "key is the tenant");
            ids.push(envelope.change_id);
        }
        if ids.len() >= expected && complete_at.is_none() {
            complete_at = Some(Instant::now());
        }
        if complete_at.is_some_and(|at| at.elapsed() > Duration::from_secs(2)) {
            return ids;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "only {} of {expected} changes arrived",
            ids.len()
        );
    }
}

fn assert_exactly_once(published: &[String], expected: &[String]) {
    let unique: HashSet<&String> = published.iter().collect();
    assert_eq!(unique.len(), published.len(), "duplicated changes on the topic");
    let expected_set: HashSet<&String> = expected.iter().collect();
    assert_eq!(expected_set.len(), expected.len(), "the reference has duplicate ids");
    let missing: Vec<_> = expected_set.difference(&unique).collect();
    let unexpected: Vec<_> = unique.difference(&expected_set).collect();
    assert!(missing.is_empty() && unexpected.is_empty(), "missing {missing:?}, unexpected {unexpected:?}");
}

fn tenants(names: &[&str], extra_patches: usize) -> BTreeMap<String, Vec<Command>> {
    names.iter().map(|name| (name.to_string(), scripted_commands(name, extra_patches))).collect()
}

async fn assert_pipeline_result(
    store: &EmbeddedStore,
    config: &KafkaConfig,
    tenants: &BTreeMap<String, Vec<Command>>,
) {
    let mut expected = Vec::new();
    for (tenant, commands) in tenants {
        let reference = reference_fold(commands);
        assert_store_matches(store, tenant, &reference.state).await;
        expected.extend(reference.change_ids);
    }
    let feed = store_feed(store);
    assert_exactly_once(&feed, &expected);
    let published = read_changes(config, expected.len());
    assert_exactly_once(&published, &expected);
}

// --- tests -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_submitted_through_the_write_path_get_the_reference_outcomes() {
    let Some(brokers) = brokers() else { return };
    let config = fresh_config(&brokers);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir, "store.redb");
    let registry = Arc::new(SchemaRegistry::standard());
    // As in production with separate processes: the projector publishes outcomes, the API side
    // reads them back through its listener.
    let projector = KafkaProjector::start(registry, store.clone(), config.clone(), None).await.unwrap();
    let hub = Arc::new(OutcomeHub::new());
    let listener = OutcomeListener::start(&config.kafka, hub.clone()).await.unwrap();
    let log = Arc::new(KafkaLog::new(&config.kafka).unwrap());
    // Generous: the first outcome waits for the group join.
    let write = WritePath::new(log, hub.clone(), Duration::from_secs(30));
    let commands = scripted_commands("acme", 5);
    let reference = reference_fold(&commands);
    for (command, expected_status) in commands.iter().zip(&reference.statuses) {
        let outcome = write.submit(command).await.unwrap();
        assert_eq!(outcome.event_id, command.event_id);
        let status = match &outcome.result {
            Ok(accepted) => accepted.status,
            Err(error) => error.status,
        };
        assert_eq!(status, *expected_status, "{} {}", command.event_id, command.action.name());
    }
    assert_eq!(hub.waiting(), 0);
    projector.stop().await.unwrap();
    listener.stop();
    let tenants = BTreeMap::from([("acme".to_owned(), commands)]);
    assert_pipeline_result(&store, &config.kafka, &tenants).await;
    delete_topics(&config.kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_folded_before_a_crash_are_published_once_by_the_next_member() {
    let Some(brokers) = brokers() else { return };
    let config = fresh_config(&brokers);
    ensure_topics(&config.kafka).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir, "store.redb");
    let registry = Arc::new(SchemaRegistry::standard());
    let tenants = tenants(&["acme", "globex", "initech"], 10);
    let log = Arc::new(KafkaLog::new(&config.kafka).unwrap());
    let appended = append_all(log, tenants.clone(), Duration::ZERO).await;
    // A member crashed right after its store commits: the first half of every partition is in
    // the store (and its change feed), nothing is on the changes topic, no offset committed.
    let mut by_partition: BTreeMap<u32, Vec<LogRecord>> = BTreeMap::new();
    for (position, command) in &appended {
        by_partition.entry(position.partition).or_default().push(LogRecord {
            partition: position.partition,
            offset: position.offset,
            payload: command.encode(),
        });
    }
    for (partition, records) in &mut by_partition {
        records.sort_by_key(|record| record.offset);
        fold_records(&registry, &*store, *partition, &records[..records.len() / 2]).unwrap();
    }
    let hub = Arc::new(OutcomeHub::new());
    let projector = KafkaProjector::start(registry, store.clone(), config.clone(), Some(hub)).await.unwrap();
    wait_until_folded(&store, &targets(&appended)).await;
    projector.stop().await.unwrap();
    assert_pipeline_result(&store, &config.kafka, &tenants).await;
    delete_topics(&config.kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_taking_over_from_a_killed_one_loses_and_duplicates_no_change() {
    let Some(brokers) = brokers() else { return };
    let config = fresh_config(&brokers);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir, "store.redb");
    let registry = Arc::new(SchemaRegistry::standard());
    let names = ["acme", "globex", "initech", "umbrella", "hooli", "wayne", "stark", "tyrell", "cyberdyne"];
    let tenants = tenants(&names, 80);
    let total: u64 = tenants.values().map(|commands| commands.len() as u64).sum();
    let first = KafkaProjector::start(registry.clone(), store.clone(), config.clone(), None).await.unwrap();
    let log = Arc::new(KafkaLog::new(&config.kafka).unwrap());
    let appending = tokio::spawn(append_all(log, tenants.clone(), Duration::from_millis(80)));
    // A second member joins mid-stream; a cooperative rebalance moves partitions to it ...
    while folded(&store) < total / 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second =
        KafkaProjector::start(registry.clone(), store.clone(), second_member(&config), None).await.unwrap();
    let joined = Instant::now();
    while second.assignment().is_empty() || first.assignment().is_empty() {
        assert!(joined.elapsed() < Duration::from_secs(30), "the partitions were not shared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (first_owned, second_owned) = (first.assignment(), second.assignment());
    // ... then the first one dies right after a store commit, before publishing its changes.
    first.kill().await;
    let at_kill = folded(&store);
    eprintln!(
        "first member owned {first_owned:?}, second {second_owned:?}; first killed at {at_kill} of {total} folded"
    );
    assert!(at_kill < total, "the stream ended before the kill; slow the appends down");
    let appended = appending.await.unwrap();
    wait_until_folded(&store, &targets(&appended)).await;
    assert_eq!(second.assignment(), vec![0, 1, 2], "the second member took over every partition");
    second.stop().await.unwrap();
    assert_pipeline_result(&store, &config.kafka, &tenants).await;
    delete_topics(&config.kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_lost_its_latest_commits_refolds_them_without_republishing() {
    let Some(brokers) = brokers() else { return };
    let config = fresh_config(&brokers);
    ensure_topics(&config.kafka).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(SchemaRegistry::standard());
    let tenants = tenants(&["acme", "globex", "initech"], 10);
    let (early, late): (BTreeMap<_, _>, BTreeMap<_, _>) = tenants
        .iter()
        .map(|(tenant, commands)| {
            let half = commands.len() / 2;
            ((tenant.clone(), commands[..half].to_vec()), (tenant.clone(), commands[half..].to_vec()))
        })
        .unzip();
    let log = Arc::new(KafkaLog::new(&config.kafka).unwrap());
    // Fold and publish the first half, and keep a copy of the store as it is then.
    {
        let store = open_store(&dir, "store.redb");
        let appended = append_all(log.clone(), early, Duration::ZERO).await;
        let projector =
            KafkaProjector::start(registry.clone(), store.clone(), config.clone(), None).await.unwrap();
        wait_until_folded(&store, &targets(&appended)).await;
        projector.stop().await.unwrap();
        store.checkpoint().unwrap();
    }
    std::fs::copy(dir.path().join("store.redb"), dir.path().join("behind.redb")).unwrap();
    // Fold and publish the second half on the original store.
    let appended = append_all(log, late, Duration::ZERO).await;
    {
        let store = open_store(&dir, "store.redb");
        let projector =
            KafkaProjector::start(registry.clone(), store.clone(), config.clone(), None).await.unwrap();
        wait_until_folded(&store, &targets(&appended)).await;
        projector.stop().await.unwrap();
    }
    // The copy lost the second half: a member on it refolds that (the store is authoritative)
    // but must not publish those changes again.
    let behind = open_store(&dir, "behind.redb");
    let projector = KafkaProjector::start(registry, behind.clone(), config.clone(), None).await.unwrap();
    wait_until_folded(&behind, &targets(&appended)).await;
    projector.stop().await.unwrap();
    assert_pipeline_result(&behind, &config.kafka, &tenants).await;
    delete_topics(&config.kafka).await;
}
