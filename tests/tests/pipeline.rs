//! End-to-end over HTTP on the real embedded pipeline: what a 2xx guarantees.

use futures_util::future::join_all;
use scimflow_tests::{TestApp, topology_tests};
use serde_json::{Value, json};
use std::collections::BTreeSet;

topology_tests!(
    eight_concurrent_patches_adding_100_members_each_all_succeed_and_leave_the_union,
    a_2xx_write_is_visible_to_the_very_next_read,
    uniqueness_holds_under_concurrent_creates,
    another_tenants_token_can_neither_read_nor_change_resources,
);

fn add_members(ids: &[String]) -> Value {
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "Add", "path": "members", "value": members}]})
}

async fn all_member_ids(app: &TestApp, group_id: &str) -> BTreeSet<String> {
    let (status, group) = app.get(&format!("/Groups/{group_id}")).await;
    assert_eq!(status, 200, "{group}");
    group["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .collect()
}

async fn eight_concurrent_patches_adding_100_members_each_all_succeed_and_leave_the_union(app: TestApp) {
    let group_id = app.create_group("Everyone").await;
    let mut user_ids = Vec::new();
    // Create the users with bounded concurrency.
    for batch in (0..800).collect::<Vec<_>>().chunks(64) {
        let names: Vec<String> = batch.iter().map(|index| format!("user{index}@example.com")).collect();
        let ids = join_all(names.iter().map(|name| app.create_user(name))).await;
        user_ids.extend(ids);
    }
    let patches = user_ids.chunks(100).map(|chunk| {
        let body = add_members(chunk);
        let app = &app;
        let path = format!("/Groups/{group_id}");
        async move { app.patch(&path, &body).await }
    });
    let answers = join_all(patches).await;
    for (status, body) in &answers {
        assert!(*status == 204 || *status == 200, "every PATCH succeeds: {status} {body}");
    }
    let members = all_member_ids(&app, &group_id).await;
    let expected: BTreeSet<String> = user_ids.iter().cloned().collect();
    assert_eq!(members, expected, "exactly the union of the eight PATCHes");
}

async fn a_2xx_write_is_visible_to_the_very_next_read(app: TestApp) {
    for index in 0..50 {
        let id = app.create_user(&format!("reader{index}")).await;
        let (status, user) = app.get(&format!("/Users/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(user["userName"], format!("reader{index}"));
        let body =
            json!({"Operations": [{"op": "replace", "path": "displayName", "value": format!("v{index}")}]});
        let (status, _) = app.patch(&format!("/Users/{id}"), &body).await;
        assert_eq!(status, 200);
        let (_, user) = app.get(&format!("/Users/{id}")).await;
        assert_eq!(user["displayName"], format!("v{index}"));
    }
}

async fn uniqueness_holds_under_concurrent_creates(app: TestApp) {
    let body =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "same@example.com"});
    let answers = join_all((0..16).map(|_| app.post("/Users", &body))).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let conflicts: Vec<_> = answers.iter().filter(|(status, _)| *status == 409).collect();
    assert_eq!(created, 1, "exactly one create wins");
    assert_eq!(conflicts.len(), 15);
    assert!(conflicts.iter().all(|(_, body)| body["scimType"] == "uniqueness"));
}

async fn another_tenants_token_can_neither_read_nor_change_resources(app: TestApp) {
    let id = app.create_user("private@acme.example").await;
    let other = &app.other_token;
    let (status, _) = app.send(reqwest::Method::GET, &format!("/Users/{id}"), other, None).await;
    assert_eq!(status, 404);
    let filter = "/Users?filter=userName%20eq%20%22private@acme.example%22";
    let (status, list) = app.send(reqwest::Method::GET, filter, other, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], 0);
    let patch = json!({"Operations": [{"op": "replace", "path": "active", "value": false}]});
    let (status, _) = app.send(reqwest::Method::PATCH, &format!("/Users/{id}"), other, Some(&patch)).await;
    assert_eq!(status, 404);
    let (status, _) = app.send(reqwest::Method::DELETE, &format!("/Users/{id}"), other, None).await;
    assert_eq!(status, 404);
    let (_, user) = app.get(&format!("/Users/{id}")).await;
    assert_eq!(user["active"], Value::Null, "tenant acme's user is untouched");
    let (status, body) = app.send(reqwest::Method::GET, "/Users", "not-a-token", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], "401");
}
