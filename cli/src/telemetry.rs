//! Logs and traces of a scimflow process.
//!
//! - Logs: JSON lines when `SCIMFLOW_LOG_FORMAT=json` (or `telemetry.format = "json"`),
//!   human-readable otherwise; the level comes from `RUST_LOG` (or `telemetry.level`, default
//!   `info`). A JSON line carries the fields of the spans it happened in, so a request's lines
//!   name its `tenant_id`, `request_id` and `trace_id`, and a fold's lines its command's.
//! - Traces: off by default. With an OTLP endpoint (`telemetry.otlp_endpoint`,
//!   `SCIMFLOW_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`, or for the commands without a
//!   configuration `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) spans are exported over OTLP/gRPC under
//!   the process's service name ([`set_service_name`]), batched in the background; [`shutdown`]
//!   exports what is still buffered. The W3C context travels between the processes as
//!   described in `scimflow_log::trace_context`; the spans are listed in docs/observability.md.
//!
//! The subscriber is process-wide, so is the trace exporter kept here.
//!
//! # Examples
//! ```no_run
//! # async fn example() {
//! use scimflow::config::TelemetrySettings;
//! use scimflow::telemetry;
//! telemetry::set_service_name(telemetry::PROJECTOR_SERVICE);
//! let settings = TelemetrySettings { otlp_endpoint: Some("http://127.0.0.1:4317".into()), ..Default::default() };
//! telemetry::init_telemetry_from(&settings);
//! // ... run ...
//! telemetry::shutdown().await; // exports the spans still buffered
//! # }
//! ```

use crate::config::{LogFormat, TelemetrySettings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// scimflow's own variable for the collector; wins over the standard ones.
pub const OTLP_ENDPOINT_VAR: &str = "SCIMFLOW_OTLP_ENDPOINT";
/// The standard OpenTelemetry variables, the traces-specific one first.
const STANDARD_ENDPOINT_VARS: [&str; 2] =
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];
/// How long one export may take before it is given up (the collector is down or slow; spans are
/// dropped, the pipeline never waits for its telemetry).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The service name of each process role, as the trace backend shows it.
pub const SERVE_SERVICE: &str = "scimflow-serve";
pub const INGEST_API_SERVICE: &str = "scimflow-ingest-api";
pub const PROJECTOR_SERVICE: &str = "scimflow-projector";
pub const FANOUT_SERVICE: &str = "scimflow-fanout";
/// Operator commands (migrate, replay, tenant, ...), and the default.
pub const CLI_SERVICE: &str = "scimflow";

static SERVICE_NAME: OnceLock<&'static str> = OnceLock::new();
/// The exporter of the installed subscriber; taken out by [`shutdown`].
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// Names this process in traces. Call it before initialising; the first name set stays.
pub fn set_service_name(name: &'static str) {
    let _ = SERVICE_NAME.set(name);
}

fn service_name() -> &'static str {
    SERVICE_NAME.get().copied().unwrap_or(CLI_SERVICE)
}

/// The OTLP endpoint from the environment, if one is set and not empty.
pub fn otlp_endpoint_from_env() -> Option<String> {
    otlp_endpoint_in(|name| std::env::var(name).ok())
}

fn otlp_endpoint_in(variable: impl Fn(&str) -> Option<String>) -> Option<String> {
    std::iter::once(OTLP_ENDPOINT_VAR)
        .chain(STANDARD_ENDPOINT_VARS)
        .filter_map(variable)
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty())
}

/// From the environment alone, for the commands that read no configuration file.
pub fn init_telemetry() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("SCIMFLOW_LOG_FORMAT").is_ok_and(|format| format == "json");
    install(filter, json, otlp_endpoint_from_env().as_deref());
}

/// From validated settings (file, then environment).
pub fn init_telemetry_from(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let endpoint = settings.otlp_endpoint.as_deref().map(str::trim).filter(|endpoint| !endpoint.is_empty());
    install(filter, settings.format == LogFormat::Json, endpoint);
}

/// True when this process exports spans.
pub fn exports_traces() -> bool {
    provider().is_some()
}

/// Exports the spans buffered so far (waits for the collector, at most the export timeout).
pub async fn flush() {
    let Some(provider) = provider() else { return };
    // The SDK blocks until its export thread answers: keep that off the async workers.
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    if let Ok(Err(error)) = flushed {
        tracing::warn!(error = %error, "TraceFlushFailed");
    }
}

/// Exports the spans still buffered and stops the exporter. Call it last, after the pipeline
/// stopped: spans that end later are not exported.
pub async fn shutdown() {
    let Some(provider) = PROVIDER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() else {
        return;
    };
    let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    if let Ok(Err(error)) = stopped {
        eprintln!("scimflow: exporting the last spans failed: {error}");
    }
}

fn provider() -> Option<SdkTracerProvider> {
    PROVIDER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// Installs logging and, with `otlp_endpoint`, trace export. Must run inside a Tokio runtime
/// (the gRPC exporter lives on it). A second initialisation (tests) keeps the first subscriber.
fn install(filter: EnvFilter, json: bool, otlp_endpoint: Option<&str>) {
    let service_name = service_name();
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // JSON lines carry the current span's fields (tenant, request id, trace id) and the list of
    // enclosing spans; the human format shows the span chain in front of each line anyway.
    let fmt =
        if json { fmt.json().with_current_span(true).with_span_list(true).boxed() } else { fmt.boxed() };
    let provider = otlp_endpoint.and_then(|endpoint| match tracer_provider(service_name, endpoint) {
        Ok(provider) => Some(provider),
        Err(error) => {
            eprintln!("scimflow: traces are not exported, the OTLP exporter for {endpoint} failed: {error}");
            None
        }
    });
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service_name))
            // Spans carry what matters as fields; source locations and thread ids only add bytes.
            .with_location(false)
            .with_threads(false)
    });
    let installed = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init().is_ok();
    let Some(provider) = provider else { return };
    if !installed {
        let _ = provider.shutdown();
        return;
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    *PROVIDER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(provider);
    tracing::info!(service = service_name, endpoint = otlp_endpoint, "TraceExportEnabled");
}

fn tracer_provider(
    service_name: &'static str,
    endpoint: &str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    // The builder's detectors add OTEL_RESOURCE_ATTRIBUTES; the role's name wins over
    // OTEL_SERVICE_NAME.
    let resource = Resource::builder().with_service_name(service_name).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn endpoint_with(variables: &[(&str, &str)]) -> Option<String> {
        let variables: HashMap<String, String> =
            variables.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        otlp_endpoint_in(|name| variables.get(name).cloned())
    }

    #[test]
    fn scimflow_endpoint_wins_over_the_standard_ones_and_empty_means_unset() {
        let standard = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        let traces = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317");
        assert_eq!(endpoint_with(&[]), None);
        assert_eq!(endpoint_with(&[standard]).as_deref(), Some("http://collector:4317"));
        assert_eq!(endpoint_with(&[standard, traces]).as_deref(), Some("http://traces:4317"));
        let mine = (OTLP_ENDPOINT_VAR, " http://mine:4317 ");
        assert_eq!(endpoint_with(&[standard, traces, mine]).as_deref(), Some("http://mine:4317"));
        assert_eq!(endpoint_with(&[(OTLP_ENDPOINT_VAR, " "), ("OTEL_EXPORTER_OTLP_ENDPOINT", "")]), None);
    }
}
