use crate::helpers::*;
use actix_web::http::StatusCode;
use scimflow_ingest_api::ApiConfig;
use serde_json::json;

#[actix_web::test]
async fn create_group_with_members_renders_them_with_refs() {
    let app = spawn_app();
    let user = app.create_user("bjensen").await.id();
    let created = app.create_group("Staff", &[&user]).await;
    let group = created.id();
    assert_eq!(
        created.header("location"),
        Some(format!("http://localhost:8080{BASE}/Groups/{group}").as_str())
    );
    let members = created.body["members"].as_array().expect("members rendered");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["value"], user.as_str());
    assert_eq!(members[0]["type"], "User");
    assert_eq!(members[0]["$ref"], format!("http://localhost:8080{BASE}/Users/{user}"));
    let response = app.call("GET", &format!("/Groups/{group}"), None).await;
    assert_eq!(response.body["members"], created.body["members"]);
    assert_eq!(response.body["displayName"], "Staff");
}

#[actix_web::test]
async fn excluded_members_are_not_read_e11() {
    let app = spawn_app();
    let user = app.create_user("bjensen").await.id();
    let group = app.create_group("Staff", &[&user]).await.id();
    let reads_before = app.pipeline.members_page_reads();
    let response = app.call("GET", &format!("/Groups/{group}?excludedAttributes=members"), None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.body.get("members").is_none());
    assert_eq!(response.body["displayName"], "Staff");
    let filter = filter_query("displayName eq \"Staff\"");
    let response = app.call("GET", &format!("/Groups?{filter}&excludedAttributes=members"), None).await;
    assert_eq!(response.body["totalResults"], 1);
    assert!(response.body["Resources"][0].get("members").is_none());
    let response = app.call("GET", &format!("/Groups/{group}?attributes=displayName"), None).await;
    assert!(response.body.get("members").is_none());
    assert_eq!(app.pipeline.members_page_reads(), reads_before, "excluded members are never read");
    let response = app.call("GET", &format!("/Groups/{group}"), None).await;
    assert_eq!(response.body["members"].as_array().unwrap().len(), 1);
    assert!(app.pipeline.members_page_reads() > reads_before);
}

#[actix_web::test]
async fn group_patch_answers_204_by_default_e12() {
    let app = spawn_app();
    let user = app.create_user("bjensen").await.id();
    let group = app.create_group("Staff", &[]).await.id();
    let body =
        patch_body(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": user}]}]));
    let response = app.call("PATCH", &format!("/Groups/{group}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert!(response.raw.is_empty());
    assert_eq!(response.header("etag"), Some("W/\"2\""));
    let members = app.pipeline.tenant_state(TENANT_A).members_of(&group);
    assert_eq!(members.len(), 1);
}

#[actix_web::test]
async fn group_patch_with_attributes_answers_200_with_body() {
    let app = spawn_app();
    let group = app.create_group("Staff", &[]).await.id();
    let body = patch_body(json!([{"op": "replace", "path": "displayName", "value": "Staff 2"}]));
    let response = app.call("PATCH", &format!("/Groups/{group}?attributes=displayName"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["displayName"], "Staff 2");
    let body = patch_body(json!([{"op": "replace", "path": "displayName", "value": "Staff 3"}]));
    let response =
        app.call("PATCH", &format!("/Groups/{group}?excludedAttributes=members"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["displayName"], "Staff 3");
}

#[actix_web::test]
async fn group_patch_returns_body_when_configured() {
    let app = spawn_app_with(ApiConfig { group_patch_returns_body: true, ..Default::default() });
    let group = app.create_group("Staff", &[]).await.id();
    let body = patch_body(json!([{"op": "replace", "path": "displayName", "value": "Staff 2"}]));
    let response = app.call("PATCH", &format!("/Groups/{group}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["displayName"], "Staff 2");
}

#[actix_web::test]
async fn removing_listed_members_keeps_the_others_e3_e4() {
    let app = spawn_app();
    let a = app.create_user("a").await.id();
    let b = app.create_user("b").await.id();
    let c = app.create_user("c").await.id();
    let group = app.create_group("Staff", &[&a, &b, &c]).await.id();
    let body = patch_body(json!([{"op": "Remove", "path": "members", "value": [{"value": a}]}]));
    assert_eq!(
        app.call("PATCH", &format!("/Groups/{group}"), Some(body)).await.status,
        StatusCode::NO_CONTENT
    );
    let body = patch_body(json!([{"op": "remove", "path": format!("members[value eq \"{b}\"]")}]));
    assert_eq!(
        app.call("PATCH", &format!("/Groups/{group}"), Some(body)).await.status,
        StatusCode::NO_CONTENT
    );
    let members: Vec<String> = app
        .pipeline
        .tenant_state(TENANT_A)
        .members_of(&group)
        .into_iter()
        .map(|member| member.value)
        .collect();
    assert_eq!(members, vec![c]);
}

#[actix_web::test]
async fn unknown_member_ids_are_skipped_not_fatal_o11() {
    let app = spawn_app();
    let a = app.create_user("a").await.id();
    let group = app.create_group("Staff", &[]).await.id();
    let body = patch_body(json!([{"op": "add", "path": "members",
        "value": [{"value": a}, {"value": "00000000-0000-0000-0000-000000000000"}]}]));
    let response = app.call("PATCH", &format!("/Groups/{group}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert_eq!(response.header("x-scimflow-skipped-members"), Some("00000000-0000-0000-0000-000000000000"));
    assert_eq!(app.pipeline.tenant_state(TENANT_A).members_of(&group).len(), 1);
}

#[actix_web::test]
async fn large_groups_are_truncated_and_paged_through_the_members_endpoint() {
    let app = spawn_app_with(ApiConfig { member_page_cap: 3, scan_batch_size: 2, ..Default::default() });
    let mut created_users = Vec::new();
    for index in 0..5 {
        created_users.push(app.create_user(&format!("user{index}")).await.id());
    }
    let member_refs: Vec<&str> = created_users.iter().map(String::as_str).collect();
    let created = app.create_group("Big", &member_refs).await;
    let group = created.id();
    assert_eq!(created.header("x-scimflow-members-truncated"), Some("true"));
    let response = app.call("GET", &format!("/Groups/{group}"), None).await;
    assert_eq!(response.header("x-scimflow-members-truncated"), Some("true"));
    assert_eq!(response.body["members"].as_array().unwrap().len(), 3);

    // The members endpoint pages through all five in id order.
    let small_members = [member_refs[0].to_owned(), member_refs[1].to_owned()];
    let mut users = created_users.clone();
    users.sort();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let response =
            app.call("GET", &format!("/Groups/{group}/members?count=2&cursor={cursor}"), None).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        for member in response.body["Resources"].as_array().unwrap() {
            assert_eq!(member["type"], "User");
            assert!(member["$ref"].as_str().unwrap().ends_with(member["value"].as_str().unwrap()));
            seen.push(member["value"].as_str().unwrap().to_owned());
        }
        match response.body.get("nextCursor").and_then(|cursor| cursor.as_str()) {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, users);

    // A group within the cap is not marked.
    let small = app.create_group("Small", &[&small_members[0], &small_members[1]]).await;
    assert!(small.header("x-scimflow-members-truncated").is_none());
}

#[actix_web::test]
async fn members_endpoint_errors() {
    let app = spawn_app();
    let user = app.create_user("a").await.id();
    app.call("GET", "/Groups/nope/members", None).await.assert_scim_error(404, None);
    app.call("GET", &format!("/Users/{user}/members"), None).await.assert_scim_error(404, None);
    let group = app.create_group("g", &[]).await.id();
    app.call("GET", &format!("/Groups/{group}/members?cursor=%%%"), None)
        .await
        .assert_scim_error(400, Some("invalidCursor"));
}

#[actix_web::test]
async fn put_group_with_members_replaces_them() {
    let app = spawn_app();
    let a = app.create_user("a").await.id();
    let b = app.create_user("b").await.id();
    let group = app.create_group("Staff", &[&a]).await.id();
    let body = json!({"schemas": [GROUP_SCHEMA], "displayName": "Staff", "members": [{"value": b}]});
    let response = app.call("PUT", &format!("/Groups/{group}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let members = response.body["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["value"], b.as_str());
}

#[actix_web::test]
async fn deleting_a_user_removes_it_from_its_groups() {
    let app = spawn_app();
    let a = app.create_user("a").await.id();
    let group = app.create_group("Staff", &[&a]).await.id();
    assert_eq!(app.call("DELETE", &format!("/Users/{a}"), None).await.status, StatusCode::NO_CONTENT);
    let response = app.call("GET", &format!("/Groups/{group}"), None).await;
    assert!(response.body.get("members").is_none(), "{}", response.body);
    assert_eq!(app.call("DELETE", &format!("/Groups/{group}"), None).await.status, StatusCode::NO_CONTENT);
}
