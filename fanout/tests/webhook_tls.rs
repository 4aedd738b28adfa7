//! `https://` webhooks: a receiver with a self-signed certificate gets its SETs when the
//! subscription trusts that certificate (`ca_cert`), and nothing when it does not.

mod common;

use common::*;
use scimflow_fanout::Fanout;
use scimflow_fanout::config::{Delivery, FanoutConfig, Subscription, TenantSelection, WebhookConfig};
use scimflow_fanout::testing::start_tls_receiver;
use std::time::Duration;

const SECRET: &[u8] = b"tls subscriber key";

fn https_webhook(product: &str, url: &str, ca_cert: Option<std::path::PathBuf>) -> Subscription {
    let mut config = WebhookConfig::new(url, String::from_utf8_lossy(SECRET));
    (config.initial_backoff_ms, config.max_backoff_ms, config.max_attempts, config.lanes) = (50, 100, 2, 1);
    config.ca_cert = ca_cert;
    Subscription {
        product: product.into(),
        tenants: TenantSelection::All,
        resource_types: vec![],
        attributes: None,
        delivery: Delivery::Webhook(config),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_gets_its_sets_only_when_its_certificate_is_trusted() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("receiver.pem");
    std::fs::write(&ca_path, certified.cert.pem()).unwrap();
    let received = Received::default();
    let addr = start_tls_receiver(
        "127.0.0.1:0".parse().unwrap(),
        Behaviour::accepting(SECRET),
        received.clone(),
        certified.cert.der().to_vec(),
        certified.signing_key.serialize_der(),
    )
    .await;
    let url = format!("https://{addr}/events");

    let mut config = FanoutConfig::new(dir.path().join("fanout"));
    config.subscriptions =
        vec![https_webhook("trusting", &url, Some(ca_path)), https_webhook("untrusting", &url, None)];
    let (changes, source) = channel_source();
    let fanout = Fanout::start(config, None, source).await.unwrap();
    let change = user_upsert("acme", "u1", 1, "alice");
    changes.send(change.clone()).unwrap();

    assert!(wait_until(Duration::from_secs(10), || received.len() == 1).await, "got {}", received.len());
    assert_eq!(received.claims()[0]["jti"], change.change_id);
    assert!(
        wait_until(Duration::from_secs(10), || fanout.dead_letters("untrusting").unwrap().len() == 1).await,
        "without the certificate the handshake fails, so the event ends as a dead letter"
    );
    let letter = &fanout.dead_letters("untrusting").unwrap()[0];
    assert_eq!(letter.attempts, 2);
    assert_eq!(received.len(), 1, "nothing reached the receiver over the untrusted connection");
    // The receiver records the event before the fanout has read its answer and counted it.
    assert!(
        wait_until(Duration::from_secs(10), || fanout.metrics().products["trusting"].delivered == 1).await,
        "the trusting lane counts its delivery"
    );
    fanout.stop().await.unwrap();
}

#[tokio::test]
async fn a_ca_cert_file_without_a_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("empty.pem");
    std::fs::write(&ca_path, "not a certificate").unwrap();
    let mut config = FanoutConfig::new(dir.path().join("fanout"));
    config.subscriptions = vec![https_webhook("p", "https://127.0.0.1:1/", Some(ca_path))];
    let (_changes, source) = channel_source();
    let error = Fanout::start(config, None, source).await.err().expect("refused");
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
}
