use crate::helpers::*;
use actix_web::http::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn a_tenant_cannot_read_or_change_another_tenants_resources_by_id() {
    let app = spawn_app();
    let user_b = app.create_user_as(TOKEN_B, "bob").await.id();
    let group_b = app.create_group_as(TOKEN_B, "B staff", &[&user_b]).await.id();
    app.call("GET", &format!("/Users/{user_b}"), None).await.assert_scim_error(404, None);
    app.call("GET", &format!("/Groups/{group_b}"), None).await.assert_scim_error(404, None);
    app.call("GET", &format!("/Groups/{group_b}/members"), None).await.assert_scim_error(404, None);
    let patch = patch_body(json!([{"op": "replace", "path": "title", "value": "pwned"}]));
    app.call("PATCH", &format!("/Users/{user_b}"), Some(patch)).await.assert_scim_error(404, None);
    let put = json!({"schemas": [USER_SCHEMA], "userName": "pwned"});
    app.call("PUT", &format!("/Users/{user_b}"), Some(put)).await.assert_scim_error(404, None);
    app.call("DELETE", &format!("/Groups/{group_b}"), None).await.assert_scim_error(404, None);
    // Tenant B still sees its data untouched.
    let response = app.call_as(TOKEN_B, "GET", &format!("/Users/{user_b}"), None).await;
    assert_eq!(response.body["userName"], "bob");
    assert!(response.body.get("title").is_none());
    assert_eq!(app.pipeline.tenant_state(TENANT_B).members_of(&group_b).len(), 1);
}

#[actix_web::test]
async fn a_tenant_cannot_find_another_tenants_resources_by_filter_or_search() {
    let app = spawn_app();
    let user_b = app.create_user_as(TOKEN_B, "bob").await.id();
    app.create_group_as(TOKEN_B, "B staff", &[&user_b]).await;
    app.create_user("alice").await;
    let response = app.call("GET", &format!("/Users?{}", filter_query("userName eq \"bob\"")), None).await;
    assert_eq!(response.body["totalResults"], 0);
    let response =
        app.call("GET", &format!("/Users?{}", filter_query(&format!("id eq \"{user_b}\""))), None).await;
    assert_eq!(response.body["totalResults"], 0);
    let response = app
        .call("GET", &format!("/Groups?{}", filter_query(&format!("members.value eq \"{user_b}\""))), None)
        .await;
    assert_eq!(response.body["totalResults"], 0);
    let response = app.call("GET", "/Users", None).await;
    assert_eq!(response.body["totalResults"], 1);
    let body = json!({"schemas": [SEARCH_SCHEMA]});
    let response = app.call("POST", "/.search", Some(body)).await;
    assert_eq!(response.body["totalResults"], 1);
    // The same userName is free in another tenant.
    app.create_user("bob").await;
}

#[actix_web::test]
async fn a_tenant_cannot_reach_another_tenant_through_bulk() {
    let app = spawn_app();
    let user_b = app.create_user_as(TOKEN_B, "bob").await.id();
    let group_a = app.create_group("A staff", &[]).await.id();
    let body = json!({"schemas": [BULK_SCHEMA], "Operations": [
        {"method": "DELETE", "path": format!("/Users/{user_b}")},
        {"method": "PATCH", "path": format!("/Groups/{group_a}"),
         "data": patch_body(json!([{"op": "add", "path": "members", "value": [{"value": user_b}]}]))}
    ]});
    let response = app.call("POST", "/Bulk", Some(body)).await;
    let operations = response.body["Operations"].as_array().unwrap();
    assert_eq!(operations[0]["status"], "404");
    // The foreign id is skipped as unknown: tenant A's group does not gain tenant B's user.
    assert_eq!(operations[1]["status"], "200");
    assert!(app.pipeline.tenant_state(TENANT_A).members_of(&group_a).is_empty());
    assert_eq!(app.call_as(TOKEN_B, "GET", &format!("/Users/{user_b}"), None).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn the_tenant_comes_from_the_token_only() {
    let app = spawn_app();
    let request = request("POST", "/Users")
        .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
        .insert_header(("X-Tenant-Id", TENANT_B))
        .insert_header(("Content-Type", "application/json"))
        .set_payload(json!({"userName": "x", "tenantId": TENANT_B}).to_string());
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert!(app.pipeline.commands().iter().all(|command| command.tenant_id == TENANT_A));
    assert_eq!(app.pipeline.tenant_state(TENANT_B).resources.len(), 0);
}
