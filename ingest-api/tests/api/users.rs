use crate::helpers::*;
use actix_web::http::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn create_user_answers_201_with_location_etag_and_body() {
    let app = spawn_app();
    let response = app
        .call(
            "POST",
            "/Users",
            Some(json!({"schemas": [USER_SCHEMA], "userName": "bjensen", "externalId": "bj"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    let id = response.id();
    assert_eq!(response.header("location"), Some(format!("http://localhost:8080{BASE}/Users/{id}").as_str()));
    assert_eq!(response.header("etag"), Some("W/\"1\""));
    assert_eq!(response.header("content-type"), Some("application/scim+json"));
    assert_eq!(response.body["userName"], "bjensen");
    assert_eq!(response.body["meta"]["resourceType"], "User");
    assert_eq!(response.body["meta"]["version"], "W/\"1\"");
    assert_eq!(response.body["meta"]["location"], format!("http://localhost:8080{BASE}/Users/{id}"));
    assert!(uuid::Uuid::parse_str(&id).is_ok());
}

#[actix_web::test]
async fn get_user_answers_the_stored_user_with_its_etag() {
    let app = spawn_app();
    let created = app.create_user("bjensen").await;
    let id = created.id();
    let response = app.call("GET", &format!("/Users/{id}"), None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["id"], id.as_str());
    assert_eq!(response.etag(), created.etag());
    assert!(response.header("location").is_none());
}

#[actix_web::test]
async fn get_with_matching_if_none_match_is_304() {
    let app = spawn_app();
    let created = app.create_user("bjensen").await;
    let conditional = request("GET", &format!("/Users/{}", created.id()))
        .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
        .insert_header(("If-None-Match", created.etag()));
    let response = app.send(conditional).await;
    assert_eq!(response.status, StatusCode::NOT_MODIFIED);
    assert_eq!(response.header("etag"), Some(created.etag().as_str()));
    assert!(response.raw.is_empty());
    let stale = request("GET", &format!("/Users/{}", created.id()))
        .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
        .insert_header(("If-None-Match", "W/\"99\""));
    assert_eq!(app.send(stale).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn unknown_user_is_404_with_a_scim_error() {
    let app = spawn_app();
    let response = app.call("GET", "/Users/2819c223-7f76-453a-919d-413861904646", None).await;
    response.assert_scim_error(404, None);
}

#[actix_web::test]
async fn put_replaces_the_user_and_ignores_read_only_attributes() {
    let app = spawn_app();
    let created = app.create_user("bjensen").await;
    let id = created.id();
    // O4: the IdP GETs, then PUTs the whole object back with id, meta and groups.
    let mut body = created.body.clone();
    body["displayName"] = json!("Babs Jensen");
    body["groups"] = json!([{"value": "not-a-real-group"}]);
    let response = app.call("PUT", &format!("/Users/{id}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["displayName"], "Babs Jensen");
    assert_eq!(response.header("etag"), Some("W/\"2\""));
    assert!(response.body.get("groups").is_none());
    // Full replace: an attribute left out is removed.
    let response = app
        .call("PUT", &format!("/Users/{id}"), Some(json!({"schemas": [USER_SCHEMA], "userName": "bjensen"})))
        .await;
    assert!(response.body.get("displayName").is_none(), "{}", response.body);
}

#[actix_web::test]
async fn patch_user_answers_200_with_the_patched_user() {
    let app = spawn_app();
    let id = app.create_user("bjensen").await.id();
    let body = patch_body(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    let response = app.call("PATCH", &format!("/Users/{id}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["active"], false);
    assert_eq!(response.header("etag"), Some("W/\"2\""));
}

#[actix_web::test]
async fn delete_user_answers_204_then_the_user_is_gone() {
    let app = spawn_app();
    let id = app.create_user("bjensen").await.id();
    let response = app.call("DELETE", &format!("/Users/{id}"), None).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert!(response.raw.is_empty());
    app.call("GET", &format!("/Users/{id}"), None).await.assert_scim_error(404, None);
    app.call("DELETE", &format!("/Users/{id}"), None).await.assert_scim_error(404, None);
}

#[actix_web::test]
async fn duplicate_user_name_is_409_uniqueness() {
    let app = spawn_app();
    app.create_user("bjensen").await;
    let response =
        app.call("POST", "/Users", Some(json!({"schemas": [USER_SCHEMA], "userName": "BJENSEN"}))).await;
    response.assert_scim_error(409, Some("uniqueness"));
}

#[actix_web::test]
async fn if_match_mismatch_is_412_on_put_patch_and_delete() {
    let app = spawn_app();
    let created = app.create_user("bjensen").await;
    let path = format!("/Users/{}", created.id());
    let with_if_match = |method: &str, tag: &str, body: Option<serde_json::Value>| {
        let mut request = request(method, &path)
            .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
            .insert_header(("If-Match", tag.to_owned()));
        if let Some(body) = body {
            request = request
                .insert_header(("Content-Type", "application/scim+json"))
                .set_payload(body.to_string());
        }
        request
    };
    let put_body = json!({"schemas": [USER_SCHEMA], "userName": "bjensen", "title": "x"});
    let patch = patch_body(json!([{"op": "replace", "path": "title", "value": "y"}]));
    app.send(with_if_match("PUT", "W/\"7\"", Some(put_body.clone())))
        .await
        .assert_scim_error(412, Some("invalidVers"));
    app.send(with_if_match("PATCH", "W/\"7\"", Some(patch.clone())))
        .await
        .assert_scim_error(412, Some("invalidVers"));
    app.send(with_if_match("DELETE", "W/\"7\"", None)).await.assert_scim_error(412, Some("invalidVers"));
    // The current ETag passes.
    let response = app.send(with_if_match("PATCH", &created.etag(), Some(patch))).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let command = app.pipeline.commands().pop().unwrap();
    assert_eq!(command.if_match.as_deref(), Some("W/\"1\""));
}

#[actix_web::test]
async fn changing_an_immutable_value_is_400_mutability() {
    let app = spawn_app();
    let user = app.create_user("bjensen").await.id();
    let group = app.create_group("staff", &[&user]).await.id();
    // members.value is immutable: replacing a member's value in place is a mutability error.
    let body = patch_body(
        json!([{"op": "replace", "path": format!("members[value eq \"{user}\"].value"), "value": "other"}]),
    );
    let response = app.call("PATCH", &format!("/Groups/{group}"), Some(body)).await;
    response.assert_scim_error(400, Some("mutability"));
}

#[actix_web::test]
async fn remove_without_a_path_is_400_no_target() {
    let app = spawn_app();
    let id = app.create_user("bjensen").await.id();
    let body = patch_body(json!([{"op": "remove"}]));
    let response = app.call("PATCH", &format!("/Users/{id}"), Some(body)).await;
    response.assert_scim_error(400, Some("noTarget"));
    assert_eq!(app.pipeline.commands().len(), 1, "a rejected body is never logged");
}

#[actix_web::test]
async fn changing_a_read_only_attribute_by_path_is_400_mutability() {
    let app = spawn_app();
    let id = app.create_user("bjensen").await.id();
    let body =
        patch_body(json!([{"op": "replace", "path": "meta.created", "value": "2001-01-01T00:00:00Z"}]));
    let response = app.call("PATCH", &format!("/Users/{id}"), Some(body)).await;
    response.assert_scim_error(400, Some("mutability"));
}

#[actix_web::test]
async fn malformed_json_is_400_invalid_syntax() {
    let app = spawn_app();
    let truncated = request("POST", "/Users")
        .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
        .insert_header(("Content-Type", "application/scim+json"))
        .set_payload("{\"userName\": ");
    app.send(truncated).await.assert_scim_error(400, Some("invalidSyntax"));
    let response = app.call("POST", "/Users", Some(json!(["not", "an", "object"]))).await;
    response.assert_scim_error(400, Some("invalidSyntax"));
    let empty = request("POST", "/Users").insert_header(("Authorization", format!("Bearer {TOKEN_A}")));
    app.send(empty).await.assert_scim_error(400, Some("invalidSyntax"));
}

#[actix_web::test]
async fn too_deep_json_is_400() {
    let app = spawn_app();
    let deep = format!("{{\"userName\":\"x\",\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    let request = request("POST", "/Users")
        .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
        .insert_header(("Content-Type", "application/scim+json"))
        .set_payload(deep);
    app.send(request).await.assert_scim_error(400, Some("invalidSyntax"));
    assert!(app.pipeline.commands().is_empty());
}

#[actix_web::test]
async fn body_over_the_limit_is_413() {
    let app = spawn_app_with(scimflow_ingest_api::ApiConfig { max_body_bytes: 1024, ..Default::default() });
    let body = json!({"schemas": [USER_SCHEMA], "userName": "x", "title": "t".repeat(2000)});
    let response = app.call("POST", "/Users", Some(body)).await;
    response.assert_scim_error(413, None);
    assert!(app.pipeline.commands().is_empty());
}

#[actix_web::test]
async fn unsupported_content_type_is_415_and_json_types_are_accepted() {
    let app = spawn_app();
    let send = |content_type: Option<&str>, user_name: &str| {
        let mut request = request("POST", "/Users")
            .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
            .set_payload(json!({"userName": user_name}).to_string());
        if let Some(content_type) = content_type {
            request = request.insert_header(("Content-Type", content_type.to_owned()));
        }
        request
    };
    assert_eq!(
        app.send(send(Some("application/json; charset=utf-8"), "a")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.send(send(Some("application/scim+json"), "b")).await.status, StatusCode::CREATED);
    assert_eq!(app.send(send(None, "c")).await.status, StatusCode::CREATED);
    app.send(send(Some("text/xml"), "d")).await.assert_scim_error(415, None);
}

#[actix_web::test]
async fn the_command_carries_tenant_ids_actor_and_a_scrubbed_raw_body() {
    let app = spawn_app();
    let request = request("POST", "/Users?aadOptscim062020")
        .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Request-Id", "req-42"))
        .insert_header(("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
        .insert_header(("User-Agent", "Okta SCIM Client 1.0.0"))
        .set_payload(
            json!({"userName": "bjensen", "password": "hunter2", "tenant_id": "tenant-b"}).to_string(),
        );
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.header("x-request-id"), Some("req-42"));
    assert!(response.body.get("password").is_none());
    let command = app.pipeline.commands().pop().unwrap();
    assert_eq!(command.tenant_id, TENANT_A);
    assert_eq!(command.resource_id, response.id());
    assert_eq!(command.metadata.causation_id, "req-42");
    assert_eq!(command.metadata.correlation_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(command.metadata.actor, "Okta SCIM Client 1.0.0");
    assert_eq!(command.metadata.raw_method, "POST");
    assert_eq!(command.metadata.raw_path, format!("{BASE}/Users?aadOptscim062020"));
    let raw = String::from_utf8(command.metadata.raw_body.clone()).unwrap();
    assert!(!raw.contains("hunter2"), "{raw}");
    assert!(raw.contains("bjensen"));
    assert!(uuid::Uuid::parse_str(&command.event_id).is_ok());
    assert!(command.issued_at_ms > 0);
}

#[actix_web::test]
async fn without_request_headers_ids_are_generated() {
    let app = spawn_app();
    let response = app.create_user("bjensen").await;
    let command = app.pipeline.commands().pop().unwrap();
    assert_eq!(response.header("x-request-id"), Some(command.metadata.causation_id.as_str()));
    assert_eq!(command.metadata.correlation_id.len(), 32);
    assert_ne!(command.event_id, command.resource_id);
}

#[actix_web::test]
async fn user_renders_its_groups_with_display_names() {
    let app = spawn_app();
    let user = app.create_user("bjensen").await.id();
    let group = app.create_group("Staff", &[&user]).await.id();
    let response = app.call("GET", &format!("/Users/{user}"), None).await;
    let groups = response.body["groups"].as_array().expect("groups rendered");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["value"], group.as_str());
    assert_eq!(groups[0]["display"], "Staff");
    assert_eq!(groups[0]["$ref"], format!("http://localhost:8080{BASE}/Groups/{group}"));
    let response = app.call("GET", &format!("/Users/{user}?excludedAttributes=groups"), None).await;
    assert!(response.body.get("groups").is_none());
    let response = app.call("GET", &format!("/Users/{user}?attributes=userName"), None).await;
    assert!(response.body.get("groups").is_none());
    assert_eq!(response.body["userName"], "bjensen");
    assert_eq!(response.body["id"], user.as_str());
}
