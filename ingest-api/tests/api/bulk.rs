use crate::helpers::*;
use actix_web::http::StatusCode;
use scimflow_ingest_api::ApiConfig;
use serde_json::{Value, json};

fn bulk(operations: Value) -> Value {
    json!({"schemas": [BULK_SCHEMA], "Operations": operations})
}

fn user_data(name: &str) -> Value {
    json!({"schemas": [USER_SCHEMA], "userName": name})
}

#[actix_web::test]
async fn bulk_creates_and_resolves_bulk_id_references() {
    let app = spawn_app();
    let body = bulk(json!([
        {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user_data("alice")},
        {"method": "POST", "path": "/Groups", "bulkId": "g1",
         "data": {"schemas": [GROUP_SCHEMA], "displayName": "Staff", "members": [{"type": "User", "value": "bulkId:u1"}]}},
        {"method": "PATCH", "path": "/Users/bulkId:u1",
         "data": patch_body(json!([{"op": "replace", "path": "title", "value": "Boss"}]))}
    ]));
    let response = app.call("POST", "/Bulk", Some(body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:BulkResponse");
    let operations = response.body["Operations"].as_array().unwrap();
    assert_eq!(operations.len(), 3);
    assert_eq!(operations[0]["status"], "201");
    assert_eq!(operations[0]["bulkId"], "u1");
    assert_eq!(operations[0]["version"], "W/\"1\"");
    let user_location = operations[0]["location"].as_str().unwrap();
    let user_id = user_location.rsplit('/').next().unwrap().to_owned();
    assert!(user_location.starts_with(&format!("http://localhost:8080{BASE}/Users/")));
    assert_eq!(operations[1]["status"], "201");
    let group_id = operations[1]["location"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    assert_eq!(operations[2]["status"], "200");
    assert_eq!(operations[2]["method"], "PATCH");
    let members = app.pipeline.tenant_state(TENANT_A).members_of(&group_id);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].value, user_id);
    let user = app.call("GET", &format!("/Users/{user_id}"), None).await;
    assert_eq!(user.body["title"], "Boss");
}

#[actix_web::test]
async fn forward_references_wait_for_their_post() {
    let app = spawn_app();
    let body = bulk(json!([
        {"method": "POST", "path": "/Groups", "bulkId": "g1",
         "data": {"schemas": [GROUP_SCHEMA], "displayName": "Staff", "members": [{"value": "bulkId:u1"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user_data("alice")}
    ]));
    let response = app.call("POST", "/Bulk", Some(body)).await;
    let operations = response.body["Operations"].as_array().unwrap();
    assert_eq!(operations[0]["bulkId"], "g1", "response keeps request order");
    assert_eq!(operations[0]["status"], "201", "{}", response.body);
    assert_eq!(operations[1]["status"], "201");
    let group_id = operations[0]["location"].as_str().unwrap().rsplit('/').next().unwrap();
    assert_eq!(app.pipeline.tenant_state(TENANT_A).members_of(group_id).len(), 1);
}

#[actix_web::test]
async fn unresolvable_and_circular_references_fail_with_409() {
    let app = spawn_app();
    let body = bulk(json!([
        {"method": "PATCH", "path": "/Users/bulkId:nowhere", "data": patch_body(json!([{"op": "replace", "path": "title", "value": "x"}]))},
        {"method": "POST", "path": "/Groups", "bulkId": "a",
         "data": {"schemas": [GROUP_SCHEMA], "displayName": "A", "members": [{"value": "bulkId:b"}]}},
        {"method": "POST", "path": "/Groups", "bulkId": "b",
         "data": {"schemas": [GROUP_SCHEMA], "displayName": "B", "members": [{"value": "bulkId:a"}]}}
    ]));
    let response = app.call("POST", "/Bulk", Some(body)).await;
    let operations = response.body["Operations"].as_array().unwrap();
    assert_eq!(operations.len(), 3);
    for operation in operations {
        assert_eq!(operation["status"], "409", "{operation}");
        assert_eq!(operation["response"]["status"], "409");
    }
}

#[actix_web::test]
async fn fail_on_errors_stops_after_that_many_errors() {
    let app = spawn_app();
    app.create_user("taken").await;
    let body = json!({"schemas": [BULK_SCHEMA], "failOnErrors": 1, "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "1", "data": user_data("taken")},
        {"method": "POST", "path": "/Users", "bulkId": "2", "data": user_data("fresh")}
    ]});
    let response = app.call("POST", "/Bulk", Some(body)).await;
    let operations = response.body["Operations"].as_array().unwrap();
    assert_eq!(operations.len(), 1, "{}", response.body);
    assert_eq!(operations[0]["status"], "409");
    assert_eq!(operations[0]["response"]["scimType"], "uniqueness");
    let list = app.call("GET", &format!("/Users?{}", filter_query("userName eq \"fresh\"")), None).await;
    assert_eq!(list.body["totalResults"], 0);
    // Without failOnErrors every operation is attempted.
    let body = bulk(json!([
        {"method": "POST", "path": "/Users", "bulkId": "1", "data": user_data("taken")},
        {"method": "POST", "path": "/Users", "bulkId": "2", "data": user_data("fresh")}
    ]));
    let response = app.call("POST", "/Bulk", Some(body)).await;
    let statuses: Vec<&str> = response.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["409", "201"]);
}

#[actix_web::test]
async fn bulk_put_delete_and_version() {
    let app = spawn_app();
    let created = app.create_user("alice").await;
    let id = created.id();
    let body = bulk(json!([
        {"method": "PUT", "path": format!("/Users/{id}"), "version": "W/\"9\"", "data": user_data("alice")},
        {"method": "PUT", "path": format!("/Users/{id}"), "version": created.etag(),
         "data": {"schemas": [USER_SCHEMA], "userName": "alice", "title": "t"}},
        {"method": "DELETE", "path": format!("{BASE}/Users/{id}")},
        {"method": "GET", "path": "/Users"},
        {"method": "DELETE", "path": "/Schemas/x"}
    ]));
    let response = app.call("POST", "/Bulk", Some(body)).await;
    let operations = response.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = operations.iter().map(|op| op["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["412", "200", "204", "400", "400"], "{}", response.body);
    assert_eq!(operations[1]["version"], "W/\"2\"");
    assert_eq!(operations[2]["location"], format!("http://localhost:8080{BASE}/Users/{id}"));
}

#[actix_web::test]
async fn bulk_limits_are_413() {
    let app = spawn_app_with(ApiConfig {
        bulk_max_operations: 2,
        bulk_max_payload_bytes: 2048,
        ..Default::default()
    });
    let three = bulk(json!([
        {"method": "POST", "path": "/Users", "bulkId": "1", "data": user_data("a")},
        {"method": "POST", "path": "/Users", "bulkId": "2", "data": user_data("b")},
        {"method": "POST", "path": "/Users", "bulkId": "3", "data": user_data("c")}
    ]));
    app.call("POST", "/Bulk", Some(three)).await.assert_scim_error(413, None);
    let large = bulk(json!([{"method": "POST", "path": "/Users", "bulkId": "1",
        "data": {"userName": "a", "title": "x".repeat(4096)}}]));
    app.call("POST", "/Bulk", Some(large)).await.assert_scim_error(413, None);
    assert!(app.pipeline.commands().is_empty());
    let response = app.call("POST", "/Bulk", Some(json!({"Operations": []}))).await;
    response.assert_scim_error(400, Some("invalidSyntax"));
}

#[actix_web::test]
async fn service_provider_config_advertises_the_bulk_limits() {
    let app = spawn_app_with(ApiConfig {
        bulk_max_operations: 7,
        bulk_max_payload_bytes: 4242,
        ..Default::default()
    });
    let response = app.call("GET", "/ServiceProviderConfig", None).await;
    assert_eq!(response.body["bulk"], json!({"supported": true, "maxOperations": 7, "maxPayloadSize": 4242}));
}
