//! `sortBy` / `sortOrder` (RFC 7644 §3.4.2.3): sort keys from any attribute path, compared by
//! the attribute's type (strings case-insensitively unless `caseExact`), resources without a
//! value last in both orders, ties broken by id so pages stay stable.

use super::params::SortOrder;
use scimflow_core::filter::fold_case;
use scimflow_core::schema::{AttrHome, AttrType, ResolvedAttr};
use scimflow_core::{ResourceKind, SchemaRegistry};
use serde_json::Value;
use std::cmp::Ordering;

/// A comparable attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl SortKey {
    fn rank(&self) -> u8 {
        match self {
            SortKey::Bool(_) => 0,
            SortKey::Number(_) => 1,
            SortKey::Text(_) => 2,
        }
    }

    fn compare(&self, other: &SortKey) -> Ordering {
        match (self, other) {
            (SortKey::Bool(a), SortKey::Bool(b)) => a.cmp(b),
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// Whether `sort_by` names an attribute of `kind`.
pub fn is_known(registry: &SchemaRegistry, kind: ResourceKind, sort_by: &str) -> bool {
    registry.resolve(kind, sort_by).is_some()
}

/// The sort key of `resource` for `sort_by`, or `None` when it has no value there. For a
/// multi-valued attribute the primary value counts, else the first (RFC 7644 §3.4.2.3).
pub fn sort_key(
    registry: &SchemaRegistry,
    kind: ResourceKind,
    sort_by: &str,
    resource: &Value,
) -> Option<SortKey> {
    let resolved = registry.resolve(kind, sort_by)?;
    let value = attribute_value(resource, &resolved)?;
    let element = match value {
        Value::Array(items) => items
            .iter()
            .find(|item| item.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| items.first())?,
        single => single,
    };
    let leaf_def = resolved.leaf();
    let leaf = match (resolved.sub, resolved.attr.attr_type) {
        (Some(sub), _) => member(element, &sub.name)?,
        (None, AttrType::Complex) => {
            let value_def = resolved.attr.sub_attribute("value")?;
            return key_of(member(element, &value_def.name)?, value_def.case_exact);
        }
        (None, _) => element,
    };
    key_of(leaf, leaf_def.case_exact)
}

fn key_of(value: &Value, case_exact: bool) -> Option<SortKey> {
    match value {
        Value::Bool(flag) => Some(SortKey::Bool(*flag)),
        Value::Number(number) => number.as_f64().map(SortKey::Number),
        Value::String(text) => Some(SortKey::Text(fold_case(case_exact, text).into_owned())),
        _ => None,
    }
}

fn attribute_value<'v>(resource: &'v Value, resolved: &ResolvedAttr<'_>) -> Option<&'v Value> {
    let container = match resolved.home {
        AttrHome::Core => resource,
        AttrHome::Extension(urn) => member(resource, urn)?,
    };
    member(container, &resolved.attr.name)
}

fn member<'v>(object: &'v Value, name: &str) -> Option<&'v Value> {
    let object = object.as_object()?;
    object
        .get(name)
        .or_else(|| object.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value))
        .filter(|value| !value.is_null())
}

/// Orders two (key, id) pairs: keys by `order` with missing keys last, then ids ascending.
pub fn compare(
    left: (&Option<SortKey>, &str),
    right: (&Option<SortKey>, &str),
    order: SortOrder,
) -> Ordering {
    let by_key = match (left.0, right.0) {
        (Some(a), Some(b)) => match order {
            SortOrder::Ascending => a.compare(b),
            SortOrder::Descending => b.compare(a),
        },
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_key.then_with(|| left.1.cmp(right.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_follow_case_exactness_and_primary_values() {
        let registry = SchemaRegistry::standard();
        let user = json!({"userName": "BJensen", "externalId": "AbC",
            "emails": [{"value": "z@x.org"}, {"value": "A@x.org", "primary": true}],
            "name": {"givenName": "Barbara"}, "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}});
        let key = |path: &str| sort_key(&registry, ResourceKind::User, path, &user);
        assert_eq!(key("userName"), Some(SortKey::Text("bjensen".into())));
        assert_eq!(key("externalId"), Some(SortKey::Text("AbC".into())));
        assert_eq!(key("emails"), Some(SortKey::Text("a@x.org".into())));
        assert_eq!(key("emails.value"), Some(SortKey::Text("a@x.org".into())));
        assert_eq!(key("name.givenName"), Some(SortKey::Text("barbara".into())));
        assert_eq!(key("active"), Some(SortKey::Bool(true)));
        assert_eq!(key("title"), None);
        assert_eq!(
            key("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            Some(SortKey::Text("sales".into()))
        );
    }

    #[test]
    fn missing_values_sort_last_in_both_orders() {
        let a = Some(SortKey::Text("a".into()));
        let b = Some(SortKey::Text("b".into()));
        let none = None;
        assert_eq!(compare((&a, "1"), (&b, "2"), SortOrder::Ascending), Ordering::Less);
        assert_eq!(compare((&a, "1"), (&b, "2"), SortOrder::Descending), Ordering::Greater);
        assert_eq!(compare((&none, "1"), (&b, "2"), SortOrder::Ascending), Ordering::Greater);
        assert_eq!(compare((&none, "1"), (&b, "2"), SortOrder::Descending), Ordering::Greater);
        assert_eq!(compare((&a, "1"), (&a, "2"), SortOrder::Descending), Ordering::Less);
    }
}
