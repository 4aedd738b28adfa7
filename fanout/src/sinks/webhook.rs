//! Webhook delivery: SETs pushed per RFC 8935, one subscriber at a time per lane.
//!
//! Each webhook subscription has `lanes` workers; a resource always maps to the same lane
//! (hash of its key), and a lane delivers strictly in order, one request at a time: the next
//! change of a resource is sent only after the previous one was acknowledged or dead-lettered.
//! Workers read their lane of the durable outbox ([`crate::db`]), so a slow or dead subscriber
//! only grows its own outbox.
//!
//! Outcomes of one POST (`Content-Type: application/secevent+jwt`, body = the compact SET):
//! - any 2xx (RFC 8935 answers 202): delivered, removed from the outbox;
//! - 400 (RFC 8935: the receiver refused this SET, e.g. `invalid_request`): retrying the same
//!   bytes cannot succeed, so it is dead-lettered at once;
//! - anything else (connection refused, timeout, 5xx, 401/403/404/429, ...): retried with
//!   exponential backoff and jitter; after `max_attempts` (0 = never) it is dead-lettered.

use crate::config::{ConfigError, WebhookConfig};
use crate::db::{DeadLetter, FanoutDb};
use crate::metrics::Counters;
use crate::set::SetSigner;
use crate::sinks::kafka::resource_key;
use prost::Message as _;
use rand::Rng;
use scimflow_log::trace_context;
use scimflow_proto as pb;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

/// While idle, a worker also looks at its outbox this often (a redrive from another handle, or
/// a missed wake-up, is picked up within this time).
const IDLE_RECHECK: Duration = Duration::from_secs(1);

pub struct WebhookSubscriber {
    pub product: String,
    pub config: WebhookConfig,
    pub signer: SetSigner,
    client: reqwest::Client,
    pub wake: Vec<Arc<Notify>>,
    pub counters: Arc<Counters>,
}

enum Attempt {
    Delivered,
    Refused(String),
    Failed(String),
}

impl Attempt {
    fn name(&self) -> &'static str {
        match self {
            Attempt::Delivered => "delivered",
            Attempt::Refused(_) => "refused",
            Attempt::Failed(_) => "failed",
        }
    }
}

impl WebhookSubscriber {
    pub fn new(
        product: &str,
        config: WebhookConfig,
        issuer: &str,
        counters: Arc<Counters>,
    ) -> Result<Self, ConfigError> {
        let secret = config.resolve_secret()?;
        let signer = SetSigner {
            issuer: issuer.to_owned(),
            audience: config.audience().to_owned(),
            key_id: config.key_id.clone(),
            secret,
        };
        let client = http_client(product, &config)?;
        let wake = (0..config.lanes).map(|_| Arc::new(Notify::new())).collect();
        Ok(WebhookSubscriber { product: product.to_owned(), config, signer, client, wake, counters })
    }

    /// The lane of a change: a resource always uses the same one.
    pub fn lane_of(&self, envelope: &pb::ChangeEnvelope) -> u32 {
        lane_of(envelope, self.config.lanes)
    }

    pub fn wake_all(&self) {
        for notify in &self.wake {
            notify.notify_one();
        }
    }

    async fn post(&self, token: String) -> Attempt {
        let mut request = self
            .client
            .post(&self.config.url)
            .header("Content-Type", "application/secevent+jwt")
            .header("Accept", "application/json");
        // The receiver may continue the write's trace from the delivery span.
        if let Some(traceparent) = trace_context::traceparent_of(&tracing::Span::current()) {
            request = request.header(trace_context::TRACEPARENT, traceparent);
        }
        let response = request.body(token).send().await;
        match response {
            Ok(response) if response.status().is_success() => Attempt::Delivered,
            Ok(response) if response.status() == reqwest::StatusCode::BAD_REQUEST => {
                let body = response.text().await.unwrap_or_default();
                Attempt::Refused(format!("400 {}", body.chars().take(500).collect::<String>()))
            }
            Ok(response) => Attempt::Failed(format!("HTTP {}", response.status())),
            Err(error) => Attempt::Failed(error.to_string()),
        }
    }
}

/// One client per subscriber: connection pools are not shared, so one subscriber's stuck
/// connections never take a slot another needs. `https://` is verified against the system's
/// roots plus the subscription's `ca_cert`.
fn http_client(product: &str, config: &WebhookConfig) -> Result<reqwest::Client, ConfigError> {
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout())
        .connect_timeout(config.timeout().min(Duration::from_secs(5)));
    if let Some(path) = &config.ca_cert {
        let pem = std::fs::read(path).map_err(|error| ConfigError::Read { path: path.clone(), error })?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            ConfigError::Invalid(format!("webhook {product}: ca_cert {}: {error}", path.display()))
        })?;
        if roots.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "webhook {product}: ca_cert {} holds no PEM certificate",
                path.display()
            )));
        }
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder.build().map_err(|error| ConfigError::Invalid(format!("webhook {product}: {error}")))
}

pub fn lane_of(envelope: &pb::ChangeEnvelope, lanes: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in resource_key(envelope).bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % lanes.max(1)
}

/// Delay before attempt `attempt + 1`: `initial * 2^(attempt-1)`, capped at `max`, with "equal
/// jitter" (half fixed, half random) so subscribers recovering together are not hit in step
/// while the delay still grows.
pub fn backoff(attempt: u32, initial: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exponential = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(30)).min(max);
    let half = exponential / 2;
    half + half.mul_f64(rng.random::<f64>())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.expect("fanout database call panicked")
}

/// Delivers one lane of one subscriber until `shutdown`.
pub async fn run_lane(
    subscriber: Arc<WebhookSubscriber>,
    lane: u32,
    db: FanoutDb,
    mut shutdown: watch::Receiver<bool>,
) {
    let product = subscriber.product.clone();
    let wake = subscriber.wake[lane as usize].clone();
    let (initial, max) = (
        Duration::from_millis(subscriber.config.initial_backoff_ms),
        Duration::from_millis(subscriber.config.max_backoff_ms),
    );
    let mut attempts = 0u32;
    let mut current = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let head = {
            let (db, product) = (db.clone(), product.clone());
            blocking(move || db.head(&product, lane)).await
        };
        let item = match head {
            Ok(Some(item)) => item,
            Ok(None) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(IDLE_RECHECK) => {}
                }
                continue;
            }
            Err(error) => {
                tracing::error!(product = %product, error = %error, "WebhookOutboxUnreadable");
                tokio::time::sleep(IDLE_RECHECK).await;
                continue;
            }
        };
        if current != Some(item.sequence) {
            current = Some(item.sequence);
            attempts = 0;
        }
        let envelope = pb::ChangeEnvelope::decode(item.envelope.as_slice()).ok();
        let token =
            envelope.as_ref().and_then(|envelope| subscriber.signer.encode(envelope, now_ms() / 1000));
        let outcome = match (&envelope, token) {
            (Some(envelope), Some(token)) => {
                let span = super::delivery_span("webhook", &product, envelope);
                let outcome = subscriber.post(token).instrument(span.clone()).await;
                span.record("outcome", outcome.name());
                outcome
            }
            (Some(envelope), None) => {
                // A change kind newer than this fanout: nothing truthful to send.
                tracing::warn!(product = %product, change_id = %envelope.change_id, "WebhookUnknownChangeSkipped");
                Attempt::Delivered
            }
            (None, _) => Attempt::Refused("queued bytes are not a ChangeEnvelope".into()),
        };
        let change_id = envelope.as_ref().map(|e| e.change_id.clone()).unwrap_or_default();
        let dead = match outcome {
            Attempt::Delivered => {
                let (db, product) = (db.clone(), product.clone());
                if let Err(error) = blocking(move || db.delivered(&product, lane, item.sequence)).await {
                    tracing::error!(product = %subscriber.product, error = %error, "WebhookOutboxWriteFailed");
                    tokio::time::sleep(IDLE_RECHECK).await;
                    continue;
                }
                let occurred = envelope.as_ref().map_or(0, |e| e.occurred_at_unix_ms);
                subscriber.counters.delivered_with_lag(now_ms().saturating_sub(occurred).max(0) as u64);
                tracing::debug!(product = %subscriber.product, change_id = %change_id, "WebhookDelivered");
                None
            }
            Attempt::Refused(reason) => Some(reason),
            Attempt::Failed(reason) => {
                attempts += 1;
                subscriber.counters.retries.fetch_add(1, Ordering::Relaxed);
                let limit = subscriber.config.max_attempts;
                if limit > 0 && attempts >= limit {
                    Some(reason)
                } else {
                    let delay = backoff(attempts, initial, max, &mut rand::rng());
                    tracing::warn!(
                        product = %subscriber.product, change_id = %change_id, attempts, error = %reason,
                        retry_in_ms = delay.as_millis() as u64, "WebhookDeliveryFailed"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => {}
                    }
                    None
                }
            }
        };
        if let Some(reason) = dead {
            let letter = DeadLetter {
                product: product.clone(),
                sequence: item.sequence,
                change_id: change_id.clone(),
                attempts: attempts.max(1),
                last_error: reason,
                dead_at_unix_ms: now_ms(),
                envelope: item.envelope,
            };
            tracing::error!(product = %product, change_id = %change_id, error = %letter.last_error, "WebhookDeadLettered");
            let db = db.clone();
            match blocking(move || db.dead_letter(lane, &letter)).await {
                Ok(()) => {
                    subscriber.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::error!(product = %product, error = %error, "WebhookOutboxWriteFailed");
                    tokio::time::sleep(IDLE_RECHECK).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_exponentially_within_its_jitter_and_stops_at_the_cap() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for attempt in 1..=12u32 {
            let full = (initial * 2u32.pow(attempt - 1)).min(max);
            let delay = backoff(attempt, initial, max, &mut rng);
            assert!(delay >= full / 2 && delay <= full, "attempt {attempt}: {delay:?} outside {full:?}");
        }
        assert!(backoff(1000, initial, max, &mut rng) <= max);
    }

    #[test]
    fn every_change_of_a_resource_uses_the_same_lane() {
        let envelope = |change_id: &str| pb::ChangeEnvelope {
            change_id: change_id.into(),
            tenant_id: "t".into(),
            resource_id: "r".into(),
            ..Default::default()
        };
        assert_eq!(lane_of(&envelope("a/0"), 8), lane_of(&envelope("b/3"), 8));
    }
}
