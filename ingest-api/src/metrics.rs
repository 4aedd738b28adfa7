//! Prometheus metrics of the API, served as text at `GET /metrics` (outside the SCIM base
//! path, no token: scrapers do not hold tenant tokens).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `scimflow_api_requests_total` | counter | `route`, `method`, `status`, `tenant_class` |
//! | `scimflow_api_request_duration_seconds` | histogram | `route`, `method`, `status_class`, `tenant_class` |
//! | `scimflow_api_outcome_wait_seconds` | histogram | `tenant_class`, `result` |
//! | `scimflow_api_rate_limited_total` | counter | `tenant_class`, `reason` |
//! | `scimflow_api_in_flight_requests` | gauge | `tenant_class` |
//! | `scimflow_api_ready` | gauge | `check` (1 ready, 0 not; set by each `/readyz`) |
//!
//! Label values are bounded on purpose: `route` is the matched route template relative to the
//! base path (`/Users/{id}`, never an id; `unmatched` for unknown paths), `tenant_class` is the
//! class configured for the tenant ([`ApiConfig::tenant_classes`], default
//! [`ApiConfig::default_tenant_class`]) or `unauthenticated`, never the tenant id unless an
//! operator maps a tenant to a class of its own.
//!
//! Each [`ApiMetrics`] owns its registry (not the process-global one), so tests and several
//! servers in one process do not mix their counts; [`ApiMetrics::registry`] lets the binary
//! register the metrics of its other components on the same `/metrics`.

use crate::config::ApiConfig;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds: from a cache-hot read (1 ms) to the outcome timeout range.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// `tenant_class` of a request whose tenant is not known (no or bad token).
pub const UNAUTHENTICATED_CLASS: &str = "unauthenticated";

/// The metric families of the API and the registry they are registered in.
#[derive(Clone)]
pub struct ApiMetrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub outcome_wait: HistogramVec,
    pub rate_limited: IntCounterVec,
    pub in_flight: IntGaugeVec,
    pub ready: IntGaugeVec,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics::new()
    }
}

impl ApiMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("scimflow_api_requests_total", "SCIM requests answered, by route template and status"),
            &["route", "method", "status", "tenant_class"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "scimflow_api_request_duration_seconds",
                "Time from request received to response ready, by route template",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method", "status_class", "tenant_class"],
        )
        .expect("valid metric");
        let outcome_wait = HistogramVec::new(
            HistogramOpts::new(
                "scimflow_api_outcome_wait_seconds",
                "Time a write waits for the log append and the projector's outcome",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["tenant_class", "result"],
        )
        .expect("valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new("scimflow_api_rate_limited_total", "Requests answered 429 by the per-tenant limits"),
            &["tenant_class", "reason"],
        )
        .expect("valid metric");
        let in_flight = IntGaugeVec::new(
            Opts::new("scimflow_api_in_flight_requests", "SCIM requests being served now"),
            &["tenant_class"],
        )
        .expect("valid metric");
        let ready = IntGaugeVec::new(
            Opts::new("scimflow_api_ready", "Last readiness check result per dependency (1 ready)"),
            &["check"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(outcome_wait.clone()),
            Box::new(rate_limited.clone()),
            Box::new(in_flight.clone()),
            Box::new(ready.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        ApiMetrics { registry, requests, request_duration, outcome_wait, rate_limited, in_flight, ready }
    }

    /// The registry `/metrics` renders; register other components' metrics here.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which `new` rules out.
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %error, "MetricsEncodeError");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Records one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, tenant_class: &str, seconds: f64) {
        let status_text = status.to_string();
        self.requests.with_label_values(&[route, method, &status_text, tenant_class]).inc();
        self.request_duration
            .with_label_values(&[route, method, status_class(status), tenant_class])
            .observe(seconds);
    }
}

/// `2xx`, `4xx` ...: the status label of the latency histogram, to keep its series few.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The `tenant_class` label of an authenticated tenant.
pub fn tenant_class<'a>(config: &'a ApiConfig, tenant_id: &str) -> &'a str {
    config.tenant_classes.get(tenant_id).map_or(config.default_tenant_class.as_str(), String::as_str)
}

/// The `route` label: the matched pattern relative to the base path, without a trailing slash
/// (`/Users/{id}/` and `/Users/{id}` are one route); `unmatched` when nothing matched.
pub fn route_label(pattern: Option<&str>, base_path: &str) -> String {
    let Some(pattern) = pattern else { return "unmatched".to_owned() };
    let relative = pattern.strip_prefix(base_path).unwrap_or(pattern);
    let trimmed = relative.trim_end_matches('/');
    if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates_relative_to_the_base_path() {
        assert_eq!(route_label(Some("/scim/v2/Users/{id}/"), "/scim/v2"), "/Users/{id}");
        assert_eq!(route_label(Some("/scim/v2/Users"), "/scim/v2"), "/Users");
        assert_eq!(route_label(None, "/scim/v2"), "unmatched");
        assert_eq!(route_label(Some("/Users/{id}"), ""), "/Users/{id}");
    }

    #[test]
    fn render_names_every_family_once_used() {
        let metrics = ApiMetrics::new();
        metrics.observe_request("/Users", "GET", 200, "standard", 0.01);
        metrics.outcome_wait.with_label_values(&["standard", "accepted"]).observe(0.002);
        metrics.rate_limited.with_label_values(&["standard", "rate"]).inc();
        metrics.in_flight.with_label_values(&["standard"]).set(0);
        let text = metrics.render();
        assert!(text.contains(
            r#"scimflow_api_requests_total{method="GET",route="/Users",status="200",tenant_class="standard"} 1"#
        ));
        assert!(text.contains("scimflow_api_request_duration_seconds_bucket"));
        assert!(text.contains("scimflow_api_outcome_wait_seconds_count"));
        assert!(text.contains("scimflow_api_rate_limited_total"));
    }
}
