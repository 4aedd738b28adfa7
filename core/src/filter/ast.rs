//! The filter syntax tree (RFC 7644 §3.4.2.2) and the PATCH path (§3.5.2), as written by the
//! client: attribute names are kept as text and resolved against the schema by the evaluator.

use std::fmt;

/// An attribute path as written: optional schema URN, attribute name, optional sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn simple(name: &str) -> Self {
        AttrPath { urn: None, name: name.to_owned(), sub: None }
    }
    pub fn with_sub(name: &str, sub: &str) -> Self {
        AttrPath { urn: None, name: name.to_owned(), sub: Some(sub.to_owned()) }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        write!(f, "{}", self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

/// A comparison value: JSON `false`, `null`, `true`, a number or a string (RFC 7644 `compValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath pr`
    Present(AttrPath),
    /// `attrPath compareOp compValue`
    Compare(AttrPath, CompareOp, CompValue),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attrPath "[" valFilter "]"`: an element of the multi-valued attribute matches `filter`,
    /// whose attribute paths name sub-attributes of that element. The common extension
    /// `emails[type eq "work"].value eq "x"` (sent by Entra ID) parses as
    /// `emails[type eq "work" and value eq "x"]`.
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    /// The operands of the `and` (or `or`) chain this node heads, left to right. The parser builds
    /// `a and b and c` left-nested, so a long chain is a deep tree; walking its left spine here
    /// with a loop keeps every recursive walker (printer, evaluator, planner) at a depth bounded
    /// by the nesting limit instead of by the chain length. Any other node is its own operand.
    pub(crate) fn chain_operands(&self) -> Vec<&Filter> {
        let is_and = matches!(self, Filter::And(..));
        let mut operands = Vec::new();
        let mut node = self;
        loop {
            match node {
                Filter::And(left, right) if is_and => {
                    operands.push(&**right);
                    node = left;
                }
                Filter::Or(left, right) if !is_and => {
                    operands.push(&**right);
                    node = left;
                }
                _ => break,
            }
        }
        operands.push(node);
        operands.reverse();
        operands
    }
}

/// A PATCH `path`: `attrPath`, or `valuePath` optionally followed by `.subAttr`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// Sub-attribute after a value filter, as in `emails[type eq "work"].value`.
    pub sub: Option<String>,
}
