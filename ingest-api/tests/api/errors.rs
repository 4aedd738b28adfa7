use crate::helpers::*;
use actix_web::http::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn log_unavailable_is_503_with_retry_after() {
    let app = spawn_app();
    app.pipeline.set_log_down(true);
    let response = app.call("POST", "/Users", Some(json!({"schemas": [USER_SCHEMA], "userName": "x"}))).await;
    response.assert_scim_error(503, None);
    assert_eq!(response.header("retry-after"), Some("5"));
}

#[actix_web::test]
async fn a_late_outcome_is_503_with_retry_after() {
    let app = spawn_app();
    app.pipeline.drop_outcomes(true);
    let response = app.call("POST", "/Users", Some(json!({"schemas": [USER_SCHEMA], "userName": "x"}))).await;
    response.assert_scim_error(503, None);
    assert!(response.header("retry-after").is_some());
    // The command was durable and folded: a retry meets the uniqueness check.
    app.pipeline.drop_outcomes(false);
    let response = app.call("POST", "/Users", Some(json!({"schemas": [USER_SCHEMA], "userName": "x"}))).await;
    response.assert_scim_error(409, Some("uniqueness"));
}

#[actix_web::test]
async fn store_unavailable_is_503_with_retry_after() {
    let app = spawn_app();
    let id = app.create_user("x").await.id();
    app.pipeline.set_store_down(true);
    for path in
        [format!("/Users/{id}"), "/Users".to_owned(), format!("/Users?{}", filter_query("userName eq \"x\""))]
    {
        let response = app.call("GET", &path, None).await;
        response.assert_scim_error(503, None);
        assert_eq!(response.header("retry-after"), Some("5"));
    }
}

#[actix_web::test]
async fn a_write_succeeds_even_if_rendering_memberships_fails_afterwards() {
    let app = spawn_app();
    let id = app.create_user("x").await.id();
    app.pipeline.set_store_down(true);
    let body = patch_body(json!([{"op": "replace", "path": "title", "value": "t"}]));
    let response = app.call("PATCH", &format!("/Users/{id}"), Some(body)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["title"], "t");
}

#[actix_web::test]
async fn me_is_501() {
    let app = spawn_app();
    app.call("GET", "/Me", None).await.assert_scim_error(501, None);
    app.call("PATCH", "/Me", Some(json!({}))).await.assert_scim_error(501, None);
}

#[actix_web::test]
async fn unknown_endpoints_are_404_and_wrong_methods_405() {
    let app = spawn_app();
    app.call("GET", "/Nope", None).await.assert_scim_error(404, None);
    app.call("DELETE", "/Users", None).await.assert_scim_error(405, None);
    app.call("POST", "/ServiceProviderConfig", Some(json!({}))).await.assert_scim_error(405, None);
    app.call("GET", "/Users/.search", None).await.assert_scim_error(405, None);
}
