//! # scimflow (the command)
//!
//! One binary for every topology. With no configuration, `scimflow serve` runs the whole
//! pipeline in one process on the embedded log and store.
//!
//! ## Layout
//! - [`config`]: the typed settings (file, environment, flags), their validation and
//!   `scimflow config check`.
//! - [`embedded`]: wiring of the all-in-one embedded pipeline ([`embedded::EmbeddedApp`]), used
//!   by `serve` and by the end-to-end tests.
//! - [`pipeline`]: any topology: embedded or Kafka log, embedded or CQL store, API and/or
//!   projector in this process.
//! - [`metrics_server`]: `/metrics`, `/healthz`, `/readyz` of the projector and fanout processes.
//! - [`fanout_cmd`]: `scimflow fanout`, fanout with its metrics server.
//! - [`ops`]: `scimflow replay|verify|history`, operating from the command log.
//! - [`tenant_cmd`]: `scimflow tenant create|list|revoke|rotate`.
//! - [`admin_cmd`]: `scimflow admin token create|list|revoke` (credentials of `/admin`).
//! - [`telemetry`]: structured logging setup.
//! - [`shutdown`]: Ctrl-C / SIGTERM for processes without the API.

pub mod admin_cmd;
pub mod config;
pub mod embedded;
pub mod fanout_cmd;
pub mod metrics_server;
pub mod ops;
pub mod pipeline;
pub mod shutdown;
pub mod telemetry;
pub mod tenant_cmd;
