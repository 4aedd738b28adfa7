//! `kill -9` of `scimflow serve` right after writes were acknowledged loses none of them, and
//! the first start prints the base URL and a working token.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
    first_lines: Vec<String>,
}

fn start(data_dir: &std::path::Path, port: u16) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimflow"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("scimflow starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut first_lines = Vec::new();
    // `serve` prints its banner once it is ready to serve.
    while let Some(Ok(line)) = lines.next() {
        let done = line.contains("token") || line.contains("tenants:");
        first_lines.push(line);
        if done {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not listen: {first_lines:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { child, first_lines }
}

#[tokio::test]
async fn kill_9_after_acknowledged_writes_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(data.path(), port);
    let token_line = server
        .first_lines
        .iter()
        .find(|l| l.contains("bearer token"))
        .expect("first start prints a token")
        .clone();
    let token = token_line.rsplit(' ').next().unwrap().to_owned();
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    assert!(
        server.first_lines.iter().any(|l| l.contains(&base)),
        "banner names the base URL: {:?}",
        server.first_lines
    );

    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    for index in 0..200 {
        let body = serde_json::json!({"userName": format!("durable{index}")});
        let response = client
            .post(format!("{base}/Users"))
            .bearer_auth(&token)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        let created: serde_json::Value = response.json().await.unwrap();
        acknowledged.push(created["id"].as_str().unwrap().to_owned());
    }
    server.child.kill().unwrap(); // SIGKILL: no shutdown hook runs
    server.child.wait().unwrap();

    let mut restarted = start(data.path(), port);
    // A fresh client: pooled connections died with the old process.
    let client = reqwest::Client::new();
    for id in &acknowledged {
        let response = client.get(format!("{base}/Users/{id}")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "acknowledged user {id} survived kill -9");
    }
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}
