//! The real server on a socket (port 0), spoken to with raw HTTP/1.1.

use crate::helpers::*;
use scimflow_ingest_api::Application;
use std::net::TcpListener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw_request(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[actix_web::test]
async fn the_application_serves_on_port_zero() {
    let app = spawn_app();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let application = Application::build(listener, app.state.clone()).unwrap();
    let port = application.port();
    assert_ne!(port, 0);
    let handle = application.handle();
    actix_web::rt::spawn(application.run_until_stopped());

    let response = raw_request(
        port,
        &format!("GET {BASE}/ServiceProviderConfig HTTP/1.1\r\nHost: scim.example.com\r\nAuthorization: Bearer {TOKEN_A}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_ascii_lowercase().contains("content-type: application/scim+json"));
    assert!(response.contains("http://scim.example.com/scim/v2/ServiceProviderConfig"), "{response}");

    // A declared body over the limit is refused before it is read.
    let response = raw_request(
        port,
        &format!("POST {BASE}/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\nConnection: close\r\n\r\n{{}}"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    let body = r#"{"userName":"socket-user"}"#;
    let response = raw_request(
        port,
        &format!("POST {BASE}/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    handle.stop(true).await;
}
