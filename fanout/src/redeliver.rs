//! Redelivery: send one product subscription the changes one tenant's commands applied in a
//! time range again (`scimflow redeliver`), e.g. after the product lost or mis-processed them.
//!
//! The changes are rebuilt from the command log ([`applied_changes`]): the fold is
//! deterministic, so each envelope is the one first delivered, with the same `change_id`
//! (`<event id>/<index>`) for consumers to deduplicate, whether or not the changes topic still
//! retains it. Each goes through the subscription's own [`Selector`] (tenants, resource types,
//! attributes), then to its sink:
//! - Kafka products: produced to `<prefix>product.<name>` (`acks=all`), beside the running fanout;
//! - webhook products: appended to the product's durable outbox in the fanout data directory, in
//!   the lane of its resource, for the fanout's lane workers to POST. The outbox is a redb file
//!   held by a running fanout: stop it first (the next start delivers the redeliveries).
//!
//! Only this subscription receives anything: the state topics and other products are untouched.

use crate::FanoutError;
use crate::config::{Delivery, FanoutConfig};
use crate::db::FanoutDb;
use crate::filter::Selector;
use crate::metrics::Metrics;
use crate::sinks::kafka::{KafkaSink, await_deliveries};
use crate::sinks::webhook::WebhookSubscriber;
use prost::Message as _;
use scimflow_log::LogReader;
use scimflow_log::kafka::KafkaConfig;
use scimflow_log::scan::applied_changes;
use scimflow_proto as pb;
use std::sync::Arc;

/// What to redeliver.
#[derive(Debug, Clone)]
pub struct Redelivery {
    pub product: String,
    pub tenant: String,
    /// Commands issued in `[from_ms, to_ms)` (Unix ms).
    pub from_ms: i64,
    pub to_ms: i64,
}

/// What a redelivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedeliveryReport {
    /// Changes the tenant's commands applied in the range.
    pub changes: usize,
    /// Of those, the ones the subscription selects: sent again.
    pub sent: usize,
    /// Their `change_id`s, in log order.
    pub change_ids: Vec<String>,
}

/// Re-sends the changes of `request` to its product, through `kafka` for a Kafka product.
pub async fn redeliver(
    config: &FanoutConfig,
    kafka: Option<&KafkaConfig>,
    log: Arc<dyn LogReader>,
    request: &Redelivery,
) -> Result<RedeliveryReport, FanoutError> {
    config.validate()?;
    let subscription =
        config.subscriptions.iter().find(|subscription| subscription.product == request.product).ok_or_else(
            || {
                let known: Vec<&str> = config.subscriptions.iter().map(|s| s.product.as_str()).collect();
                FanoutError::Setup(format!(
                    "no subscription for product {:?} (configured: {known:?})",
                    request.product
                ))
            },
        )?;
    if request.from_ms >= request.to_ms {
        return Err(FanoutError::Setup("the range is empty: --from must be before --to".into()));
    }
    let (tenant, from_ms, to_ms) = (request.tenant.clone(), request.from_ms, request.to_ms);
    let changes = tokio::task::spawn_blocking(move || applied_changes(&*log, &tenant, from_ms, to_ms))
        .await
        .map_err(|join| FanoutError::Setup(join.to_string()))?
        .map_err(|error| FanoutError::Setup(format!("reading the command log: {error}")))?;
    let selector = Selector::new(subscription);
    let mut report = RedeliveryReport { changes: changes.len(), ..Default::default() };
    let mut selected = Vec::new();
    for change in &changes {
        let envelope = pb::ChangeEnvelope::decode(change.envelope.as_slice())
            .map_err(|error| FanoutError::Setup(format!("rebuilt change does not decode: {error}")))?;
        if let Some(envelope) = selector.select(&envelope) {
            report.change_ids.push(envelope.change_id.clone());
            selected.push(envelope);
        }
    }
    report.sent = selected.len();
    match &subscription.delivery {
        Delivery::Kafka {} => {
            let kafka = kafka.ok_or_else(|| {
                FanoutError::Setup(format!(
                    "product {:?} is delivered over Kafka: set SCIMFLOW_KAFKA_BROKERS",
                    request.product
                ))
            })?;
            let product = [request.product.clone()];
            let sink = KafkaSink::start(kafka, &product, false, config.topic_partitions).await?;
            let deliveries = selected
                .iter()
                .map(|envelope| sink.send_product(&request.product, envelope))
                .collect::<Result<Vec<_>, _>>()?;
            await_deliveries(deliveries).await?;
        }
        Delivery::Webhook(webhook) => {
            let db = FanoutDb::open(&config.data_dir).map_err(|error| {
                FanoutError::Setup(format!(
                    "cannot open the fanout outbox in {} ({error}): stop `scimflow fanout` first, it holds the file",
                    config.data_dir.display()
                ))
            })?;
            let metrics = Metrics::default();
            let subscriber = WebhookSubscriber::new(
                &request.product,
                webhook.clone(),
                &config.issuer,
                metrics.product(&request.product),
            )?;
            let items: Vec<(String, u32, Vec<u8>)> = selected
                .iter()
                .map(|envelope| {
                    (request.product.clone(), subscriber.lane_of(envelope), envelope.encode_to_vec())
                })
                .collect();
            tokio::task::spawn_blocking(move || {
                let items: Vec<(&str, u32, Vec<u8>)> = items
                    .iter()
                    .map(|(product, lane, bytes)| (product.as_str(), *lane, bytes.clone()))
                    .collect();
                db.enqueue(&items)
            })
            .await
            .map_err(|join| FanoutError::Setup(join.to_string()))??;
        }
    }
    tracing::info!(
        product = %request.product, tenant_id = %request.tenant, changes = report.changes, sent = report.sent,
        "FanoutRedelivered"
    );
    Ok(report)
}
