//! Filter cost on the request path: parsing, evaluating against one canonical user, and planning,
//! for the lookup Entra ID sends most and for a deliberately busy filter.

use criterion::{Criterion, criterion_group, criterion_main};
use scimflow_core::filter::{EvalContext, matches, parse_filter, plan};
use scimflow_core::{ResourceKind, SchemaRegistry};
use serde_json::{Value, json};
use std::hint::black_box;

const ENTRA: &str = r#"userName eq "Bjensen@Example.com""#;
const ENTRA_EMAIL: &str = r#"emails[type eq "work"].value eq "bjensen@example.com""#;
const COMPLEX: &str = r#"(userName sw "bj" or emails[type eq "work" and value co "example"]) and not (active eq false) and meta.lastModified gt "2011-01-01T00:00:00Z" and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department co "tour" and (title pr or name.familyName eq "Jensen")"#;

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen",
        "userName": "bjensen@example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Tour Operations"
        },
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z"
        }
    })
}

fn filters(c: &mut Criterion) {
    let registry = SchemaRegistry::standard();
    let ctx = EvalContext { registry: &registry, kind: ResourceKind::User };
    let user = user();
    for (name, text) in [("entra_username", ENTRA), ("entra_email", ENTRA_EMAIL), ("complex", COMPLEX)] {
        let Ok(filter) = parse_filter(text) else { panic!("{name} parses") };
        assert!(matches(&ctx, &filter, &user), "{name} matches the sample user");
        c.bench_function(&format!("parse/{name}"), |b| b.iter(|| parse_filter(black_box(text))));
        c.bench_function(&format!("evaluate/{name}"), |b| {
            b.iter(|| matches(&ctx, black_box(&filter), black_box(&user)))
        });
        c.bench_function(&format!("parse_and_evaluate/{name}"), |b| {
            b.iter(|| parse_filter(black_box(text)).map(|f| matches(&ctx, &f, black_box(&user))))
        });
        c.bench_function(&format!("plan/{name}"), |b| b.iter(|| plan(&ctx, black_box(&filter))));
    }
}

criterion_group!(benches, filters);
criterion_main!(benches);
