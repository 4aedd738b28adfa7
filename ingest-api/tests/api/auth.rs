use crate::helpers::*;
use actix_web::http::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn requests_without_a_token_are_401_with_www_authenticate() {
    let app = spawn_app();
    for (method, path) in [
        ("GET", "/Users"),
        ("POST", "/Users"),
        ("GET", "/ServiceProviderConfig"),
        ("POST", "/Bulk"),
        ("GET", "/Schemas"),
    ] {
        let response = app.send(request(method, path)).await;
        response.assert_scim_error(401, None);
        assert!(response.header("www-authenticate").unwrap().starts_with("Bearer"), "{method} {path}");
    }
}

#[actix_web::test]
async fn an_unknown_token_is_401_invalid_token() {
    let app = spawn_app();
    let response = app.call_as("wrong-token", "GET", "/Users", None).await;
    response.assert_scim_error(401, None);
    assert!(response.header("www-authenticate").unwrap().contains("invalid_token"));
    let request = request("GET", "/Users").insert_header(("Authorization", format!("Basic {TOKEN_A}")));
    app.send(request).await.assert_scim_error(401, None);
}

#[actix_web::test]
async fn unauthenticated_writes_never_reach_the_log() {
    let app = spawn_app();
    let response = app
        .call_as("wrong-token", "POST", "/Users", Some(json!({"schemas": [USER_SCHEMA], "userName": "x"})))
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert!(app.pipeline.commands().is_empty());
}

#[actix_web::test]
async fn the_request_id_is_echoed_even_on_errors() {
    let app = spawn_app();
    let request = request("GET", "/Users").insert_header(("X-Request-Id", "abc-1"));
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.header("x-request-id"), Some("abc-1"));
}
