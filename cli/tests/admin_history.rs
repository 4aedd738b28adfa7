//! The history endpoints over HTTP on the real binary (embedded log and store): a tenant reads
//! its own history and point-in-time state with its own token and nothing else; the operator
//! reads any tenant's with an admin token, which is no tenant token; every refusal is a SCIM
//! error (401 unknown token, 403 a tenant token on `/admin`).

use serde_json::{Value, json};

mod support;
use support::{ACTOR, Api, free_port, now_rfc3339, ok, start_serve, stop, tenant_id_of};

const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

async fn get(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null))
}

fn assert_scim_error(answer: &(u16, Value), status: u16, what: &str) {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    assert_eq!(answer.1["schemas"][0], ERROR_SCHEMA, "{what}: {}", answer.1);
    assert_eq!(answer.1["status"], status.to_string(), "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_read_their_own_history_and_admins_any() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    let token_a = ok(&["tenant", "create", "acme", "--quiet", "--data-dir", data_dir]).trim().to_owned();
    let token_b = ok(&["tenant", "create", "globex", "--quiet", "--data-dir", data_dir]).trim().to_owned();
    let admin = ok(&["admin", "token", "create", "ops", "--quiet", "--data-dir", data_dir]).trim().to_owned();
    assert!(ok(&["admin", "token", "list", "--data-dir", data_dir]).contains("ops"));
    let (tenant_a, tenant_b) = (tenant_id_of(data_dir, "acme"), tenant_id_of(data_dir, "globex"));
    let port = free_port();
    let (server, _) = start_serve(&data, port, &[], &[]);
    let root = format!("http://127.0.0.1:{port}");
    let base = format!("{root}/scim/v2");
    let client = reqwest::Client::new();
    let a = Api { client: client.clone(), base: base.clone(), token: token_a.clone() };
    let b = Api { client: client.clone(), base: base.clone(), token: token_b.clone() };

    let before = now_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(10));
    let user = a.create("/Users", json!({"userName": "bjensen", "password": "s3cret!"})).await;
    let mut member_ids = vec![user.clone()];
    for index in 0..5 {
        member_ids.push(a.create("/Users", json!({"userName": format!("m{index}")})).await);
    }
    let group = a
        .create("/Groups", json!({"displayName": "Eng", "members": member_ids.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()}))
        .await;
    std::thread::sleep(std::time::Duration::from_millis(10));
    let middle = now_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(10));
    a.patch(&format!("/Users/{user}"), json!([{"op": "replace", "path": "displayName", "value": "Babs"}]))
        .await;
    a.patch(
        &format!("/Groups/{group}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", member_ids[1])}]),
    )
    .await;
    let b_user = b.create("/Users", json!({"userName": "other"})).await;

    // A tenant's own history: who changed what, when, and the raw request, password scrubbed.
    let (status, history) = get(&client, &format!("{base}/Users/{user}/history"), &token_a).await;
    assert_eq!(status, 200, "{history}");
    let entries = history["Resources"].as_array().unwrap();
    assert_eq!(history["totalResults"], entries.len());
    assert_eq!(entries[0]["method"], "POST");
    assert_eq!(entries[0]["actor"], ACTOR);
    assert_eq!(entries[0]["outcome"], "accepted 201");
    assert!(entries[0]["rawBody"].as_str().unwrap().contains("bjensen"));
    assert!(!entries[0]["rawBody"].as_str().unwrap().contains("s3cret!"), "passwords are scrubbed");
    assert!(entries.iter().any(|entry| entry["effects"][0] == format!("added to group {group}")));
    let last = entries.last().unwrap();
    assert_eq!(
        (last["method"].as_str(), last["effects"][0].as_str()),
        (Some("PATCH"), Some("updated to version 2"))
    );
    assert!(last["issuedAt"].as_str().unwrap() > middle.as_str());

    // Point in time: the user before its rename; not yet existing before its create.
    let (status, then) = get(&client, &format!("{base}/Users/{user}?at={middle}"), &token_a).await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["userName"], "bjensen");
    assert!(then.get("displayName").is_none());
    assert_scim_error(
        &get(&client, &format!("{base}/Users/{user}?at={before}"), &token_a).await,
        404,
        "before create",
    );
    assert_scim_error(
        &get(&client, &format!("{base}/Users/{user}?at=yesterday"), &token_a).await,
        400,
        "bad instant",
    );
    // Without `at`, the same path is the ordinary read: the current state.
    let (_, now) = get(&client, &format!("{base}/Users/{user}"), &token_a).await;
    assert_eq!(now["displayName"], "Babs");

    // Members at T, paged by startIndex/count: six then, five now.
    let page = |start: usize| format!("{base}/Groups/{group}/members?at={middle}&startIndex={start}&count=4");
    let (status, first) = get(&client, &page(1), &token_a).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["totalResults"], 6);
    assert_eq!(first["Resources"].as_array().unwrap().len(), 4);
    let (_, second) = get(&client, &page(5), &token_a).await;
    let mut seen: Vec<String> = first["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["Resources"].as_array().unwrap())
        .map(|member| member["value"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut expected = member_ids.clone();
    expected.sort();
    assert_eq!(seen, expected, "the membership at T, every member once");

    // Tenant separation: B cannot see A's resource history, at any instant, through its token.
    assert_scim_error(
        &get(&client, &format!("{base}/Users/{user}/history"), &token_b).await,
        404,
        "B reads A's",
    );
    assert_scim_error(
        &get(&client, &format!("{base}/Users/{user}?at={middle}"), &token_b).await,
        404,
        "B at T",
    );
    // Tenant tokens cannot use /admin, not even for their own tenant; unknown tokens are 401.
    let admin_url = |tenant: &str, rest: &str| format!("{root}/admin/tenants/{tenant}/{rest}");
    let own = admin_url(&tenant_b, &format!("Users/{b_user}/history"));
    assert_scim_error(&get(&client, &own, &token_b).await, 403, "tenant token on /admin");
    let other = admin_url(&tenant_a, &format!("Users/{user}/history"));
    assert_scim_error(&get(&client, &other, &token_b).await, 403, "B on A's admin path");
    assert_scim_error(&get(&client, &other, "scimflow_not_a_token").await, 401, "unknown token");
    assert_scim_error(
        &get(&client, &format!("{root}/admin/anything"), &token_a).await,
        403,
        "tenant on /admin/*",
    );
    let anonymous = client.get(&other).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    // The admin token is no tenant token.
    assert_scim_error(
        &get(&client, &format!("{base}/Users/{user}/history"), &admin).await,
        401,
        "admin on SCIM",
    );

    // The operator reads any tenant.
    let (status, admin_history) = get(&client, &other, &admin).await;
    assert_eq!(status, 200, "{admin_history}");
    assert_eq!(admin_history["Resources"], history["Resources"], "the same history the tenant sees");
    let (status, b_history) = get(&client, &own, &admin).await;
    assert_eq!(status, 200);
    assert_eq!(b_history["totalResults"], 1);
    let (status, then) =
        get(&client, &admin_url(&tenant_a, &format!("Users/{user}?at={middle}")), &admin).await;
    assert_eq!((status, then["userName"].as_str()), (200, Some("bjensen")));
    let members_url = admin_url(&tenant_a, &format!("Groups/{group}/members?at={middle}&count=100"));
    let (status, members) = get(&client, &members_url, &admin).await;
    assert_eq!((status, members["totalResults"].as_u64()), (200, Some(6)));
    // A resource id of tenant A asked under tenant B's path is not found: the path's tenant scopes it.
    let crossed = admin_url(&tenant_b, &format!("Users/{user}/history"));
    assert_scim_error(&get(&client, &crossed, &admin).await, 404, "A's id under B");
    stop(server);

    // A revoked admin token is refused.
    ok(&["admin", "token", "revoke", "ops", "--data-dir", data_dir]);
    let port = free_port();
    let (server, _) = start_serve(&data, port, &[], &[]);
    let url = format!("http://127.0.0.1:{port}/admin/tenants/{tenant_a}/Users/{user}/history");
    assert_scim_error(&get(&client, &url, &admin).await, 401, "revoked admin token");
    stop(server);
}
