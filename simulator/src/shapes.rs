//! Request bodies and queries exactly as Microsoft Entra ID and Okta send them.
//!
//! Each function builds one request shape; the row of `scim/idp-quirks.md` it reproduces is
//! named in its doc (E = Entra, O = Okta). The differences matter: a server that only accepts
//! RFC-textbook PATCHes breaks under real IdPs, so the simulator sends what they send:
//! capitalised ops, `"False"` strings, `$ref: null`, URN and dotted paths and path-less
//! replaces from Entra; lowercase ops, value-filter removes, group renames that carry the id
//! and GET-then-PUT user updates from Okta.

use crate::orgchart::{GroupSpec, UserSpec};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The non-URN schema Entra adds to groups (E14).
pub const ENTRA_GROUP_SCHEMA: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

/// Which IdP a user or group is driven by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    Entra,
    Okta,
}

impl Style {
    /// Entra sends `application/scim+json`; Okta `application/json` (O2).
    pub fn content_type(self) -> &'static str {
        match self {
            Style::Entra => "application/scim+json",
            Style::Okta => "application/json",
        }
    }
}

/// A member as the IdP knows it: the server id and, for Okta's `display`, the userName.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub id: String,
    pub display: String,
}

fn patch(operations: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

/// Percent-encodes a query parameter value (spaces as `%20`, as both IdPs send them).
pub fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A SCIM string literal: quoted, with `"` and `\` escaped.
pub fn filter_literal(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `?filter=...` for `attribute eq "value"`, plus extra parameters as sent.
fn filter_query(filter: &str, extra: &str) -> String {
    format!("?filter={}{extra}", encode_query_value(filter))
}

/// User existence check by userName: Entra's default matching (E9); Okta adds
/// `startIndex=1&count=100` (O1).
pub fn user_by_user_name(style: Style, user_name: &str) -> String {
    let filter = format!("userName eq {}", filter_literal(user_name));
    match style {
        Style::Entra => filter_query(&filter, ""),
        Style::Okta => filter_query(&filter, "&startIndex=1&count=100"),
    }
}

/// User lookup by externalId (E9, Entra's alternative matching attribute).
pub fn user_by_external_id(external_id: &str) -> String {
    filter_query(&format!("externalId eq {}", filter_literal(external_id)), "")
}

/// User lookup by work email (E9).
pub fn user_by_work_email(email: &str) -> String {
    filter_query(&format!("emails[type eq \"work\"].value eq {}", filter_literal(email)), "")
}

/// Group existence check by displayName (E9); Entra asks not to be sent the members (E11).
pub fn group_by_display_name(style: Style, display_name: &str) -> String {
    let filter = format!("displayName eq {}", filter_literal(display_name));
    match style {
        Style::Entra => filter_query(&filter, "&excludedAttributes=members"),
        Style::Okta => filter_query(&filter, "&startIndex=1&count=100"),
    }
}

/// Groups having a member, without their member lists: the generic membership check.
pub fn groups_with_member(user_id: &str) -> String {
    filter_query(&format!("members.value eq {}", filter_literal(user_id)), "&excludedAttributes=members")
}

/// Entra's "Test Connection": a filter on a random GUID, expecting an empty list (E10).
pub fn test_connection(random_guid: &str) -> String {
    filter_query(&format!("userName eq {}", filter_literal(random_guid)), "")
}

fn enterprise(user: &UserSpec, manager: Option<Value>) -> Value {
    let mut extension = json!({"employeeNumber": user.employee_number, "department": user.department});
    if let Some(manager) = manager {
        extension["manager"] = manager;
    }
    extension
}

/// POST /Users. Entra: the documented create body with `meta`, `"roles": []` (E13), no
/// manager (Entra sets it with a separate PATCH once the manager exists). Okta: `password`,
/// `groups: []`, `locale` (O2) and the manager when known (a custom mapping).
pub fn user_create(user: &UserSpec, manager_id: Option<&str>) -> Value {
    match user.style {
        Style::Entra => json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "externalId": user.external_id,
            "userName": user.user_name,
            "active": true,
            "displayName": user.display_name,
            "title": user.title,
            "emails": [{"primary": true, "type": "work", "value": user.email}],
            "meta": {"resourceType": "User"},
            "name": {
                "formatted": user.display_name,
                "familyName": user.family_name,
                "givenName": user.given_name,
            },
            "roles": [],
            ENTERPRISE_SCHEMA: enterprise(user, None),
        }),
        Style::Okta => json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "userName": user.user_name,
            "name": {"givenName": user.given_name, "familyName": user.family_name},
            "emails": [{"primary": true, "value": user.email, "type": "work"}],
            "displayName": user.display_name,
            "title": user.title,
            "locale": "en-US",
            "externalId": user.external_id,
            "groups": [],
            "password": okta_password(user),
            "active": true,
            ENTERPRISE_SCHEMA: enterprise(user, manager_id.map(|id| json!({"value": id}))),
        }),
    }
}

/// Okta sends a random password on create; the server must never return it.
fn okta_password(user: &UserSpec) -> String {
    format!("Pw!{}{}", user.employee_number, user.index % 97)
}

/// Entra bringing an existing (matched) user in line: one Replace per attribute, booleans as
/// `"True"`/`"False"` strings (E2), enterprise attributes by full URN path (E7).
pub fn entra_user_replace_all(user: &UserSpec, active: bool) -> Value {
    patch(vec![
        json!({"op": "Replace", "path": "externalId", "value": user.external_id}),
        json!({"op": "Replace", "path": "displayName", "value": user.display_name}),
        json!({"op": "Replace", "path": "name.givenName", "value": user.given_name}),
        json!({"op": "Replace", "path": "name.familyName", "value": user.family_name}),
        json!({"op": "Replace", "path": "title", "value": user.title}),
        json!({"op": "Replace", "path": "emails[type eq \"work\"].value", "value": user.email}),
        json!({"op": "Replace", "path": "active", "value": if active { "True" } else { "False" }}),
        json!({"op": "Replace", "path": format!("{ENTERPRISE_SCHEMA}:employeeNumber"), "value": user.employee_number}),
        json!({"op": "Replace", "path": format!("{ENTERPRISE_SCHEMA}:department"), "value": user.department}),
    ])
}

/// Entra's attribute update after a change in the directory, in one of its two encodings:
/// - `path_less == false`: one Replace per attribute, `emails[type eq "work"].value` (E6) and
///   URN paths (E7);
/// - `path_less == true`: one path-less Replace whose value has dotted and URN keys (E8), and
///   the email by value path (E6).
pub fn entra_user_update(after: &UserSpec, path_less: bool) -> Value {
    let email = json!({"op": "Replace", "path": "emails[type eq \"work\"].value", "value": after.email});
    if path_less {
        let mut value = Map::new();
        value.insert("displayName".into(), json!(after.display_name));
        value.insert("title".into(), json!(after.title));
        value.insert("name.givenName".into(), json!(after.given_name));
        value.insert(format!("{ENTERPRISE_SCHEMA}:department"), json!(after.department));
        patch(vec![json!({"op": "Replace", "value": Value::Object(value)}), email])
    } else {
        patch(vec![
            json!({"op": "Replace", "path": "displayName", "value": after.display_name}),
            json!({"op": "Replace", "path": "title", "value": after.title}),
            json!({"op": "Replace", "path": "name.givenName", "value": after.given_name}),
            email,
            json!({"op": "Replace", "path": format!("{ENTERPRISE_SCHEMA}:department"), "value": after.department}),
            json!({"op": "Replace", "path": format!("{ENTERPRISE_SCHEMA}:employeeNumber"), "value": after.employee_number}),
        ])
    }
}

/// Deactivation. Entra: `"False"` as a string (E2). Okta: path-less replace with a value
/// object (O5).
pub fn set_active(style: Style, active: bool) -> Value {
    match style {
        Style::Entra => patch(vec![
            json!({"op": "Replace", "path": "active", "value": if active { "True" } else { "False" }}),
        ]),
        Style::Okta => patch(vec![json!({"op": "replace", "value": {"active": active}})]),
    }
}

/// How Entra encodes a manager change (E15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerShape {
    /// `"value": "<id>"`.
    PlainString,
    /// `"value": [{"$ref": null, "value": "<id>"}]`.
    ArrayOfOne,
}

/// Entra setting (`Some`) or removing (`None`, as `{"value": ""}`) the manager (E7, E15).
pub fn entra_set_manager(manager_id: Option<&str>, shape: ManagerShape) -> Value {
    let path = format!("{ENTERPRISE_SCHEMA}:manager");
    let value = match (manager_id, shape) {
        (None, _) => json!({"value": ""}),
        (Some(id), ManagerShape::PlainString) => json!(id),
        (Some(id), ManagerShape::ArrayOfOne) => json!([{"$ref": null, "value": id}]),
    };
    let op = if manager_id.is_some() && shape == ManagerShape::PlainString { "Add" } else { "Replace" };
    patch(vec![json!({"op": op, "path": path, "value": value})])
}

/// Okta's full-user update (O4): the body it just read with GET, with its own attributes
/// written over it, sent back whole, `id`, `meta` and `groups` included.
pub fn okta_user_put(current: &Value, user: &UserSpec, active: bool, manager_id: Option<&str>) -> Value {
    let mut body = match current {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let schemas = body.entry("schemas").or_insert_with(|| json!([USER_SCHEMA]));
    if let Value::Array(list) = schemas
        && !list.iter().any(|schema| schema == ENTERPRISE_SCHEMA)
    {
        list.push(json!(ENTERPRISE_SCHEMA));
    }
    body.insert("userName".into(), json!(user.user_name));
    body.insert("externalId".into(), json!(user.external_id));
    body.insert("displayName".into(), json!(user.display_name));
    body.insert("title".into(), json!(user.title));
    body.insert("active".into(), json!(active));
    let name = body.entry("name").or_insert_with(|| json!({}));
    if !name.is_object() {
        *name = json!({});
    }
    name["givenName"] = json!(user.given_name);
    name["familyName"] = json!(user.family_name);
    body.insert("emails".into(), json!([{"primary": true, "value": user.email, "type": "work"}]));
    let extension = body.entry(ENTERPRISE_SCHEMA).or_insert_with(|| json!({}));
    if !extension.is_object() {
        *extension = json!({});
    }
    extension["employeeNumber"] = json!(user.employee_number);
    extension["department"] = json!(user.department);
    match manager_id {
        Some(id) => extension["manager"] = json!({"value": id}),
        None => {
            if let Some(map) = extension.as_object_mut() {
                map.remove("manager");
            }
        }
    }
    Value::Object(body)
}

/// POST /Groups. Entra adds its ADSCIM schema (E14), `externalId` and `meta` (E13); Okta sends
/// the name and an empty member list.
pub fn group_create(group: &GroupSpec, display_name: &str) -> Value {
    match group.style {
        Style::Entra => json!({
            "schemas": [GROUP_SCHEMA, ENTRA_GROUP_SCHEMA],
            "externalId": group.external_id,
            "displayName": display_name,
            "meta": {"resourceType": "Group"},
            "members": [],
        }),
        Style::Okta => json!({
            "schemas": [GROUP_SCHEMA],
            "displayName": display_name,
            "members": [],
        }),
    }
}

fn entra_members(members: &[MemberRef]) -> Value {
    Value::Array(members.iter().map(|m| json!({"$ref": null, "value": m.id})).collect())
}

/// Okta's group "rename" op that it sends with every membership update, carrying the group's
/// own id inside the value (O7).
fn okta_rename_op(group_id: &str, display_name: &str) -> Value {
    json!({"op": "replace", "value": {"id": group_id, "displayName": display_name}})
}

/// One membership PATCH adding and removing members.
/// - Entra: `Add` with `$ref: null` members (E5) and `Remove` with a value list (E3), several
///   ops in one PATCH.
/// - Okta: the rename op carrying the id (O7), one `remove members[value eq "id"]` per removed
///   member (E4/O8), then `add members` with `display` (O8).
///
/// Ops for an empty side are left out.
pub fn change_members(
    style: Style,
    group_id: &str,
    display_name: &str,
    add: &[MemberRef],
    remove: &[MemberRef],
) -> Value {
    let mut operations = Vec::new();
    match style {
        Style::Entra => {
            if !add.is_empty() {
                operations.push(json!({"op": "Add", "path": "members", "value": entra_members(add)}));
            }
            if !remove.is_empty() {
                let values: Vec<Value> = remove.iter().map(|m| json!({"value": m.id})).collect();
                operations.push(json!({"op": "Remove", "path": "members", "value": values}));
            }
        }
        Style::Okta => {
            operations.push(okta_rename_op(group_id, display_name));
            for member in remove {
                operations.push(json!({"op": "remove", "path": format!("members[value eq {}]", filter_literal(&member.id))}));
            }
            if !add.is_empty() {
                let values: Vec<Value> =
                    add.iter().map(|m| json!({"value": m.id, "display": m.display})).collect();
                operations.push(json!({"op": "add", "path": "members", "value": values}));
            }
        }
    }
    patch(operations)
}

/// Okta replacing the whole membership (O8); an empty list empties the group.
pub fn okta_replace_members(members: &[MemberRef]) -> Value {
    let values: Vec<Value> = members.iter().map(|m| json!({"value": m.id, "display": m.display})).collect();
    patch(vec![json!({"op": "replace", "path": "members", "value": values})])
}

/// A group rename. Entra: `Replace displayName`. Okta: the path-less replace carrying the id (O7).
pub fn rename_group(style: Style, group_id: &str, new_name: &str) -> Value {
    match style {
        Style::Entra => patch(vec![json!({"op": "Replace", "path": "displayName", "value": new_name})]),
        Style::Okta => patch(vec![okta_rename_op(group_id, new_name)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orgchart::OrgChart;
    use crate::profile::{IdpMix, Profile};

    fn user(style: Style) -> UserSpec {
        let idp = if style == Style::Entra { IdpMix::Entra } else { IdpMix::Okta };
        OrgChart::generate(1, &Profile { idp, ..Profile::smoke() }).user(12, 0)
    }

    fn member(id: &str) -> MemberRef {
        MemberRef { id: id.into(), display: format!("{id}@example.com") }
    }

    #[test]
    fn e1_e3_e5_entra_membership_patch() {
        let body = change_members(Style::Entra, "g1", "Team", &[member("u1"), member("u2")], &[member("u3")]);
        assert_eq!(
            body,
            json!({"schemas": [PATCH_SCHEMA], "Operations": [
                {"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"$ref": null, "value": "u2"}]},
                {"op": "Remove", "path": "members", "value": [{"value": "u3"}]},
            ]})
        );
        let only_add = change_members(Style::Entra, "g1", "Team", &[member("u1")], &[]);
        assert_eq!(only_add["Operations"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn e2_o5_deactivation_shapes() {
        assert_eq!(
            set_active(Style::Entra, false)["Operations"],
            json!([{"op": "Replace", "path": "active", "value": "False"}])
        );
        assert_eq!(set_active(Style::Entra, true)["Operations"][0]["value"], "True");
        assert_eq!(
            set_active(Style::Okta, false)["Operations"],
            json!([{"op": "replace", "value": {"active": false}}])
        );
    }

    #[test]
    fn e4_o7_o8_okta_membership_patch() {
        let body = change_members(Style::Okta, "g1", "Team", &[member("u1")], &[member("u2"), member("u3")]);
        assert_eq!(
            body["Operations"],
            json!([
                {"op": "replace", "value": {"id": "g1", "displayName": "Team"}},
                {"op": "remove", "path": "members[value eq \"u2\"]"},
                {"op": "remove", "path": "members[value eq \"u3\"]"},
                {"op": "add", "path": "members", "value": [{"value": "u1", "display": "u1@example.com"}]},
            ])
        );
        assert_eq!(
            okta_replace_members(&[])["Operations"],
            json!([{"op": "replace", "path": "members", "value": []}])
        );
        assert_eq!(
            rename_group(Style::Okta, "g1", "New")["Operations"],
            json!([{"op": "replace", "value": {"id": "g1", "displayName": "New"}}])
        );
        assert_eq!(
            rename_group(Style::Entra, "g1", "New")["Operations"],
            json!([{"op": "Replace", "path": "displayName", "value": "New"}])
        );
    }

    #[test]
    fn e6_e7_e8_entra_attribute_updates() {
        let after = user(Style::Entra);
        let with_paths = entra_user_update(&after, false);
        let ops = with_paths["Operations"].as_array().unwrap();
        assert!(ops.iter().all(|op| op["op"] == "Replace"), "capitalised ops (E1)");
        assert!(
            ops.iter().any(|op| op["path"] == "emails[type eq \"work\"].value" && op["value"] == after.email)
        );
        assert!(ops.iter().any(|op| op["path"] == format!("{ENTERPRISE_SCHEMA}:employeeNumber")));
        let path_less = entra_user_update(&after, true);
        let value = &path_less["Operations"][0]["value"];
        assert!(path_less["Operations"][0].get("path").is_none());
        assert_eq!(value["name.givenName"], json!(after.given_name));
        assert_eq!(value[format!("{ENTERPRISE_SCHEMA}:department")], json!(after.department));
    }

    #[test]
    fn e13_o2_create_bodies() {
        let entra = user_create(&user(Style::Entra), Some("m1"));
        assert_eq!(entra["roles"], json!([]));
        assert_eq!(entra["meta"], json!({"resourceType": "User"}));
        assert!(entra[ENTERPRISE_SCHEMA].get("manager").is_none(), "Entra sets managers by PATCH later");
        let okta = user_create(&user(Style::Okta), Some("m1"));
        assert_eq!(okta["groups"], json!([]));
        assert!(okta["password"].is_string());
        assert_eq!(okta[ENTERPRISE_SCHEMA]["manager"], json!({"value": "m1"}));
        assert_eq!(Style::Okta.content_type(), "application/json");
        assert_eq!(Style::Entra.content_type(), "application/scim+json");
    }

    #[test]
    fn e14_entra_group_schema() {
        let chart = OrgChart::generate(1, &Profile { idp: IdpMix::Entra, ..Profile::smoke() });
        let body = group_create(&chart.groups[0], "All Employees");
        assert_eq!(body["schemas"][1], ENTRA_GROUP_SCHEMA);
        assert_eq!(body["members"], json!([]));
    }

    #[test]
    fn e15_manager_shapes() {
        let path = format!("{ENTERPRISE_SCHEMA}:manager");
        assert_eq!(
            entra_set_manager(Some("m1"), ManagerShape::PlainString)["Operations"],
            json!([{"op": "Add", "path": path, "value": "m1"}])
        );
        assert_eq!(
            entra_set_manager(Some("m1"), ManagerShape::ArrayOfOne)["Operations"][0]["value"],
            json!([{"$ref": null, "value": "m1"}])
        );
        assert_eq!(
            entra_set_manager(None, ManagerShape::PlainString)["Operations"][0]["value"],
            json!({"value": ""})
        );
    }

    #[test]
    fn o4_put_keeps_what_was_read() {
        let current = json!({"schemas": [USER_SCHEMA], "id": "abc", "meta": {"version": "W/\"1\""},
                             "groups": [{"value": "g"}], "userName": "old", "name": {"formatted": "x"}});
        let user = user(Style::Okta);
        let body = okta_user_put(&current, &user, false, None);
        assert_eq!(body["id"], "abc");
        assert_eq!(body["meta"]["version"], "W/\"1\"");
        assert_eq!(body["groups"], json!([{"value": "g"}]));
        assert_eq!(body["userName"], json!(user.user_name));
        assert_eq!(body["active"], false);
        assert_eq!(body["name"]["formatted"], "x");
        assert_eq!(body["schemas"], json!([USER_SCHEMA, ENTERPRISE_SCHEMA]));
        assert!(body[ENTERPRISE_SCHEMA].get("manager").is_none());
    }

    #[test]
    fn e9_e10_o1_queries_are_encoded() {
        assert_eq!(
            user_by_user_name(Style::Okta, "a@b.c"),
            "?filter=userName%20eq%20%22a%40b.c%22&startIndex=1&count=100"
        );
        assert_eq!(user_by_user_name(Style::Entra, "a"), "?filter=userName%20eq%20%22a%22");
        assert_eq!(
            group_by_display_name(Style::Entra, "A B"),
            "?filter=displayName%20eq%20%22A%20B%22&excludedAttributes=members"
        );
        assert!(
            user_by_work_email("x@y").starts_with("?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq")
        );
        assert_eq!(filter_literal("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert!(test_connection("00000000-0000-0000-0000-000000000000").contains("userName%20eq"));
    }
}
