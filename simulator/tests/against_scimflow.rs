//! The smoke profile against scimflow's embedded server (log, projector, store, API in this
//! process), with verification: the final state must equal the simulator's model and no
//! request may fail.

use scimflow::embedded::EmbeddedApp;
use scimflow_ingest_api::ApiConfig;
use scimflow_simulator::profile::Profile;
use scimflow_simulator::report::{render_svg, render_table};
use scimflow_simulator::{RunConfig, run};

struct Server {
    base_url: String,
    token: String,
    _data: tempfile::TempDir,
}

async fn start(config: ApiConfig) -> Server {
    let data = tempfile::tempdir().expect("temp dir");
    let app = EmbeddedApp::build(data.path(), "127.0.0.1:0", config).await.expect("server builds");
    let (_, token) = app.tenants.create("sim", chrono::Utc::now().timestamp_millis()).expect("tenant");
    let base_url = app.base_url.clone();
    tokio::spawn(app.run_until_stopped());
    Server { base_url, token, _data: data }
}

fn config(server: &Server, profile: Profile, seed: u64) -> RunConfig {
    RunConfig {
        url: server.base_url.clone(),
        token: server.token.clone(),
        profile,
        seed,
        progress: std::env::var_os("SIMULATOR_PROGRESS").is_some(),
        verify: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_profile_against_scimflow_verifies_green() {
    let server = start(ApiConfig::default()).await;
    let report = run(config(&server, Profile::smoke(), 1)).await.expect("the run starts");
    let table = render_table(&report);
    println!("{table}");
    let json = serde_json::to_string_pretty(&report).unwrap();
    if let Some(dir) = std::env::var_os("SIMULATOR_REPORT_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("smoke-report.json"), &json).unwrap();
        std::fs::write(
            dir.join("smoke-plot.svg"),
            render_svg(&report.membership_latency_by_group_size, "smoke"),
        )
        .unwrap();
    }
    assert_eq!(report.provisioned.users, 200, "{table}");
    assert_eq!(report.provisioned.groups, 20, "{table}");
    assert!(report.provisioned.inactive_users > 0, "churn deactivated someone");
    let verification = report.verification.as_ref().expect("verified");
    assert_eq!(verification.users_checked, 200);
    assert_eq!(verification.groups_checked, 20);
    assert_eq!(report.errors.unexpected, 0, "no request failed:\n{table}\n{:#?}", report.errors.samples);
    assert_eq!(verification.differences, 0, "final state equals the model:\n{table}");
    assert!(report.passed, "{table}");
    let ops: Vec<&str> = report.operations.iter().map(|op| op.op.as_str()).collect();
    for op in [
        "probe",
        "user.lookup",
        "user.create",
        "user.manager",
        "group.create",
        "group.patch.members",
        "user.deactivate",
    ] {
        assert!(ops.contains(&op), "{op} was exercised: {ops:?}");
    }
    let membership = &report.membership_latency_by_group_size;
    assert!(!membership.small_changes.is_empty() && !membership.bulk_changes.is_empty());
}

/// A second run with the same seed on the same tenant finds everything it provisioned the
/// first time (existence checks by filter), adopts it, and still verifies green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_with_the_same_seed_adopts_existing_resources() {
    let server = start(ApiConfig::default()).await;
    let small = Profile { users: 40, groups: 5, largest_group: 30, churn_ops: 40, ..Profile::smoke() };
    let first = run(config(&server, small.clone(), 3)).await.unwrap();
    assert!(first.passed, "{}", render_table(&first));
    let second = run(config(&server, small, 3)).await.unwrap();
    let table = render_table(&second);
    assert!(second.passed, "{table}");
    let creates = second.operations.iter().find(|op| op.op == "user.create").map(|op| op.count).unwrap_or(0);
    assert_eq!(creates, 0, "every user was found and adopted: {table}");
}

/// A group larger than the server renders in one GET is read through the members paging
/// endpoint, and still compared exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_groups_are_verified_through_paging() {
    let server = start(ApiConfig { member_page_cap: 50, ..ApiConfig::default() }).await;
    let profile = Profile { users: 120, groups: 4, largest_group: 120, churn_ops: 30, ..Profile::smoke() };
    let report = run(config(&server, profile, 5)).await.unwrap();
    let table = render_table(&report);
    assert!(report.passed, "{table}");
    let verification = report.verification.unwrap();
    assert!(verification.group_read_methods.get("members-endpoint").copied().unwrap_or(0) >= 1, "{table}");
}

/// Changes made behind the simulator's back are each reported: verification reads the real
/// server, it does not trust the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_behind_the_simulators_back_are_reported() {
    use scimflow_simulator::client::{ClientOptions, ScimClient};
    use scimflow_simulator::metrics::Metrics;
    use serde_json::json;
    use std::sync::Arc;

    let server = start(ApiConfig::default()).await;
    let profile = Profile { users: 60, groups: 6, largest_group: 50, churn_ops: 0, ..Profile::smoke() };
    let outcome = scimflow_simulator::run_detailed(config(&server, profile.clone(), 8)).await.unwrap();
    assert!(outcome.report.passed, "{}", render_table(&outcome.report));
    let (chart, model) = (outcome.chart, outcome.model);

    let http = reqwest::Client::new();
    let patch = |path: String, operations: serde_json::Value| {
        let request = http
            .patch(format!("{}{path}", server.base_url))
            .bearer_auth(&server.token)
            .header("Content-Type", "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}).to_string());
        async move {
            let status = request.send().await.unwrap().status().as_u16();
            assert!(status == 200 || status == 204, "tampering PATCH {path} answered {status}");
        }
    };
    let user_id = model.users[7].id.clone().unwrap();
    patch(format!("/Users/{user_id}"), json!([{"op": "replace", "path": "title", "value": "Tampered"}]))
        .await;
    let big = &model.groups[0];
    let big_id = big.id.clone().unwrap();
    let gone = big.members.iter().next().unwrap();
    let gone_id = model.users[gone as usize].id.clone().unwrap();
    patch(
        format!("/Groups/{big_id}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{gone_id}\"]")}]),
    )
    .await;
    let small_index = (0..model.groups.len()).rev().find(|g| model.groups[*g].members.len() < 60).unwrap();
    let small = &model.groups[small_index];
    let intruder = (0..60u32).find(|u| !small.members.contains(*u)).unwrap();
    let intruder_id = model.users[intruder as usize].id.clone().unwrap();
    patch(
        format!("/Groups/{}", small.id.clone().unwrap()),
        json!([{"op": "add", "path": "members", "value": [{"value": intruder_id}]}]),
    )
    .await;

    let client = ScimClient::new(
        &server.base_url,
        &server.token,
        Arc::new(Metrics::new()),
        &ClientOptions {
            concurrency: 4,
            rate: None,
            timeout: std::time::Duration::from_secs(30),
            max_retries: 2,
        },
    )
    .unwrap();
    let summary = scimflow_simulator::verify::verify(&client, chart, model, 4, None, 50).await;
    let found: Vec<(String, Option<u32>, String)> =
        summary.items.iter().map(|d| (d.resource.clone(), d.index, d.field.clone())).collect();
    assert_eq!(summary.differences, 3, "{found:?}");
    assert!(found.contains(&("User".into(), Some(7), "title".into())), "{found:?}");
    assert!(found.contains(&("Group".into(), Some(0), "members (missing)".into())), "{found:?}");
    assert!(
        found.contains(&("Group".into(), Some(small_index as u32), "members (unexpected)".into())),
        "{found:?}"
    );
    assert_eq!((summary.missing_members, summary.extra_members), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_writes_json_and_svg_and_exits_by_outcome() {
    let server = start(ApiConfig::default()).await;
    let out = tempfile::tempdir().unwrap();
    let (json_path, svg_path) = (out.path().join("report.json"), out.path().join("plot.svg"));
    let binary = env!("CARGO_BIN_EXE_scimflow-simulate");
    let status = tokio::process::Command::new(binary)
        .args([
            "--profile",
            "smoke",
            "--users",
            "40",
            "--groups",
            "5",
            "--churn-ops",
            "30",
            "--quiet",
            "--seed",
            "2",
        ])
        .args(["--url", &server.base_url, "--token", &server.token, "--rate", "500"])
        .arg("--report-json")
        .arg(&json_path)
        .arg("--plot")
        .arg(&svg_path)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "exit {status:?}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["org_chart"]["largest_group"], 40, "the largest group shrinks to the user count");
    assert_eq!(report["profile"]["rate"], 500.0);
    assert!(std::fs::read_to_string(&svg_path).unwrap().contains("<polyline"));

    let rejected = tokio::process::Command::new(binary)
        .args(["--url", &server.base_url, "--token", "wrong", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert_eq!(rejected.code(), Some(2), "a rejected token stops the run before any load");
}

/// A run cut short by its time budget verifies what was acknowledged until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_short_by_its_duration_still_verifies() {
    let server = start(ApiConfig::default()).await;
    let profile = Profile {
        users: 3_000,
        groups: 10,
        largest_group: 2_000,
        duration_seconds: Some(0.5),
        ..Profile::smoke()
    };
    let report = run(config(&server, profile, 6)).await.unwrap();
    let table = render_table(&report);
    assert!(report.provisioned.users > 0 && report.provisioned.users < 3_000, "{table}");
    assert!(report.passed, "{table}");
    let verification = report.verification.unwrap();
    assert_eq!(verification.users_checked, report.provisioned.users);
    assert_eq!(verification.users_not_provisioned, 3_000 - report.provisioned.users);
}
