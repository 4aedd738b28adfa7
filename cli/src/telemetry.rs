//! Structured logs: JSON lines when `SCIMFLOW_LOG_FORMAT=json`, human-readable otherwise;
//! the level comes from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init_telemetry() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("SCIMFLOW_LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless: keep the first subscriber.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
