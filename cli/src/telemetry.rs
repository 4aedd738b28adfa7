//! Structured logs: JSON lines when `SCIMFLOW_LOG_FORMAT=json` (or `telemetry.format = "json"`),
//! human-readable otherwise; the level comes from `RUST_LOG` (or `telemetry.level`, default
//! `info`).

use crate::config::{LogFormat, TelemetrySettings};
use tracing_subscriber::EnvFilter;

/// From the environment alone, for the commands that read no configuration file.
pub fn init_telemetry() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("SCIMFLOW_LOG_FORMAT").is_ok_and(|format| format == "json");
    install(filter, json);
}

/// From validated settings (file, then environment).
pub fn init_telemetry_from(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    install(filter, settings.format == LogFormat::Json);
}

fn install(filter: EnvFilter, json: bool) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless: keep the first subscriber.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
