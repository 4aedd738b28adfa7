//! End-to-end test helpers: [`spawn_app`] starts the real embedded pipeline (log, projector,
//! store, API) on a free port in a fresh data directory, with two tenants and their tokens.

use scimflow::embedded::EmbeddedApp;
use scimflow_ingest_api::ApiConfig;
use serde_json::Value;

pub struct TestApp {
    pub base_url: String,
    /// Bearer token of tenant "acme".
    pub token: String,
    /// Bearer token of tenant "globex", to check isolation.
    pub other_token: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(ApiConfig::default()).await
}

pub async fn spawn_app_with(config: ApiConfig) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let app = EmbeddedApp::build(data_dir.path(), "127.0.0.1:0", config).await.expect("app builds");
    let now = chrono::Utc::now().timestamp_millis();
    let (_, token) = app.tenants.create("acme", now).expect("tenant");
    let (_, other_token) = app.tenants.create("globex", now).expect("tenant");
    let base_url = app.base_url.clone();
    tokio::spawn(app.run_until_stopped());
    TestApp { base_url, token, other_token, client: reqwest::Client::new(), data_dir }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.header("Content-Type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, json)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, &self.token, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, &self.token, None).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, &self.token, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, &self.token, None).await
    }

    /// Creates a user and returns its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name});
        let (status, created) = self.post("/Users", &body).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().expect("id").to_owned()
    }

    pub async fn create_group(&self, display_name: &str) -> String {
        let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": display_name});
        let (status, created) = self.post("/Groups", &body).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().expect("id").to_owned()
    }
}
