//! Feeds arbitrary text to the filter and PATCH path parsers: they must never panic, whatever
//! they accept must print as text that parses back to the same tree, and an accepted filter must
//! validate, evaluate and plan without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scimflow_core::filter::{
    EvalContext, MAX_FILTER_LEN, complexity, matches, parse_filter, parse_patch_path, plan, validate,
};
use scimflow_core::{ResourceKind, SchemaRegistry};
use serde_json::{Value, json};
use std::sync::OnceLock;

fn registry() -> &'static SchemaRegistry {
    static REGISTRY: OnceLock<SchemaRegistry> = OnceLock::new();
    REGISTRY.get_or_init(SchemaRegistry::standard)
}

fn sample_user() -> &'static Value {
    static USER: OnceLock<Value> = OnceLock::new();
    USER.get_or_init(|| {
        json!({
            "id": "2819c223", "externalId": "ext", "userName": "Bjensen", "active": true,
            "name": {"givenName": "Barbara", "familyName": "Jensen"}, "title": "",
            "emails": [{"value": "b@example.com", "type": "work", "primary": true}, {"value": "x"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "7", "manager": {"value": "m"}
            },
            "meta": {"created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}
        })
    })
}

fuzz_target!(|data: &[u8]| {
    // Lossy decoding keeps invalid UTF-8 inputs useful instead of discarding them.
    let text = String::from_utf8_lossy(data);
    if let Ok(filter) = parse_filter(&text) {
        let printed = filter.to_string();
        // Printing may lengthen a filter (`1E2` prints as `100.0`, the Entra form gains an
        // `and`), so text near the limit may legitimately not parse again.
        if printed.len() <= MAX_FILTER_LEN {
            match parse_filter(&printed) {
                Ok(again) => assert_eq!(again, filter, "{text:?} printed as {printed:?}"),
                Err(error) => panic!("{text:?} printed as {printed:?}: {}", error.detail),
            }
        }
        for kind in [ResourceKind::User, ResourceKind::Group] {
            let ctx = EvalContext { registry: registry(), kind };
            let _ = validate(&ctx, &filter);
            let _ = matches(&ctx, &filter, sample_user());
            let _ = plan(&ctx, &filter);
        }
        let _ = complexity(&filter);
    }
    if let Ok(path) = parse_patch_path(&text) {
        let printed = path.to_string();
        if printed.len() <= MAX_FILTER_LEN {
            match parse_patch_path(&printed) {
                Ok(again) => assert_eq!(again, path, "{text:?} printed as {printed:?}"),
                Err(error) => panic!("{text:?} printed as {printed:?}: {}", error.detail),
            }
        }
    }
});
