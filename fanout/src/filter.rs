//! Which changes a subscription receives, and in what shape.
//!
//! Selection is by tenant, resource type and attribute. Attribute selection trims the resource
//! JSON of upserts to the selected attributes (plus the identity ones every consumer needs), and
//! drops group membership deltas unless `members` is selected. Deletes always pass the type and
//! tenant checks: a consumer holding a trimmed copy must still learn that it is gone.

use crate::config::{Subscription, TenantSelection};
use scimflow_proto as pb;
use scimflow_proto::change_envelope::Change;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Attributes every trimmed resource keeps: without them a consumer cannot identify or order it.
const ALWAYS_KEPT: [&str; 4] = ["schemas", "id", "externalId", "meta"];

/// A subscription's selection, compiled once.
#[derive(Debug, Clone)]
pub struct Selector {
    tenants: Option<BTreeSet<String>>,
    users: bool,
    groups: bool,
    /// Lowercased core attribute names; `None` keeps everything.
    attributes: Option<BTreeSet<String>>,
    /// Extension URN (lowercased) → attributes kept inside it (empty = the whole extension).
    extensions: Vec<(String, BTreeSet<String>)>,
}

impl Selector {
    pub fn new(subscription: &Subscription) -> Self {
        let tenants = match &subscription.tenants {
            TenantSelection::All => None,
            TenantSelection::List(list) => Some(list.iter().cloned().collect()),
        };
        let types = &subscription.resource_types;
        let (users, groups) = if types.is_empty() {
            (true, true)
        } else {
            (types.iter().any(|t| t == "User"), types.iter().any(|t| t == "Group"))
        };
        let mut attributes = None;
        let mut extensions: Vec<(String, BTreeSet<String>)> = Vec::new();
        if let Some(list) = &subscription.attributes {
            let mut core = BTreeSet::new();
            for name in list {
                let lower = name.to_ascii_lowercase();
                if lower.starts_with("urn:") {
                    // `urn:...:User:employeeNumber` selects one attribute of the extension
                    // `urn:...:User`; a bare extension URN selects all of it. SCIM schema URNs
                    // end in a capitalised resource name, attributes start lowercase.
                    let (urn, attribute) = match name.rsplit_once(':') {
                        Some((urn, last)) if last.starts_with(|c: char| c.is_ascii_lowercase()) => {
                            (urn.to_ascii_lowercase(), Some(last.to_ascii_lowercase()))
                        }
                        _ => (lower.clone(), None),
                    };
                    let index = match extensions.iter().position(|(known, _)| *known == urn) {
                        Some(index) => index,
                        None => {
                            extensions.push((urn, BTreeSet::new()));
                            extensions.len() - 1
                        }
                    };
                    if let Some(attribute) = attribute {
                        extensions[index].1.insert(attribute);
                    }
                } else {
                    core.insert(lower);
                }
            }
            attributes = Some(core);
        }
        Selector { tenants, users, groups, attributes, extensions }
    }

    /// The change as this subscription should see it, or `None` when it is not selected.
    pub fn select(&self, envelope: &pb::ChangeEnvelope) -> Option<pb::ChangeEnvelope> {
        if let Some(tenants) = &self.tenants
            && !tenants.contains(&envelope.tenant_id)
        {
            return None;
        }
        let type_selected = match pb::ResourceType::try_from(envelope.resource_type) {
            Ok(pb::ResourceType::User) => self.users,
            Ok(pb::ResourceType::Group) => self.groups,
            _ => false,
        };
        if !type_selected {
            return None;
        }
        let members_selected =
            self.attributes.as_ref().is_none_or(|attributes| attributes.contains("members"));
        match &envelope.change {
            Some(Change::Upserted(upserted)) if self.attributes.is_some() => {
                let mut trimmed = envelope.clone();
                trimmed.change = Some(Change::Upserted(pb::ResourceUpserted {
                    resource_json: self.trim_json(&upserted.resource_json),
                    created: upserted.created,
                }));
                Some(trimmed)
            }
            Some(Change::MembersAdded(_) | Change::MembersRemoved(_) | Change::MembersCleared(_))
                if !members_selected =>
            {
                None
            }
            // An unknown kind (a newer schema) is passed through: dropping it silently would
            // lose data, and consumers are told to skip kinds they do not know.
            _ => Some(envelope.clone()),
        }
    }

    fn trim_json(&self, json: &str) -> String {
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(object)) => Value::Object(self.trim(object)).to_string(),
            // Not an object: nothing to select from; pass it on rather than invent a shape.
            _ => json.to_owned(),
        }
    }

    fn trim(&self, object: Map<String, Value>) -> Map<String, Value> {
        let Some(attributes) = &self.attributes else { return object };
        let mut kept = Map::new();
        for (name, value) in object {
            let lower = name.to_ascii_lowercase();
            if ALWAYS_KEPT.iter().any(|always| always.eq_ignore_ascii_case(&name))
                || attributes.contains(&lower)
            {
                kept.insert(name, value);
                continue;
            }
            let Some((_, inner)) = self.extensions.iter().find(|(urn, _)| *urn == lower) else { continue };
            if inner.is_empty() {
                kept.insert(name, value);
            } else if let Value::Object(extension) = value {
                let extension: Map<String, Value> = extension
                    .into_iter()
                    .filter(|(attribute, _)| inner.contains(&attribute.to_ascii_lowercase()))
                    .collect();
                kept.insert(name, Value::Object(extension));
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Delivery;
    use serde_json::json;

    fn subscription(tenants: TenantSelection, types: &[&str], attributes: Option<&[&str]>) -> Subscription {
        Subscription {
            product: "p".into(),
            tenants,
            resource_types: types.iter().map(|t| t.to_string()).collect(),
            attributes: attributes.map(|list| list.iter().map(|a| a.to_string()).collect()),
            delivery: Delivery::Kafka {},
        }
    }

    fn upsert(tenant: &str, kind: pb::ResourceType, resource: Value) -> pb::ChangeEnvelope {
        pb::ChangeEnvelope {
            schema_version: 1,
            change_id: "e/0".into(),
            tenant_id: tenant.into(),
            resource_type: kind as i32,
            resource_id: "r1".into(),
            change: Some(Change::Upserted(pb::ResourceUpserted {
                resource_json: resource.to_string(),
                created: true,
            })),
            ..Default::default()
        }
    }

    fn resource_of(envelope: &pb::ChangeEnvelope) -> Value {
        let Some(Change::Upserted(upserted)) = &envelope.change else { panic!("not an upsert") };
        serde_json::from_str(&upserted.resource_json).unwrap()
    }

    #[test]
    fn changes_of_unlisted_tenants_are_not_selected() {
        let selector = Selector::new(&subscription(TenantSelection::List(vec!["acme".into()]), &[], None));
        assert!(selector.select(&upsert("acme", pb::ResourceType::User, json!({}))).is_some());
        assert!(selector.select(&upsert("globex", pb::ResourceType::User, json!({}))).is_none());
    }

    #[test]
    fn changes_of_unselected_resource_types_are_not_selected() {
        let selector = Selector::new(&subscription(TenantSelection::All, &["Group"], None));
        assert!(selector.select(&upsert("t", pb::ResourceType::User, json!({}))).is_none());
        assert!(selector.select(&upsert("t", pb::ResourceType::Group, json!({}))).is_some());
    }

    #[test]
    fn attribute_selection_trims_upserts_but_keeps_identity_attributes() {
        let selector = Selector::new(&subscription(
            TenantSelection::All,
            &[],
            Some(&["userName", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"]),
        ));
        let resource = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "r1", "externalId": "x", "meta": {"version": "W/\"1\""},
            "userName": "alice", "emails": [{"value": "a@example.com"}], "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7", "costCenter": "9"}
        });
        let selected = selector.select(&upsert("t", pb::ResourceType::User, resource)).unwrap();
        assert_eq!(
            resource_of(&selected),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "r1", "externalId": "x", "meta": {"version": "W/\"1\""}, "userName": "alice",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7"}
            })
        );
    }

    #[test]
    fn membership_changes_need_members_in_the_attribute_selection() {
        let members = pb::ChangeEnvelope {
            resource_type: pb::ResourceType::Group as i32,
            change: Some(Change::MembersCleared(pb::MembersCleared {})),
            ..Default::default()
        };
        let without = Selector::new(&subscription(TenantSelection::All, &[], Some(&["displayName"])));
        let with = Selector::new(&subscription(TenantSelection::All, &[], Some(&["displayName", "members"])));
        let everything = Selector::new(&subscription(TenantSelection::All, &[], None));
        assert!(without.select(&members).is_none());
        assert!(with.select(&members).is_some());
        assert!(everything.select(&members).is_some());
    }

    #[test]
    fn deletes_pass_any_attribute_selection() {
        let selector = Selector::new(&subscription(TenantSelection::All, &[], Some(&["userName"])));
        let deleted = pb::ChangeEnvelope {
            resource_type: pb::ResourceType::User as i32,
            change: Some(Change::Deleted(pb::ResourceDeleted {})),
            ..Default::default()
        };
        assert_eq!(selector.select(&deleted), Some(deleted));
    }
}
