//! Recovering from the command log on the production backends: the real binary on the real
//! Kafka commands topic (3 partitions) and a real Cassandra keyspace, each test run on its own
//! topics and keyspaces. A scripted history for two tenants is written over HTTP to
//! `scimflow serve --log kafka --store cql`, the server is stopped, and then:
//! - replaying into a fresh keyspace (the store wiped) gives the live keyspace's rows exactly
//!   (checksums and a full read-back through the API's store port);
//! - a replay interrupted by `--max-events` resumes and ends identical;
//! - a per-tenant replay from an instant (`--since`, Kafka's offsetsForTimes) holds that tenant;
//! - a corrupted CQL row is named by `scimflow verify` and restored by `--repair`;
//! - `scimflow history --at T` read from the topic returns what the API served at each instant.
//!
//! Needs SCIMFLOW_KAFKA_BROKERS and SCIMFLOW_CQL_NODES; without them it says so and passes.

use scimflow_core::checksum::state_checksum;
use scimflow_core::memory::MemoryState;
use scimflow_store::audit::read_tenant_rows;
use scimflow_store::cql::{CqlConfig, CqlStore, bucket_of};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

mod support;
use support::{
    ACTOR, Api, comparable, free_port, ok, ok_with, scimflow_with, scripted_history, start_serve, stdout,
    stop, tenant_id_of,
};

struct Services {
    env: Vec<(String, String)>,
    nodes: Vec<String>,
    run: String,
}

impl Services {
    fn from_env() -> Option<Services> {
        let (Ok(brokers), Ok(nodes)) =
            (std::env::var("SCIMFLOW_KAFKA_BROKERS"), std::env::var("SCIMFLOW_CQL_NODES"))
        else {
            eprintln!(
                "skipped: needs SCIMFLOW_KAFKA_BROKERS and SCIMFLOW_CQL_NODES (deploy/local/services.sh up)"
            );
            return None;
        };
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let run = format!("{:x}{:x}", nanos, std::process::id());
        let env = vec![
            ("SCIMFLOW_KAFKA_BROKERS".to_owned(), brokers),
            ("SCIMFLOW_KAFKA_TOPIC_PREFIX".to_owned(), format!("scimflow.replaytest.{run}.")),
            ("SCIMFLOW_KAFKA_COMMAND_PARTITIONS".to_owned(), "3".to_owned()),
            ("SCIMFLOW_PROJECTOR_GROUP_ID".to_owned(), format!("scimflow-replaytest-{run}")),
            ("SCIMFLOW_CQL_NODES".to_owned(), nodes.clone()),
            ("SCIMFLOW_CQL_KEYSPACE".to_owned(), format!("scimflow_rt_{run}_live")),
            ("SCIMFLOW_LOG".to_owned(), "kafka".to_owned()),
            ("SCIMFLOW_STORE".to_owned(), "cql".to_owned()),
        ];
        Some(Services { env, nodes: nodes.split(',').map(str::to_owned).collect(), run })
    }

    fn keyspace(&self, name: &str) -> String {
        format!("scimflow_rt_{}_{name}", self.run)
    }

    async fn store(&self, name: &str) -> CqlStore {
        let mut config = CqlConfig::new(self.nodes.clone());
        config.keyspace = self.keyspace(name);
        CqlStore::connect(config).await.unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        ok_with(args, &self.env)
    }
}

/// Every row of each tenant, read back through the store port the API serves from.
async fn dump(store: &CqlStore, tenants: &[&str]) -> Vec<MemoryState> {
    let mut states = Vec::new();
    for tenant in tenants {
        states.push(read_tenant_rows(store, tenant, &MemoryState::default()).await.unwrap());
    }
    states
}

fn assert_identical(original: &[MemoryState], rebuilt: &[MemoryState], what: &str) {
    let sums = |states: &[MemoryState]| states.iter().map(state_checksum).collect::<Vec<_>>();
    assert_eq!(sums(original), sums(rebuilt), "{what}: checksums");
    assert!(original == rebuilt, "{what}: full read-back differs");
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_cql_replay_verify_repair_and_point_in_time_reads() {
    let Some(services) = Services::from_env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    // Two tenants, so partitions and per-tenant scopes are exercised.
    let other_token = ok(&["tenant", "create", "other", "--quiet", "--data-dir", data_dir]).trim().to_owned();
    let token = ok(&["tenant", "create", "default", "--quiet", "--data-dir", data_dir]).trim().to_owned();
    let admin = ok(&["admin", "token", "create", "ops", "--quiet", "--data-dir", data_dir]).trim().to_owned();
    let (tenant, other) = (tenant_id_of(data_dir, "default"), tenant_id_of(data_dir, "other"));
    let port = free_port();
    let (server, _) = start_serve(&data, port, &[], &services.env);
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    let api = Api { client: reqwest::Client::new(), base: base.clone(), token };
    let other_api = Api { client: reqwest::Client::new(), base, token: other_token };
    for index in 0..12 {
        other_api.create("/Users", json!({"userName": format!("o{index}")})).await;
    }
    let (alice, group, removed, instants) = scripted_history(&api).await;
    let other_group = other_api.create("/Groups", json!({"displayName": "Other"})).await;
    // The API serves the same history from the topic: the tenant its own, the operator any.
    let (status, own) = api.send(reqwest::Method::GET, &format!("/Users/{alice}/history"), None).await;
    assert_eq!(status, 200, "{own}");
    assert!(own["Resources"].as_array().unwrap().iter().all(|entry| entry["actor"] == ACTOR), "{own}");
    let (status, _) = other_api.send(reqwest::Method::GET, &format!("/Users/{alice}/history"), None).await;
    assert_eq!(status, 404, "another tenant's resource has no history for this tenant");
    let admin_url = format!("http://127.0.0.1:{port}/admin/tenants/{tenant}/Users/{alice}/history");
    let response = reqwest::Client::new().get(&admin_url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let as_admin: Value = response.json().await.unwrap();
    assert_eq!(as_admin["Resources"], own["Resources"]);
    let response = reqwest::Client::new().get(&admin_url).bearer_auth(&other_api.token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403, "a tenant token on /admin");
    stop(server);

    let live = services.store("live").await;
    let tenants = [tenant.as_str(), other.as_str()];
    let original = dump(&live, &tenants).await;
    assert!(original[0].resources.len() > 40 && original[1].resources.len() == 13);
    let verified = services.ok(&["verify"]);
    assert_eq!(verified.matches(": ok").count(), 2, "{verified}");

    // The store wiped: a fresh keyspace, replayed from the topic, is identical.
    let wiped = services.keyspace("wiped");
    let replayed = services.ok(&["replay", "--into", &wiped]);
    assert!(replayed.contains("events/s") && replayed.contains("at the end of the log"), "{replayed}");
    assert_identical(&original, &dump(&services.store("wiped").await, &tenants).await, "wiped and replayed");

    // An interrupted replay resumes from the keyspace's committed positions.
    let side = services.keyspace("side");
    let first = services.ok(&["replay", "--into", &side, "--max-events", "17", "--batch", "5"]);
    assert!(first.contains("replayed 17 events") && first.contains("run the same command again"), "{first}");
    let second = services.ok(&["replay", "--into", &side, "--max-events", "9"]);
    assert!(second.contains("replayed 9 events"), "{second}");
    let rest = services.ok(&["replay", "--into", &side]);
    assert!(rest.contains("at the end of the log"), "{rest}");
    assert_identical(
        &original,
        &dump(&services.store("side").await, &tenants).await,
        "interrupted and resumed",
    );
    let verified = services.ok(&["verify", "--store-dir", &side]);
    assert_eq!(verified.matches(": ok").count(), 2, "{verified}");

    // One tenant, from an instant before its first command (found with offsetsForTimes).
    let one = services.keyspace("one");
    services.ok(&["replay", "--into", &one, "--tenant", &tenant, "--since", &instants[0].0]);
    let alone = dump(&services.store("one").await, &tenants).await;
    assert_identical(&original[..1], &alone[..1], "per-tenant replay");
    assert_eq!(alone[1], MemoryState::default(), "the other tenant is not replayed");
    // After the last command: nothing to fold, and the store is still at the end.
    let later = services.keyspace("later");
    let none = services.ok(&["replay", "--into", &later, "--since", "2100-01-01T00:00:00Z"]);
    assert!(none.contains("replayed 0 events"), "{none}");

    // Corrupt rows of the live keyspace; verify names them; --repair restores them.
    let sales = original[0]
        .resources
        .iter()
        .find(|(_, row)| row.resource["displayName"] == "Sales")
        .map(|((_, id), _)| id.clone())
        .unwrap();
    let layout = live.layout();
    let ks = services.keyspace("live");
    let session = live.session();
    session
        .query_unpaged(
            format!("UPDATE {ks}.resources SET version = 99 WHERE tenant = ? AND kind = 'User' AND bucket = ? AND id = ?"),
            (&tenant, bucket_of(&alice, layout.resource_buckets), &alice),
        )
        .await
        .unwrap();
    session
        .query_unpaged(
            format!("DELETE FROM {ks}.memberships WHERE tenant = ? AND group_id = ? AND bucket = ? AND member_id = ?"),
            (&tenant, &sales, bucket_of(&alice, layout.member_buckets), &alice),
        )
        .await
        .unwrap();
    session
        .query_unpaged(
            format!(
                "INSERT INTO {ks}.resources (tenant, kind, bucket, id, version, body) VALUES (?, 'User', ?, 'ghost', 1, ?)"
            ),
            (&other, bucket_of("ghost", layout.resource_buckets), json!({"id": "ghost", "userName": "ghost"}).to_string()),
        )
        .await
        .unwrap();
    let drift = scimflow_with(&["verify"], &services.env);
    assert!(!drift.status.success(), "verify fails on drift");
    let report = stdout(&drift);
    assert!(report.contains(&format!("User {alice}: stored version 99, log says 3")), "{report}");
    assert!(report.contains(&format!("membership {sales} ∋ {alice} missing")), "{report}");
    assert!(
        report.contains("User ghost: stored (version 1) but the log deleted or never created it"),
        "{report}"
    );
    let repaired = services.ok(&["verify", "--repair"]);
    assert_eq!(repaired.matches("REPAIRED").count(), 2, "{repaired}");
    assert_identical(&original, &dump(&live, &tenants).await, "repaired");
    let verified = services.ok(&["verify"]);
    assert_eq!(verified.matches(": ok").count(), 2, "{verified}");

    // Point-in-time reads from the topic reproduce what the API answered at each instant.
    for (instant, user, group_then) in &instants {
        for (kind, id, expected) in [("User", &alice, user), ("Group", &group, group_then)] {
            let args = ["history", "--tenant", &tenant, "--type", kind, "--id", id, "--at", instant];
            let output = scimflow_with(&args, &services.env);
            match expected {
                Some(expected) => {
                    assert!(output.status.success(), "{kind} at {instant}: {output:?}");
                    let then: Value = serde_json::from_slice(&output.stdout).unwrap();
                    assert_eq!(comparable(&then), comparable(expected), "{kind} {id} at {instant}");
                }
                None => assert!(!output.status.success(), "{kind} {id} did not exist at {instant}"),
            }
        }
    }
    // The other tenant's group is not visible through this tenant.
    let args = ["history", "--tenant", &tenant, "--type", "Group", "--id", &other_group];
    assert!(services.ok(&args).contains("no command in the log touches"));
    let history = services.ok(&["history", "--tenant", &tenant, "--type", "User", "--id", &removed]);
    assert!(history.contains("created at version 1"), "{history}");
    assert!(history.contains(&format!("removed from group {group}")), "{history}");
    assert!(history.contains(ACTOR) && history.contains("PATCH"), "{history}");

    for name in ["live", "wiped", "side", "one", "later"] {
        let _ =
            session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", services.keyspace(name)), ()).await;
    }
}

/// Replay throughput on Kafka + CQL: the command mix of the embedded benchmark (`replay.rs`:
/// 70% user creates with an email, 30% replaces of them), appended straight to a fresh commands
/// topic, replayed into a fresh keyspace by the real binary, then verified. Prints the summary
/// line with events per second.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: cargo test --release -p scimflow --test replay_kafka_cql -- --ignored --nocapture"]
async fn replay_throughput_kafka_cql() {
    use scimflow_log::CommandLog;
    let Some(services) = Services::from_env() else { return };
    let total: usize =
        std::env::var("SCIMFLOW_REPLAY_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let registry = scimflow_core::SchemaRegistry::standard();
    let creates = total * 7 / 10;
    let command = |index: usize| support::bench_command(&registry, creates, index);
    let vars: std::collections::BTreeMap<String, String> = services.env.iter().cloned().collect();
    let kafka = scimflow_log::kafka::KafkaConfig::from_vars(vars).unwrap();
    scimflow_log::kafka::ensure_topics(&kafka).await.unwrap();
    let log = std::sync::Arc::new(scimflow_log::kafka::KafkaLog::new(&kafka).unwrap());
    let seeding = std::time::Instant::now();
    let mut next = 0;
    while next < total {
        let end = (next + 4096).min(total);
        let mut appends = Vec::new();
        for index in next..end {
            let (log, payload) = (log.clone(), command(index).encode());
            appends.push(tokio::spawn(async move { log.append("bench-tenant", payload, Vec::new()).await }));
        }
        for append in appends {
            append.await.unwrap().unwrap();
        }
        next = end;
    }
    println!("seeded {total} commands in {:.1}s", seeding.elapsed().as_secs_f64());
    let target = services.keyspace("bench");
    let output = services.ok(&["replay", "--into", &target]);
    println!("{output}");
    let verify = services.ok(&["verify", "--store-dir", &target]);
    println!("{verify}");
    assert!(verify.contains(": ok"));
    let store = services.store("bench").await;
    let _ = store.session().query_unpaged(format!("DROP KEYSPACE IF EXISTS {target}"), ()).await;
}
