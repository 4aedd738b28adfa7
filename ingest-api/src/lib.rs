//! # scimflow-ingest-api
//!
//! The SCIM 2.0 HTTP API (RFC 7643/7644, RFC 9865 cursors) of scimflow, on actix-web. It
//! parses and validates requests with `scimflow-core`, turns every write into one command on
//! the log and answers with the projector's outcome; reads go to the projection store. It
//! never decides a write itself and never reads the store before a write.
//!
//! ## Layout
//! - [`config`]: [`ApiConfig`], the limits and switches (also advertised by
//!   `/ServiceProviderConfig`).
//! - [`state`]: [`ApiState`] (registry, write path, store reader, authenticator, config) and the
//!   tenant-scoped reader.
//! - [`auth`]: bearer token -> tenant (401 otherwise); the tenant comes from the token only.
//! - [`context`]: request id, trace id, actor and base URL of a request; the tracing middleware.
//! - [`error`]: [`ApiError`], rendered as RFC 7644 §3.12 error bodies (503 + `Retry-After`
//!   when the log or store is unavailable).
//! - [`body`]: content type, size and depth limits, JSON syntax, secret scrubbing for the audit.
//! - [`write`] and [`operations`]: command building and the four writes, shared with `/Bulk`.
//! - [`search`]: filters, plans, sorting, index and cursor paging.
//! - [`render`]: resources as answered: `meta.location`, `groups`/`members`, projection, ETag.
//! - [`routes`]: the thin handlers.
//! - [`startup`]: [`configure`], [`build_server`], [`Application`].
//! - [`testing`]: an in-memory log + store that folds with core, for HTTP-level tests.
//!
//! ## Quick start
//! ```no_run
//! # use std::sync::Arc;
//! # async fn run(state: scimflow_ingest_api::ApiState) -> std::io::Result<()> {
//! let listener = std::net::TcpListener::bind("0.0.0.0:8080")?;
//! scimflow_ingest_api::build_server(listener, state)?.await
//! # }
//! ```

pub mod auth;
pub mod body;
pub mod config;
pub mod context;
pub mod error;
pub mod operations;
pub mod render;
pub mod routes;
pub mod search;
pub mod startup;
pub mod state;
pub mod testing;
pub mod write;

pub use config::ApiConfig;
pub use error::{ApiError, ApiResult};
pub use startup::{Application, build_server, configure};
pub use state::ApiState;
