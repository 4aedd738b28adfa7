//! The request shapes of `scim/idp-quirks.md`, sent over HTTP exactly as the IdPs send them.

use crate::helpers::*;
use actix_web::http::StatusCode;
use serde_json::json;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[actix_web::test]
async fn okta_create_with_password_empty_groups_and_application_json_o2() {
    let app = spawn_app();
    let request = request("POST", "/Users")
        .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
        .insert_header(("Content-Type", "application/json"))
        .set_payload(
            json!({"schemas": [USER_SCHEMA], "userName": "isabella@example.com", "externalId": "00u1",
                "name": {"givenName": "Isabella", "familyName": "Dunn"}, "password": "1mz050nq",
                "emails": [{"primary": true, "value": "isabella@example.com", "type": "work"}],
                "active": true, "groups": []})
            .to_string(),
        );
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    assert!(response.body.get("password").is_none());
    assert!(response.body.get("groups").is_none());
    assert_eq!(response.body["externalId"], "00u1");
    let raw = String::from_utf8(app.pipeline.commands()[0].metadata.raw_body.clone()).unwrap();
    assert!(!raw.contains("1mz050nq"));
    // O3: the duplicate create is 409 uniqueness.
    let again = app
        .call("POST", "/Users", Some(json!({"schemas": [USER_SCHEMA], "userName": "isabella@example.com"})))
        .await;
    again.assert_scim_error(409, Some("uniqueness"));
}

#[actix_web::test]
async fn entra_create_with_meta_empty_roles_and_nulls_e13() {
    let app = spawn_app();
    let body = json!({"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "Test_User_ab6490ee@testuser.com",
        "active": true, "displayName": null, "roles": [], "meta": {"resourceType": "User"},
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        ENTERPRISE: {"department": "Sales", "manager": {"value": ""}}});
    let response = app.call("POST", "/Users", Some(body)).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    assert!(response.body.get("roles").is_none());
    assert!(response.body.get("displayName").is_none());
    assert_eq!(response.body[ENTERPRISE]["department"], "Sales");
}

#[actix_web::test]
async fn entra_patch_shapes_e1_e2_e6_e7_e8() {
    let app = spawn_app();
    let id = app.create_user("bjensen").await.id();
    let body = patch_body(json!([
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "b@work.example"},
        {"op": "Add", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "701984"},
        {"op": "Replace", "value": {"name.givenName": "Barbara", format!("{ENTERPRISE}:department"): "Tour Operations"}}
    ]));
    let response = app.call("PATCH", &format!("/Users/{id}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["active"], false);
    assert_eq!(response.body["emails"][0]["type"], "work");
    assert_eq!(response.body["emails"][0]["value"], "b@work.example");
    assert_eq!(response.body[ENTERPRISE]["employeeNumber"], "701984");
    assert_eq!(response.body[ENTERPRISE]["department"], "Tour Operations");
    assert_eq!(response.body["name"]["givenName"], "Barbara");
}

#[actix_web::test]
async fn entra_group_member_add_is_idempotent_and_tolerates_its_schema_e5_e14() {
    let app = spawn_app();
    let a = app.create_user("a").await.id();
    let b = app.create_user("b").await.id();
    let body = json!({"schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "displayName": "Group1DisplayName", "externalId": "60f4f3c1", "members": []});
    let response = app.call("POST", "/Groups", Some(body)).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    let group = response.id();
    let add = patch_body(json!([
        {"op": "Add", "path": "members", "value": [{"$ref": null, "value": a}]},
        {"op": "Add", "path": "members", "value": [{"$ref": null, "value": b}, {"$ref": null, "value": a}]}
    ]));
    for _ in 0..2 {
        let response = app.call("PATCH", &format!("/Groups/{group}"), Some(add.clone())).await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(app.pipeline.tenant_state(TENANT_A).members_of(&group).len(), 2);
    let filter = filter_query("displayName eq \"Group1DisplayName\"");
    let response = app.call("GET", &format!("/Groups?{filter}&excludedAttributes=members"), None).await;
    assert_eq!(resource_ids(&response.body), vec![group]);
}

#[actix_web::test]
async fn entra_manager_shapes_e15() {
    let app = spawn_app();
    let manager = app.create_user("boss").await.id();
    let id = app.create_user("worker").await.id();
    let body = patch_body(json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": manager}]));
    let response = app.call("PATCH", &format!("/Users/{id}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body[ENTERPRISE]["manager"]["value"], manager.as_str());
    let body = patch_body(
        json!([{"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": {"value": ""}}]),
    );
    let response = app.call("PATCH", &format!("/Users/{id}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert!(response.body.get(ENTERPRISE).and_then(|ext| ext.get("manager")).is_none(), "{}", response.body);
}

#[actix_web::test]
async fn okta_deactivation_and_reactivation_o5_o6() {
    let app = spawn_app();
    let id = app.create_user("okta-user").await.id();
    let body = patch_body(json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(app.call("PATCH", &format!("/Users/{id}"), Some(body)).await.body["active"], false);
    // Reactivation: filter, GET, PUT, PATCH active=true.
    let found = app
        .call(
            "GET",
            &format!("/Users?{}&startIndex=1&count=100", filter_query("userName eq \"okta-user\"")),
            None,
        )
        .await;
    assert_eq!(resource_ids(&found.body), vec![id.clone()]);
    let mut user = app.call("GET", &format!("/Users/{id}"), None).await.body;
    user["title"] = json!("Back");
    assert_eq!(app.call("PUT", &format!("/Users/{id}"), Some(user)).await.status, StatusCode::OK);
    let body = patch_body(json!([{"op": "replace", "value": {"active": true}}]));
    assert_eq!(app.call("PATCH", &format!("/Users/{id}"), Some(body)).await.body["active"], true);
}

#[actix_web::test]
async fn okta_group_rename_and_member_updates_o7_o8_o9() {
    let app = spawn_app();
    let a = app.create_user("a").await.id();
    let b = app.create_user("b").await.id();
    let group = app.create_group("Okta Group", &[&a]).await.id();
    let body = patch_body(json!([{"op": "replace", "value": {"id": group, "displayName": "Renamed"}}]));
    assert_eq!(
        app.call("PATCH", &format!("/Groups/{group}"), Some(body)).await.status,
        StatusCode::NO_CONTENT
    );
    let body = patch_body(json!([
        {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
        {"op": "add", "path": "members", "value": [{"value": b, "display": "b"}]}
    ]));
    assert_eq!(
        app.call("PATCH", &format!("/Groups/{group}"), Some(body)).await.status,
        StatusCode::NO_CONTENT
    );
    let response = app.call("GET", &format!("/Groups/{group}"), None).await;
    assert_eq!(response.body["displayName"], "Renamed");
    assert_eq!(response.body["members"][0]["value"], b.as_str());
    assert_eq!(response.body["members"][0]["display"], "b");
    let body = patch_body(json!([{"op": "replace", "path": "members", "value": []}]));
    assert_eq!(
        app.call("PATCH", &format!("/Groups/{group}"), Some(body)).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(app.pipeline.tenant_state(TENANT_A).members_of(&group).is_empty());
    assert_eq!(app.call("DELETE", &format!("/Groups/{group}"), None).await.status, StatusCode::NO_CONTENT);
}

#[actix_web::test]
async fn member_patches_in_flight_together_are_all_applied() {
    let app = spawn_app();
    let mut users = Vec::new();
    for index in 0..8 {
        users.push(app.create_user(&format!("u{index}")).await.id());
    }
    let group = app.create_group("Busy", &[]).await.id();
    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let app = app.clone();
            let path = format!("/Groups/{group}");
            let body = patch_body(json!([{"op": "add", "path": "members", "value": [{"value": user}]}]));
            actix_web::rt::spawn(async move { app.call("PATCH", &path, Some(body)).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::NO_CONTENT);
    }
    assert_eq!(app.pipeline.tenant_state(TENANT_A).members_of(&group).len(), 8);
}
