//! Filter evaluation against canonical SCIM JSON (RFC 7644 §3.4.2.2), schema-aware validation of a
//! parsed filter, and its complexity measure.
//!
//! Semantics, decided once here so the store, the API and PATCH agree:
//! - Strings compare case-insensitively unless the attribute is `caseExact` (both sides folded
//!   with [`fold_case`]); `gt`/`ge`/`lt`/`le` on strings are lexicographic by code point.
//! - `dateTime` attributes compare as instants (RFC 3339); a value that is not a date never
//!   matches. `integer`/`decimal` compare numerically; booleans support only `eq` and `ne`.
//! - A multi-valued attribute matches when any of its values matches. Comparing a multi-valued
//!   complex attribute without a sub-attribute (`emails eq "x"`) compares each element's `value`.
//! - `pr`: present, not null, not `""`, not `[]`, not `{}` (or an object of nulls).
//! - `ne` is the negation of `eq` per value, and is TRUE when the attribute is absent (as most
//!   implementations do: a user without a title has a title "not equal" to "CEO").
//! - `eq null` matches an absent (or null) attribute and `ne null` a present one.
//! - An attribute unknown to the schema never matches, whatever the operator; [`validate`] lets
//!   the API reject such filters up front.

use super::EvalContext;
use super::ast::{AttrPath, CompValue, CompareOp, Filter};
use crate::error::{ScimError, ScimResult};
use crate::schema::{AttrHome, AttrType, AttributeDef, ResolvedAttr};
use chrono::{DateTime, FixedOffset, NaiveDateTime};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// Does `resource` (canonical SCIM JSON) match `filter`?
pub fn matches(ctx: &EvalContext<'_>, filter: &Filter, resource: &Value) -> bool {
    eval(ctx, Scope::Resource(resource), filter)
}

/// Does one element of the multi-valued complex attribute `attr` match `filter`, whose attribute
/// paths name sub-attributes of `attr` (as inside `emails[...]`)?
pub fn matches_element(ctx: &EvalContext<'_>, attr: &AttributeDef, filter: &Filter, element: &Value) -> bool {
    eval(ctx, Scope::Element(attr, element), filter)
}

/// Folds a string for comparison: unchanged for `caseExact` attributes, lowercased otherwise.
/// Index keys ([`super::plan::index_key_for`]) use the same folding, so an index lookup finds
/// exactly what the evaluator would match.
pub fn fold_case(case_exact: bool, text: &str) -> Cow<'_, str> {
    // Skip the allocation when lowercasing would change nothing (checked per character, which
    // also catches titlecase letters that `char::is_uppercase` does not).
    let already_folded = |c: char| {
        let mut lower = c.to_lowercase();
        lower.next() == Some(c) && lower.next().is_none()
    };
    if case_exact || text.chars().all(already_folded) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

/// Checks `filter` against the schema of `ctx.kind`: every attribute must exist, value filters
/// need a multi-valued complex attribute, complex attributes cannot be compared whole (unless
/// they have a `value` sub-attribute) and booleans cannot be ordered. Returns `invalidFilter`
/// naming the offending attribute.
pub fn validate(ctx: &EvalContext<'_>, filter: &Filter) -> ScimResult<()> {
    validate_in(ctx, None, filter)
}

/// The number of nodes in `filter`, so callers can bound the work one filter may cost.
pub fn complexity(filter: &Filter) -> usize {
    match filter {
        Filter::Present(_) | Filter::Compare(..) => 1,
        Filter::Not(inner) | Filter::ValuePath(_, inner) => 1 + complexity(inner),
        Filter::And(..) | Filter::Or(..) => {
            let operands = filter.chain_operands();
            // A chain of n operands has n - 1 connective nodes.
            operands.len() - 1 + operands.into_iter().map(complexity).sum::<usize>()
        }
    }
}

/// Resolves a parsed attribute path against the registry. Equivalent to
/// `ctx.registry.resolve(ctx.kind, &path.to_string())` (a test checks this) but without
/// formatting the path for every resource evaluated.
pub(crate) fn resolve<'r>(ctx: &EvalContext<'r>, path: &AttrPath) -> Option<ResolvedAttr<'r>> {
    let registry = ctx.registry;
    let (home, attr) = match &path.urn {
        None => (AttrHome::Core, registry.core_attribute(ctx.kind, &path.name)?),
        Some(urn) if urn.eq_ignore_ascii_case(ctx.kind.core_schema()) => {
            (AttrHome::Core, registry.core_attribute(ctx.kind, &path.name)?)
        }
        Some(urn) => {
            let schema = registry.schema(registry.extension_id(ctx.kind, urn)?)?;
            (AttrHome::Extension(schema.id.as_str()), schema.attribute(&path.name)?)
        }
    };
    let sub = match &path.sub {
        Some(name) => Some(attr.sub_attribute(name)?),
        None => None,
    };
    Some(ResolvedAttr { home, attr, sub })
}

/// Where attribute paths are resolved: against the resource, or against one element of a
/// multi-valued complex attribute (inside `attr[...]`).
#[derive(Clone, Copy)]
enum Scope<'v> {
    Resource(&'v Value),
    Element(&'v AttributeDef, &'v Value),
}

fn eval(ctx: &EvalContext<'_>, scope: Scope<'_>, filter: &Filter) -> bool {
    match filter {
        Filter::Present(path) => values_at(ctx, scope, path, Purpose::Presence)
            .is_some_and(|(_, values)| values.into_iter().any(is_present)),
        Filter::Compare(path, op, expected) => values_at(ctx, scope, path, Purpose::Compare)
            .is_some_and(|(leaf, values)| compare_values(leaf, *op, expected, &values)),
        Filter::And(..) => filter.chain_operands().into_iter().all(|f| eval(ctx, scope, f)),
        Filter::Or(..) => filter.chain_operands().into_iter().any(|f| eval(ctx, scope, f)),
        Filter::Not(inner) => !eval(ctx, scope, inner),
        Filter::ValuePath(path, inner) => {
            // Value paths do not nest (the parser rejects it), so inside an element: no match.
            let Scope::Resource(resource) = scope else {
                return false;
            };
            let Some(resolved) = resolve(ctx, path) else {
                return false;
            };
            if resolved.sub.is_some() || resolved.attr.attr_type != AttrType::Complex {
                return false;
            }
            let attr = resolved.attr;
            attribute_value(resource, &resolved)
                .map(as_values)
                .unwrap_or_default()
                .iter()
                .any(|element| eval(ctx, Scope::Element(attr, element), inner))
        }
    }
}

/// Why values are collected: comparisons of a multi-valued complex attribute look at each
/// element's `value` (RFC 7644 §3.4.2.2); presence looks at the elements themselves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Compare,
    Presence,
}

/// The definition governing the addressed values and the non-null values themselves (arrays
/// flattened), or `None` when the path names no attribute of the schema.
fn values_at<'a>(
    ctx: &EvalContext<'a>,
    scope: Scope<'a>,
    path: &AttrPath,
    purpose: Purpose,
) -> Option<(&'a AttributeDef, Vec<&'a Value>)> {
    match scope {
        Scope::Resource(resource) => {
            let resolved = resolve(ctx, path)?;
            let attr = resolved.attr;
            let (leaf, sub) = match resolved.sub {
                Some(sub) => (sub, Some(sub)),
                None if purpose == Purpose::Compare
                    && attr.multi_valued
                    && attr.attr_type == AttrType::Complex =>
                {
                    match attr.sub_attribute("value") {
                        Some(value) => (value, Some(value)),
                        None => (attr, None),
                    }
                }
                None => (attr, None),
            };
            let raw = attribute_value(resource, &resolved);
            let mut values = Vec::new();
            for item in raw.map(as_values).unwrap_or_default() {
                match sub {
                    Some(sub) => values.extend(non_null(get_key(item, &sub.name))),
                    None => values.push(item),
                }
            }
            Some((leaf, values))
        }
        Scope::Element(attr, element) => {
            // Inside `attr[...]` paths are plain sub-attribute names.
            if path.urn.is_some() || path.sub.is_some() {
                return None;
            }
            let sub = attr.sub_attribute(&path.name)?;
            Some((sub, non_null(get_key(element, &sub.name)).collect()))
        }
    }
}

/// The JSON value of the resolved attribute (not its sub-attribute) in `resource`.
fn attribute_value<'v>(resource: &'v Value, resolved: &ResolvedAttr<'_>) -> Option<&'v Value> {
    let container = match resolved.home {
        AttrHome::Core => resource,
        AttrHome::Extension(urn) => get_key(resource, urn)?,
    };
    get_key(container, &resolved.attr.name)
}

/// Looks up a member by its canonical name, falling back to a case-insensitive match because
/// attribute names are case-insensitive (RFC 7643 §2.1) and stored JSON may not be canonical.
fn get_key<'v>(object: &'v Value, key: &str) -> Option<&'v Value> {
    let map = object.as_object()?;
    map.get(key)
        .or_else(|| map.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)).map(|(_, value)| value))
}

/// A multi-valued attribute's elements, or a single value as a one-element slice.
fn as_values(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        Value::Null => &[],
        other => std::slice::from_ref(other),
    }
}

fn non_null(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.map(as_values).unwrap_or_default().iter().filter(|v| !v.is_null())
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        // `name: {"givenName": null}` carries nothing, so it is not present.
        Value::Object(members) => members.values().any(|v| !v.is_null() && v != ""),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Any-value semantics for multi-valued attributes, plus the absent-attribute rules of `ne` and
/// `null` described in the module docs.
fn compare_values(leaf: &AttributeDef, op: CompareOp, expected: &CompValue, values: &[&Value]) -> bool {
    match (op, expected) {
        (CompareOp::Eq, CompValue::Null) => values.is_empty(),
        (CompareOp::Ne, CompValue::Null) => !values.is_empty(),
        (_, CompValue::Null) => false,
        (CompareOp::Ne, _) => {
            values.is_empty() || values.iter().any(|v| !compare(leaf, CompareOp::Eq, expected, v))
        }
        _ => values.iter().any(|v| compare(leaf, op, expected, v)),
    }
}

/// Compares one stored value with the filter's value. Values of different JSON types never
/// match: the resource is canonical, so a type mismatch means the filter asks for something no
/// resource can hold.
fn compare(leaf: &AttributeDef, op: CompareOp, expected: &CompValue, actual: &Value) -> bool {
    match (actual, expected) {
        (Value::String(actual), CompValue::String(expected)) => {
            let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
            if leaf.attr_type == AttrType::DateTime && !substring {
                compare_instants(op, actual, expected)
            } else {
                compare_strings(op, actual, expected, leaf.case_exact)
            }
        }
        (Value::Number(actual), CompValue::Number(expected)) => {
            compare_numbers(actual, expected).is_some_and(|ordering| accepts(op, ordering))
        }
        (Value::Bool(actual), CompValue::Bool(expected)) => match op {
            CompareOp::Eq => actual == expected,
            CompareOp::Ne => actual != expected,
            _ => false,
        },
        _ => false,
    }
}

/// Does `ordering` (actual compared with expected) satisfy `op`? Substring operators are not
/// orderings, so they never do.
fn accepts(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn compare_strings(op: CompareOp, actual: &str, expected: &str, case_exact: bool) -> bool {
    // Fast path for the hot `userName eq "..."` case: ASCII needs no allocation to fold.
    if !case_exact && actual.is_ascii() && expected.is_ascii() {
        match op {
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {}
            _ => return accepts(op, ascii_lowercase(actual).cmp(ascii_lowercase(expected))),
        }
    }
    let actual = fold_case(case_exact, actual);
    let expected = fold_case(case_exact, expected);
    match op {
        CompareOp::Co => actual.contains(expected.as_ref()),
        CompareOp::Sw => actual.starts_with(expected.as_ref()),
        CompareOp::Ew => actual.ends_with(expected.as_ref()),
        _ => accepts(op, actual.cmp(&expected)),
    }
}

fn ascii_lowercase(text: &str) -> impl Iterator<Item = u8> + '_ {
    text.bytes().map(|b| b.to_ascii_lowercase())
}

fn compare_instants(op: CompareOp, actual: &str, expected: &str) -> bool {
    match (parse_instant(actual), parse_instant(expected)) {
        (Some(actual), Some(expected)) => accepts(op, actual.cmp(&expected)),
        _ => false,
    }
}

/// RFC 3339, or an `xsd:dateTime` without offset (read as UTC) as some clients send.
fn parse_instant(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok().or_else(|| {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|naive| naive.and_utc().fixed_offset())
    })
}

/// Exact for integers, `f64` otherwise.
fn compare_numbers(actual: &Number, expected: &Number) -> Option<Ordering> {
    if let (Some(a), Some(e)) = (actual.as_i64(), expected.as_i64()) {
        return Some(a.cmp(&e));
    }
    if let (Some(a), Some(e)) = (actual.as_u64(), expected.as_u64()) {
        return Some(a.cmp(&e));
    }
    actual.as_f64()?.partial_cmp(&expected.as_f64()?)
}

// ----- validation -------------------------------------------------------------------------

/// `parent` is the multi-valued attribute whose value filter is being validated, if any.
fn validate_in(ctx: &EvalContext<'_>, parent: Option<&AttributeDef>, filter: &Filter) -> ScimResult<()> {
    match filter {
        Filter::Present(path) => validate_path(ctx, parent, path).map(|_| ()),
        Filter::Compare(path, op, _) => {
            let leaf = validate_path(ctx, parent, path)?;
            validate_comparison(path, leaf, *op)
        }
        Filter::And(..) | Filter::Or(..) => {
            filter.chain_operands().into_iter().try_for_each(|f| validate_in(ctx, parent, f))
        }
        Filter::Not(inner) => validate_in(ctx, parent, inner),
        Filter::ValuePath(path, inner) => {
            if let Some(parent) = parent {
                return Err(invalid(format!(
                    "value filters cannot be nested: \"{path}[...]\" inside \"{}[...]\"",
                    parent.name
                )));
            }
            let resolved = resolve_or_reject(ctx, path)?;
            let attr = resolved.attr;
            if resolved.sub.is_some() || !attr.multi_valued || attr.attr_type != AttrType::Complex {
                return Err(invalid(format!(
                    "\"{path}\" is not a multi-valued complex attribute, so it cannot take a \
                     value filter \"[...]\""
                )));
            }
            validate_in(ctx, Some(attr), inner)
        }
    }
}

/// Checks that `path` exists and returns the definition its comparisons use (the `value`
/// sub-attribute for a multi-valued complex attribute named alone).
fn validate_path<'d>(
    ctx: &EvalContext<'d>,
    parent: Option<&'d AttributeDef>,
    path: &AttrPath,
) -> ScimResult<&'d AttributeDef> {
    let Some(parent) = parent else {
        let resolved = resolve_or_reject(ctx, path)?;
        let attr = resolved.attr;
        return Ok(match resolved.sub {
            Some(sub) => sub,
            None if attr.multi_valued && attr.attr_type == AttrType::Complex => {
                attr.sub_attribute("value").unwrap_or(attr)
            }
            None => attr,
        });
    };
    if path.urn.is_some() || path.sub.is_some() {
        return Err(invalid(format!(
            "inside \"{}[...]\" name a sub-attribute of \"{}\" alone, not \"{path}\"",
            parent.name, parent.name
        )));
    }
    parent.sub_attribute(&path.name).ok_or_else(|| {
        let known: Vec<&str> = parent.sub_attributes.iter().map(|sub| sub.name.as_str()).collect();
        invalid(format!(
            "\"{}\" is not a sub-attribute of \"{}\" (known: {})",
            path.name,
            parent.name,
            known.join(", ")
        ))
    })
}

fn resolve_or_reject<'d>(ctx: &EvalContext<'d>, path: &AttrPath) -> ScimResult<ResolvedAttr<'d>> {
    resolve(ctx, path)
        .ok_or_else(|| invalid(format!("unknown attribute \"{path}\" for {} resources", ctx.kind.name())))
}

fn validate_comparison(path: &AttrPath, leaf: &AttributeDef, op: CompareOp) -> ScimResult<()> {
    if leaf.attr_type == AttrType::Complex {
        let example = leaf.sub_attributes.first().map_or("", |sub| sub.name.as_str());
        return Err(invalid(format!(
            "\"{path}\" is a complex attribute and cannot be compared with \"{op}\"; compare one \
             of its sub-attributes, e.g. \"{}.{example}\"",
            leaf.name
        )));
    }
    let ordering = matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le);
    if ordering && leaf.attr_type == AttrType::Boolean {
        return Err(invalid(format!(
            "\"{op}\" cannot be used with the boolean attribute \"{path}\"; use eq or ne"
        )));
    }
    Ok(())
}

fn invalid(reason: String) -> ScimError {
    ScimError::invalid_filter(format!("invalid filter: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{MAX_FILTER_LEN, parse_filter};
    use crate::schema::{ENTERPRISE_USER_SCHEMA, ResourceKind, Schema, SchemaRegistry};
    use serde_json::json;

    const CUSTOM: &str = "urn:example:params:scim:schemas:extension:custom:1.0:User";

    /// The standard schemas plus an extension with the attribute types the standard ones lack.
    fn registry() -> SchemaRegistry {
        let mut registry = SchemaRegistry::standard();
        let custom = Schema {
            id: CUSTOM.into(),
            name: "Custom".into(),
            description: String::new(),
            attributes: vec![
                AttributeDef::new("level", AttrType::Integer),
                AttributeDef::new("score", AttrType::Decimal),
                AttributeDef::new("hiredAt", AttrType::DateTime),
                AttributeDef::string("badge").case_exact(),
                AttributeDef::string("tags").multi(),
            ],
        };
        registry.register_extension(ResourceKind::User, custom, false);
        registry
    }

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Bjensen-EXT",
            "userName": "Bjensen@Example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara", "middleName": null},
            "displayName": "Babs Jensen",
            "nickName": null,
            "title": "",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "phoneNumbers": [],
            (ENTERPRISE_USER_SCHEMA): {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John"}
            },
            (CUSTOM): {
                "level": 7,
                "score": 2.5,
                "hiredAt": "2020-02-29T12:00:00+01:00",
                "badge": "Gold",
                "tags": ["Alpha", "beta"]
            },
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34.123Z"
            }
        })
    }

    fn group() -> Value {
        json!({
            "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
            "displayName": "Tour Guides",
            "members": [
                {"value": "2819c223-7f76-453a-919d-413861904646", "type": "User"},
                {"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User"}
            ]
        })
    }

    fn check(registry: &SchemaRegistry, kind: ResourceKind, resource: &Value, text: &str) -> bool {
        let filter = match parse_filter(text) {
            Ok(filter) => filter,
            Err(error) => panic!("{text:?}: {}", error.detail),
        };
        matches(&EvalContext { registry, kind }, &filter, resource)
    }

    /// Asserts each filter's outcome against the sample user.
    fn user_cases(cases: &[(&str, bool)]) {
        let registry = registry();
        let user = user();
        for (text, expected) in cases {
            assert_eq!(check(&registry, ResourceKind::User, &user, text), *expected, "{text}");
        }
    }

    fn group_cases(cases: &[(&str, bool)]) {
        let registry = registry();
        let group = group();
        for (text, expected) in cases {
            assert_eq!(check(&registry, ResourceKind::Group, &group, text), *expected, "{text}");
        }
    }

    #[test]
    fn string_equality_ignores_case_unless_the_attribute_is_case_exact() {
        user_cases(&[
            (r#"userName eq "bjensen@example.com""#, true),
            (r#"userName eq "BJENSEN@EXAMPLE.COM""#, true),
            (r#"userName eq "bjensen""#, false),
            (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
            (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
            (r#"externalId eq "Bjensen-EXT""#, true),
            (r#"externalId eq "bjensen-ext""#, false),
            (r#"urn:example:params:scim:schemas:extension:custom:1.0:User:badge eq "gold""#, false),
            (r#"urn:example:params:scim:schemas:extension:custom:1.0:User:badge eq "Gold""#, true),
        ]);
    }

    #[test]
    fn substring_operators_respect_case_exactness() {
        user_cases(&[
            (r#"userName co "EXAMPLE""#, true),
            (r#"userName sw "bjen""#, true),
            (r#"userName ew ".COM""#, true),
            (r#"userName sw "example""#, false),
            (r#"displayName co "ö""#, false),
            (r#"externalId co "ext""#, false),
            (r#"externalId co "EXT""#, true),
            (r#"externalId sw "Bj""#, true),
            (r#"externalId ew "-EXT""#, true),
        ]);
    }

    #[test]
    fn non_ascii_strings_fold_case_too() {
        let registry = registry();
        let user = json!({"userName": "ÅSA.Öberg", "displayName": "ΣΟΦΙΑ"});
        for (text, expected) in [
            (r#"userName eq "åsa.öberg""#, true),
            (r#"userName sw "Åsa""#, true),
            (r#"displayName eq "σοφια""#, true),
            (r#"displayName gt "σοφ""#, true),
        ] {
            assert_eq!(check(&registry, ResourceKind::User, &user, text), expected, "{text}");
        }
    }

    #[test]
    fn string_ordering_is_lexicographic_after_case_folding() {
        user_cases(&[
            (r#"displayName gt "babs""#, true),
            (r#"displayName gt "BABS JENSEN""#, false),
            (r#"displayName ge "BABS JENSEN""#, true),
            (r#"displayName lt "c""#, true),
            (r#"displayName le "Babs Jensen""#, true),
            (r#"displayName lt "Babs""#, false),
        ]);
    }

    #[test]
    fn booleans_support_eq_and_ne_only() {
        user_cases(&[
            ("active eq true", true),
            ("active eq false", false),
            ("active ne false", true),
            ("active ne true", false),
            (r#"active eq "true""#, false),
            (r#"active gt "a""#, false),
            ("emails.primary eq true", true),
        ]);
    }

    #[test]
    fn integers_and_decimals_compare_numerically() {
        let level = "urn:example:params:scim:schemas:extension:custom:1.0:User:level";
        let score = "urn:example:params:scim:schemas:extension:custom:1.0:User:score";
        user_cases(&[
            (&format!("{level} eq 7"), true),
            (&format!("{level} eq 7.0"), true),
            (&format!("{level} ne 7"), false),
            (&format!("{level} gt 6"), true),
            (&format!("{level} gt 7"), false),
            (&format!("{level} ge 7"), true),
            (&format!("{level} lt 1e1"), true),
            (&format!("{level} le 6.99"), false),
            (&format!("{level} gt -8"), true),
            (&format!("{level} eq \"7\""), false),
            (&format!("{level} co 7"), false),
            (&format!("{score} eq 2.5"), true),
            (&format!("{score} gt 2.49"), true),
            (&format!("{score} lt 3"), true),
            (&format!("{score} ge 25e-1"), true),
            (&format!("{score} le 2"), false),
        ]);
    }

    #[test]
    fn date_times_compare_as_instants() {
        let hired = "urn:example:params:scim:schemas:extension:custom:1.0:User:hiredAt";
        user_cases(&[
            (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, true),
            (r#"meta.lastModified gt "2011-05-13T04:42:35Z""#, false),
            (r#"meta.lastModified lt "2011-05-13T06:42:35+02:00""#, true),
            (r#"meta.lastModified eq "2011-05-13T06:42:34.123+02:00""#, true),
            (r#"meta.created ge "2010-01-23T04:56:22Z""#, true),
            (r#"meta.created le "2010-01-23T04:56:21.999Z""#, false),
            (r#"meta.created eq "2010-01-23T04:56:22""#, true),
            (r#"meta.created gt "yesterday""#, false),
            (r#"meta.created lt "2010-13-45T00:00:00Z""#, false),
            (r#"meta.created sw "2010-01""#, true),
            (&format!("{hired} eq \"2020-02-29T11:00:00Z\""), true),
            (&format!("{hired} lt \"2020-02-29T11:30:00Z\""), true),
        ]);
    }

    #[test]
    fn multi_valued_attributes_match_when_any_value_does() {
        let tags = "urn:example:params:scim:schemas:extension:custom:1.0:User:tags";
        user_cases(&[
            (r#"emails.value eq "babs@jensen.org""#, true),
            (r#"emails.value eq "BJENSEN@example.com""#, true),
            (r#"emails.value eq "nobody@example.com""#, false),
            (r#"emails.type eq "home""#, true),
            (r#"emails.type ne "work""#, true),
            (r#"emails.value ew ".org""#, true),
            (&format!("{tags} eq \"alpha\""), true),
            (&format!("{tags} sw \"BE\""), true),
            (&format!("{tags} eq \"gamma\""), false),
        ]);
    }

    #[test]
    fn a_multi_valued_complex_attribute_without_sub_attribute_compares_its_values() {
        user_cases(&[
            (r#"emails eq "babs@jensen.org""#, true),
            (r#"emails co "example.com""#, true),
            (r#"emails eq "work""#, false),
        ]);
    }

    #[test]
    fn present_means_a_non_empty_value() {
        user_cases(&[
            ("userName pr", true),
            ("title pr", false),
            ("nickName pr", false),
            ("phoneNumbers pr", false),
            ("emails pr", true),
            ("emails.display pr", false),
            ("name pr", true),
            ("name.middleName pr", false),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr", true),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter pr", false),
            ("addresses pr", false),
        ]);
        let registry = registry();
        let hollow = json!({"name": {"givenName": null, "familyName": ""}, "emails": [{}]});
        assert!(!check(&registry, ResourceKind::User, &hollow, "name pr"));
        assert!(!check(&registry, ResourceKind::User, &hollow, "emails pr"));
        let one = json!({"emails": [{}, {"value": "x"}]});
        assert!(check(&registry, ResourceKind::User, &one, "emails pr"));
    }

    #[test]
    fn ne_is_true_for_absent_attributes_and_eq_null_matches_them() {
        user_cases(&[
            (r#"nickName ne "x""#, true),
            (r#"emails.display ne "x""#, true),
            (r#"title ne """#, false),
            (r#"userName ne "x""#, true),
            ("nickName eq null", true),
            ("title eq null", false),
            ("userName eq null", false),
            ("userName ne null", true),
            ("nickName ne null", false),
        ]);
    }

    #[test]
    fn unknown_attributes_never_match() {
        user_cases(&[
            (r#"nosuch eq "x""#, false),
            (r#"nosuch ne "x""#, false),
            ("nosuch pr", false),
            (r#"not (nosuch eq "x")"#, true),
            (r#"name.nosuch eq "x""#, false),
            (r#"urn:example:unknown:schema:attr eq "x""#, false),
            (r#"members.value eq "x""#, false),
        ]);
    }

    #[test]
    fn attribute_names_and_json_keys_match_case_insensitively() {
        user_cases(&[
            (r#"USERNAME eq "bjensen@example.com""#, true),
            (r#"Name.GivenName eq "barbara""#, true),
        ]);
        let registry = registry();
        let sloppy = json!({"UserName": "x", "EMAILS": [{"Value": "a@b.c"}]});
        assert!(check(&registry, ResourceKind::User, &sloppy, r#"userName eq "x""#));
        assert!(check(&registry, ResourceKind::User, &sloppy, r#"emails[value eq "a@b.c"]"#));
    }

    #[test]
    fn urn_prefixed_paths_reach_core_and_extension_attributes() {
        user_cases(&[
            (r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "barbara""#, true),
            (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#, true),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                true,
            ),
            (r#"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:department co "tour""#, true),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87E4-49D8CA9F808D""#,
                false,
            ),
            (r#"employeeNumber eq "701984""#, false),
        ]);
    }

    #[test]
    fn value_paths_need_one_element_to_satisfy_the_whole_inner_filter() {
        user_cases(&[
            (r#"emails[type eq "work" and value co "example"]"#, true),
            (r#"emails[type eq "home" and primary eq true]"#, false),
            (r#"emails[type eq "home" or primary eq true]"#, true),
            (r#"emails[not (type eq "work")]"#, true),
            (r#"emails[type eq "other"]"#, false),
            (r#"emails[type eq "work"].value eq "bjensen@example.com""#, true),
            (r#"emails[type eq "work"].value eq "babs@jensen.org""#, false),
            (r#"emails[type eq "home"].value eq "BABS@jensen.org""#, true),
            (r#"emails[type eq "work"] and userName sw "bj""#, true),
            (r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "home"]"#, true),
            (r#"phoneNumbers[type pr]"#, false),
            (r#"emails[nosuch eq "x"]"#, false),
            (r#"emails[nosuch ne "x"]"#, false),
        ]);
    }

    #[test]
    fn and_binds_tighter_than_or_when_evaluating() {
        user_cases(&[
            // true or (false and false) = true; (true or false) and false = false.
            (r#"active eq true or title pr and nickName pr"#, true),
            (r#"(active eq true or title pr) and nickName pr"#, false),
            (r#"active eq false and title pr or userName pr"#, true),
            (r#"not (active eq true) or not (userName pr)"#, false),
            (r#"not (not (active eq true))"#, true),
        ]);
    }

    #[test]
    fn the_idp_lookup_filters_match_groups_by_name_and_members() {
        group_cases(&[
            (r#"displayName eq "tour guides""#, true),
            (r#"displayName eq "Tour""#, false),
            (r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#, true),
            (r#"members[value eq "2819C223-7F76-453A-919D-413861904646"]"#, false),
            (r#"members.value eq "902c246b-6245-4190-8e05-00816be7344a""#, true),
            (r#"members eq "902c246b-6245-4190-8e05-00816be7344a""#, true),
            (r#"id eq "e9e30dba-f08f-4109-8486-d5c6a331660a""#, true),
            (r#"userName eq "x""#, false),
        ]);
    }

    #[test]
    fn a_single_element_is_matched_against_sub_attribute_paths() {
        let registry = registry();
        let ctx = EvalContext { registry: &registry, kind: ResourceKind::User };
        let Some(emails) = registry.core_attribute(ResourceKind::User, "emails") else {
            panic!("emails is a standard attribute");
        };
        let element = json!({"value": "A@B.example", "type": "work", "primary": true});
        let inner = |text: &str| parse_filter(text).map_err(|e| e.detail);
        let hits = |text: &str| inner(text).map(|f| matches_element(&ctx, emails, &f, &element));
        assert_eq!(hits(r#"type eq "WORK""#), Ok(true));
        assert_eq!(hits(r#"value eq "a@b.example" and primary eq true"#), Ok(true));
        assert_eq!(hits(r#"type eq "home""#), Ok(false));
        assert_eq!(hits(r#"display pr"#), Ok(false));
        assert_eq!(hits(r#"emails.type eq "work""#), Ok(false));
        assert_eq!(hits(r#"emails[type eq "work"]"#), Ok(false));
    }

    #[test]
    fn resolution_agrees_with_the_registry() {
        let registry = registry();
        for kind in [ResourceKind::User, ResourceKind::Group] {
            let ctx = EvalContext { registry: &registry, kind };
            for text in [
                "userName pr",
                "NAME.GIVENNAME pr",
                "emails.value pr",
                "meta.lastModified pr",
                "displayName pr",
                "members.value pr",
                "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName pr",
                "urn:ietf:params:scim:schemas:core:2.0:Group:displayName pr",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr",
                "urn:example:params:scim:schemas:extension:custom:1.0:User:level pr",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nosuch pr",
                "urn:nope:x pr",
                "name.nosuch pr",
            ] {
                let Ok(Filter::Present(path)) = parse_filter(text) else {
                    panic!("{text:?} is a presence filter");
                };
                let ours = resolve(&ctx, &path).map(|r| (r.home, r.dotted()));
                let theirs = registry.resolve(kind, &path.to_string()).map(|r| (r.home, r.dotted()));
                assert_eq!(ours, theirs, "{text} for {kind:?}");
            }
        }
    }

    fn validation(kind: ResourceKind, text: &str) -> Result<(), String> {
        let registry = registry();
        let filter = parse_filter(text).map_err(|e| e.detail)?;
        validate(&EvalContext { registry: &registry, kind }, &filter).map_err(|error| {
            assert_eq!(error.scim_type, Some(crate::ScimType::InvalidFilter));
            error.detail
        })
    }

    #[test]
    fn validation_accepts_filters_on_known_attributes() {
        for text in [
            r#"userName eq "x""#,
            r#"emails[type eq "work"].value eq "x""#,
            r#"emails eq "x" or emails.primary eq true"#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr"#,
            r#"not (name.familyName sw "J") and active eq true"#,
            "name pr",
        ] {
            assert_eq!(validation(ResourceKind::User, text), Ok(()), "{text}");
        }
        assert_eq!(validation(ResourceKind::Group, r#"members[value eq "x"] or displayName pr"#), Ok(()));
    }

    #[test]
    fn validation_names_unknown_attributes() {
        assert_eq!(
            validation(ResourceKind::User, r#"title pr and nosuch eq "x""#),
            Err(r#"invalid filter: unknown attribute "nosuch" for User resources"#.into())
        );
        assert_eq!(
            validation(ResourceKind::Group, r#"userName eq "x""#),
            Err(r#"invalid filter: unknown attribute "userName" for Group resources"#.into())
        );
        assert_eq!(
            validation(ResourceKind::User, r#"emails[kind eq "work"]"#),
            Err(r#"invalid filter: "kind" is not a sub-attribute of "emails" (known: value, display, type, primary)"#.into())
        );
        assert!(
            validation(ResourceKind::User, r#"emails[emails.type eq "work"]"#)
                .is_err_and(|e| e.contains("name a sub-attribute of \"emails\" alone"))
        );
    }

    #[test]
    fn validation_rejects_value_paths_on_attributes_without_elements() {
        assert!(
            validation(ResourceKind::User, "name[givenName pr]")
                .is_err_and(|e| e.contains("\"name\" is not a multi-valued complex attribute"))
        );
        assert!(validation(ResourceKind::User, "userName[value pr]").is_err());
        let tags = "urn:example:params:scim:schemas:extension:custom:1.0:User:tags";
        assert!(validation(ResourceKind::User, &format!("{tags}[value pr]")).is_err());
        let registry = registry();
        let nested = Filter::ValuePath(
            AttrPath::simple("emails"),
            Box::new(Filter::ValuePath(
                AttrPath::simple("x"),
                Box::new(Filter::Present(AttrPath::simple("y"))),
            )),
        );
        let ctx = EvalContext { registry: &registry, kind: ResourceKind::User };
        assert!(validate(&ctx, &nested).is_err_and(|e| e.detail.contains("cannot be nested")));
        assert!(!matches(&ctx, &nested, &user()));
    }

    #[test]
    fn validation_rejects_ordering_booleans_and_comparing_complex_attributes() {
        assert_eq!(
            validation(ResourceKind::User, r#"active gt "x""#),
            Err(r#"invalid filter: "gt" cannot be used with the boolean attribute "active"; use eq or ne"#
                .into())
        );
        assert!(validation(ResourceKind::User, r#"emails[primary le "x"]"#).is_err());
        assert!(
            validation(ResourceKind::User, r#"name eq "x""#)
                .is_err_and(|e| e.contains("\"name\" is a complex attribute"))
        );
        assert!(validation(ResourceKind::User, r#"addresses co "x""#).is_err());
        assert_eq!(validation(ResourceKind::User, r#"active eq true"#), Ok(()));
    }

    #[test]
    fn complexity_counts_nodes() {
        let count = |text: &str| parse_filter(text).map(|f| complexity(&f)).map_err(|e| e.detail);
        assert_eq!(count("a pr"), Ok(1));
        assert_eq!(count("a pr and b pr or c pr"), Ok(5));
        assert_eq!(count(r#"not (emails[type eq "work"].value eq "x")"#), Ok(5));
    }

    #[test]
    fn the_longest_filter_chains_evaluate_print_and_drop_without_overflowing() {
        // About a thousand `or`s: the deepest tree the length limit allows.
        let unit = "title pr or ";
        let units = (MAX_FILTER_LEN - "userName pr".len()) / unit.len();
        let mut text = unit.repeat(units);
        text.push_str("userName pr");
        assert!(text.len() <= MAX_FILTER_LEN);
        let chain = match parse_filter(&text) {
            Ok(filter) => filter,
            Err(error) => panic!("{}", error.detail),
        };
        let registry = registry();
        let ctx = EvalContext { registry: &registry, kind: ResourceKind::User };
        assert!(matches(&ctx, &chain, &user()));
        assert_eq!(validate(&ctx, &chain), Ok(()));
        assert_eq!(complexity(&chain), 2 * units + 1);
        assert_eq!(chain.to_string(), text);
        assert_eq!(crate::filter::plan(&ctx, &chain), crate::filter::QueryPlan::Scan);
        let ands = format!("{}userName pr", "title pr and ".repeat(units - units / 10));
        let chain = parse_filter(&ands).map_err(|e| e.detail);
        assert_eq!(chain.map(|f| matches(&ctx, &f, &user())), Ok(false));
    }
}
