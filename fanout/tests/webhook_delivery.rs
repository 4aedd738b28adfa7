//! Webhook delivery end to end against local RFC 8935 receivers: a receiver that is down for a
//! while, a slow receiver beside a fast one, dead letters and redrive.

mod common;

use common::*;
use scimflow_fanout::Fanout;
use scimflow_fanout::config::{Delivery, FanoutConfig, Subscription, TenantSelection, WebhookConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"per-subscriber secret";

fn webhook(product: &str, addr: SocketAddr, tune: impl FnOnce(&mut WebhookConfig)) -> Subscription {
    let mut config = WebhookConfig::new(format!("http://{addr}/events"), String::from_utf8_lossy(SECRET));
    config.initial_backoff_ms = 50;
    config.max_backoff_ms = 400;
    config.timeout_ms = 5_000;
    tune(&mut config);
    Subscription {
        product: product.into(),
        tenants: TenantSelection::All,
        resource_types: vec![],
        attributes: None,
        delivery: Delivery::Webhook(config),
    }
}

fn behaviour(delay: Duration) -> Behaviour {
    Behaviour { secret: SECRET.to_vec(), delay, refuse: vec![] }
}

/// A port nothing listens on (yet): connections to it are refused.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_was_down_gets_every_event_in_order_per_resource_after_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut config = FanoutConfig::new(dir.path());
    config.subscriptions = vec![webhook("crm", addr, |c| c.max_attempts = 0)];
    let (changes, source) = channel_source();
    let fanout = Fanout::start(config, None, source).await.unwrap();

    // 3 users × 10 versions, interleaved, while the receiver is down.
    for version in 1..=10 {
        for user in ["u1", "u2", "u3"] {
            changes.send(user_upsert("acme", user, version, &format!("{user}-v{version}"))).unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fanout.metrics().products["crm"].delivered, 0);
    assert!(fanout.metrics().products["crm"].retries > 0, "the down receiver was retried");

    let received = Received::default();
    start_receiver(addr, behaviour(Duration::ZERO), received.clone()).await;
    assert!(wait_until(Duration::from_secs(15), || received.len() >= 30).await, "got {}", received.len());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let claims = received.claims();
    assert_eq!(claims.len(), 30, "every event exactly once");
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for claim in &claims {
        let uri = claim["sub_id"]["uri"].as_str().unwrap().to_owned();
        let event = claim["events"].as_object().unwrap().values().next().unwrap();
        let version: u64 = event["version"]
            .as_str()
            .unwrap()
            .trim_start_matches("W/\"")
            .trim_end_matches('"')
            .parse()
            .unwrap();
        versions.entry(uri).or_default().push(version);
    }
    for (uri, seen) in &versions {
        assert_eq!(seen, &(1..=10).collect::<Vec<u64>>(), "{uri} in order");
    }
    assert_eq!(fanout.outbox_depth("crm").unwrap(), 0);
    assert!(fanout.dead_letters("crm").unwrap().is_empty());
    fanout.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_does_not_delay_a_fast_one() {
    let dir = tempfile::tempdir().unwrap();
    let (slow, fast) = (Received::default(), Received::default());
    let slow_addr =
        start_receiver("127.0.0.1:0".parse().unwrap(), behaviour(Duration::from_secs(2)), slow.clone()).await;
    let fast_addr =
        start_receiver("127.0.0.1:0".parse().unwrap(), behaviour(Duration::ZERO), fast.clone()).await;
    let mut config = FanoutConfig::new(dir.path());
    config.subscriptions = vec![webhook("slow", slow_addr, |_| {}), webhook("fast", fast_addr, |_| {})];
    let (changes, source) = channel_source();
    let fanout = Fanout::start(config, None, source).await.unwrap();

    let started = Instant::now();
    for i in 0..40 {
        changes.send(user_upsert("acme", &format!("u{i}"), 1, "x")).unwrap();
    }
    assert!(wait_until(Duration::from_secs(3), || fast.len() == 40).await, "fast got {}", fast.len());
    let fast_done = started.elapsed();
    // The slow one has 4 lanes, each 2 s per request: at most a handful so far.
    assert!(slow.len() <= 8, "slow got {}", slow.len());
    assert!(fast_done < Duration::from_secs(2), "fast took {fast_done:?}");
    println!("fast receiver got 40 events in {fast_done:?} while the slow one got {}", slow.len());
    let lag = &fanout.metrics().products["fast"];
    println!("fast lag p50 <= {} ms, p99 <= {} ms", lag.lag_p50_ms, lag.lag_p99_ms);
    fanout.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_exhausted_events_are_dead_lettered_and_redrive_delivers_them() {
    let dir = tempfile::tempdir().unwrap();
    let received = Received::default();
    let refused = user_upsert("acme", "bad", 1, "x");
    let mut refusing = behaviour(Duration::ZERO);
    refusing.refuse = vec![refused.change_id.clone()];
    let addr = start_receiver("127.0.0.1:0".parse().unwrap(), refusing, received.clone()).await;
    let down = free_port();
    let mut config = FanoutConfig::new(dir.path());
    config.subscriptions = vec![
        webhook("picky", addr, |_| {}),
        webhook("gone", down, |c| {
            c.max_attempts = 3;
            c.lanes = 1;
        }),
    ];
    let (changes, source) = channel_source();
    let fanout = Fanout::start(config, None, source).await.unwrap();
    changes.send(refused.clone()).unwrap();
    changes.send(user_upsert("acme", "good", 1, "y")).unwrap();

    assert!(wait_until(Duration::from_secs(5), || received.len() == 1).await);
    assert!(
        wait_until(Duration::from_secs(5), || fanout.dead_letters("gone").unwrap().len() == 2).await,
        "both events to the dead receiver end as dead letters after 3 attempts"
    );
    let picky_dead = fanout.dead_letters("picky").unwrap();
    assert_eq!(picky_dead.len(), 1);
    assert_eq!(picky_dead[0].change_id, refused.change_id);
    assert!(picky_dead[0].last_error.starts_with("400"), "{}", picky_dead[0].last_error);
    let metrics = fanout.metrics();
    assert_eq!((metrics.products["picky"].dead_lettered, metrics.products["gone"].dead_lettered), (1, 2));

    // The receiver comes back (here: under the dead one's address) and the dead letters are
    // redriven.
    let gone_received = Received::default();
    start_receiver(down, behaviour(Duration::ZERO), gone_received.clone()).await;
    assert_eq!(fanout.redrive("gone").unwrap(), 2);
    assert!(wait_until(Duration::from_secs(5), || gone_received.len() == 2).await);
    assert!(fanout.dead_letters("gone").unwrap().is_empty());
    let ids: Vec<String> =
        gone_received.claims().iter().map(|c| c["jti"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        ids,
        vec!["cmd-bad-1/0".to_owned(), "cmd-good-1/0".to_owned()],
        "redriven in their original order"
    );
    fanout.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_survive_a_restart_of_fanout() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut config = FanoutConfig::new(dir.path());
    config.subscriptions = vec![webhook("crm", addr, |c| c.max_attempts = 0)];
    let (changes, source) = channel_source();
    let fanout = Fanout::start(config.clone(), None, source).await.unwrap();
    for user in ["u1", "u2"] {
        changes.send(user_upsert("acme", user, 1, user)).unwrap();
    }
    assert!(wait_until(Duration::from_secs(3), || fanout.outbox_depth("crm").unwrap() == 2).await);
    fanout.stop().await.unwrap();

    let received = Received::default();
    start_receiver(addr, behaviour(Duration::ZERO), received.clone()).await;
    let (_changes, source) = channel_source();
    let fanout = Fanout::start(config, None, source).await.unwrap();
    assert!(wait_until(Duration::from_secs(5), || received.len() == 2).await, "got {}", received.len());
    fanout.stop().await.unwrap();
}
