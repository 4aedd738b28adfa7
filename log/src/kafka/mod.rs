//! Apache Kafka as the production command log, behind the same [`CommandLog`] port as the
//! embedded log.
//!
//! Three topics, named `<prefix>commands`, `<prefix>outcomes` and `<prefix>changes` (prefix
//! `scimflow.` by default):
//!
//! - **commands**: the source of truth. Keyed by tenant id, so one tenant's commands are totally
//!   ordered in one partition; kept forever (`retention.ms=-1`). Written by [`KafkaLog`], folded
//!   by the projector (`scimflow_projector::kafka`).
//! - **outcomes**: the projector's decision for each command, keyed by event id, kept briefly.
//!   Every API instance reads all of it with an [`OutcomeListener`] and hands each outcome to the
//!   request waiting for it, if that request is its own.
//! - **changes**: the applied change events for fanout, published by the projector in Kafka
//!   transactions together with its consumer offsets.
//!
//! ## Layout
//! - [`config`]: [`KafkaConfig`] (from `SCIMFLOW_KAFKA_*` variables) and client settings.
//! - [`context`]: librdkafka logs and errors as `tracing` events.
//! - [`topics`]: create the topics at start, or verify the existing ones ([`ensure_topics`]).
//! - [`producer`]: [`KafkaLog`], the idempotent `acks=all` producer implementing [`CommandLog`].
//! - [`outcomes`]: [`OutcomePublisher`] and [`OutcomeListener`].
//! - [`metrics`]: [`LogMetrics`], produce latency per topic for `/metrics`.
//! - [`probe`]: [`KafkaProbe`], the readiness check of the log (a metadata request).
//! - [`reader`]: [`KafkaLogReader`], reading the commands topic back for replay and history.
//!
//! See `docs/kafka.md` for the guarantees and how to operate it.
//!
//! [`CommandLog`]: crate::port::CommandLog

pub mod config;
pub mod context;
pub mod metrics;
pub mod outcomes;
pub mod probe;
pub mod producer;
pub mod reader;
pub mod topics;

pub use config::{KafkaConfig, KafkaSetupError, TopicNames};
pub use metrics::LogMetrics;
pub use outcomes::{OutcomeListener, OutcomePublisher};
pub use probe::KafkaProbe;
pub use producer::KafkaLog;
pub use reader::KafkaLogReader;
pub use topics::ensure_topics;
