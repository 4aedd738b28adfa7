//! Secondary lookup indexes a store keeps beside each resource row, and how their keys are folded.
//!
//! The fold derives the entries from a resource ([`index_entries`]) and emits put/delete
//! mutations for the difference, so every store indexes exactly the same keys, and uniqueness
//! can be decided by a point lookup instead of a scan.

use crate::schema::{ENTERPRISE_USER_SCHEMA, ResourceKind};
use serde_json::Value;
use std::collections::BTreeSet;

/// An indexed attribute. `userName`, `externalId` and Group `displayName` are unique per tenant
/// and resource type; `emails.value` is a plain lookup index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexName {
    UserName,
    ExternalId,
    DisplayName,
    EmailValue,
}

impl IndexName {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexName::UserName => "userName",
            IndexName::ExternalId => "externalId",
            IndexName::DisplayName => "displayName",
            IndexName::EmailValue => "emails.value",
        }
    }

    pub fn parse(text: &str) -> Option<IndexName> {
        [IndexName::UserName, IndexName::ExternalId, IndexName::DisplayName, IndexName::EmailValue]
            .into_iter()
            .find(|name| name.as_str() == text)
    }

    pub fn is_unique(self) -> bool {
        !matches!(self, IndexName::EmailValue)
    }

    /// Whether values compare case-sensitively (the attribute's `caseExact`).
    pub fn case_exact(self) -> bool {
        matches!(self, IndexName::ExternalId)
    }

    /// The stored key for `value`: lowercased unless the attribute is `caseExact`, so an index
    /// lookup agrees with the filter evaluator's comparison.
    pub fn key(self, value: &str) -> String {
        fold_key(self.case_exact(), value)
    }
}

/// Folds an attribute value into an index key: identity for `caseExact` attributes, Unicode
/// lowercase otherwise.
pub fn fold_key(case_exact: bool, value: &str) -> String {
    if case_exact { value.to_owned() } else { value.to_lowercase() }
}

/// All index entries `(index, key)` of a canonical resource.
pub fn index_entries(kind: ResourceKind, resource: &Value) -> BTreeSet<(IndexName, String)> {
    let mut entries = BTreeSet::new();
    let text = |key: &str| resource.get(key).and_then(Value::as_str);
    if let Some(external_id) = text("externalId") {
        entries.insert((IndexName::ExternalId, IndexName::ExternalId.key(external_id)));
    }
    match kind {
        ResourceKind::User => {
            if let Some(user_name) = text("userName") {
                entries.insert((IndexName::UserName, IndexName::UserName.key(user_name)));
            }
            let emails = resource.get("emails").and_then(Value::as_array);
            for email in emails.into_iter().flatten() {
                if let Some(address) = email.get("value").and_then(Value::as_str) {
                    entries.insert((IndexName::EmailValue, IndexName::EmailValue.key(address)));
                }
            }
        }
        ResourceKind::Group => {
            if let Some(display_name) = text("displayName") {
                entries.insert((IndexName::DisplayName, IndexName::DisplayName.key(display_name)));
            }
        }
    }
    entries
}

/// The manager id of a User (Enterprise extension), if any; used for history and fanout.
pub fn manager_id(resource: &Value) -> Option<&str> {
    resource.get(ENTERPRISE_USER_SCHEMA)?.get("manager")?.get("value")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_entries_fold_case_insensitive_attributes_only() {
        let user = json!({"userName": "Bjensen@Example.com", "externalId": "AbC",
            "emails": [{"value": "B@X.org"}, {"value": "c@x.org"}]});
        let entries = index_entries(ResourceKind::User, &user);
        assert!(entries.contains(&(IndexName::UserName, "bjensen@example.com".into())));
        assert!(entries.contains(&(IndexName::ExternalId, "AbC".into())));
        assert!(entries.contains(&(IndexName::EmailValue, "b@x.org".into())));
        assert_eq!(entries.len(), 4);
    }
}
