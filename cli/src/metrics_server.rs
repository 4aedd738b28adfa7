//! The operational endpoints of a process that serves no SCIM API (`scimflow projector`,
//! `scimflow fanout`), on their own listen address (`--metrics-listen`):
//!
//! - `GET /metrics`: every metric of the process's registry, Prometheus text format.
//! - `GET /healthz`: 200 while the process serves HTTP (liveness).
//! - `GET /readyz`: 200 when every readiness check passes within [`READINESS_TIMEOUT`], else
//!   503; the body names each check, as the API's `/readyz` does. Each call also sets
//!   `scimflow_ready{check}` (1 ready, 0 not).
//!
//! An API process serves the same three endpoints on its SCIM listener instead (see
//! `scimflow_ingest_api::observe`), with the projector's metrics on the same registry when the
//! projector runs in it.

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};
use scimflow_ingest_api::runtime::ReadinessProbe;
use scimflow_log::kafka::{KafkaConfig, KafkaProbe};
use serde_json::{Map, Value, json};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// The longest one readiness check may take before it counts as failed.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

struct Endpoints {
    registry: Registry,
    checks: Vec<(String, ReadinessProbe)>,
    ready: IntGaugeVec,
}

/// A running metrics server; stops when [`MetricsServer::stop`] is called or the process ends.
pub struct MetricsServer {
    host: String,
    port: u16,
    handle: ServerHandle,
}

impl MetricsServer {
    /// Binds `listen` (e.g. `127.0.0.1:9464`; port 0 picks a free one) and serves `registry`
    /// and `checks` from a task of the current Tokio runtime.
    pub fn start(
        listen: &str,
        registry: Registry,
        checks: Vec<(String, ReadinessProbe)>,
    ) -> anyhow::Result<MetricsServer> {
        let ready = IntGaugeVec::new(
            Opts::new("scimflow_ready", "Last readiness check result per dependency (1 ready)"),
            &["check"],
        )?;
        registry.register(Box::new(ready.clone())).context("scimflow_ready is registered once")?;
        let listener =
            TcpListener::bind(listen).with_context(|| format!("cannot listen for metrics on {listen}"))?;
        let bound = listener.local_addr()?;
        let (host, port) = (bound.ip().to_string(), bound.port());
        let endpoints = web::Data::new(Endpoints { registry, checks, ready });
        let server: Server = HttpServer::new(move || {
            App::new()
                .app_data(endpoints.clone())
                .route("/metrics", web::get().to(metrics))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
        })
        // Scrapes and probes are few: one worker, and no long drain on shutdown.
        .workers(1)
        .shutdown_timeout(1)
        // The process decides when to stop (see `shutdown`); metrics stay up while it drains.
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(MetricsServer { host, port, handle })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://host:port` as bound (the port chosen when `listen` asked for port 0).
    pub fn origin(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

async fn metrics(endpoints: web::Data<Endpoints>) -> HttpResponse {
    let mut buffer = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&endpoints.registry.gather(), &mut buffer) {
        tracing::warn!(error = %error, "MetricsEncodeError");
    }
    HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(buffer)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ok"}"#)
}

async fn readyz(endpoints: web::Data<Endpoints>) -> HttpResponse {
    let mut body = Map::new();
    let mut ready = true;
    for (name, probe) in &endpoints.checks {
        let result = match tokio::time::timeout(READINESS_TIMEOUT, probe()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", READINESS_TIMEOUT.as_millis())),
        };
        endpoints.ready.with_label_values(&[name]).set(i64::from(result.is_ok()));
        ready &= result.is_ok();
        body.insert(name.clone(), Value::String(result.err().unwrap_or_else(|| "ok".to_owned())));
    }
    if !ready {
        let checks = Value::Object(body.clone()).to_string();
        tracing::warn!(checks = %checks, "NotReady");
    }
    let body = json!({"status": if ready { "ready" } else { "unavailable" }, "checks": body});
    let mut response = if ready { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    response.content_type("application/json").body(body.to_string())
}

/// The readiness check of the Kafka log: a metadata request for `topic` (see [`KafkaProbe`]).
pub fn kafka_check(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<ReadinessProbe> {
    let kafka_probe = KafkaProbe::new(kafka, topic)?;
    Ok(probe(move || {
        let kafka_probe = kafka_probe.clone();
        // Below the endpoint's deadline, so an unreachable broker is reported as such.
        async move { kafka_probe.check(READINESS_TIMEOUT * 3 / 4).await }
    }))
}

/// A readiness check from an async closure.
pub fn probe<F, Fut>(check: F) -> ReadinessProbe
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(check()))
}
