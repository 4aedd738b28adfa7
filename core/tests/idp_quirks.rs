//! One test per row of `/work/shared/scim/idp-quirks.md` that the domain (normalisation, PATCH,
//! projection) decides, each with the request body exactly as the IdP sends it. Rows about
//! transport, stores, paging and the fold (E9–E12, E16, E19–E21, O1, O3, O6, O9–O11) are tested
//! where they are implemented.

use scimflow_core::error::ScimType;
use scimflow_core::patch::{MembershipChange, PatchResult, apply_patch, parse_patch_request};
use scimflow_core::projection::Projection;
use scimflow_core::resource::{MemberRef, normalize_resource, replace_resource, split_members};
use scimflow_core::{ResourceKind, SchemaRegistry, ScimError};
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn registry() -> SchemaRegistry {
    SchemaRegistry::standard()
}

/// A stored user, as the fold keeps it.
fn stored_user() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen",
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "home", "primary": true}],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Tour Operations"},
        "meta": {
            "resourceType": "User",
            "created": "2024-01-23T04:56:22Z",
            "lastModified": "2024-05-13T04:42:34Z",
            "version": "W/\"3\"",
        },
    })
}

/// A stored group: never with `members` (they are rows).
fn stored_group() -> Value {
    json!({
        "schemas": [GROUP],
        "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
        "displayName": "Tour Guides",
        "meta": {"resourceType": "Group", "version": "W/\"7\""},
    })
}

fn patch(kind: ResourceKind, resource: &Value, body: Value) -> Result<PatchResult, ScimError> {
    let operations = parse_patch_request(&body)?;
    apply_patch(&registry(), kind, resource, &operations)
}

/// `stored_user()` with `edit` applied to its JSON.
fn user_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut user = stored_user();
    edit(&mut user);
    user
}

#[test]
fn e1_capitalised_op_names_are_accepted() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "emails[type eq \"home\"].value", "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Add", "path": "nickName", "value": "Babs"},
            {"op": "Remove", "path": "title"},
        ]
    });
    let result = patch(ResourceKind::User, &stored_user(), body).unwrap();
    let expected = user_with(|u| {
        u["emails"][0]["value"] = json!("updatedEmail@microsoft.com");
        u["name"]["familyName"] = json!("updatedFamilyName");
        u["nickName"] = json!("Babs");
        u.as_object_mut().unwrap().remove("title");
    });
    assert_eq!(result.resource, expected);
    assert!(result.membership.is_empty());
}

#[test]
fn e2_boolean_strings_in_any_case_are_coerced() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
    });
    let result = patch(ResourceKind::User, &stored_user(), body).unwrap();
    assert_eq!(result.resource["active"], json!(false));
    assert_eq!(result.resource, user_with(|u| u["active"] = json!(false)));

    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "TRUE"}]
    });
    let inactive = user_with(|u| u["active"] = json!(false));
    assert_eq!(patch(ResourceKind::User, &inactive, body).unwrap().resource["active"], json!(true));

    // The same coercion on POST.
    let posted = normalize_resource(
        &registry(),
        ResourceKind::User,
        &json!({"schemas": [USER], "userName": "a", "active": "true"}),
    )
    .unwrap();
    assert_eq!(posted["active"], json!(true));
}

#[test]
fn e3_remove_listed_members_never_clears_the_group() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "Remove",
            "path": "members",
            "value": [{"value": "7f45f4e0-4c12-4a48-a1bc-0e1d8b2e9a11"}]
        }]
    });
    let result = patch(ResourceKind::Group, &stored_group(), body).unwrap();
    assert_eq!(
        result.membership,
        vec![MembershipChange::Remove(vec!["7f45f4e0-4c12-4a48-a1bc-0e1d8b2e9a11".into()])]
    );
    assert_eq!(result.resource, stored_group());

    // Even an empty list removes nothing rather than everything.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": "members", "value": []}]
    });
    assert_eq!(patch(ResourceKind::Group, &stored_group(), body).unwrap().membership, vec![]);
}

#[test]
fn e4_remove_member_by_value_filter() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "remove",
            "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"
        }]
    });
    let result = patch(ResourceKind::Group, &stored_group(), body).unwrap();
    assert_eq!(
        result.membership,
        vec![MembershipChange::Remove(vec!["89bb1940-b905-4575-9e7f-6f887cfb368e".into()])]
    );
    assert_eq!(result.resource, stored_group());

    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": "members[value eq \"a\" or Value EQ \"b\"]"}]
    });
    assert_eq!(
        patch(ResourceKind::Group, &stored_group(), body).unwrap().membership,
        vec![MembershipChange::Remove(vec!["a".into(), "b".into()])]
    );
}

#[test]
fn e5_add_members_with_null_ref_in_several_operations() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]},
            {"op": "Add", "path": "members", "value": [
                {"$ref": null, "value": "a8b5c0b2e1d24f5c9e61"},
                {"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}
            ]}
        ]
    });
    let result = patch(ResourceKind::Group, &stored_group(), body).unwrap();
    // Listed in order, duplicates included: the union is the fold's job.
    assert_eq!(
        result.membership,
        vec![
            MembershipChange::Add(vec![MemberRef::new("f648f8d5ea4e4cd38e9c")]),
            MembershipChange::Add(vec![
                MemberRef::new("a8b5c0b2e1d24f5c9e61"),
                MemberRef::new("f648f8d5ea4e4cd38e9c"),
            ]),
        ]
    );
    assert_eq!(result.resource, stored_group(), "the group JSON never holds members");
}

#[test]
fn e6_value_path_with_sub_attribute_creates_the_work_email() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "a@b"}]
    });
    let result = patch(ResourceKind::User, &stored_user(), body.clone()).unwrap();
    assert_eq!(
        result.resource["emails"],
        json!([
            {"value": "bjensen@example.com", "type": "home", "primary": true},
            {"type": "work", "value": "a@b"}
        ])
    );
    // Applied again, the existing work entry is updated, not duplicated.
    let again = patch(ResourceKind::User, &result.resource, body).unwrap();
    assert_eq!(again.resource, result.resource);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "c@d"}]
    });
    let updated = patch(ResourceKind::User, &result.resource, body).unwrap();
    assert_eq!(updated.resource["emails"][1], json!({"value": "c@d", "type": "work"}));
}

#[test]
fn e7_full_urn_attribute_paths() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "701985"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter", "value": "4130"},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName", "value": "Barbara"}
        ]
    });
    let result = patch(ResourceKind::User, &stored_user(), body).unwrap();
    assert_eq!(
        result.resource[ENTERPRISE],
        json!({"employeeNumber": "701985", "costCenter": "4130", "department": "Tour Operations"})
    );
    assert_eq!(result.resource["displayName"], json!("Barbara"));

    // A user without the extension gains it, and `schemas` lists it.
    let plain = json!({"schemas": [USER], "id": "1", "userName": "a"});
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "1"}]
    });
    let result = patch(ResourceKind::User, &plain, body).unwrap();
    assert_eq!(
        result.resource,
        json!({"schemas": [USER, ENTERPRISE], "id": "1", "userName": "a", ENTERPRISE: {"employeeNumber": "1"}})
    );
}

#[test]
fn e8_path_less_replace_resolves_dotted_and_urn_keys() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "replace",
            "value": {
                "name.givenName": "Kim",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "26118915-6090-4610-87e4-49d8ca9f808d",
                "displayName": "Kim Jensen"
            }
        }]
    });
    let result = patch(ResourceKind::User, &stored_user(), body).unwrap();
    let expected = user_with(|u| {
        u["name"]["givenName"] = json!("Kim");
        u["displayName"] = json!("Kim Jensen");
        u[ENTERPRISE] = json!({
            "employeeNumber": "701984",
            "department": "Sales",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        });
    });
    assert_eq!(result.resource, expected);
}

#[test]
fn e13_post_ignores_meta_and_drops_nulls_and_empty_arrays() {
    let body = json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": true,
        "emails": [{
            "primary": true,
            "type": "work",
            "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
        }],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
        "title": null,
        "phoneNumbers": [{"value": null, "type": "work"}, null],
        ENTERPRISE: {"department": null}
    });
    let user = normalize_resource(&registry(), ResourceKind::User, &body).unwrap();
    assert_eq!(
        user,
        json!({
            "schemas": [USER],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "active": true,
            "emails": [{
                "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com",
                "type": "work",
                "primary": true
            }],
            "phoneNumbers": [{"type": "work"}],
        })
    );
}

#[test]
fn e14_unknown_non_urn_schema_uri_is_tolerated() {
    let body = json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
        ],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "displayName",
        "meta": {"resourceType": "Group"}
    });
    let group = normalize_resource(&registry(), ResourceKind::Group, &body).unwrap();
    assert_eq!(
        group,
        json!({
            "schemas": [GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
        })
    );
}

#[test]
fn e15_manager_as_array_object_or_string_and_removal_via_empty_value() {
    let manager_id = "26118915-6090-4610-87e4-49d8ca9f808d";
    // POST with an array of one {"$ref", "value"}.
    let body = json!({
        "schemas": [USER, ENTERPRISE],
        "userName": "mgr-array",
        ENTERPRISE: {"manager": [{"$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d", "value": manager_id}]}
    });
    let user = normalize_resource(&registry(), ResourceKind::User, &body).unwrap();
    assert_eq!(
        user[ENTERPRISE],
        json!({"manager": {"value": manager_id, "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d"}})
    );
    // POST with a plain string.
    let body =
        json!({"schemas": [USER, ENTERPRISE], "userName": "mgr-string", ENTERPRISE: {"manager": manager_id}});
    let user = normalize_resource(&registry(), ResourceKind::User, &body).unwrap();
    assert_eq!(user[ENTERPRISE], json!({"manager": {"value": manager_id}}));

    // PATCH with a plain string value.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "Replace",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "value": manager_id
        }]
    });
    let managed = patch(ResourceKind::User, &stored_user(), body).unwrap().resource;
    assert_eq!(managed[ENTERPRISE]["manager"], json!({"value": manager_id}));

    // PATCH removal via {"value": ""}.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "Replace",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "value": {"value": ""}
        }]
    });
    let unmanaged = patch(ResourceKind::User, &managed, body).unwrap().resource;
    assert_eq!(unmanaged, stored_user());

    // PATCH with an array of one object.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "Add",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "value": [{"$ref": null, "value": manager_id}]
        }]
    });
    let managed = patch(ResourceKind::User, &stored_user(), body).unwrap().resource;
    assert_eq!(managed[ENTERPRISE]["manager"], json!({"value": manager_id}));
}

#[test]
fn e17_values_are_stored_as_sent_and_invalid_ones_rejected_with_actionable_errors() {
    let body = json!({
        "schemas": [USER],
        "userName": "Ryan.Leenay@Contoso.COM",
        "displayName": "  Ryan  Leenay ",
        "phoneNumbers": [{"value": "+1 (425) 555-0100", "type": "Work"}],
        "locale": "en-us",
        "timezone": "America/Los_Angeles"
    });
    let user = normalize_resource(&registry(), ResourceKind::User, &body).unwrap();
    assert_eq!(user["userName"], json!("Ryan.Leenay@Contoso.COM"));
    assert_eq!(user["displayName"], json!("  Ryan  Leenay "));
    assert_eq!(user["phoneNumbers"], json!([{"value": "+1 (425) 555-0100", "type": "Work"}]));
    assert_eq!(user["locale"], json!("en-us"));

    let err = normalize_resource(
        &registry(),
        ResourceKind::User,
        &json!({"schemas": [USER], "userName": "a", "active": "yes"}),
    )
    .unwrap_err();
    assert_eq!((err.status, err.scim_type), (400, Some(ScimType::InvalidValue)));
    assert_eq!(err.detail, "attribute \"active\" must be a boolean (true or false), got \"yes\"");

    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "emails[type eq \"home\"].primary", "value": "maybe"}]
    });
    let err = patch(ResourceKind::User, &stored_user(), body).unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
    assert_eq!(
        err.detail,
        "Operations[0]: attribute \"emails.primary\" must be a boolean (true or false), got \"maybe\""
    );
}

#[test]
fn e18_absent_attributes_are_not_cleared_only_explicit_operations_clear() {
    // Entra sends only what changed; everything else must survive.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "title", "value": "Senior Tour Guide"}]
    });
    let result = patch(ResourceKind::User, &stored_user(), body).unwrap();
    assert_eq!(result.resource, user_with(|u| u["title"] = json!("Senior Tour Guide")));

    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "value": {"displayName": "Barbara J"}}]
    });
    let result = patch(ResourceKind::User, &stored_user(), body).unwrap();
    assert_eq!(result.resource, user_with(|u| u["displayName"] = json!("Barbara J")));

    // Clearing needs an explicit operation.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]
    });
    let result = patch(ResourceKind::User, &stored_user(), body).unwrap();
    assert_eq!(result.resource[ENTERPRISE], json!({"employeeNumber": "701984"}));
}

#[test]
fn o2_post_with_password_and_empty_groups_never_stores_or_returns_them() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    });
    let user = normalize_resource(&registry(), ResourceKind::User, &body).unwrap();
    assert_eq!(
        user,
        json!({
            "schemas": [USER],
            "externalId": "00ujl29u0le5T6Aj10h7",
            "userName": "test.user@okta.local",
            "name": {"familyName": "User", "givenName": "Test"},
            "displayName": "Test User",
            "locale": "en-US",
            "active": true,
            "emails": [{"value": "test.user@okta.local", "type": "work", "primary": true}],
        })
    );
    // Non-empty `groups` are readOnly too: ignored, not an error.
    let mut with_groups = body.clone();
    with_groups["groups"] = json!([{"value": "g1", "display": "Admins"}]);
    assert_eq!(normalize_resource(&registry(), ResourceKind::User, &with_groups).unwrap(), user);

    // Even a resource that somehow held a password never renders it, whatever is asked for.
    let mut stored = user.clone();
    stored["password"] = json!("1mz050nq");
    for (attributes, excluded) in
        [(None, None), (Some("password"), None), (Some("userName,password"), Some("emails"))]
    {
        let projection = Projection::parse(attributes, excluded, &registry(), ResourceKind::User).unwrap();
        assert!(projection.render(&registry(), ResourceKind::User, &stored).get("password").is_none());
    }
}

#[test]
fn o4_full_put_replaces_everything_and_ignores_read_only_attributes() {
    let current = stored_user();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Another", "middleName": "Joe", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Another User",
        "locale": "en-US",
        "externalId": "00u1dhhb1fkIGP7RL1d8",
        "groups": [{"value": "g1", "display": "Tour Guides"}],
        "password": "1mz050nq",
        "active": true,
        "meta": {"resourceType": "User", "created": "1999-01-01T00:00:00Z", "version": "W/\"99\""}
    });
    let replacement = normalize_resource(&registry(), ResourceKind::User, &body).unwrap();
    let replaced = replace_resource(&registry(), ResourceKind::User, &current, &replacement).unwrap();
    assert_eq!(
        replaced,
        json!({
            "schemas": [USER],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "00u1dhhb1fkIGP7RL1d8",
            "userName": "bjensen@example.com",
            "name": {"familyName": "User", "givenName": "Another", "middleName": "Joe"},
            "displayName": "Another User",
            "locale": "en-US",
            "active": true,
            "emails": [{"value": "test.user@okta.local", "type": "work", "primary": true}],
            "meta": current["meta"].clone(),
        }),
        "title and the enterprise attributes were absent from the PUT, so they are gone"
    );
}

#[test]
fn o5_path_less_replace_with_a_value_object() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]
    });
    let result = patch(ResourceKind::User, &stored_user(), body).unwrap();
    assert_eq!(result.resource, user_with(|u| u["active"] = json!(false)));
}

#[test]
fn o7_group_rename_ignores_its_own_id_in_the_value() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "replace",
            "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2"}
        }]
    });
    let result = patch(ResourceKind::Group, &stored_group(), body).unwrap();
    let mut expected = stored_group();
    expected["displayName"] = json!("Test SCIMv2");
    assert_eq!(result.resource, expected);
    assert!(result.membership.is_empty());

    // Somebody else's id is a mutability error, not a silent no-op.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"id": "another-group", "displayName": "Test SCIMv2"}}]
    });
    let err = patch(ResourceKind::Group, &stored_group(), body).unwrap_err();
    assert_eq!((err.status, err.scim_type), (400, Some(ScimType::Mutability)));
}

#[test]
fn o8_remove_by_filter_then_add_members_in_one_patch() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"},
            {
                "op": "add",
                "path": "members",
                "value": [{"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}]
            }
        ]
    });
    let result = patch(ResourceKind::Group, &stored_group(), body).unwrap();
    assert_eq!(
        result.membership,
        vec![
            MembershipChange::Remove(vec!["89bb1940-b905-4575-9e7f-6f887cfb368e".into()]),
            MembershipChange::Add(vec![MemberRef {
                value: "23a35c27-23d3-4c03-b4c5-6443c09e7173".into(),
                display: Some("test.user@okta.local".into()),
                member_type: None,
            }]),
        ]
    );
    assert_eq!(result.resource, stored_group());
}

#[test]
fn o8_replace_members_clears_then_adds() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "replace",
            "path": "members",
            "value": [
                {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"},
                {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "another.user@okta.local"}
            ]
        }]
    });
    let result = patch(ResourceKind::Group, &stored_group(), body).unwrap();
    let member = |id: &str, display: &str| MemberRef {
        value: id.into(),
        display: Some(display.into()),
        member_type: None,
    };
    assert_eq!(
        result.membership,
        vec![
            MembershipChange::Clear,
            MembershipChange::Add(vec![
                member("23a35c27-23d3-4c03-b4c5-6443c09e7173", "test.user@okta.local"),
                member("89bb1940-b905-4575-9e7f-6f887cfb368e", "another.user@okta.local"),
            ]),
        ]
    );
    assert_eq!(result.resource, stored_group());

    // The path-less form (members inside the value object) means the same.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "replace",
            "value": {
                "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
                "displayName": "Tour Guides",
                "members": [{"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}]
            }
        }]
    });
    let result = patch(ResourceKind::Group, &stored_group(), body).unwrap();
    assert_eq!(
        result.membership,
        vec![
            MembershipChange::Clear,
            MembershipChange::Add(vec![member(
                "23a35c27-23d3-4c03-b4c5-6443c09e7173",
                "test.user@okta.local"
            )]),
        ]
    );
}

#[test]
fn o8_replace_members_with_empty_list_empties_the_group() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "members", "value": []}]
    });
    let result = patch(ResourceKind::Group, &stored_group(), body).unwrap();
    assert_eq!(result.membership, vec![MembershipChange::Clear]);
    assert_eq!(result.resource, stored_group());
}

#[test]
fn post_group_members_are_split_into_membership_rows() {
    // Not an IdP row of its own, but the shape E5/E14 groups are created with.
    let body = json!({
        "schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "displayName": "Tour Guides",
        "members": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}, {"value": "g2", "type": "group"}]
    });
    let mut group = normalize_resource(&registry(), ResourceKind::Group, &body).unwrap();
    let members = split_members(&mut group);
    assert_eq!(group, json!({"schemas": [GROUP], "displayName": "Tour Guides"}));
    assert_eq!(
        members,
        vec![
            MemberRef::new("f648f8d5ea4e4cd38e9c"),
            MemberRef { value: "g2".into(), display: None, member_type: Some("Group".into()) },
        ]
    );
}
