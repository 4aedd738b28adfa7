//! Query planning: which secondary index (if any) can produce a superset of the resources a
//! filter matches. The store fetches those candidates and still evaluates the full filter on
//! each, so a plan only has to be complete (never miss a match), not exact.
//!
//! Indexed attributes (keys folded with [`index_key_for`]):
//!
//! | lookup        | resource | attribute       | caseExact |
//! |---------------|----------|-----------------|-----------|
//! | `Id`          | both     | `id`            | yes       |
//! | `UserName`    | User     | `userName`      | no        |
//! | `ExternalId`  | both     | `externalId`    | yes       |
//! | `DisplayName` | Group    | `displayName`   | no        |
//! | `EmailValue`  | User     | `emails.value`  | no        |
//! | `MemberValue` | Group    | `members.value` | yes       |

use super::EvalContext;
use super::ast::{CompValue, CompareOp, Filter};
use super::eval::{fold_case, resolve};
use crate::schema::{AttrHome, ResourceKind};
use std::collections::HashSet;

/// One index probe: the attribute and its key, already folded with [`index_key_for`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexLookup {
    Id(String),
    UserName(String),
    ExternalId(String),
    DisplayName(String),
    EmailValue(String),
    MemberValue(String),
}

impl IndexLookup {
    /// The folded key to probe the index with.
    pub fn key(&self) -> &str {
        match self {
            IndexLookup::Id(key)
            | IndexLookup::UserName(key)
            | IndexLookup::ExternalId(key)
            | IndexLookup::DisplayName(key)
            | IndexLookup::EmailValue(key)
            | IndexLookup::MemberValue(key) => key,
        }
    }

    /// The indexed attribute path, e.g. `emails.value`.
    pub fn attribute(&self) -> &'static str {
        match self {
            IndexLookup::Id(_) => "id",
            IndexLookup::UserName(_) => "userName",
            IndexLookup::ExternalId(_) => "externalId",
            IndexLookup::DisplayName(_) => "displayName",
            IndexLookup::EmailValue(_) => "emails.value",
            IndexLookup::MemberValue(_) => "members.value",
        }
    }

    /// Whether the attribute is `caseExact` in the standard schemas: a store writing index entries
    /// must fold stored values with `index_key_for(lookup.case_exact(), value)`.
    pub fn case_exact(&self) -> bool {
        matches!(self, IndexLookup::Id(_) | IndexLookup::ExternalId(_) | IndexLookup::MemberValue(_))
    }
}

/// How to find the candidates for a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryPlan {
    /// The union of these index probes contains every match. An empty list means nothing can
    /// match (e.g. `userName eq 42`: a string attribute never equals a number).
    Lookup(Vec<IndexLookup>),
    /// No index applies: evaluate the filter on every resource of the type.
    Scan,
}

/// The index key for a stored or queried value: lowercased (`str::to_lowercase`) when the
/// attribute is not `caseExact`, unchanged otherwise. This is the evaluator's folding, so equal
/// keys mean the evaluator's `eq` matches.
pub fn index_key_for(attr_case_exact: bool, value: &str) -> String {
    fold_case(attr_case_exact, value).into_owned()
}

/// Plans `filter` for resources of `ctx.kind`.
pub fn plan(ctx: &EvalContext<'_>, filter: &Filter) -> QueryPlan {
    match candidates(ctx, filter) {
        Some(lookups) => {
            let mut seen = HashSet::new();
            QueryPlan::Lookup(lookups.into_iter().filter(|l| seen.insert(l.clone())).collect())
        }
        None => QueryPlan::Scan,
    }
}

/// An indexed attribute, before a key is attached. Declaration order is the preference order
/// among conjuncts: the earlier, the more selective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Index {
    Id,
    UserName,
    ExternalId,
    DisplayName,
    EmailValue,
    MemberValue,
}

impl Index {
    fn lookup(self, key: String) -> IndexLookup {
        match self {
            Index::Id => IndexLookup::Id(key),
            Index::UserName => IndexLookup::UserName(key),
            Index::ExternalId => IndexLookup::ExternalId(key),
            Index::DisplayName => IndexLookup::DisplayName(key),
            Index::EmailValue => IndexLookup::EmailValue(key),
            Index::MemberValue => IndexLookup::MemberValue(key),
        }
    }
}

/// The candidate probes for `filter`, or `None` when only a scan is complete.
fn candidates(ctx: &EvalContext<'_>, filter: &Filter) -> Option<Vec<IndexLookup>> {
    match filter {
        Filter::Compare(path, CompareOp::Eq, value) => {
            let resolved = resolve(ctx, path)?;
            if resolved.home != AttrHome::Core {
                return None;
            }
            let sub = resolved.sub.map(|sub| sub.name.as_str());
            let index = match (ctx.kind, resolved.attr.name.as_str(), sub) {
                (_, "id", None) => Index::Id,
                (ResourceKind::User, "userName", None) => Index::UserName,
                (_, "externalId", None) => Index::ExternalId,
                (ResourceKind::Group, "displayName", None) => Index::DisplayName,
                // Without a sub-attribute the evaluator compares `value` (RFC 7644 §3.4.2.2).
                (ResourceKind::User, "emails", Some("value") | None) => Index::EmailValue,
                (ResourceKind::Group, "members", Some("value") | None) => Index::MemberValue,
                _ => return None,
            };
            let leaf = match resolved.sub {
                Some(sub) => sub,
                None => resolved.attr.sub_attribute("value").unwrap_or(resolved.attr),
            };
            probe(index, leaf.case_exact, value)
        }
        Filter::ValuePath(path, inner) => {
            let resolved = resolve(ctx, path)?;
            if resolved.home != AttrHome::Core || resolved.sub.is_some() {
                return None;
            }
            let index = match (ctx.kind, resolved.attr.name.as_str()) {
                (ResourceKind::User, "emails") => Index::EmailValue,
                (ResourceKind::Group, "members") => Index::MemberValue,
                _ => return None,
            };
            let case_exact = resolved.attr.sub_attribute("value")?.case_exact;
            element_candidates(index, case_exact, inner)
        }
        Filter::And(..) => {
            best_conjunct(filter.chain_operands().into_iter().filter_map(|f| candidates(ctx, f)))
        }
        Filter::Or(..) => union(filter.chain_operands().into_iter().map(|f| candidates(ctx, f))),
        Filter::Present(_) | Filter::Compare(..) | Filter::Not(_) => None,
    }
}

/// Candidates from the filter inside `emails[...]` / `members[...]`: a `value eq` conjunct.
fn element_candidates(index: Index, case_exact: bool, inner: &Filter) -> Option<Vec<IndexLookup>> {
    match inner {
        Filter::Compare(path, CompareOp::Eq, value)
            if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("value") =>
        {
            probe(index, case_exact, value)
        }
        Filter::And(..) => best_conjunct(
            inner.chain_operands().into_iter().filter_map(|f| element_candidates(index, case_exact, f)),
        ),
        Filter::Or(..) => {
            union(inner.chain_operands().into_iter().map(|f| element_candidates(index, case_exact, f)))
        }
        _ => None,
    }
}

/// The probe for `attr eq value`. Only strings can equal the (string) indexed attributes; `eq
/// null` matches resources lacking the attribute, which no index lists, so it needs a scan.
fn probe(index: Index, case_exact: bool, value: &CompValue) -> Option<Vec<IndexLookup>> {
    match value {
        CompValue::String(text) => Some(vec![index.lookup(index_key_for(case_exact, text))]),
        CompValue::Bool(_) | CompValue::Number(_) => Some(Vec::new()),
        CompValue::Null => None,
    }
}

/// Any conjunct's candidates are complete for the conjunction; take the most selective: an empty
/// set, else the one whose worst probe ranks best, then the fewest probes.
fn best_conjunct(options: impl Iterator<Item = Vec<IndexLookup>>) -> Option<Vec<IndexLookup>> {
    options.min_by_key(|lookups| {
        let worst = lookups.iter().map(rank).max();
        (worst, lookups.len())
    })
}

/// A disjunction needs every operand's candidates; one scan makes the whole thing a scan.
fn union(options: impl Iterator<Item = Option<Vec<IndexLookup>>>) -> Option<Vec<IndexLookup>> {
    let mut all = Vec::new();
    for lookups in options {
        all.extend(lookups?);
    }
    Some(all)
}

fn rank(lookup: &IndexLookup) -> Index {
    match lookup {
        IndexLookup::Id(_) => Index::Id,
        IndexLookup::UserName(_) => Index::UserName,
        IndexLookup::ExternalId(_) => Index::ExternalId,
        IndexLookup::DisplayName(_) => Index::DisplayName,
        IndexLookup::EmailValue(_) => Index::EmailValue,
        IndexLookup::MemberValue(_) => Index::MemberValue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_filter;
    use crate::schema::SchemaRegistry;
    use IndexLookup::*;

    fn plan_for(kind: ResourceKind, text: &str) -> QueryPlan {
        let registry = SchemaRegistry::standard();
        match parse_filter(text) {
            Ok(filter) => plan(&EvalContext { registry: &registry, kind }, &filter),
            Err(error) => panic!("{text:?}: {}", error.detail),
        }
    }

    fn user(text: &str) -> QueryPlan {
        plan_for(ResourceKind::User, text)
    }

    fn group(text: &str) -> QueryPlan {
        plan_for(ResourceKind::Group, text)
    }

    fn lookup(lookups: &[IndexLookup]) -> QueryPlan {
        QueryPlan::Lookup(lookups.to_vec())
    }

    #[test]
    fn identity_equalities_use_their_index_with_folded_keys() {
        assert_eq!(user(r#"id eq "AbC""#), lookup(&[Id("AbC".into())]));
        assert_eq!(
            user(r#"userName eq "BJensen@Example.com""#),
            lookup(&[UserName("bjensen@example.com".into())])
        );
        assert_eq!(user(r#"externalId eq "Ext-1""#), lookup(&[ExternalId("Ext-1".into())]));
        assert_eq!(group(r#"externalId eq "Ext-1""#), lookup(&[ExternalId("Ext-1".into())]));
        assert_eq!(group(r#"displayName eq "Tour Guides""#), lookup(&[DisplayName("tour guides".into())]));
        assert_eq!(group(r#"id eq "g1""#), lookup(&[Id("g1".into())]));
    }

    #[test]
    fn user_display_names_and_group_user_names_are_not_indexed() {
        assert_eq!(user(r#"displayName eq "Babs""#), QueryPlan::Scan);
        assert_eq!(group(r#"userName eq "x""#), QueryPlan::Scan);
        assert_eq!(group(r#"emails.value eq "x""#), QueryPlan::Scan);
        assert_eq!(user(r#"members.value eq "x""#), QueryPlan::Scan);
    }

    #[test]
    fn email_lookups_cover_every_spelling() {
        let expected = lookup(&[EmailValue("a@b.example".into())]);
        assert_eq!(user(r#"emails.value eq "A@B.example""#), expected);
        assert_eq!(user(r#"emails eq "A@B.example""#), expected);
        assert_eq!(user(r#"emails[value eq "A@B.example"]"#), expected);
        assert_eq!(user(r#"emails[type eq "work" and value eq "A@B.example"]"#), expected);
        assert_eq!(user(r#"emails[type eq "work"].value eq "A@B.example""#), expected);
        assert_eq!(
            user(r#"urn:ietf:params:scim:schemas:core:2.0:User:emails.value eq "A@B.example""#),
            expected
        );
        assert_eq!(user(r#"emails[type eq "work"]"#), QueryPlan::Scan);
        assert_eq!(user(r#"emails.type eq "work""#), QueryPlan::Scan);
        assert_eq!(user(r#"emails[value co "a"]"#), QueryPlan::Scan);
    }

    #[test]
    fn member_lookups_keep_the_case_of_ids() {
        let expected = lookup(&[MemberValue("2819C223".into())]);
        assert_eq!(group(r#"members.value eq "2819C223""#), expected);
        assert_eq!(group(r#"members[value eq "2819C223"]"#), expected);
        assert_eq!(group(r#"members eq "2819C223""#), expected);
        assert_eq!(
            group(r#"members[value eq "a" or value eq "b"]"#),
            lookup(&[MemberValue("a".into()), MemberValue("b".into())])
        );
        assert_eq!(group(r#"members[type eq "User"]"#), QueryPlan::Scan);
    }

    #[test]
    fn urn_prefixed_identity_filters_plan_like_plain_ones() {
        assert_eq!(
            user(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "X""#),
            lookup(&[UserName("x".into())])
        );
        assert_eq!(
            group(r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "X""#),
            lookup(&[DisplayName("x".into())])
        );
        assert_eq!(
            user(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1""#),
            QueryPlan::Scan
        );
    }

    #[test]
    fn a_conjunction_uses_its_most_selective_indexed_operand() {
        assert_eq!(
            user(r#"title pr and userName eq "U" and id eq "I" and externalId eq "E""#),
            lookup(&[Id("I".into())])
        );
        assert_eq!(user(r#"emails.value eq "m" and externalId eq "E""#), lookup(&[ExternalId("E".into())]));
        assert_eq!(
            user(r#"active eq true and (userName eq "a" or userName eq "b")"#),
            lookup(&[UserName("a".into()), UserName("b".into())])
        );
        assert_eq!(user(r#"title pr and active eq true"#), QueryPlan::Scan);
    }

    #[test]
    fn a_disjunction_is_a_lookup_only_when_every_operand_is() {
        assert_eq!(
            user(r#"userName eq "a" or id eq "b" or emails.value eq "c""#),
            lookup(&[UserName("a".into()), Id("b".into()), EmailValue("c".into())])
        );
        assert_eq!(user(r#"userName eq "a" or title pr"#), QueryPlan::Scan);
        assert_eq!(user(r#"userName eq "A" or userName eq "a""#), lookup(&[UserName("a".into())]));
    }

    #[test]
    fn negation_and_other_operators_scan() {
        assert_eq!(user(r#"not (userName eq "a")"#), QueryPlan::Scan);
        assert_eq!(user(r#"userName ne "a""#), QueryPlan::Scan);
        assert_eq!(user(r#"userName sw "a""#), QueryPlan::Scan);
        assert_eq!(user("userName pr"), QueryPlan::Scan);
        assert_eq!(user("nosuch eq \"a\""), QueryPlan::Scan);
    }

    #[test]
    fn non_string_values_on_indexed_attributes_match_nothing_or_need_a_scan() {
        // A string attribute never equals a number or boolean: nothing to fetch.
        assert_eq!(user("userName eq 42"), lookup(&[]));
        assert_eq!(user("id eq true"), lookup(&[]));
        assert_eq!(user(r#"userName eq 42 or id eq "x""#), lookup(&[Id("x".into())]));
        assert_eq!(user(r#"title pr and userName eq 42"#), lookup(&[]));
        // `eq null` matches resources lacking the attribute, which no index lists.
        assert_eq!(user("externalId eq null"), QueryPlan::Scan);
    }

    #[test]
    fn index_keys_fold_exactly_like_the_evaluator() {
        assert_eq!(index_key_for(false, "BJensen@Example.COM"), "bjensen@example.com");
        assert_eq!(index_key_for(false, "ÅSA"), "åsa");
        assert_eq!(index_key_for(true, "AbC"), "AbC");
        let registry = SchemaRegistry::standard();
        // The case_exact table stores rely on matches the standard schemas.
        for (kind, path, lookup) in [
            (ResourceKind::User, "id", Id(String::new())),
            (ResourceKind::User, "userName", UserName(String::new())),
            (ResourceKind::User, "externalId", ExternalId(String::new())),
            (ResourceKind::Group, "displayName", DisplayName(String::new())),
            (ResourceKind::User, "emails.value", EmailValue(String::new())),
            (ResourceKind::Group, "members.value", MemberValue(String::new())),
        ] {
            let Some(resolved) = registry.resolve(kind, path) else { panic!("{path} resolves") };
            assert_eq!(resolved.leaf().case_exact, lookup.case_exact(), "{path}");
            assert_eq!(resolved.dotted(), lookup.attribute());
        }
        assert_eq!(UserName("k".into()).key(), "k");
    }

    // ----- soundness property: a lookup never misses a resource the filter matches ----------

    use crate::filter::matches;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Resources whose indexed values collide under case folding, so a wrong fold shows up.
    fn pool() -> Vec<Value> {
        vec![
            json!({"id": "a", "userName": "A", "externalId": "a", "displayName": "A",
                   "emails": [{"value": "a", "type": "work"}, {"value": "B", "type": "home"}],
                   "members": [{"value": "A"}]}),
            json!({"id": "A", "userName": "b", "externalId": "B", "displayName": "b",
                   "emails": [{"value": "A", "type": "home"}], "members": [{"value": "a"}, {"value": "b"}]}),
            json!({"id": "b", "userName": "a", "title": "x"}),
            json!({"id": "B", "emails": [{"type": "work"}], "members": []}),
        ]
    }

    /// Does the simulated index put `resource` under `lookup`? Stored values are folded with the
    /// lookup's own case rule, as a store would.
    fn indexed_under(resource: &Value, lookup: &IndexLookup) -> bool {
        let folded = |value: &Value| value.as_str().map(|v| index_key_for(lookup.case_exact(), v));
        let key = Some(lookup.key().to_owned());
        let values = |attr: &str| -> Vec<Option<String>> {
            resource[attr]
                .as_array()
                .map_or_else(Vec::new, |items| items.iter().map(|item| folded(&item["value"])).collect())
        };
        match lookup {
            Id(_) => folded(&resource["id"]) == key,
            UserName(_) => folded(&resource["userName"]) == key,
            ExternalId(_) => folded(&resource["externalId"]) == key,
            DisplayName(_) => folded(&resource["displayName"]) == key,
            EmailValue(_) => values("emails").contains(&key),
            MemberValue(_) => values("members").contains(&key),
        }
    }

    fn leaf() -> impl Strategy<Value = String> {
        let attr = prop::sample::select(vec![
            "id",
            "userName",
            "externalId",
            "displayName",
            "emails.value",
            "emails",
            "emails.type",
            "title",
            "members.value",
            "members",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        ]);
        let op = prop::sample::select(vec!["eq", "eq", "eq", "ne", "co"]);
        let value = prop::sample::select(vec!["\"a\"", "\"A\"", "\"b\"", "\"B\"", "1", "null", "true"]);
        let compare = (attr, op, value).prop_map(|(a, o, v)| format!("{a} {o} {v}"));
        let value_path = (
            prop::sample::select(vec!["emails", "members"]),
            prop::sample::select(vec!["value eq \"a\"", "value eq \"A\"", "type eq \"work\"", "value eq 1"]),
            prop::option::of(prop::sample::select(vec!["value eq \"B\"", "value pr"])),
        )
            .prop_map(|(attr, inner, trailing)| match trailing {
                Some(trailing) => format!("{attr}[{inner}].{trailing}"),
                None => format!("{attr}[{inner}]"),
            });
        prop_oneof![3 => compare, 1 => value_path, 1 => Just("title pr".to_owned())]
    }

    fn filter_text() -> impl Strategy<Value = String> {
        leaf().prop_recursive(4, 16, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l}) and ({r})")),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("{l} or {r}")),
                inner.prop_map(|f| format!("not ({f})")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn a_lookup_plan_finds_every_matching_resource(text in filter_text()) {
            let registry = SchemaRegistry::standard();
            let filter = parse_filter(&text).map_err(|e| TestCaseError::fail(e.detail))?;
            for kind in [ResourceKind::User, ResourceKind::Group] {
                let ctx = EvalContext { registry: &registry, kind };
                let QueryPlan::Lookup(lookups) = plan(&ctx, &filter) else { continue };
                for resource in pool() {
                    if matches(&ctx, &filter, &resource) {
                        prop_assert!(
                            lookups.iter().any(|l| indexed_under(&resource, l)),
                            "{:?}: {} matches {} but {:?} misses it", kind, text, resource, lookups
                        );
                    }
                }
            }
        }
    }
}
