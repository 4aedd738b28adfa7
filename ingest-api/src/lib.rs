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
//! - [`write`](mod@write) and [`operations`]: command building and the four writes, shared with `/Bulk`.
//! - [`search`]: filters, plans, sorting, index and cursor paging.
//! - [`render`]: resources as answered: `meta.location`, `groups`/`members`, projection, ETag.
//! - [`routes`]: the thin handlers.
//! - [`startup`]: [`configure`], [`build_server`] (HTTP) and
//!   [`startup::build_tls_server`] (HTTPS), [`Application`].
//! - [`tls`]: certificate and key files to a rustls server config (ring provider).
//! - [`limits`]: per-tenant token bucket and concurrency cap (429 + `Retry-After`).
//! - [`metrics`]: the Prometheus metrics; [`observe`]: the middleware that authenticates,
//!   limits and measures every SCIM request, and `/healthz`, `/readyz`, `/metrics`.
//! - [`runtime`]: [`runtime::ApiRuntime`], the shared metrics, limiter and log health, kept in
//!   [`ApiConfig::runtime`].
//! - [`testing`]: an in-memory log + store that folds with core, for HTTP-level tests.
//!
//! ## Decisions clients can see
//! - Every endpoint needs `Authorization: Bearer <tenant token>`, discovery included (RFC 7644
//!   §4 allows anonymous discovery; IdPs send the token anyway, and one rule is simpler).
//! - Group PATCH answers 204 (E12) unless [`ApiConfig::group_patch_returns_body`] is set or the
//!   request names `attributes`/`excludedAttributes`; User PATCH answers 200 with the user.
//! - A response renders at most [`ApiConfig::member_page_cap`] group members; beyond that it
//!   carries `X-Scimflow-Members-Truncated: true` and the whole membership is read with
//!   `GET /Groups/{id}/members?cursor=&count=` (RFC 9865 cursors). `excludedAttributes=members`
//!   (E11) reads no membership at all.
//! - Unknown member ids in a membership change are skipped (Okta O11) and listed in
//!   `X-Scimflow-Skipped-Members`.
//! - List order is by id unless `sortBy` is given; `count` is clamped to
//!   [`ApiConfig::max_results`]; cursor pages (`cursor=`) omit `totalResults`.
//! - Log or store unavailable, or an outcome later than the write path's timeout: 503 with
//!   `Retry-After`.
//! - A tenant over its rate or concurrency limit ([`ApiConfig::limits`]): 429 with
//!   `Retry-After` and a SCIM error body without `scimType`.
//! - `/healthz`, `/readyz` and `/metrics` live at the root, outside the base path, and need no
//!   token.
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
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod operations;
pub mod render;
pub mod routes;
pub mod runtime;
pub mod search;
pub mod startup;
pub mod state;
pub mod testing;
pub mod tls;
pub mod write;

pub use config::ApiConfig;
pub use error::{ApiError, ApiResult};
pub use startup::{Application, build_server, configure};
pub use state::ApiState;
