//! What a filter needs besides the stored resource. Memberships are rows, not part of the stored
//! JSON, so a Group filter on `members` or a User filter on `groups` is evaluated on a copy of
//! the resource with exactly the memberships the filter can observe attached:
//!
//! - `members.value eq "<id>"` / `members[value eq "<id>"]` (and `and`/`or`/`not` of them, the
//!   shapes IdPs send): only the named ids matter, and whether a group holds one is answered by
//!   the reverse index (`groups_of(<id>)`), read once per query. Cost is independent of group
//!   size.
//! - Any other test on `members` (`members pr`, `members.display co ..`): the group's members
//!   are loaded, up to [`ApiConfig::member_page_cap`](crate::ApiConfig); a larger group makes
//!   the query 400 `tooMany`.
//! - `groups...` on Users: the user's groups (reverse index) with their display names.

use scimflow_core::filter::{AttrPath, CompValue, CompareOp, Filter};
use scimflow_core::{ResourceKind, SchemaRegistry};
use std::collections::BTreeSet;

/// The memberships a filter observes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterNeeds {
    /// Member ids tested with `eq` on `members.value` (Group filters).
    pub member_ids: BTreeSet<String>,
    /// Some other test on `members`: needs the whole (bounded) membership.
    pub all_members: bool,
    /// A test on the User's `groups`.
    pub user_groups: bool,
}

impl FilterNeeds {
    pub fn of(registry: &SchemaRegistry, kind: ResourceKind, filter: &Filter) -> FilterNeeds {
        let mut needs = FilterNeeds::default();
        needs.walk(registry, kind, filter);
        if needs.all_members {
            needs.member_ids.clear();
        }
        needs
    }

    /// Whether the stored resource alone is enough to evaluate the filter.
    pub fn is_empty(&self) -> bool {
        self.member_ids.is_empty() && !self.all_members && !self.user_groups
    }

    // Recursion is bounded: callers check the filter's complexity first.
    fn walk(&mut self, registry: &SchemaRegistry, kind: ResourceKind, filter: &Filter) {
        match filter {
            Filter::And(left, right) | Filter::Or(left, right) => {
                self.walk(registry, kind, left);
                self.walk(registry, kind, right);
            }
            Filter::Not(inner) => self.walk(registry, kind, inner),
            Filter::Present(path) => self.note_other(registry, kind, path),
            Filter::Compare(path, op, value) => {
                let is_value = path.sub.as_deref().is_none_or(|sub| sub.eq_ignore_ascii_case("value"));
                match (is_members(registry, kind, path), op, value) {
                    (true, CompareOp::Eq, CompValue::String(id)) if is_value => {
                        self.member_ids.insert(id.clone());
                    }
                    _ => self.note_other(registry, kind, path),
                }
            }
            Filter::ValuePath(path, inner) => {
                if is_members(registry, kind, path) {
                    let mut ids = BTreeSet::new();
                    if value_eq_only(inner, &mut ids) {
                        self.member_ids.extend(ids);
                    } else {
                        self.all_members = true;
                    }
                } else {
                    self.note_other(registry, kind, path);
                }
            }
        }
    }

    fn note_other(&mut self, registry: &SchemaRegistry, kind: ResourceKind, path: &AttrPath) {
        if is_members(registry, kind, path) {
            self.all_members = true;
        } else if named(registry, kind, path, ResourceKind::User, "groups") {
            self.user_groups = true;
        }
    }
}

fn is_members(registry: &SchemaRegistry, kind: ResourceKind, path: &AttrPath) -> bool {
    named(registry, kind, path, ResourceKind::Group, "members")
}

/// Whether `path` names the core attribute `name` of `expected` kind.
fn named(
    registry: &SchemaRegistry,
    kind: ResourceKind,
    path: &AttrPath,
    expected: ResourceKind,
    name: &str,
) -> bool {
    if kind != expected {
        return false;
    }
    let attribute = AttrPath { urn: path.urn.clone(), name: path.name.clone(), sub: None };
    registry.resolve(kind, &attribute.to_string()).is_some_and(|resolved| resolved.attr.name == name)
}

/// Whether a value filter inside `members[...]` only tests `value eq "<id>"` (combined with
/// `and`/`or`/`not`); collects the ids.
fn value_eq_only(filter: &Filter, ids: &mut BTreeSet<String>) -> bool {
    match filter {
        Filter::And(left, right) | Filter::Or(left, right) => {
            value_eq_only(left, ids) && value_eq_only(right, ids)
        }
        Filter::Not(inner) => value_eq_only(inner, ids),
        Filter::Compare(path, CompareOp::Eq, CompValue::String(id))
            if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("value") =>
        {
            ids.insert(id.clone());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimflow_core::filter::parse_filter;

    fn needs(kind: ResourceKind, text: &str) -> FilterNeeds {
        FilterNeeds::of(&SchemaRegistry::standard(), kind, &parse_filter(text).unwrap())
    }

    #[test]
    fn membership_equality_needs_only_the_named_ids() {
        let found = needs(
            ResourceKind::Group,
            r#"displayName eq "x" and members[value eq "a"] or members.value eq "b""#,
        );
        assert_eq!(found.member_ids, ["a".to_owned(), "b".to_owned()].into_iter().collect());
        assert!(!found.all_members);
        let found = needs(ResourceKind::Group, r#"members eq "c""#);
        assert_eq!(found.member_ids.len(), 1);
    }

    #[test]
    fn other_member_tests_need_all_members() {
        assert!(needs(ResourceKind::Group, "members pr").all_members);
        assert!(needs(ResourceKind::Group, r#"members[type eq "User"]"#).all_members);
        assert!(needs(ResourceKind::Group, r#"members.display co "x""#).all_members);
        assert!(needs(ResourceKind::Group, r#"displayName eq "x""#).is_empty());
    }

    #[test]
    fn user_groups_are_noticed() {
        assert!(needs(ResourceKind::User, r#"groups.value eq "g""#).user_groups);
        assert!(needs(ResourceKind::User, r#"groups[display eq "g"]"#).user_groups);
        assert!(needs(ResourceKind::User, r#"userName eq "g""#).is_empty());
    }
}
