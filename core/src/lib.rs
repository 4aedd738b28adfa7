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

pub mod error;
pub mod filter;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};
pub use schema::{ResourceKind, SchemaRegistry};
