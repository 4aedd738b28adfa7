//! W3C trace context across the pipeline: one trace per write, from the API request through the
//! command log, the projector's fold and the change stream to fanout's delivery.
//!
//! The context travels as a W3C `traceparent` string (`00-<trace id>-<span id>-<flags>`):
//! inside the `CommandEnvelope` and `ChangeEnvelope` (so the embedded log and the store's change
//! feed carry it too) and as a `traceparent` header on Kafka records and webhook requests.
//! Parsing and formatting are OpenTelemetry's [`TraceContextPropagator`], never hand-rolled.
//!
//! Every function here is a no-op when no OpenTelemetry layer is installed in the `tracing`
//! subscriber (OTLP export off): spans then have no OpenTelemetry context, nothing is written
//! and nothing is parented.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header (and Kafka header) that carries the context.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header with vendor-specific trace data, passed on when a caller sends it.
pub const TRACESTATE: &str = "tracestate";

/// The `traceparent` of `span`, or `None` when the span has no OpenTelemetry context (no
/// OpenTelemetry layer, or the span is disabled by the filter).
pub fn traceparent_of(span: &Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The 32-hex-digit trace id of `span`, or `None` without an OpenTelemetry context.
pub fn trace_id_of(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

/// The remote span context of a `traceparent` (with its `tracestate`), if it is valid.
pub fn remote_context(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    if traceparent.is_empty() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    if let Some(tracestate) = tracestate {
        carrier.insert(TRACESTATE.to_owned(), tracestate.to_owned());
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Makes `span` a child of the remote context in `traceparent`, so it joins that trace. Call
/// it right after creating the span, before entering it (OpenTelemetry fixes a span's parent
/// when the span starts). An empty or invalid `traceparent` leaves the span where it is: under
/// the current span, or the root of a new trace. Returns whether the span was re-parented.
pub fn continue_trace(span: &Span, traceparent: &str, tracestate: Option<&str>) -> bool {
    let Some(remote) = remote_context(traceparent, tracestate) else { return false };
    let parent = opentelemetry::Context::new().with_remote_span_context(remote);
    span.set_parent(parent).is_ok()
}

/// Links `span` to the context in `traceparent` without making it the parent: a batch span
/// that serves many traces links each of them.
pub fn link_to(span: &Span, traceparent: &str) {
    if let Some(remote) = remote_context(traceparent, None) {
        span.add_link(remote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_a_remote_context_with_its_ids() {
        let context =
            remote_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
        assert_eq!(context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled());
        assert!(context.is_remote());
    }

    #[test]
    fn empty_or_invalid_traceparents_are_no_context() {
        for invalid in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(remote_context(invalid, None).is_none(), "{invalid:?}");
        }
    }

    fn with_opentelemetry<T>(work: impl FnOnce() -> T) -> T {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("trace-context-test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            // Callsite interest cached while no subscriber was around would disable the spans.
            tracing::callsite::rebuild_interest_cache();
            work()
        })
    }

    #[test]
    fn a_continued_span_joins_the_remote_trace_and_passes_on_its_own_span_id() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let outgoing = with_opentelemetry(|| {
            let span = tracing::info_span!("continued");
            assert!(continue_trace(&span, incoming, None));
            assert_eq!(trace_id_of(&span).as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
            traceparent_of(&span).unwrap()
        });
        let parts: Vec<&str> = outgoing.split('-').collect();
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "{outgoing}");
        assert_ne!(parts[2], "00f067aa0ba902b7", "the span's own id, not its parent's: {outgoing}");
        assert_eq!(parts[3], "01");
    }

    #[test]
    fn a_span_without_a_remote_parent_starts_a_new_trace() {
        let (first, second) = with_opentelemetry(|| {
            let first = tracing::info_span!("first");
            assert!(!continue_trace(&first, "", None));
            let second = tracing::info_span!("second");
            (trace_id_of(&first).unwrap(), trace_id_of(&second).unwrap())
        });
        assert_eq!(first.len(), 32);
        assert_ne!(first, second);
    }

    #[test]
    fn without_an_opentelemetry_layer_spans_carry_no_context() {
        let span = tracing::info_span!("unlayered");
        assert_eq!(traceparent_of(&span), None);
        assert_eq!(trace_id_of(&span), None);
        assert!(!continue_trace(&span, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None));
    }
}
