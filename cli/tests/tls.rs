//! HTTPS: with `tls.cert_path` and `tls.key_path` the API serves SCIM over TLS (a client that
//! trusts the certificate creates and reads a user) and a plain-HTTP request to the same port
//! fails; the roles `serve` (embedded) and `ingest-api` (Kafka, when SCIMFLOW_KAFKA_BROKERS is
//! set) are both covered. Bad certificate or key files stop the start with the file's name.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use scimflow::config::{Overrides, Settings, load};
use scimflow::pipeline::{App, LogKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
struct TestCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    cert_pem: String,
}

fn self_signed(dir: &Path) -> TestCertificate {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let cert_pem = generated.cert.pem();
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).unwrap();
    TestCertificate { cert_path, key_path, cert_pem }
}

fn tls_settings(data_dir: &Path, certificate: &TestCertificate, vars: &BTreeMap<String, String>) -> Settings {
    let flags = Overrides {
        data_dir: Some(data_dir.to_owned()),
        listen: Some("127.0.0.1:0".into()),
        tls_cert: Some(certificate.cert_path.clone()),
        tls_key: Some(certificate.key_path.clone()),
        ..Overrides::default()
    };
    load(None, vars, &flags).expect("valid settings")
}

/// One HTTP/1.1 request over TLS, trusting only `cert_pem`; returns the whole response.
async fn https_request(port: u16, cert_pem: &str, request: String) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(scimflow_ingest_api::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let server_name = ServerName::try_from("localhost").unwrap();
    let mut stream =
        TlsConnector::from(Arc::new(config)).connect(server_name, tcp).await.expect("TLS handshake");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn request(method: &str, path: &str, token: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `settings` with one tenant; creates a user over HTTPS (and reads it back when this
/// process projects into the store it reads), and checks that plain HTTP on the same port fails.
async fn scim_over_https_only(settings: Settings, certificate: &TestCertificate, run_projector: bool) {
    let app = App::build(settings.pipeline_options(true, run_projector).unwrap()).await.expect("starts");
    let now = chrono::Utc::now().timestamp_millis();
    let (_, token) = app.tenants.create("acme", now).unwrap();
    let port = app.port().unwrap();
    assert_eq!(app.base_url.as_deref(), Some(format!("https://127.0.0.1:{port}/scim/v2").as_str()));
    let server = tokio::spawn(app.run_until_stopped());

    let created = https_request(
        port,
        &certificate.cert_pem,
        request("POST", "/scim/v2/Users", &token, r#"{"userName":"tls.user@example.com"}"#),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let body = &created[created.find("\r\n\r\n").unwrap() + 4..];
    let user: serde_json::Value = serde_json::from_str(body).unwrap();
    let id = user["id"].as_str().unwrap();
    assert_eq!(
        user["meta"]["location"].as_str().unwrap(),
        format!("https://localhost/scim/v2/Users/{id}"),
        "locations carry the scheme the client used"
    );
    if run_projector {
        let path = format!("/scim/v2/Users/{id}");
        let read = https_request(port, &certificate.cert_pem, request("GET", &path, &token, "")).await;
        assert!(read.starts_with("HTTP/1.1 200") && read.contains("tls.user@example.com"), "{read}");
    }

    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/scim/v2/Users"))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP to the TLS port must fail, got {plain:?}");
    server.abort();
}

#[tokio::test]
async fn serve_speaks_https_with_the_configured_certificate_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = self_signed(dir.path());
    let settings = tls_settings(&dir.path().join("data"), &certificate, &BTreeMap::new());
    scim_over_https_only(settings, &certificate, true).await;
}

#[tokio::test]
async fn ingest_api_speaks_https_on_kafka() {
    let Ok(brokers) = std::env::var("SCIMFLOW_KAFKA_BROKERS") else {
        eprintln!("SKIPPED: needs SCIMFLOW_KAFKA_BROKERS (deploy/local/services.sh up)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certificate = self_signed(dir.path());
    let run = uuid_like();
    let vars = BTreeMap::from([
        ("SCIMFLOW_LOG".to_owned(), "kafka".to_owned()),
        ("SCIMFLOW_KAFKA_BROKERS".to_owned(), brokers),
        ("SCIMFLOW_KAFKA_TOPIC_PREFIX".to_owned(), format!("scimflow.tls.{run}.")),
        ("SCIMFLOW_KAFKA_COMMAND_PARTITIONS".to_owned(), "1".to_owned()),
        ("SCIMFLOW_PROJECTOR_GROUP_ID".to_owned(), format!("scimflow-tls-{run}")),
    ]);
    let settings = tls_settings(&dir.path().join("data"), &certificate, &vars);
    assert_eq!(settings.log.kind, LogKind::Kafka);
    // The API role alone answers from the outcomes topic, so a projector must run beside it
    // (with its own data directory: the tenant directory is opened once per process).
    let mut projector_settings = settings.clone();
    projector_settings.data_dir = dir.path().join("projector");
    let projector =
        App::build(projector_settings.pipeline_options(false, true).unwrap()).await.expect("projector");
    let projector = tokio::spawn(projector.run_until_stopped());
    scim_over_https_only(settings, &certificate, false).await;
    projector.abort();
}

/// A unique suffix for topics and groups.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos:x}{}", std::process::id())
}

fn scimflow_serve(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scimflow"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .env_remove("SCIMFLOW_CONFIG")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn a_missing_certificate_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = self_signed(dir.path());
    let missing = dir.path().join("no-such-cert.pem");
    let output = scimflow_serve(
        &["--tls-cert", missing.to_str().unwrap(), "--tls-key", certificate.key_path.to_str().unwrap()],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("tls.cert_path") && stderr.contains(missing.to_str().unwrap()), "{stderr}");
}

#[test]
fn a_key_file_without_a_key_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = self_signed(dir.path());
    // A certificate where the key should be: readable, but no private key in it.
    let output = scimflow_serve(
        &[
            "--tls-cert",
            certificate.cert_path.to_str().unwrap(),
            "--tls-key",
            certificate.cert_path.to_str().unwrap(),
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("tls.key_path") && stderr.contains("no PEM private key"), "{stderr}");
}

#[test]
fn a_certificate_without_its_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = self_signed(dir.path());
    let output = scimflow_serve(&["--tls-cert", certificate.cert_path.to_str().unwrap()], dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("tls.key_path: required when tls.cert_path is set"), "{stderr}");
}

#[test]
fn a_key_of_another_certificate_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = self_signed(dir.path());
    let other = tempfile::tempdir().unwrap();
    let other_certificate = self_signed(other.path());
    let output = scimflow_serve(
        &[
            "--tls-cert",
            certificate.cert_path.to_str().unwrap(),
            "--tls-key",
            other_certificate.key_path.to_str().unwrap(),
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("cannot be used together"), "{stderr}");
}
