//! Feeds arbitrary bytes, read as JSON, to `normalize_resource` for users and groups, then
//! renders the result: nothing may panic, and normalising is idempotent (canonical JSON is a
//! fixed point), also after splitting off group members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimflow_core::projection::Projection;
use scimflow_core::resource::{normalize_resource, split_members};
use scimflow_core::{ResourceKind, SchemaRegistry};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let registry = SchemaRegistry::standard();
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let Ok(once) = normalize_resource(&registry, kind, &body) else {
            continue;
        };
        let twice = normalize_resource(&registry, kind, &once)
            .unwrap_or_else(|err| panic!("canonical JSON does not normalise: {err}\n{once}"));
        assert_eq!(twice, once, "normalize_resource is not idempotent");
        let rendered = Projection::default().render(&registry, kind, &once);
        let again = normalize_resource(&registry, kind, &rendered)
            .unwrap_or_else(|err| panic!("rendered JSON does not normalise: {err}\n{rendered}"));
        assert_eq!(again, once, "render then normalise changed the resource");
        let mut stored = once.clone();
        let _members = split_members(&mut stored);
        assert!(stored.get("members").is_none());
        let projection = Projection::parse(
            Some("userName,name.givenName,members.value"),
            Some("emails"),
            &registry,
            kind,
        );
        if let Ok(projection) = projection {
            let _ = projection.render(&registry, kind, &once);
        }
    }
});
