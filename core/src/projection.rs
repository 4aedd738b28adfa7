//! Output projection: this module owns which attributes of a resource a response contains —
//! the `attributes` and `excludedAttributes` query parameters (RFC 7644 §3.9) combined with each
//! attribute's `returned` characteristic (RFC 7643 §2.2 and §7).
//!
//! Decisions:
//! - `id`, `schemas` and `meta` are always returned, whatever the parameters say: `id` is
//!   `returned: always` in RFC 7643, `schemas` is what tells a client how to read the body, and
//!   IdPs read `meta.version`/`meta.location` for ETags and links. `schemas` is trimmed to the
//!   extensions whose object is still in the output (RFC 7643 §3: it lists the schemas "present
//!   in the current JSON structure").
//! - Unknown attribute names in either parameter are ignored, as RFC 7644 §3.9 allows ("... the
//!   service provider SHALL ignore" unknown names is the common reading; a 400 here would break a
//!   client that asks for a custom attribute we do not know).
//! - `returned: never` (`password`) is never output; `returned: request` only when named in
//!   `attributes` (naming its whole extension is not enough).
//! - When both parameters are given, `attributes` selects and `excludedAttributes` then removes.
//! - Extension objects and complex values that become empty are dropped.

use crate::error::ScimResult;
use crate::schema::{AttrHome, AttrType, AttributeDef, ResourceKind, Returned, SchemaRegistry};
use serde_json::{Map, Value};

/// One entry of `attributes` / `excludedAttributes`, resolved to canonical names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    /// The extension URN the attribute lives in; `None` for core and common attributes.
    extension: Option<String>,
    /// `None` selects the whole extension (`attributes=urn:...:enterprise:2.0:User`).
    attr: Option<String>,
    sub: Option<String>,
}

/// Which attributes a response contains. `Projection::default()` returns every attribute whose
/// `returned` is `always` or `default`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    /// `None`: no `attributes` parameter, return the defaults.
    attributes: Option<Vec<Selector>>,
    excluded: Vec<Selector>,
}

/// How one attribute is output.
enum Mode {
    Omit,
    /// Output, keeping only the `include` sub-attributes (all when `None`) minus `exclude`.
    Keep {
        include: Option<Vec<String>>,
        exclude: Vec<String>,
    },
}

impl Projection {
    /// Parses the comma-separated `attributes` and `excludedAttributes` parameters. Entries may
    /// be `userName`, `name.givenName`, `urn:...:User:userName`, `urn:...:enterprise:2.0:User`,
    /// `urn:...:enterprise:2.0:User:manager.value`, in any case; unknown entries are ignored
    /// (see the module docs), so this never fails today. An empty or blank parameter counts as
    /// absent.
    pub fn parse(
        attributes: Option<&str>,
        excluded_attributes: Option<&str>,
        registry: &SchemaRegistry,
        kind: ResourceKind,
    ) -> ScimResult<Projection> {
        let attributes =
            attributes.filter(|text| !text.trim().is_empty()).map(|text| parse_list(text, registry, kind));
        let excluded = excluded_attributes.map(|text| parse_list(text, registry, kind)).unwrap_or_default();
        Ok(Projection { attributes, excluded })
    }

    /// Applies the projection to a canonical resource (which may also carry rendered `members`
    /// or `groups`). Key order follows `resource`.
    pub fn render(&self, registry: &SchemaRegistry, kind: ResourceKind, resource: &Value) -> Value {
        let Some(fields) = resource.as_object() else {
            return resource.clone();
        };
        let mut out = Map::new();
        let mut kept_extensions: Vec<&str> = Vec::new();
        for (key, value) in fields {
            if ["schemas", "id", "meta"].iter().any(|name| key.eq_ignore_ascii_case(name)) {
                out.insert(key.clone(), value.clone());
            } else if let Some(id) = registry.extension_id(kind, key) {
                if let Some(rendered) = self.render_extension(registry, id, value) {
                    out.insert(key.clone(), rendered);
                    kept_extensions.push(id);
                }
            } else if let Some(attr) = registry.core_attribute(kind, key) {
                if let Some(rendered) = render_attribute(self.mode(None, attr), attr, value) {
                    out.insert(key.clone(), rendered);
                }
            } else if self.attributes.is_none() {
                // Not ours (e.g. something the API added): only a default projection keeps it.
                out.insert(key.clone(), value.clone());
            }
        }
        let schemas_key = out.keys().find(|key| key.eq_ignore_ascii_case("schemas")).cloned();
        if let Some(Value::Array(schemas)) = schemas_key.and_then(|key| out.get_mut(&key)) {
            schemas.retain(|schema| match schema.as_str() {
                Some(uri) => match registry.extension_id(kind, uri) {
                    Some(id) => kept_extensions.contains(&id),
                    None => true,
                },
                None => true,
            });
        }
        Value::Object(out)
    }

    /// Would [`render`](Self::render) output at least part of `attribute` (a path as accepted by
    /// [`parse`](Self::parse))? Lets the API skip fetching `members` (Group) or `groups` (User)
    /// when they are excluded (E11). Unknown attributes: `false`.
    pub fn includes(&self, registry: &SchemaRegistry, kind: ResourceKind, attribute: &str) -> bool {
        let attribute = attribute.trim();
        if ["schemas", "meta"].iter().any(|name| attribute.eq_ignore_ascii_case(name)) {
            return true;
        }
        if let Some(id) = registry.extension_id(kind, attribute) {
            return registry.schema(id).is_some_and(|schema| {
                !self.excludes_extension(id)
                    && schema.attributes.iter().any(|attr| !matches!(self.mode(Some(id), attr), Mode::Omit))
            });
        }
        let Some(resolved) = registry.resolve(kind, attribute) else {
            return false;
        };
        let extension = match resolved.home {
            AttrHome::Core => None,
            AttrHome::Extension(id) => Some(id),
        };
        match (self.mode(extension, resolved.attr), resolved.sub) {
            (Mode::Omit, _) => false,
            (Mode::Keep { .. }, None) => true,
            (Mode::Keep { include, exclude }, Some(sub)) => sub_kept(sub, include.as_deref(), &exclude),
        }
    }

    fn render_extension(&self, registry: &SchemaRegistry, id: &str, value: &Value) -> Option<Value> {
        let schema = registry.schema(id)?;
        let fields = value.as_object()?;
        if self.excludes_extension(id) {
            return None;
        }
        let mut out = Map::new();
        for (key, attr_value) in fields {
            match schema.attribute(key) {
                Some(attr) => {
                    if let Some(rendered) = render_attribute(self.mode(Some(id), attr), attr, attr_value) {
                        out.insert(key.clone(), rendered);
                    }
                }
                None if self.attributes.is_none() => {
                    out.insert(key.clone(), attr_value.clone());
                }
                None => {}
            }
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }

    fn excludes_extension(&self, id: &str) -> bool {
        self.excluded.iter().any(|sel| {
            sel.attr.is_none() && sel.extension.as_deref().is_some_and(|ext| ext.eq_ignore_ascii_case(id))
        })
    }

    /// Combines `returned` with both parameters for one attribute living in `extension`.
    fn mode(&self, extension: Option<&str>, attr: &AttributeDef) -> Mode {
        let returned =
            if attr.name == "meta" && extension.is_none() { Returned::Always } else { attr.returned };
        let same_home = |sel: &&Selector| match (&sel.extension, extension) {
            (None, None) => true,
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        let names_attr =
            |sel: &&Selector| sel.attr.as_deref().is_some_and(|name| name.eq_ignore_ascii_case(&attr.name));
        let include = match returned {
            Returned::Never => return Mode::Omit,
            Returned::Always => {
                return Mode::Keep { include: None, exclude: Vec::new() };
            }
            Returned::Default | Returned::Request => match &self.attributes {
                None if returned == Returned::Request => return Mode::Omit,
                None => None,
                Some(selectors) => {
                    let mut whole = false;
                    let mut subs = Vec::new();
                    for sel in selectors.iter().filter(same_home) {
                        match (&sel.attr, &sel.sub) {
                            // A whole extension selects its default attributes, not `request` ones.
                            (None, _) => whole |= returned == Returned::Default,
                            (Some(_), None) if names_attr(&sel) => whole = true,
                            (Some(_), Some(sub)) if names_attr(&sel) => subs.push(sub.clone()),
                            _ => {}
                        }
                    }
                    if whole {
                        None
                    } else if subs.is_empty() {
                        return Mode::Omit;
                    } else {
                        Some(subs)
                    }
                }
            },
        };
        let mut exclude = Vec::new();
        for sel in self.excluded.iter().filter(same_home) {
            match (&sel.attr, &sel.sub) {
                (None, _) => return Mode::Omit,
                (Some(_), None) if names_attr(&sel) => return Mode::Omit,
                (Some(_), Some(sub)) if names_attr(&sel) => exclude.push(sub.clone()),
                _ => {}
            }
        }
        Mode::Keep { include, exclude }
    }
}

fn parse_list(text: &str, registry: &SchemaRegistry, kind: ResourceKind) -> Vec<Selector> {
    let mut selectors = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        if let Some(id) = registry.extension_id(kind, entry) {
            selectors.push(Selector { extension: Some(id.to_owned()), attr: None, sub: None });
        } else if let Some(resolved) = registry.resolve(kind, entry) {
            let extension = match resolved.home {
                AttrHome::Core => None,
                AttrHome::Extension(id) => Some(id.to_owned()),
            };
            selectors.push(Selector {
                extension,
                attr: Some(resolved.attr.name.clone()),
                sub: resolved.sub.map(|sub| sub.name.clone()),
            });
        }
        // Anything else (unknown names, `schemas`, the core schema URN) is ignored.
    }
    selectors
}

fn sub_kept(sub: &AttributeDef, include: Option<&[String]>, exclude: &[String]) -> bool {
    let named = |list: &[String]| list.iter().any(|name| name.eq_ignore_ascii_case(&sub.name));
    match sub.returned {
        Returned::Never => false,
        Returned::Always => true,
        Returned::Request => include.is_some_and(named),
        Returned::Default => include.is_none_or(named) && !named(exclude),
    }
}

fn render_attribute(mode: Mode, attr: &AttributeDef, value: &Value) -> Option<Value> {
    let Mode::Keep { include, exclude } = mode else {
        return None;
    };
    if attr.attr_type != AttrType::Complex {
        return Some(value.clone());
    }
    let render_one = |element: &Value| -> Option<Value> {
        let Some(fields) = element.as_object() else {
            return Some(element.clone());
        };
        let mut out = Map::new();
        for (key, sub_value) in fields {
            let keep = match attr.sub_attribute(key) {
                Some(sub) => sub_kept(sub, include.as_deref(), &exclude),
                // Unknown sub-attributes only survive a projection that does not narrow `attr`.
                None => include.is_none() && exclude.is_empty(),
            };
            if keep {
                out.insert(key.clone(), sub_value.clone());
            }
        }
        (!out.is_empty()).then_some(Value::Object(out))
    };
    match value {
        Value::Array(items) => {
            let items: Vec<Value> = items.iter().filter_map(render_one).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        other => render_one(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ENTERPRISE_USER_SCHEMA;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
            "id": "u1",
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@x.org", "type": "work", "primary": true}, {"value": "h@x.org", "type": "home"}],
            "password": "must never leak",
            ENTERPRISE_USER_SCHEMA: {"department": "R&D", "manager": {"value": "m1", "displayName": "Boss"}},
            "meta": {"resourceType": "User", "version": "W/\"3\""},
        })
    }

    fn render(attributes: Option<&str>, excluded: Option<&str>) -> Value {
        let registry = SchemaRegistry::standard();
        let projection = Projection::parse(attributes, excluded, &registry, ResourceKind::User).unwrap();
        projection.render(&registry, ResourceKind::User, &user())
    }

    #[test]
    fn default_projection_drops_only_never_returned_attributes() {
        let mut expected = user();
        expected.as_object_mut().unwrap().remove("password");
        assert_eq!(render(None, None), expected);
    }

    #[test]
    fn attributes_narrow_to_the_named_ones_plus_always() {
        assert_eq!(
            render(Some("name.givenName, USERNAME, nosuch"), None),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "u1",
                "userName": "bjensen",
                "name": {"givenName": "Barbara"},
                "meta": {"resourceType": "User", "version": "W/\"3\""},
            })
        );
        assert_eq!(
            render(Some("emails.value"), None)["emails"],
            json!([{"value": "b@x.org"}, {"value": "h@x.org"}])
        );
        let out =
            render(Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"), None);
        assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({"manager": {"value": "m1"}}));
        assert_eq!(
            out["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA])
        );
        assert!(render(Some("password"), None).get("password").is_none());
        assert_eq!(render(Some(ENTERPRISE_USER_SCHEMA), None)[ENTERPRISE_USER_SCHEMA]["department"], "R&D");
    }

    #[test]
    fn excluded_attributes_remove_defaults_but_never_always_ones() {
        let out = render(None, Some("emails,name.familyName,id,meta,schemas"));
        assert!(out.get("emails").is_none());
        assert_eq!(out["name"], json!({"givenName": "Barbara"}));
        assert_eq!(out["id"], "u1");
        assert!(out.get("meta").is_some());
        let out = render(
            None,
            Some(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            ),
        );
        assert!(out.get(ENTERPRISE_USER_SCHEMA).is_none(), "an emptied extension object is dropped");
        assert_eq!(out["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User"]));
    }

    #[test]
    fn includes_tells_whether_members_or_groups_need_fetching() {
        let registry = SchemaRegistry::standard();
        let group = |a: Option<&str>, e: Option<&str>| {
            Projection::parse(a, e, &registry, ResourceKind::Group).unwrap().includes(
                &registry,
                ResourceKind::Group,
                "members",
            )
        };
        assert!(group(None, None));
        assert!(!group(None, Some("members")));
        assert!(!group(None, Some("Members")));
        assert!(group(None, Some("members.display")));
        assert!(!group(Some("displayName"), None));
        assert!(group(Some("members.value"), None));
        let user = Projection::parse(None, Some("groups"), &registry, ResourceKind::User).unwrap();
        assert!(!user.includes(&registry, ResourceKind::User, "groups"));
        assert!(user.includes(&registry, ResourceKind::User, "emails"));
        assert!(!Projection::default().includes(&registry, ResourceKind::User, "password"));
        assert!(!Projection::default().includes(&registry, ResourceKind::User, "nosuch"));
    }
}
