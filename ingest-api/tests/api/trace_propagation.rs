//! W3C trace context at the API: the client's `traceparent` decides the trace of the request's
//! spans, and the command carries the request span's context on to the projector.

use crate::helpers::*;
use actix_web::http::StatusCode;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Keeps every ended span in memory.
#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Collected {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl Collected {
    fn named(&self, name: &str) -> Vec<SpanData> {
        self.0.lock().unwrap().iter().filter(|span| span.name == name).cloned().collect()
    }
}

/// Installs an OpenTelemetry layer for this thread (actix tests run on one) until the guard
/// drops.
fn collect_spans() -> (Collected, tracing::subscriber::DefaultGuard) {
    let collected = Collected::default();
    let provider = SdkTracerProvider::builder().with_span_processor(collected.clone()).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("ingest-api-test"));
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    // Tests on other threads without a subscriber may have hit the request spans' callsites
    // first, and tracing caches that interest ("never"); recompute it with this layer alive.
    tracing::callsite::rebuild_interest_cache();
    (collected, guard)
}

fn create_request() -> actix_web::test::TestRequest {
    request("POST", "/Users")
        .insert_header(("Authorization", format!("Bearer {TOKEN_A}")))
        .insert_header(("Content-Type", "application/scim+json"))
        .set_payload(json!({"schemas": [USER_SCHEMA], "userName": "bjensen"}).to_string())
}

#[actix_web::test]
async fn the_callers_traceparent_becomes_the_trace_of_the_request_span_and_the_command() {
    let (spans, _guard) = collect_spans();
    let app = spawn_app();
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let response = app.send(create_request().insert_header(("traceparent", traceparent))).await;
    assert_eq!(response.status, StatusCode::CREATED);

    let requests = spans.named("scim_request");
    assert_eq!(requests.len(), 1, "one request span");
    let request_span = &requests[0];
    assert_eq!(request_span.span_context.trace_id(), TraceId::from_hex(CALLER_TRACE).unwrap());
    assert_eq!(request_span.parent_span_id, SpanId::from_hex(CALLER_SPAN).unwrap());
    assert!(request_span.parent_span_is_remote);
    let attribute = |key: &str| {
        request_span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    };
    assert_eq!(attribute("tenant_id").as_deref(), Some(TENANT_A));
    assert_eq!(attribute("trace_id").as_deref(), Some(CALLER_TRACE));
    assert_eq!(attribute("status").as_deref(), Some("201"));

    let submits = spans.named("command_submit");
    assert_eq!(submits.len(), 1, "one command submitted");
    let submit_span = &submits[0];
    assert_eq!(submit_span.span_context.trace_id(), request_span.span_context.trace_id());
    assert_eq!(submit_span.parent_span_id, request_span.span_context.span_id());

    let command = app.pipeline.commands().pop().unwrap();
    assert_eq!(command.metadata.correlation_id, CALLER_TRACE);
    // The projector's span becomes a child of the submit span, in the caller's trace.
    let expected = format!("00-{CALLER_TRACE}-{}-01", submit_span.span_context.span_id());
    assert_eq!(command.metadata.traceparent, expected);
}

#[actix_web::test]
async fn without_a_traceparent_the_request_starts_a_trace_that_is_its_correlation_id() {
    let (spans, _guard) = collect_spans();
    let app = spawn_app();
    let response = app.send(create_request().insert_header(("traceparent", "garbage"))).await;
    assert_eq!(response.status, StatusCode::CREATED);
    let requests = spans.named("scim_request");
    assert_eq!(requests.len(), 1);
    let trace_id = requests[0].span_context.trace_id().to_string();
    assert_eq!(requests[0].parent_span_id, SpanId::INVALID, "a root span");
    let command = app.pipeline.commands().pop().unwrap();
    assert_eq!(command.metadata.correlation_id, trace_id);
    assert!(
        command.metadata.traceparent.starts_with(&format!("00-{trace_id}-")),
        "{}",
        command.metadata.traceparent
    );
}

#[actix_web::test]
async fn without_opentelemetry_commands_carry_no_traceparent_but_still_a_correlation_id() {
    let app = spawn_app();
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let response = app.send(create_request().insert_header(("traceparent", traceparent))).await;
    assert_eq!(response.status, StatusCode::CREATED);
    let command = app.pipeline.commands().pop().unwrap();
    assert_eq!(command.metadata.correlation_id, CALLER_TRACE);
    assert_eq!(command.metadata.traceparent, "");
}
