//! # scimflow-core
//!
//! The pure, I/O-free SCIM 2.0 domain of scimflow. Nothing here touches a socket, a file or a
//! clock: the API, the projector, fanout and replay all call into it, and replaying the same
//! commands through it always yields the same state.
//!
//! ## Layout
//! - [`error`]: the SCIM error model (status + `scimType` + detail).
//! - [`schema`]: attribute characteristics and the built-in schemas, as data.
//! - [`filter`]: filter parsing, printing, evaluation and query planning.
//! - [`resource`]: POST/PUT body normalisation into canonical resource JSON, and PUT replace.
//! - [`patch`]: PATCH request parsing and application (RFC 7644 §3.5.2), membership changes.
//! - [`projection`]: `attributes` / `excludedAttributes` and `returned` on output.
//! - [`index`]: the lookup indexes a store keeps and how their keys are folded.
//! - [`command`]: a validated write as it is appended to the log (protobuf envelope).
//! - [`change`]: what an accepted command did, as published for fanout.
//! - [`state`]: the point reads the fold needs ([`state::StateView`]) and the row mutations it emits.
//! - [`decide`](mod@decide): `decide(view, command)`, accept with changes or reject with a SCIM error.
//! - [`apply`](mod@apply): `apply(view, change)`, the row mutations of one change.
//! - [`overlay`]: a view over pending mutations, so a batch folds like single commands.
//! - [`fold`]: folding a batch of commands in log order.
//! - [`memory`]: the in-memory reference state.
//! - [`checksum`]: deterministic per-tenant and per-resource digests of folded state (replay, verify).

pub mod apply;
pub mod change;
pub mod checksum;
pub mod command;
pub mod decide;
pub mod error;
pub mod filter;
pub mod fold;
pub mod index;
pub mod memory;
pub mod overlay;
pub mod patch;
pub mod projection;
pub mod resource;
pub mod schema;
pub mod state;

pub use error::{ScimError, ScimResult, ScimType};
pub use schema::{ResourceKind, SchemaRegistry};
