//! One trace per write on the Kafka topology: a SCIM write sent with a W3C `traceparent` yields
//! spans of the API, the projector and fanout that all share the caller's trace id and chain up
//! to one another, as an OTLP collector receives them.
//!
//! The process exports over real OTLP/gRPC (`scimflow::telemetry::init_telemetry_from`) to a trace
//! service on 127.0.0.1 in this test; the pipeline runs on real Kafka (fresh topics), fanout
//! reads the changes topic and delivers to a Kafka product topic and to a webhook on 127.0.0.1.
//! The `traceparent` headers of the commands, changes and product records and of the webhook
//! request are checked against the spans that wrote them.
//! Its own test binary: the tracing subscriber is process-wide.
//!
//! Needs `SCIMFLOW_KAFKA_BROKERS` (else prints SKIPPED and passes).

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use scimflow::config::TelemetrySettings;
use scimflow::pipeline::{LogKind, StoreKind};
use scimflow::telemetry;
use scimflow_fanout::Fanout;
use scimflow_fanout::config::{Delivery, FanoutConfig, Subscription, TenantSelection, WebhookConfig};
use scimflow_fanout::source::KafkaChangeSource;
use scimflow_log::kafka::KafkaConfig;
use scimflow_tests::{FreshServices, spawn_app_with_options};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A span as the collector received it, ids in hex.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    /// Trace ids of the span's links.
    linked_traces: Vec<String>,
    attributes: BTreeMap<String, String>,
}

/// An OTLP trace service that keeps every span it is sent.
#[derive(Debug, Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref())
                .map(|value| text(&value.value))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent_span_id: hex::encode(span.parent_span_id),
                    linked_traces: span.links.into_iter().map(|link| hex::encode(link.trace_id)).collect(),
                    attributes: span
                        .attributes
                        .into_iter()
                        .map(|attribute| {
                            (attribute.key, attribute.value.map(|v| text(&v.value)).unwrap_or_default())
                        })
                        .collect(),
                });
            }
        }
        self.spans.lock().unwrap().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn text(value: &Option<AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(number)) => number.to_string(),
        Some(AnyValue::BoolValue(flag)) => flag.to_string(),
        Some(AnyValue::DoubleValue(number)) => number.to_string(),
        other => format!("{other:?}"),
    }
}

impl Collector {
    /// Serves the collector on 127.0.0.1; returns its OTLP endpoint.
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming));
        format!("http://{address}")
    }

    fn of_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().iter().filter(|span| span.trace_id == trace_id).cloned().collect()
    }

    fn all(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }
}

/// A webhook receiver on 127.0.0.1 that answers 200 and passes on each request's headers.
async fn webhook_receiver() -> (String, mpsc::UnboundedReceiver<BTreeMap<String, String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (sender, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                let headers_end = loop {
                    let read = stream.read(&mut buffer).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    if let Some(end) = request.windows(4).position(|window| window == b"\r\n\r\n") {
                        break end;
                    }
                };
                let head = String::from_utf8_lossy(&request[..headers_end]).to_string();
                let headers: BTreeMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|line| line.split_once(':'))
                    .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                    .collect();
                let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                while request.len() < headers_end + 4 + length {
                    let read = stream.read(&mut buffer).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..read]);
                }
                let _ = sender.send(headers);
                let response = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, received)
}

/// The `traceparent` header of every record of `topic` (all partitions, from the start, up to
/// the end offsets as of now).
fn traceparents_in(kafka: &KafkaConfig, topic: &str) -> Vec<String> {
    let consumer: BaseConsumer = kafka
        .client_config(&[])
        .set("group.id", format!("trace-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (_, high) = consumer.fetch_watermarks(topic, partition.id(), timeout).unwrap();
        ends.insert(partition.id(), high);
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    // Transaction markers take offsets but are never returned: compare positions, not counts.
    let read_to_end = |consumer: &BaseConsumer| {
        let positions = consumer.position().unwrap();
        ends.iter().all(|(partition, end)| {
            *end == 0
                || matches!(positions.find_partition(topic, *partition).map(|p| p.offset()), Some(Offset::Offset(at)) if at >= *end)
        })
    };
    let mut traceparents = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read_to_end(&consumer) && Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else { continue };
        let header = message.headers().and_then(|headers| {
            headers.iter().find(|header| header.key == "traceparent").and_then(|header| header.value)
        });
        if let Some(value) = header {
            traceparents.push(String::from_utf8_lossy(value).into_owned());
        }
    }
    traceparents
}

fn trace_id_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_is_one_trace_through_api_projector_and_fanout() {
    let fresh = match FreshServices::from_env("tracing", true, false) {
        Ok(fresh) => fresh,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
    let collector = Collector::default();
    let endpoint = collector.serve().await;
    telemetry::set_service_name(telemetry::SERVE_SERVICE);
    telemetry::init_telemetry_from(&TelemetrySettings {
        otlp_endpoint: Some(endpoint),
        ..Default::default()
    });
    assert!(telemetry::exports_traces(), "the OTLP exporter is installed");

    // The pipeline (API + projector on Kafka) and fanout on its changes topic.
    let data_dir = tempfile::tempdir().unwrap();
    let options = fresh.options(data_dir.path(), LogKind::Kafka, StoreKind::Embedded);
    let app = spawn_app_with_options(options, data_dir).await;
    let kafka = fresh.kafka.clone().unwrap();
    let (webhook_url, mut webhook_requests) = webhook_receiver().await;
    let fanout_dir = tempfile::tempdir().unwrap();
    let mut fanout_config = FanoutConfig::new(fanout_dir.path());
    (fanout_config.topic_partitions, fanout_config.state_topics) = (3, false);
    fanout_config.subscriptions = vec![
        Subscription {
            product: "billing".into(),
            tenants: TenantSelection::All,
            resource_types: vec!["User".into()],
            attributes: Some(vec!["userName".into()]),
            delivery: Delivery::Kafka {},
        },
        Subscription {
            product: "crm".into(),
            tenants: TenantSelection::All,
            resource_types: vec!["User".into()],
            attributes: None,
            delivery: Delivery::Webhook(WebhookConfig::new(webhook_url, "webhook-secret")),
        },
    ];
    let source = KafkaChangeSource::new(&kafka, &format!("fanout-{}", fresh.run)).unwrap();
    let fanout = Fanout::start(fanout_config, Some(&kafka), Box::new(source)).await.unwrap();

    // One write, as part of a caller's trace.
    let caller_trace = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let body = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "traced.write",
    });
    let response = app
        .client
        .post(app.url("/Users"))
        .bearer_auth(&app.token)
        .header("Content-Type", "application/scim+json")
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // The webhook request of that write continues the trace (the readiness probe's changes
    // arrive first, in their own traces).
    let deadline = Instant::now() + Duration::from_secs(60);
    let webhook_traceparent = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let headers = tokio::time::timeout(remaining, webhook_requests.recv())
            .await
            .expect("the write reaches the webhook within 60 s")
            .expect("receiver runs");
        let traceparent = headers.get("traceparent").cloned().expect("webhook requests carry a traceparent");
        if trace_id_of(&traceparent) == caller_trace {
            break traceparent;
        }
    };

    // Spans end and are exported in the background: flush until the whole chain is there.
    let wanted = ["scim_request", "command_submit", "command_apply", "change_delivery"];
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        telemetry::flush().await;
        let spans = collector.of_trace(&caller_trace);
        let sinks: Vec<&str> = spans
            .iter()
            .filter(|span| span.name == "change_delivery")
            .filter_map(|span| span.attributes.get("sink").map(String::as_str))
            .collect();
        let complete = wanted.iter().all(|name| spans.iter().any(|span| span.name == *name))
            && sinks.contains(&"kafka")
            && sinks.contains(&"webhook");
        if complete {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "the trace misses spans; of the trace: {spans:#?}; all: {:#?}",
            collector.all().iter().map(|span| (&span.name, &span.trace_id)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let one = |name: &str| -> &ReceivedSpan {
        let matching: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.name == name).collect();
        assert_eq!(matching.len(), 1, "one {name} span in the trace: {spans:#?}");
        matching[0]
    };

    // API: the request span is the caller's child; the submit span its child.
    let request = one("scim_request");
    assert_eq!(request.parent_span_id, caller_span);
    assert_eq!(request.service, "scimflow-serve");
    assert!(!request.attributes["tenant_id"].is_empty());
    assert_eq!(request.attributes["trace_id"], caller_trace);
    let submit = one("command_submit");
    assert_eq!(submit.parent_span_id, request.span_id);

    // Projector: the fold of the command is the submit span's child and names the request.
    let apply = one("command_apply");
    assert_eq!(apply.parent_span_id, submit.span_id);
    assert_eq!(apply.attributes["event_id"], submit.attributes["event_id"]);
    assert_eq!(apply.attributes["request_id"], request.attributes["request_id"]);
    assert_eq!(apply.attributes["status"], "201");
    // Its batch span is in a trace of its own and links this one.
    let batches = collector.all();
    assert!(
        batches.iter().any(|span| span.name == "projector_batch"
            && span.trace_id != caller_trace
            && span.linked_traces.contains(&caller_trace)),
        "a projector_batch span links the write's trace"
    );

    // Fanout: every delivery of the change is the fold's child.
    let deliveries: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.name == "change_delivery").collect();
    for delivery in &deliveries {
        assert_eq!(delivery.parent_span_id, apply.span_id, "{delivery:#?}");
        assert_eq!(delivery.attributes["trace_id"], caller_trace);
    }
    let webhook = deliveries.iter().find(|span| span.attributes["sink"] == "webhook").unwrap();
    assert_eq!(webhook.attributes["product"], "crm");
    assert_eq!(webhook.attributes["outcome"], "delivered");
    // The receiver was handed the webhook delivery span's context.
    assert_eq!(webhook_traceparent, format!("00-{caller_trace}-{}-01", webhook.span_id));

    // Each Kafka hop carries the context of the span that wrote the record.
    let topics = kafka.topics();
    let of_write = |traceparents: Vec<String>| -> Vec<String> {
        traceparents.into_iter().filter(|traceparent| trace_id_of(traceparent) == caller_trace).collect()
    };
    let traced = |span: &ReceivedSpan| vec![format!("00-{caller_trace}-{}-01", span.span_id)];
    assert_eq!(of_write(traceparents_in(&kafka, &topics.commands)), traced(submit));
    assert_eq!(of_write(traceparents_in(&kafka, &topics.changes)), traced(apply));
    let kafka_delivery = deliveries.iter().find(|span| span.attributes["sink"] == "kafka").unwrap();
    let product_topic = scimflow_fanout::sinks::kafka::product_topic(&kafka.topic_prefix, "billing");
    assert_eq!(of_write(traceparents_in(&kafka, &product_topic)), traced(kafka_delivery));

    fanout.stop().await.unwrap();
    telemetry::shutdown().await;
}
