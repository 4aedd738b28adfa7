//! # scimflow-projector
//!
//! The single writer of each log partition. It reads commands in log order, folds them with the
//! core's `decide`/`apply` against the store's rows, writes the resulting rows together with the
//! log position they reach (so a batch is applied exactly once even across crashes), and only
//! then reports each command's outcome, so an acknowledged write is visible to every later read.
//!
//! ## Layout
//! - [`window`]: the commands read ahead of the fold, and which of them a round folds (each
//!   tenant's share, so one tenant's backlog does not hold back the others).
//! - [`batch`]: folding one round into a store commit and its outcomes.
//! - [`embedded`]: the loop that follows the embedded log.
//! - [`kafka`]: the consumer-group member that follows the Kafka commands topic, publishing
//!   changes exactly once per committed offset.
//! - [`metrics`]: the projector's Prometheus metrics (fold rate, batch size, lag, transactions).

pub mod batch;
pub mod embedded;
pub mod kafka;
pub mod metrics;
pub mod window;

pub use batch::{BatchResult, fold_records, fold_round};
pub use window::{RoundLimits, Window};
