//! What the recovery tests share: running `scimflow serve` and the other subcommands of the
//! real binary, a small SCIM client, and the scripted history they replay and read back.
// Each test file uses a different part of this module.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ACTOR: &str = "scimflow-test-idp/1.0";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `scimflow serve` on `data_dir`; returns the child and the first tenant's bearer token.
pub fn serve(data_dir: &Path, port: u16) -> (Child, String) {
    serve_with(data_dir, port, &[], &[])
}

/// `scimflow serve` with extra arguments and environment (e.g. `--log kafka --store cql`).
pub fn serve_with(data_dir: &Path, port: u16, args: &[&str], env: &[(String, String)]) -> (Child, String) {
    let (child, token) = start_serve(data_dir, port, args, env);
    (child, token.expect("first start prints a token"))
}

/// Starts `scimflow serve` and waits until it listens; returns the first tenant's token when
/// this start created it (a data directory without tenants).
pub fn start_serve(
    data_dir: &Path,
    port: u16,
    args: &[&str],
    env: &[(String, String)],
) -> (Child, Option<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimflow"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("scimflow starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut token = None;
    while let Some(Ok(line)) = lines.next() {
        if line.contains("bearer token") {
            token = line.rsplit(' ').next().map(str::to_owned);
            break;
        }
        if line.starts_with("tenants:") {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, token)
}

/// The id of tenant `name` in `data_dir`.
pub fn tenant_id_of(data_dir: &str, name: &str) -> String {
    let listing = ok(&["tenant", "list", "--data-dir", data_dir]);
    let line = listing.lines().find(|line| line.starts_with(&format!("{name}\t"))).expect("tenant listed");
    line.split('\t').nth(1).unwrap().to_owned()
}

/// Stops the server like Ctrl-C does, so it drains, folds what it logged and releases its files.
pub fn stop(mut child: Child) {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn scimflow(args: &[&str]) -> Output {
    scimflow_with(args, &[])
}

pub fn scimflow_with(args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimflow"))
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn ok(args: &[&str]) -> String {
    ok_with(args, &[])
}

pub fn ok_with(args: &[&str], env: &[(String, String)]) -> String {
    let output = scimflow_with(args, env);
    assert!(
        output.status.success(),
        "scimflow {args:?} failed:\n{}\n{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("User-Agent", ACTOR);
        if let Some(body) = body {
            request = request.header("Content-Type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn create(&self, path: &str, body: Value) -> String {
        let (status, created) = self.send(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    pub async fn patch(&self, path: &str, operations: Value) {
        let body =
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations});
        let (status, answer) = self.send(reqwest::Method::PATCH, path, Some(body)).await;
        assert!(status == 200 || status == 204, "{status} {answer}");
    }

    pub async fn get(&self, path: &str) -> Option<Value> {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        (status == 200).then_some(body)
    }
}

/// The part of a served resource a point-in-time read must reproduce: everything but the
/// request-dependent `meta.location`, `$ref`s and a user's derived `groups`; members as a set.
pub fn comparable(resource: &Value) -> Value {
    let mut copy = resource.clone();
    let object = copy.as_object_mut().unwrap();
    object.remove("groups");
    if let Some(meta) = object.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("location");
    }
    if let Some(members) = object.remove("members") {
        let mut values: Vec<String> = members
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member["value"].as_str().unwrap().to_owned())
            .collect();
        values.sort();
        object.insert("members".into(), json!(values));
    }
    copy
}

pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let millis = now.as_millis() as i64;
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A scripted history, with the API's answers for a user and a group captured at instants in
/// between. Returns (user id, group id, removed user id, [(instant, user, group)]).
pub async fn scripted_history(
    api: &Api,
) -> (String, String, String, Vec<(String, Option<Value>, Option<Value>)>) {
    let mut instants = Vec::new();
    // Each instant is taken after the previous answer and before the next request, with a gap
    // on both sides so it falls strictly between the commands' millisecond timestamps.
    let mark = |instants: &mut Vec<_>, user: Option<Value>, group: Option<Value>| {
        std::thread::sleep(Duration::from_millis(5));
        instants.push((now_rfc3339(), user, group));
        std::thread::sleep(Duration::from_millis(5));
    };
    mark(&mut instants, None, None);
    let alice = api
        .create(
            "/Users",
            json!({"userName": "alice", "displayName": "Alice", "emails": [{"value": "alice@example.org"}]}),
        )
        .await;
    let mut users = Vec::new();
    for index in 0..40 {
        users.push(
            api.create(
                "/Users",
                json!({"userName": format!("user{index}"), "externalId": format!("ext-{index}")}),
            )
            .await,
        );
    }
    let members: Vec<Value> = users[..5].iter().chain([&alice]).map(|id| json!({"value": id})).collect();
    let group = api.create("/Groups", json!({"displayName": "Engineering", "members": members})).await;
    let (user_path, group_path) = (format!("/Users/{alice}"), format!("/Groups/{group}"));
    mark(&mut instants, api.get(&user_path).await, api.get(&group_path).await);

    api.patch(&user_path, json!([{"op": "replace", "path": "displayName", "value": "Alice Liddell"}])).await;
    api.patch(
        &group_path,
        json!([{"op": "add", "path": "members", "value": [{"value": users[6]}, {"value": users[7]}]}]),
    )
    .await;
    api.patch(&group_path, json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", users[1])}]))
        .await;
    // Rejected (userName taken): in the log, with no effect.
    let (status, _) = api.send(reqwest::Method::POST, "/Users", Some(json!({"userName": "ALICE"}))).await;
    assert_eq!(status, 409);
    mark(&mut instants, api.get(&user_path).await, api.get(&group_path).await);

    let (status, _) = api
        .send(
            reqwest::Method::PUT,
            &user_path,
            Some(json!({"userName": "alice2", "active": false, "emails": [{"value": "a2@example.org"}]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api.send(reqwest::Method::DELETE, &format!("/Users/{}", users[2]), None).await;
    assert_eq!(status, 204);
    api.create(
        "/Groups",
        json!({"displayName": "Sales", "members": [{"value": alice}, {"value": users[3]}]}),
    )
    .await;
    mark(&mut instants, api.get(&user_path).await, api.get(&group_path).await);

    let (status, _) = api.send(reqwest::Method::DELETE, &group_path, None).await;
    assert_eq!(status, 204);
    mark(&mut instants, api.get(&user_path).await, None);
    (alice, group, users[1].clone(), instants)
}

/// The replay benchmarks' command `index`: the first `creates` create users, the rest replace
/// them again (so a replay folds both kinds of write), all in one tenant.
pub fn bench_command(
    registry: &scimflow_core::SchemaRegistry,
    creates: usize,
    index: usize,
) -> scimflow_core::command::Command {
    use scimflow_core::command::{Action, Command as ScimCommand, CommandMetadata};
    use scimflow_core::resource::normalize_resource;
    use scimflow_core::schema::ResourceKind;
    let user = index % creates;
    let body = json!({"userName": format!("bench{user}"), "displayName": format!("Bench {index}"),
        "emails": [{"value": format!("b{user}@example.org"), "primary": true}]});
    let resource = normalize_resource(registry, ResourceKind::User, &body).unwrap();
    let action = if index < creates { Action::Create(resource) } else { Action::Replace(resource) };
    ScimCommand {
        event_id: format!("bench-{index}"),
        tenant_id: "bench-tenant".into(),
        kind: ResourceKind::User,
        resource_id: format!("user-{user}"),
        issued_at_ms: 1_780_000_000_000 + index as i64,
        if_match: None,
        action,
        metadata: CommandMetadata { actor: "bench".into(), raw_method: "POST".into(), ..Default::default() },
    }
}
