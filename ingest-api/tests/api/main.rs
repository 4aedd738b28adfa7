//! HTTP-level tests of the SCIM API over an in-memory pipeline that folds with core.

mod auth;
mod bulk;
mod discovery;
mod errors;
mod groups;
mod helpers;
mod idp_quirks;
mod list;
mod observability;
mod server;
mod tenants;
mod trace_propagation;
mod users;
