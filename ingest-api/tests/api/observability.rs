//! Issue 8: `/metrics`, `/healthz`, `/readyz`, per-tenant rate and concurrency limits, and
//! graceful shutdown.

use crate::helpers::*;
use actix_web::http::StatusCode;
use actix_web::test;
use scimflow_ingest_api::limits::{LimitsConfig, TenantLimits};
use scimflow_ingest_api::{ApiConfig, Application};
use serde_json::json;
use std::net::TcpListener;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get_root(app: &TestApp, path: &str) -> Response {
    app.send(test::TestRequest::get().uri(path)).await
}

fn scrape_text(response: &Response) -> String {
    String::from_utf8(response.raw.clone()).expect("metrics are UTF-8")
}

/// The line of `name` whose labels include every `key="value"` pair given.
fn find_series<'a>(text: &'a str, name: &str, labels: &[(&str, &str)]) -> Option<&'a str> {
    text.lines().find(|line| {
        line.starts_with(&format!("{name}{{"))
            && labels.iter().all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
    })
}

fn limited(rate: u32, burst: u32, concurrent: u32) -> TenantLimits {
    TenantLimits { requests_per_second: rate, burst, max_concurrent: concurrent }
}

#[actix_web::test]
async fn metrics_are_scraped_with_route_templates_and_tenant_classes() {
    let mut config = ApiConfig::default();
    config.tenant_classes.insert(TENANT_B.into(), "premium".into());
    config.limits.tenants.insert(TENANT_A.into(), limited(1, 2, 0));
    let app = spawn_app_with(config);
    let created = app.create_user("alice").await;
    let id = created.id();
    assert_eq!(app.call("GET", &format!("/Users/{id}"), None).await.status, StatusCode::OK);
    assert_eq!(app.call("GET", &format!("/Users/{id}"), None).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.call_as(TOKEN_B, "GET", "/Users/missing", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call_as("bad-token", "GET", "/Users", None).await.status, StatusCode::UNAUTHORIZED);

    let scrape = get_root(&app, "/metrics").await;
    assert_eq!(scrape.status, StatusCode::OK);
    assert!(scrape.header("content-type").unwrap().starts_with("text/plain"));
    let text = scrape_text(&scrape);

    let requests = "scimflow_api_requests_total";
    let created = [("route", "/Users"), ("method", "POST"), ("status", "201"), ("tenant_class", "standard")];
    assert!(find_series(&text, requests, &created).unwrap().ends_with(" 1"), "{text}");
    let read = [("route", "/Users/{id}"), ("method", "GET"), ("status", "200"), ("tenant_class", "standard")];
    assert!(find_series(&text, requests, &read).is_some(), "{text}");
    let limited = [("route", "/Users/{id}"), ("status", "429"), ("tenant_class", "standard")];
    assert!(find_series(&text, requests, &limited).is_some(), "{text}");
    let premium = [("route", "/Users/{id}"), ("status", "404"), ("tenant_class", "premium")];
    assert!(find_series(&text, requests, &premium).is_some(), "{text}");
    let anonymous = [("route", "/Users"), ("status", "401"), ("tenant_class", "unauthenticated")];
    assert!(find_series(&text, requests, &anonymous).is_some(), "{text}");
    // Ids and tenant ids never become label values.
    assert!(!text.contains(&id), "{text}");
    assert!(!text.contains(TENANT_A) && !text.contains(TENANT_B), "{text}");

    let duration = "scimflow_api_request_duration_seconds_bucket";
    let labels =
        [("route", "/Users"), ("method", "POST"), ("status_class", "2xx"), ("tenant_class", "standard")];
    assert!(find_series(&text, duration, &labels).is_some(), "{text}");
    let wait = "scimflow_api_outcome_wait_seconds_count";
    let accepted = [("tenant_class", "standard"), ("result", "accepted")];
    assert!(find_series(&text, wait, &accepted).unwrap().ends_with(" 1"), "{text}");
    let rate_limited = [("tenant_class", "standard"), ("reason", "rate")];
    assert!(find_series(&text, "scimflow_api_rate_limited_total", &rate_limited).unwrap().ends_with(" 1"));
    // Nothing is in flight once every answer is out.
    let in_flight = find_series(&text, "scimflow_api_in_flight_requests", &[("tenant_class", "standard")]);
    assert!(in_flight.unwrap().ends_with(" 0"), "{text}");
}

#[actix_web::test]
async fn operational_endpoints_need_no_token_and_stay_outside_the_base_path() {
    let app = spawn_app();
    let health = get_root(&app, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let ready = get_root(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["checks"], json!({"store": "ok", "log": "ok"}));
    // Without limits configured (the default), nothing is ever rejected.
    for _ in 0..150 {
        assert_eq!(app.call("GET", "/ServiceProviderConfig", None).await.status, StatusCode::OK);
    }
    // Under the base path they are unknown SCIM endpoints like any other.
    assert_eq!(app.call("GET", "/metrics", None).await.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn readyz_is_503_while_the_store_is_down() {
    let app = spawn_app();
    app.pipeline.set_store_down(true);
    let ready = get_root(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "unavailable");
    assert!(ready.body["checks"]["store"].as_str().unwrap().contains("unavailable"), "{}", ready.body);
    assert_eq!(ready.body["checks"]["log"], "ok");
    app.pipeline.set_store_down(false);
    assert_eq!(get_root(&app, "/readyz").await.status, StatusCode::OK);
    let metrics = scrape_text(&get_root(&app, "/metrics").await);
    assert!(find_series(&metrics, "scimflow_api_ready", &[("check", "store")]).unwrap().ends_with(" 1"));
}

#[actix_web::test]
async fn readyz_is_503_after_a_failed_append_until_an_append_succeeds() {
    let app = spawn_app();
    app.pipeline.set_log_down(true);
    let failed = app.call("POST", "/Users", Some(json!({"schemas": [USER_SCHEMA], "userName": "bob"}))).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    let ready = get_root(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.body["checks"]["log"].as_str().unwrap().contains("append failed"), "{}", ready.body);
    assert_eq!(ready.body["checks"]["store"], "ok");

    app.pipeline.set_log_down(false);
    app.create_user("bob").await;
    assert_eq!(get_root(&app, "/readyz").await.status, StatusCode::OK);
    let metrics = scrape_text(&get_root(&app, "/metrics").await);
    let failed = [("tenant_class", "standard"), ("result", "log_unavailable")];
    assert!(find_series(&metrics, "scimflow_api_outcome_wait_seconds_count", &failed).is_some());
}

#[actix_web::test]
async fn readyz_runs_added_probes() {
    let app = spawn_app();
    app.state.config.runtime.add_readiness_probe(
        "kafka",
        std::sync::Arc::new(|| Box::pin(async { Err("no broker".to_owned()) })),
    );
    let ready = get_root(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["checks"]["kafka"], "no broker");
}

#[actix_web::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected() {
    let mut config = ApiConfig { limits: LimitsConfig::recommended(), ..ApiConfig::default() };
    config.limits.tenants.insert(TENANT_A.into(), limited(2, 3, 0));
    let app = spawn_app_with(config);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(app.call("GET", "/Users", None).await);
    }
    let ok = statuses.iter().filter(|response| response.status == StatusCode::OK).count();
    // The burst of 3, plus at most one token refilled while the loop ran.
    assert!((3..=4).contains(&ok), "{ok} admitted");
    let rejected = statuses.iter().find(|response| response.status == StatusCode::TOO_MANY_REQUESTS).unwrap();
    rejected.assert_scim_error(429, None);
    let retry_after: u64 = rejected.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert!(rejected.header("x-request-id").is_some());
    // A rejected request never reaches the log.
    assert!(app.pipeline.commands().is_empty());

    // Tenant B has the recommended limits (burst 100): all of its requests are served.
    for _ in 0..20 {
        assert_eq!(app.call_as(TOKEN_B, "GET", "/Users", None).await.status, StatusCode::OK);
    }
    app.create_user_as(TOKEN_B, "carol").await;
}

#[actix_web::test]
async fn a_tenant_at_its_concurrency_limit_gets_429_while_others_are_served() {
    let mut config = ApiConfig::default();
    config.limits.tenants.insert(TENANT_A.into(), limited(0, 0, 1));
    let app = spawn_app_with(config);
    // Outcomes are dropped, so a write stays in flight until the 200 ms outcome timeout.
    app.pipeline.drop_outcomes(true);
    let slow = app.call("POST", "/Users", Some(json!({"schemas": [USER_SCHEMA], "userName": "slow"})));
    let others = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = app.call("GET", "/Users", None).await;
        let other_tenant = app.call_as(TOKEN_B, "GET", "/Users", None).await;
        (second, other_tenant)
    };
    let (slow, (second, other_tenant)) = tokio::join!(slow, others);
    assert_eq!(slow.status, StatusCode::SERVICE_UNAVAILABLE);
    second.assert_scim_error(429, None);
    assert_eq!(second.header("retry-after"), Some("1"));
    assert!(second.body["detail"].as_str().unwrap().contains("concurrent"));
    assert_eq!(other_tenant.status, StatusCode::OK);
    // The slot is free again once the slow request is answered.
    app.pipeline.drop_outcomes(false);
    assert_eq!(app.call("GET", "/Users", None).await.status, StatusCode::OK);
    let metrics = scrape_text(&get_root(&app, "/metrics").await);
    let concurrency = [("tenant_class", "standard"), ("reason", "concurrency")];
    assert!(find_series(&metrics, "scimflow_api_rate_limited_total", &concurrency).is_some());
}

#[actix_web::test]
async fn graceful_shutdown_answers_the_request_in_flight() {
    let app = spawn_app();
    app.pipeline.drop_outcomes(true);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let application = Application::build(listener, app.state.clone()).unwrap();
    let port = application.port();
    let handle = application.handle();
    let server = actix_web::rt::spawn(application.run_until_stopped());

    let body = json!({"schemas": [USER_SCHEMA], "userName": "draining"}).to_string();
    let request = format!(
        "POST {BASE}/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let in_flight = actix_web::rt::spawn(async move {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    });
    // Stop while the write waits for its outcome (200 ms timeout in the test pipeline).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = Instant::now();
    handle.stop(true).await;
    let response = in_flight.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 503"), "the in-flight request was answered: {response}");
    assert!(stopping.elapsed() >= Duration::from_millis(100), "stop waited for the request");
    server.await.unwrap().unwrap();
    // New connections are refused once stopped.
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}
