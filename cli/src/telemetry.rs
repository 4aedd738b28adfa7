//! Logs and traces of a scimflow process.
//!
//! - Logs: JSON lines when `SCIMFLOW_LOG_FORMAT=json`, human-readable otherwise; the level comes
//!   from `RUST_LOG` (default `info`). A JSON line carries the fields of the spans it happened
//!   in, so a request's lines name its `tenant_id`, `request_id` and `trace_id`, and a fold's
//!   lines its command's.
//! - Traces: off by default. With an OTLP endpoint (`SCIMFLOW_OTLP_ENDPOINT`, else the standard
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`, or the config file's
//!   `telemetry.otlp_endpoint` through [`init_telemetry`]) spans are exported over OTLP/gRPC
//!   under the process's service name, batched in the background. The W3C context travels
//!   between the processes as described in `scimflow_log::trace_context`; the spans are listed
//!   in docs/observability.md.
//!
//! # Examples
//! ```no_run
//! # async fn example() {
//! use scimflow::telemetry::{init_telemetry, otlp_endpoint_from_env};
//! let telemetry = init_telemetry("scimflow-projector", otlp_endpoint_from_env().as_deref());
//! // ... run ...
//! telemetry.shutdown().await; // exports the spans still buffered
//! # }
//! ```

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
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
/// Operator commands (migrate, replay, tenant, ...).
pub const CLI_SERVICE: &str = "scimflow";

/// The OTLP endpoint from the environment, if one is set and not empty.
pub fn otlp_endpoint_from_env() -> Option<String> {
    std::iter::once(OTLP_ENDPOINT_VAR)
        .chain(STANDARD_ENDPOINT_VARS)
        .filter_map(|name| std::env::var(name).ok())
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty())
}

/// Keeps the trace exporter of the process; [`Telemetry::shutdown`] exports what is buffered.
#[must_use = "call shutdown() before exiting, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// True when spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans buffered so far (waits for the collector, at most the export timeout).
    pub async fn flush(&self) {
        let Some(provider) = self.provider.clone() else { return };
        // The SDK blocks until its export thread answers: keep that off the async workers.
        let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(error = %error, "TraceFlushFailed");
        }
    }

    /// Exports the spans still buffered and stops the exporter. Call it last, after the
    /// pipeline stopped (spans ended later are not exported).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            eprintln!("scimflow: exporting the last spans failed: {error}");
        }
    }
}

/// Installs the process's logging and, with `otlp_endpoint`, OTLP trace export under
/// `service_name`. Must run inside a Tokio runtime (the gRPC exporter lives on it). A second
/// call (tests) keeps the first subscriber and exports nothing.
pub fn init_telemetry(service_name: &str, otlp_endpoint: Option<&str>) -> Telemetry {
    let json = std::env::var("SCIMFLOW_LOG_FORMAT").is_ok_and(|format| format == "json");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
            .with_tracer(provider.tracer(service_name.to_owned()))
            // Spans carry what matters as fields; source locations and thread ids only add bytes.
            .with_location(false)
            .with_threads(false)
    });
    let installed = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init().is_ok();
    if !installed {
        // Tests initialise more than once: the first subscriber stays, with its own exporter.
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Telemetry { provider: None };
    }
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing::info!(service = service_name, endpoint = otlp_endpoint, "TraceExportEnabled");
    }
    Telemetry { provider }
}

fn tracer_provider(
    service_name: &str,
    endpoint: &str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scimflow_endpoint_wins_over_the_standard_ones_and_empty_means_unset() {
        // One test touches these variables, so no other test can see them half-set.
        unsafe {
            std::env::remove_var(OTLP_ENDPOINT_VAR);
            std::env::remove_var(STANDARD_ENDPOINT_VARS[0]);
            std::env::set_var(STANDARD_ENDPOINT_VARS[1], "http://collector:4317");
        }
        assert_eq!(otlp_endpoint_from_env().as_deref(), Some("http://collector:4317"));
        unsafe { std::env::set_var(OTLP_ENDPOINT_VAR, "http://mine:4317") };
        assert_eq!(otlp_endpoint_from_env().as_deref(), Some("http://mine:4317"));
        unsafe {
            std::env::set_var(OTLP_ENDPOINT_VAR, " ");
            std::env::set_var(STANDARD_ENDPOINT_VARS[1], "");
        }
        assert_eq!(otlp_endpoint_from_env(), None);
        unsafe {
            std::env::remove_var(OTLP_ENDPOINT_VAR);
            std::env::remove_var(STANDARD_ENDPOINT_VARS[1]);
        }
    }
}
