//! Delivery targets: Kafka topics and webhooks.

pub mod kafka;
pub mod webhook;

use scimflow_log::trace_context;
use scimflow_proto as pb;

/// The span of one change on its way into one sink: a child of the projector span that applied
/// the change, so a write's trace ends at its deliveries. `sink` is `kafka`, `state` (the
/// compacted state topics), `outbox` (queued for a webhook) or `webhook` (one POST attempt).
pub fn delivery_span(sink: &'static str, product: &str, envelope: &pb::ChangeEnvelope) -> tracing::Span {
    let span = tracing::info_span!(
        "change_delivery",
        otel.kind = if sink == "webhook" { "client" } else { "producer" },
        sink,
        product,
        tenant_id = %envelope.tenant_id,
        change_id = %envelope.change_id,
        trace_id = %envelope.correlation_id,
        outcome = tracing::field::Empty,
    );
    trace_context::continue_trace(&span, &envelope.traceparent, None);
    span
}
