//! librdkafka's own logs and errors as `tracing` events, so broker trouble shows up in the same
//! structured stream as the rest of scimflow (rdkafka's default context uses the `log` crate,
//! which nothing here collects).

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// Forwards a librdkafka log line; for contexts that implement [`ClientContext`] themselves.
pub fn forward_log(client: &'static str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(client, facility, message, "KafkaClientLog")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(client, facility, message, "KafkaClientLog"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(client, facility, message, "KafkaClientLog")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(client, facility, message, "KafkaClientLog"),
    }
}

/// Forwards a client-level error (e.g. all brokers down); librdkafka keeps retrying by itself.
pub fn forward_error(client: &'static str, error: &KafkaError, reason: &str) {
    tracing::warn!(client, error = %error, reason, "KafkaClientError");
}

/// A context that only forwards logs and errors. `client` names the client in every event.
#[derive(Debug, Clone, Copy)]
pub struct TracingContext {
    pub client: &'static str,
}

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(self.client, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(self.client, &error, reason);
    }
}

impl ConsumerContext for TracingContext {}

/// Delivery failures are logged here; callers that need the result (the transactional
/// projector) learn it from `commit_transaction`, which fails if any message failed.
impl ProducerContext for TracingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            tracing::warn!(
                client = self.client, topic = message.topic(), partition = message.partition(), error = %error,
                "KafkaDeliveryFailed"
            );
        }
    }
}
