//! Configuration: the example file passes `scimflow config check`; precedence is flags >
//! environment > file > defaults; invalid settings are reported per field, all at once;
//! secrets are redacted in what `config check` prints; per-tenant limit overrides find their
//! tenant by name.

use scimflow::config::{Overrides, Settings, load, read_file};
use scimflow::pipeline::{App, LogKind, StoreKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/scimflow.example.toml")
}

/// `scimflow config check` with only `vars` in its environment.
fn config_check(file: Option<&Path>, vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scimflow"));
    command.args(["config", "check"]).env_clear().env("RUST_BACKTRACE", "0");
    if let Some(file) = file {
        command.arg("--config").arg(file);
    }
    command.envs(vars.iter().copied()).output().unwrap()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_example_file_passes_config_check_and_prints_what_it_says() {
    let output = config_check(Some(&example_file()), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let printed: Settings = toml::from_str(&stdout).expect("config check prints TOML settings");
    assert_eq!(printed, read_file(&example_file()).unwrap());
    assert_eq!(printed.log.kind, LogKind::Kafka);
    assert_eq!(printed.store.kind, StoreKind::Cql);
    assert_eq!(printed.api.tenant_overrides["acme"].rate, Some(200));
}

#[test]
fn the_config_file_may_also_come_from_scimflow_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "scimflow.toml", "[api]\nlisten = \"0.0.0.0:9443\"\n");
    let output = config_check(None, &[("SCIMFLOW_CONFIG", file.to_str().unwrap())]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("listen = \"0.0.0.0:9443\""));
}

#[test]
fn flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "scimflow.toml",
        r#"
data_dir = "/from/file"
[api]
listen = "127.0.0.1:1000"
[api.tenant_limits]
rate = 10
burst = 20
[log.kafka]
topic_prefix = "file."
command_partitions = 6
"#,
    );
    let environment = vars(&[
        ("SCIMFLOW_TENANT_RATE", "30"),
        ("SCIMFLOW_KAFKA_TOPIC_PREFIX", "env."),
        ("SCIMFLOW_LISTEN", "127.0.0.1:2000"),
        ("SCIMFLOW_DATA_DIR", "/from/env"),
    ]);
    let flags =
        Overrides { tenant_rate: Some(40), listen: Some("127.0.0.1:3000".into()), ..Overrides::default() };
    let settings = load(Some(&file), &environment, &flags).unwrap();
    assert_eq!(settings.api.tenant_limits.rate, 40, "flag over environment and file");
    assert_eq!(settings.api.listen, "127.0.0.1:3000", "flag over environment and file");
    assert_eq!(settings.data_dir, PathBuf::from("/from/env"), "environment over file");
    assert_eq!(settings.log.kafka.topic_prefix, "env.", "environment over file");
    assert_eq!(settings.api.tenant_limits.burst, 20, "file over default");
    assert_eq!(settings.log.kafka.command_partitions, 6, "file over default");
    assert_eq!(settings.api.tenant_limits.concurrency, 0, "default");
    assert_eq!(settings.store.cql.keyspace, "scimflow", "default");
}

#[test]
fn the_environment_variables_scripts_use_keep_their_meaning() {
    let environment = vars(&[
        ("SCIMFLOW_LOG", "kafka"),
        ("SCIMFLOW_STORE", "cql"),
        ("SCIMFLOW_KAFKA_BROKERS", "127.0.0.1:9092"),
        ("SCIMFLOW_KAFKA_CLIENT_SESSION_TIMEOUT_MS", "6000"),
        ("SCIMFLOW_CQL_NODES", "10.0.0.1:9042, 10.0.0.2:9042"),
        ("SCIMFLOW_CQL_REPLICATION", "dc1:3"),
        ("SCIMFLOW_PROJECTOR_INSTANCE_ID", "projector-0"),
        ("SCIMFLOW_TENANT_BURST", "7"),
        ("SCIMFLOW_LOG_FORMAT", "json"),
    ]);
    let settings = load(None, &environment, &Overrides::default()).unwrap();
    let options = settings.pipeline_options(true, true).unwrap();
    assert_eq!((options.log, options.store), (LogKind::Kafka, StoreKind::Cql));
    let kafka = options.kafka.expect("kafka configured");
    assert_eq!(kafka.brokers, "127.0.0.1:9092");
    assert_eq!(kafka.client_settings["session.timeout.ms"], "6000");
    assert_eq!(options.cql.expect("cql configured").nodes, ["10.0.0.1:9042", "10.0.0.2:9042"]);
    assert_eq!(options.projector.expect("projector configured").instance_id, "projector-0");
    assert_eq!(options.api.limits.default_limits.burst, 7);
}

#[test]
fn every_invalid_setting_is_named_with_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.toml",
        r#"
[api]
listen = "8080"
[log]
kind = "kafka"
[log.kafka]
command_partitions = 0
[store.cql]
keyspace = "Bad-Name"
consistency = "most"
[tls]
cert_path = "/etc/scimflow/cert.pem"
"#,
    );
    let output = config_check(Some(&file), &[("SCIMFLOW_CQL_MEMBER_BUCKETS", "lots")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing is printed for invalid settings");
    for expected in [
        "api.listen: \"8080\" is not host:port",
        "log.kafka.brokers: required when the log is Kafka",
        "log.kafka.command_partitions: must be at least 1, not 0",
        "store.cql.keyspace:",
        "store.cql.consistency:",
        "store.cql.member_buckets (from SCIMFLOW_CQL_MEMBER_BUCKETS): \"lots\" is not a valid unsigned integer",
        "tls.key_path: required when tls.cert_path is set",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
}

#[test]
fn an_unknown_key_is_an_error_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "typo.toml", "[api]\nlisten_address = \"0.0.0.0:8080\"\n");
    let output = config_check(Some(&file), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("listen_address") && stderr.contains(file.to_str().unwrap()), "{stderr}");
}

#[test]
fn config_check_redacts_credentials() {
    let output = config_check(
        None,
        &[
            ("SCIMFLOW_KAFKA_CLIENT_SASL_PASSWORD", "hunter2"),
            ("SCIMFLOW_KAFKA_CLIENT_SASL_USERNAME", "scimflow"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(stdout.contains("\"sasl.password\" = \"<redacted>\""), "{stdout}");
    assert!(stdout.contains("\"sasl.username\" = \"scimflow\""), "{stdout}");
}

#[tokio::test]
async fn a_tenant_override_by_name_limits_that_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let file = write(dir.path(), "limits.toml", "[api.tenant_overrides.acme]\nrate = 1\nburst = 1\n");
    let flags = Overrides {
        data_dir: Some(data_dir.clone()),
        listen: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let settings = load(Some(&file), &BTreeMap::new(), &flags).unwrap();
    // The tenants exist before the server starts, as they do on any restart.
    let now = chrono::Utc::now().timestamp_millis();
    let (acme_token, globex_token) = {
        let tenants = scimflow::embedded::open_tenants(&data_dir).unwrap();
        (tenants.create("acme", now).unwrap().1, tenants.create("globex", now).unwrap().1)
    };
    let app = App::build(settings.pipeline_options(true, true).unwrap()).await.unwrap();
    let base = app.base_url.clone().unwrap();
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let status = |token: String| {
        let request = client.get(format!("{base}/Users")).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(acme_token.clone()).await, 200);
    assert_eq!(status(acme_token).await, 429, "acme is held to 1 request per second, burst 1");
    for _ in 0..5 {
        assert_eq!(status(globex_token.clone()).await, 200, "other tenants keep the default (unlimited)");
    }
    server.abort();
}
