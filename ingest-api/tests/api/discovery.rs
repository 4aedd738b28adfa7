use crate::helpers::*;
use actix_web::http::StatusCode;

#[actix_web::test]
async fn service_provider_config_is_truthful() {
    let app = spawn_app();
    let response = app.call("GET", "/ServiceProviderConfig", None).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = &response.body;
    assert_eq!(body["schemas"][0], "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig");
    assert_eq!(body["patch"]["supported"], true);
    assert_eq!(body["bulk"]["supported"], true);
    assert_eq!(body["filter"]["supported"], true);
    assert_eq!(body["filter"]["maxResults"], 1000);
    assert_eq!(body["changePassword"]["supported"], false);
    assert_eq!(body["sort"]["supported"], true);
    assert_eq!(body["etag"]["supported"], true);
    assert_eq!(body["pagination"]["cursor"], true);
    assert_eq!(body["pagination"]["index"], true);
    assert_eq!(body["pagination"]["defaultPaginationMethod"], "index");
    assert_eq!(body["pagination"]["defaultPageSize"], 100);
    assert_eq!(body["pagination"]["maxPageSize"], 1000);
    assert_eq!(body["authenticationSchemes"][0]["type"], "oauthbearertoken");
    assert_eq!(body["meta"]["location"], format!("http://localhost:8080{BASE}/ServiceProviderConfig"));
}

#[actix_web::test]
async fn resource_types_are_listed_and_served_by_name() {
    let app = spawn_app();
    let response = app.call("GET", "/ResourceTypes", None).await;
    assert_eq!(response.body["totalResults"], 2);
    let names: Vec<&str> =
        response.body["Resources"].as_array().unwrap().iter().map(|rt| rt["id"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["User", "Group"]);
    let response = app.call("GET", "/ResourceTypes/User", None).await;
    assert_eq!(response.body["endpoint"], "/Users");
    assert_eq!(response.body["meta"]["location"], format!("http://localhost:8080{BASE}/ResourceTypes/User"));
    app.call("GET", "/ResourceTypes/Device", None).await.assert_scim_error(404, None);
}

#[actix_web::test]
async fn schemas_are_listed_and_served_by_urn() {
    let app = spawn_app();
    let response = app.call("GET", "/Schemas", None).await;
    assert_eq!(response.body["totalResults"], 3);
    let response = app.call("GET", &format!("/Schemas/{USER_SCHEMA}"), None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["id"], USER_SCHEMA);
    assert!(response.body["attributes"].as_array().unwrap().iter().any(|attr| attr["name"] == "userName"));
    assert!(
        response.body["meta"]["location"]
            .as_str()
            .unwrap()
            .starts_with("http://localhost:8080/scim/v2/Schemas/")
    );
    app.call("GET", "/Schemas/urn:nope", None).await.assert_scim_error(404, None);
}
