//! SCIM filters (RFC 7644 §3.4.2.2): parsing with precise `invalidFilter` errors, printing,
//! evaluation against resources, and the query plan that tells a store which index it can use.
//!
//! - [`ast`]: the syntax tree.
//! - [`parser`]: text to tree, for filters and PATCH paths.
//! - `print`: tree to canonical text (`Display`), which parses back to the same tree.
//! - [`eval`]: matching resources and elements, schema validation, complexity.
//! - [`plan`](mod@plan): index selection for stores.

pub mod ast;
pub mod eval;
pub mod parser;
pub mod plan;
mod print;

pub use ast::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
pub use eval::{complexity, fold_case, validate};
pub use parser::{MAX_FILTER_LEN, MAX_NESTING};
pub use plan::{IndexLookup, QueryPlan, index_key_for, plan};

use crate::error::ScimResult;
use crate::schema::{AttributeDef, ResourceKind, SchemaRegistry};
use serde_json::Value;

/// What the evaluator needs to know: which resource type, and its schemas (for `caseExact`,
/// attribute types and URN resolution).
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    pub registry: &'a SchemaRegistry,
    pub kind: ResourceKind,
}

/// Parses a filter expression.
pub fn parse_filter(text: &str) -> ScimResult<Filter> {
    parser::parse_filter(text)
}

/// Parses a PATCH `path`.
pub fn parse_patch_path(text: &str) -> ScimResult<PatchPath> {
    parser::parse_patch_path(text)
}

/// Does `resource` (canonical SCIM JSON) match `filter`?
pub fn matches(ctx: &EvalContext<'_>, filter: &Filter, resource: &Value) -> bool {
    eval::matches(ctx, filter, resource)
}

/// Does one element of the multi-valued complex attribute `attr` match `filter`, whose attribute
/// paths name sub-attributes of `attr` (as inside `emails[...]`)?
pub fn matches_element(ctx: &EvalContext<'_>, attr: &AttributeDef, filter: &Filter, element: &Value) -> bool {
    eval::matches_element(ctx, attr, filter, element)
}
