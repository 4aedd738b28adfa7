//! Test harness: the API over an in-memory pipeline, driven through actix's test service.

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{App, test};
use scimflow_ingest_api::testing::MemoryPipeline;
use scimflow_ingest_api::{ApiConfig, ApiState, configure};
use serde_json::{Value, json};
use std::sync::Arc;

pub const TOKEN_A: &str = "token-of-tenant-a";
pub const TOKEN_B: &str = "token-of-tenant-b";
pub const TENANT_A: &str = "tenant-a";
pub const TENANT_B: &str = "tenant-b";
pub const BASE: &str = "/scim/v2";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const BULK_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

#[derive(Clone)]
pub struct TestApp {
    pub pipeline: Arc<MemoryPipeline>,
    pub state: ApiState,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("response has an id").to_owned()
    }

    pub fn etag(&self) -> String {
        self.header("etag").expect("response has an ETag").to_owned()
    }

    /// Asserts an RFC 7644 error body: `status` as a string and the `scimType`.
    pub fn assert_scim_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], json!(status.to_string()), "body: {}", self.body);
        match scim_type {
            Some(scim_type) => assert_eq!(self.body["scimType"], scim_type, "body: {}", self.body),
            None => assert!(self.body.get("scimType").is_none(), "body: {}", self.body),
        }
        assert_eq!(self.header("content-type"), Some("application/scim+json"));
    }
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(ApiConfig::default())
}

pub fn spawn_app_with(config: ApiConfig) -> TestApp {
    let pipeline = MemoryPipeline::new();
    let state = pipeline.api_state(&[(TOKEN_A, TENANT_A), (TOKEN_B, TENANT_B)], config);
    TestApp { pipeline, state }
}

impl TestApp {
    /// Sends a request as built; no token is added.
    pub async fn send(&self, request: test::TestRequest) -> Response {
        let service = test::init_service(App::new().configure(configure(self.state.clone()))).await;
        let response = test::call_service(&service, request.to_request()).await;
        let status = response.status();
        let headers = response.headers().clone();
        let raw = test::read_body(response).await.to_vec();
        let body =
            if raw.is_empty() { Value::Null } else { serde_json::from_slice(&raw).unwrap_or(Value::Null) };
        Response { status, headers, body, raw }
    }

    /// Sends `method path` with tenant A's token and an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        self.call_as(TOKEN_A, method, path, body).await
    }

    pub async fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Response {
        let mut request = request(method, path).insert_header(("Authorization", format!("Bearer {token}")));
        if let Some(body) = body {
            request = request
                .insert_header(("Content-Type", "application/scim+json"))
                .set_payload(body.to_string());
        }
        self.send(request).await
    }

    pub async fn create_user(&self, user_name: &str) -> Response {
        self.create_user_as(TOKEN_A, user_name).await
    }

    pub async fn create_user_as(&self, token: &str, user_name: &str) -> Response {
        let response = self
            .call_as(token, "POST", "/Users", Some(json!({"schemas": [USER_SCHEMA], "userName": user_name})))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "create user: {}", response.body);
        response
    }

    pub async fn create_group(&self, display_name: &str, member_ids: &[&str]) -> Response {
        self.create_group_as(TOKEN_A, display_name, member_ids).await
    }

    pub async fn create_group_as(&self, token: &str, display_name: &str, member_ids: &[&str]) -> Response {
        let members: Vec<Value> = member_ids.iter().map(|id| json!({"value": id})).collect();
        let body = json!({"schemas": [GROUP_SCHEMA], "displayName": display_name, "members": members});
        let response = self.call_as(token, "POST", "/Groups", Some(body)).await;
        assert_eq!(response.status, StatusCode::CREATED, "create group: {}", response.body);
        response
    }
}

/// A test request for `method` on `BASE + path`.
pub fn request(method: &str, path: &str) -> test::TestRequest {
    let uri = format!("{BASE}{path}");
    let request = match method {
        "GET" => test::TestRequest::get(),
        "POST" => test::TestRequest::post(),
        "PUT" => test::TestRequest::put(),
        "PATCH" => test::TestRequest::patch(),
        "DELETE" => test::TestRequest::delete(),
        other => test::TestRequest::default().method(other.parse().expect("valid method")),
    };
    request.uri(&uri)
}

/// A PatchOp body.
pub fn patch_body(operations: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

/// Percent-encodes a query parameter value.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `?filter=<encoded>` plus extra parameters.
pub fn filter_query(filter: &str) -> String {
    format!("filter={}", encode(filter))
}

/// The ids of a ListResponse's Resources.
pub fn resource_ids(body: &Value) -> Vec<String> {
    body["Resources"]
        .as_array()
        .expect("ListResponse has Resources")
        .iter()
        .map(|resource| resource["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}
