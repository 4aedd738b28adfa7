//! # scimflow-log
//!
//! The command log is the source of truth: a write is acknowledged only once its command is
//! durable here and the projector has folded it.
//!
//! ## Layout
//! - [`port`]: [`CommandLog`] (append, durable on return) and [`LogRecord`].
//! - [`outcome`]: [`Outcome`]s of folded commands and the [`OutcomeHub`] where API requests wait
//!   for them.
//! - [`submit`]: [`WritePath`], append-then-await as one call for the API.
//! - [`trace_context`]: the W3C `traceparent` that carries one trace across API, projector
//!   and fanout.
//! - [`embedded`]: the default single-partition log on redb with group commit.
//! - [`kafka`]: Apache Kafka as the production log (commands, outcomes and changes topics).
//! - [`scan`]: fold any [`LogReader`] again into per-tenant states (replay, verify, history).
//! - [`history`]: a resource's change history and a tenant's state at an instant, from the log.

pub mod embedded;
pub mod history;
pub mod kafka;
pub mod outcome;
pub mod port;
pub mod scan;
pub mod submit;
pub mod trace_context;

pub use outcome::{Outcome, OutcomeHub};
pub use port::{Appended, CommandLog, LogError, LogReader, LogRecord};
pub use submit::{SubmitError, WritePath};
