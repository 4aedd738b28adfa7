//! Feeds arbitrary bytes, read as JSON, to `parse_patch_request` and applies whatever it accepts
//! to a fixed user and a fixed group: nothing may panic, a group's JSON never gains `members`,
//! and every successful PATCH result is a fixed point of render → normalise → PUT (what a client
//! that GETs and PUTs the resource back would store).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimflow_core::patch::{apply_patch, parse_patch_request};
use scimflow_core::projection::Projection;
use scimflow_core::resource::{normalize_resource, replace_resource};
use scimflow_core::{ResourceKind, SchemaRegistry};
use serde_json::{Value, json};

fn user() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "u1",
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "active": true,
        "emails": [
            {"value": "b@x.org", "type": "work", "primary": true},
            {"value": "h@x.org", "type": "home"}
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Tours",
            "manager": {"value": "m1"}
        },
        "meta": {"resourceType": "User", "version": "W/\"1\""}
    })
}

fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1",
        "displayName": "Guides",
        "meta": {"resourceType": "Group", "version": "W/\"1\""}
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(operations) = parse_patch_request(&body) else {
        return;
    };
    let registry = SchemaRegistry::standard();
    for (kind, resource) in [(ResourceKind::User, user()), (ResourceKind::Group, group())] {
        let Ok(result) = apply_patch(&registry, kind, &resource, &operations) else {
            continue;
        };
        let patched = result.resource;
        if kind == ResourceKind::Group {
            assert!(
                patched.get("members").is_none(),
                "members leaked into the group JSON"
            );
        }
        let mut rendered = Projection::default().render(&registry, kind, &patched);
        if let Some(fields) = rendered.as_object_mut() {
            fields.remove("meta");
        }
        let normalized = normalize_resource(&registry, kind, &rendered).unwrap_or_else(|err| {
            panic!("the patched resource does not normalise: {err}\n{patched}")
        });
        let put = replace_resource(&registry, kind, &resource, &normalized).unwrap_or_else(|err| {
            panic!("the patched resource cannot be PUT back: {err}\n{patched}")
        });
        assert_eq!(put, patched, "PATCH result differs from the PUT of itself");
    }
});
