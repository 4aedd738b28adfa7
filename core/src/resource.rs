//! Input normalisation (RFC 7643 §2, RFC 7644 §3.3 and §3.5.1): this module owns turning the body
//! of a POST or PUT into the *canonical resource JSON* the store keeps, the full-replace rule of
//! PUT, and the per-attribute value coercion that PATCH ([`crate::patch`]) reuses, so every write
//! path accepts and rejects exactly the same values.
//!
//! Canonical resource JSON is an object with `schemas` (the core schema URN, then the URN of every
//! extension that has attributes), `id`, `externalId`, the core attributes under their canonical
//! names in schema order, one object per extension under its URN, and `meta`. Empty values (null,
//! `[]`, `{}`) never appear. Groups never contain `members` once [`split_members`] ran (the fold
//! keeps memberships as rows); users never contain `groups` (derived from memberships).
//!
//! Leniency, and why (see `/work/shared/scim/idp-quirks.md` for the request shapes):
//! - Attribute names, sub-attribute names and extension URNs match case-insensitively
//!   (RFC 7643 §2.1) and are rewritten to their canonical spelling.
//! - Unknown top-level attributes, unknown sub-attributes and unregistered schema URIs are
//!   ignored, not rejected: IdPs send tenant-specific custom attributes (Entra ID attribute
//!   mappings, Okta profile extensions, E14's ADSCIM schema URI) and a 400 would stop provisioning
//!   for the whole tenant, while the attributes we do know are still stored correctly.
//! - readOnly attributes (`id`, `meta`, `groups`, `manager.displayName`) are ignored on input
//!   (RFC 7643 §2.2): clients echo back what they read (O4, E13, O2).
//! - `null`, `[]` and `{}` mean "unset" (RFC 7643 §2.5) and are dropped (E13, E18).
//! - Booleans also accept the strings `"true"`/`"false"` in any case (E2).
//! - A single value for a multi-valued attribute is wrapped in an array; a plain string for a
//!   complex attribute with a `value` sub-attribute means `{"value": <string>}` (E15's manager
//!   shapes, generalised so `"members": ["<id>"]` works too).
//! - Strings are stored exactly as sent (E17); invalid values are rejected with a 400
//!   `invalidValue` that names the attribute and the offending value.
//! - writeOnly attributes (`password`) are validated and then dropped: scimflow is a provisioning
//!   pipeline, not an identity store, and never stores credentials (so it can never leak them).

use crate::error::{ScimError, ScimResult};
use crate::schema::{
    AttrHome, AttrType, AttributeDef, Mutability, ResolvedAttr, ResourceKind, SchemaRegistry,
};
use serde_json::{Map, Value};

/// The Group attribute whose values the fold keeps as membership rows, never inside the resource.
pub const MEMBERS: &str = "members";

/// One member of a Group as sent by a client: the member's id plus the optional `display` and
/// `type` (`"User"` or `"Group"`, canonical spelling). `$ref` is not kept: it is derived from the
/// id and type when rendering, and Entra ID sends `"$ref": null` anyway (E5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRef {
    pub value: String,
    pub display: Option<String>,
    pub member_type: Option<String>,
}

impl MemberRef {
    pub fn new(value: impl Into<String>) -> Self {
        MemberRef { value: value.into(), display: None, member_type: None }
    }

    /// The canonical JSON of one `members` element: `{"value", "display"?, "type"?}`.
    pub fn to_json(&self) -> Value {
        let mut element = Map::new();
        element.insert("value".into(), Value::String(self.value.clone()));
        if let Some(display) = &self.display {
            element.insert("display".into(), Value::String(display.clone()));
        }
        if let Some(member_type) = &self.member_type {
            element.insert("type".into(), Value::String(member_type.clone()));
        }
        Value::Object(element)
    }
}

/// Turns a POST or PUT body into canonical resource JSON (see the module docs for every rule).
/// The result has no `id` and no `meta`: the fold assigns those. Group `members` are kept, in
/// canonical form, for [`split_members`].
pub fn normalize_resource(registry: &SchemaRegistry, kind: ResourceKind, body: &Value) -> ScimResult<Value> {
    let Some(fields) = body.as_object() else {
        return Err(ScimError::invalid_syntax(format!(
            "a {} must be a JSON object, got {}",
            kind.name(),
            describe(body)
        )));
    };
    let mut doc = Map::new();
    put_fields(registry, kind, &mut doc, None, fields)?;
    let doc = canonicalize(registry, kind, &Value::Object(doc));
    check_required(registry, kind, &doc)?;
    Ok(doc)
}

/// Removes `members` from a normalized Group and returns them, so the fold can store memberships
/// as rows. Elements that are not valid members are skipped (a normalized group has none).
pub fn split_members(resource: &mut Value) -> Vec<MemberRef> {
    let Some(fields) = resource.as_object_mut() else {
        return Vec::new();
    };
    let Some(key) = find_key(fields, MEMBERS) else {
        return Vec::new();
    };
    let removed = fields.shift_remove(&key);
    match removed {
        Some(Value::Array(items)) => items.iter().filter_map(member_from_canonical).collect(),
        Some(item @ Value::Object(_)) => member_from_canonical(&item).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// PUT (RFC 7644 §3.5.1): `replacement` (already the output of [`normalize_resource`]) replaces
/// every attribute of `current`; attributes absent from it are removed. `id` and `meta` come from
/// `current`, readOnly attributes of `replacement` are ignored, and an immutable attribute that is
/// set in `current` must keep its value (400 `mutability`); if the replacement omits it, the
/// current value is kept, because an immutable value cannot be unset either.
///
/// Group `members` in `replacement` are passed through untouched: the caller splits them off
/// (before or after) with [`split_members`] and turns them into a full membership replacement.
pub fn replace_resource(
    registry: &SchemaRegistry,
    kind: ResourceKind,
    current: &Value,
    replacement: &Value,
) -> ScimResult<Value> {
    let empty = Map::new();
    let current_fields = current.as_object().unwrap_or(&empty);
    let Some(replacement_fields) = replacement.as_object() else {
        return Err(ScimError::invalid_syntax(format!(
            "a {} must be a JSON object, got {}",
            kind.name(),
            describe(replacement)
        )));
    };
    let mut doc = Map::new();
    if let Some(id) = get_ci(current_fields, "id") {
        doc.insert("id".into(), id.clone());
    }
    for (key, value) in replacement_fields {
        if key.eq_ignore_ascii_case("id")
            || key.eq_ignore_ascii_case("meta")
            || key.eq_ignore_ascii_case("schemas")
        {
            continue;
        }
        let read_only = registry
            .resolve(kind, key)
            .is_some_and(|resolved| resolved.attr.mutability == Mutability::ReadOnly);
        if !read_only {
            doc.insert(key.clone(), value.clone());
        }
    }
    if let Some(meta) = get_ci(current_fields, "meta") {
        doc.insert("meta".into(), meta.clone());
    }
    let mut doc = canonicalize(registry, kind, &Value::Object(doc));
    keep_immutable(registry, kind, current_fields, &mut doc)?;
    let doc = canonicalize(registry, kind, &doc);
    check_required(registry, kind, &doc)?;
    Ok(doc)
}

/// Immutable attributes set in `before` must keep their value in `after`; when `after` omits one,
/// the `before` value is carried over.
fn keep_immutable(
    registry: &SchemaRegistry,
    kind: ResourceKind,
    before: &Map<String, Value>,
    after: &mut Value,
) -> ScimResult<()> {
    let Some(after) = after.as_object_mut() else {
        return Ok(());
    };
    let core = registry.core_schema(kind).attributes.iter().chain(registry.common_attributes());
    keep_immutable_in(core, before, after)?;
    for (schema, _) in registry.extensions(kind) {
        let Some(Value::Object(before_ext)) = get_ci(before, &schema.id) else {
            continue;
        };
        let after_ext = after.entry(schema.id.clone()).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(after_ext) = after_ext {
            keep_immutable_in(schema.attributes.iter(), before_ext, after_ext)?;
        }
    }
    Ok(())
}

fn keep_immutable_in<'a>(
    attributes: impl Iterator<Item = &'a AttributeDef>,
    before: &Map<String, Value>,
    after: &mut Map<String, Value>,
) -> ScimResult<()> {
    for attr in attributes.filter(|attr| attr.mutability == Mutability::Immutable) {
        let Some(old) = get_ci(before, &attr.name).filter(|old| !old.is_null()) else {
            continue;
        };
        match get_ci(after, &attr.name) {
            None => {
                after.insert(attr.name.clone(), old.clone());
            }
            Some(new) if new == old => {}
            Some(new) => {
                return Err(ScimError::mutability(format!(
                    "attribute \"{}\" is immutable: it is set to {} and cannot be changed to {}",
                    attr.name,
                    describe(old),
                    describe(new)
                )));
            }
        }
    }
    Ok(())
}

fn put_fields(
    registry: &SchemaRegistry,
    kind: ResourceKind,
    doc: &mut Map<String, Value>,
    extension: Option<&str>,
    fields: &Map<String, Value>,
) -> ScimResult<()> {
    for (key, value) in fields {
        put_field(registry, kind, doc, extension, key, value)?;
    }
    Ok(())
}

fn put_field(
    registry: &SchemaRegistry,
    kind: ResourceKind,
    doc: &mut Map<String, Value>,
    extension: Option<&str>,
    key: &str,
    value: &Value,
) -> ScimResult<()> {
    if extension.is_none() {
        // `schemas` is rebuilt from the attributes present: listing an extension without
        // attributes adds nothing, and unknown URIs (E14) are simply not repeated.
        if key.eq_ignore_ascii_case("schemas") {
            return Ok(());
        }
        if let Some(id) = registry.extension_id(kind, key) {
            return match value {
                Value::Null => Ok(()),
                Value::Object(inner) => put_fields(registry, kind, doc, Some(id), inner),
                other => Err(ScimError::invalid_value(format!(
                    "extension \"{id}\" must be an object of its attributes, got {}",
                    describe(other)
                ))),
            };
        }
        // Some clients nest core attributes under the core schema URN, like an extension.
        if key.eq_ignore_ascii_case(kind.core_schema()) {
            if let Value::Object(inner) = value {
                return put_fields(registry, kind, doc, None, inner);
            }
            return Ok(());
        }
    }
    let path = match extension {
        Some(id) => format!("{id}:{key}"),
        None => key.to_owned(),
    };
    // Unknown attributes are ignored on purpose: see the module docs.
    let Some(resolved) = registry.resolve(kind, &path) else {
        return Ok(());
    };
    put_resolved(kind, doc, resolved, value)
}

fn put_resolved(
    kind: ResourceKind,
    doc: &mut Map<String, Value>,
    resolved: ResolvedAttr<'_>,
    value: &Value,
) -> ScimResult<()> {
    let attr = resolved.attr;
    let read_only = attr.mutability == Mutability::ReadOnly
        || resolved.sub.is_some_and(|sub| sub.mutability == Mutability::ReadOnly);
    if read_only {
        return Ok(());
    }
    let name = resolved.dotted();
    if attr.mutability == Mutability::WriteOnly {
        // Validated so a client learns about a malformed value, then dropped: scimflow never
        // stores credentials.
        coerce_attribute(attr, value, &name)?;
        return Ok(());
    }
    let slot = container_mut(doc, resolved.home);
    if is_group_members(kind, &resolved) {
        if resolved.sub.is_some() {
            return Err(ScimError::invalid_value(format!(
                "\"{name}\" cannot be set on its own; send \"members\" as an array of \
                 {{\"value\": \"<id>\"}} objects"
            )));
        }
        let members = coerce_members(value)?;
        if !members.is_empty() {
            let list = slot.entry(MEMBERS.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                list.extend(members.iter().map(MemberRef::to_json));
            }
        }
        return Ok(());
    }
    match resolved.sub {
        None => {
            let Some(coerced) = coerce_attribute(attr, value, &name)? else {
                return Ok(());
            };
            // Merging lets `"name.givenName"` and `"name": {...}` keys of one body combine.
            match (slot.get_mut(&attr.name), coerced) {
                (Some(Value::Object(existing)), Value::Object(new)) if !attr.multi_valued => {
                    existing.extend(new);
                }
                (_, coerced) => {
                    slot.insert(attr.name.clone(), coerced);
                }
            }
        }
        Some(sub) => {
            if attr.multi_valued {
                return Err(ScimError::invalid_value(format!(
                    "\"{name}\" addresses a sub-attribute of the multi-valued attribute \"{}\"; \
                     send \"{}\" as an array of objects instead",
                    attr.name, attr.name
                )));
            }
            let Some(coerced) = coerce_single(sub, value, &name)? else {
                return Ok(());
            };
            let entry = slot.entry(attr.name.clone()).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(object) = entry {
                object.insert(sub.name.clone(), coerced);
            }
        }
    }
    Ok(())
}

/// The object attributes of `home` live in: the resource itself or its extension object.
pub(crate) fn container_mut<'a>(
    doc: &'a mut Map<String, Value>,
    home: AttrHome<'_>,
) -> &'a mut Map<String, Value> {
    match home {
        AttrHome::Core => doc,
        AttrHome::Extension(id) => {
            canonical_key(doc, id);
            let entry = doc.entry(id.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(object) => object,
                _ => unreachable!("replaced by an object just above"),
            }
        }
    }
}

pub(crate) fn is_group_members(kind: ResourceKind, resolved: &ResolvedAttr<'_>) -> bool {
    kind == ResourceKind::Group
        && resolved.home == AttrHome::Core
        && resolved.attr.name.eq_ignore_ascii_case(MEMBERS)
}

/// A single-valued complex attribute with a `value` sub-attribute (Enterprise `manager`): a
/// reference to another resource. It accepts a plain string id and an array of exactly one
/// object (E15), and without a non-empty `value` it means "no reference".
pub(crate) fn is_reference_like(attr: &AttributeDef) -> bool {
    !attr.multi_valued && attr.attr_type == AttrType::Complex && attr.sub_attribute("value").is_some()
}

/// Validates and coerces the value of a whole attribute (multi-valued or not). `Ok(None)` means
/// the value is "unset" (null, empty array, empty object, a reference without id).
pub(crate) fn coerce_attribute(attr: &AttributeDef, value: &Value, name: &str) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi_valued {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(coerced) = coerce_single(attr, item, name)? {
                out.push(coerced);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        if out.iter().filter(|element| is_primary(element)).count() > 1 {
            return Err(ScimError::invalid_value(format!(
                "attribute \"{name}\" has more than one value with \"primary\": true; at most one \
                 value may be primary"
            )));
        }
        return Ok(Some(Value::Array(out)));
    }
    match value {
        Value::Array(items) if items.is_empty() => Ok(None),
        Value::Array(items) if is_reference_like(attr) && items.len() == 1 => {
            coerce_single(attr, &items[0], name)
        }
        Value::Array(_) => Err(ScimError::invalid_value(format!(
            "attribute \"{name}\" is single-valued, got {}",
            describe(value)
        ))),
        single => coerce_single(attr, single, name),
    }
}

/// Validates and coerces one value of `attr` (one element, for a multi-valued attribute).
pub(crate) fn coerce_single(attr: &AttributeDef, value: &Value, name: &str) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    let ok = |value: &Value| Ok(Some(value.clone()));
    match (attr.attr_type, value) {
        (AttrType::Complex, _) => coerce_complex(attr, value, name),
        (AttrType::String | AttrType::Reference, Value::String(_)) => ok(value),
        (AttrType::Boolean, Value::Bool(_)) => ok(value),
        // E2: Entra ID sends "True"/"False" strings for boolean attributes.
        (AttrType::Boolean, Value::String(text)) if text.eq_ignore_ascii_case("true") => {
            Ok(Some(Value::Bool(true)))
        }
        (AttrType::Boolean, Value::String(text)) if text.eq_ignore_ascii_case("false") => {
            Ok(Some(Value::Bool(false)))
        }
        (AttrType::Integer, Value::Number(number)) if number.is_i64() || number.is_u64() => ok(value),
        (AttrType::Decimal, Value::Number(_)) => ok(value),
        (AttrType::DateTime, Value::String(text)) if chrono::DateTime::parse_from_rfc3339(text).is_ok() => {
            ok(value)
        }
        (AttrType::Binary, Value::String(text)) if is_base64(text) => ok(value),
        _ => Err(ScimError::invalid_value(format!(
            "attribute \"{name}\" must be {}, got {}",
            expected(attr.attr_type),
            describe(value)
        ))),
    }
}

fn expected(attr_type: AttrType) -> &'static str {
    match attr_type {
        AttrType::String => "a string",
        AttrType::Reference => "a string (a reference)",
        AttrType::Boolean => "a boolean (true or false)",
        AttrType::Integer => "an integer",
        AttrType::Decimal => "a number",
        AttrType::DateTime => "an RFC 3339 dateTime string such as \"2024-05-01T12:00:00Z\"",
        AttrType::Binary => "a base64-encoded string",
        AttrType::Complex => "an object",
    }
}

fn coerce_complex(attr: &AttributeDef, value: &Value, name: &str) -> ScimResult<Option<Value>> {
    let fields = match value {
        Value::Object(fields) => fields.clone(),
        // E15 (`"manager": "<id>"`), generalised to every complex attribute with a `value`.
        Value::String(text) if attr.sub_attribute("value").is_some() => {
            let mut fields = Map::new();
            fields.insert("value".into(), Value::String(text.clone()));
            fields
        }
        other => {
            let subs: Vec<&str> = attr.sub_attributes.iter().map(|s| s.name.as_str()).collect();
            return Err(ScimError::invalid_value(format!(
                "attribute \"{name}\" must be an object with sub-attributes {}, got {}",
                subs.join(", "),
                describe(other)
            )));
        }
    };
    let mut coerced: Vec<(&AttributeDef, Value)> = Vec::new();
    for (key, sub_value) in &fields {
        // Unknown sub-attributes are ignored like unknown attributes; readOnly ones are the
        // server's to set.
        let Some(sub) = attr.sub_attribute(key) else {
            continue;
        };
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        let sub_name = format!("{name}.{}", sub.name);
        if let Some(sub_value) = coerce_single(sub, sub_value, &sub_name)? {
            coerced.retain(|(existing, _)| existing.name != sub.name);
            coerced.push((sub, sub_value));
        }
    }
    let mut out = Map::new();
    for sub in &attr.sub_attributes {
        if let Some((_, sub_value)) = coerced.iter().find(|(def, _)| def.name == sub.name) {
            out.insert(sub.name.clone(), sub_value.clone());
        }
    }
    if is_reference_like(attr) && !has_reference_value(&out) {
        // E15: `{"value": ""}` (and a reference without any id) means "no manager".
        return Ok(None);
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(Value::Object(out)))
}

fn has_reference_value(fields: &Map<String, Value>) -> bool {
    get_ci(fields, "value").and_then(Value::as_str).is_some_and(|id| !id.is_empty())
}

/// Group `members`: an array (or a single element) of `{"value": id, "display"?, "type"?,
/// "$ref"?}` objects or plain id strings. `$ref` is dropped whatever it holds (E5 sends null);
/// `type` must be `User` or `Group` in any case and is stored in canonical spelling, because the
/// fold keys membership rows on it.
pub(crate) fn coerce_members(value: &Value) -> ScimResult<Vec<MemberRef>> {
    let items: Vec<&Value> = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let mut members = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let fields = match item {
            Value::Null => continue,
            Value::Object(fields) => fields.clone(),
            Value::String(id) => {
                let mut fields = Map::new();
                fields.insert("value".into(), Value::String(id.clone()));
                fields
            }
            other => {
                return Err(ScimError::invalid_value(format!(
                    "members[{index}] must be an object like {{\"value\": \"<id>\"}}, got {}",
                    describe(other)
                )));
            }
        };
        let value = match get_ci(&fields, "value") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
            other => {
                return Err(ScimError::invalid_value(format!(
                    "members[{index}] needs a non-empty string \"value\" (the id of the member), \
                     got {}",
                    other.map_or_else(|| "nothing".to_owned(), describe)
                )));
            }
        };
        let display = match get_ci(&fields, "display") {
            None | Some(Value::Null) => None,
            Some(Value::String(display)) => Some(display.clone()),
            Some(other) => {
                return Err(ScimError::invalid_value(format!(
                    "members[{index}].display must be a string, got {}",
                    describe(other)
                )));
            }
        };
        let member_type = match get_ci(&fields, "type") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.eq_ignore_ascii_case("User") => Some("User".into()),
            Some(Value::String(text)) if text.eq_ignore_ascii_case("Group") => Some("Group".into()),
            Some(other) => {
                return Err(ScimError::invalid_value(format!(
                    "members[{index}].type must be \"User\" or \"Group\", got {}",
                    describe(other)
                )));
            }
        };
        members.push(MemberRef { value, display, member_type });
    }
    Ok(members)
}

fn member_from_canonical(element: &Value) -> Option<MemberRef> {
    let fields = element.as_object()?;
    let value = get_ci(fields, "value")?.as_str().filter(|id| !id.is_empty())?.to_owned();
    let text = |key: &str| get_ci(fields, key).and_then(Value::as_str).map(str::to_owned);
    Some(MemberRef { value, display: text("display"), member_type: text("type") })
}

/// Rebuilds `doc` in canonical form: `schemas` from the extensions present, then `id`,
/// `externalId`, core attributes in schema order, extension objects in registry order, `meta`,
/// then any key this module does not know (kept, so a caller's additions survive). Names are
/// rewritten to their canonical spelling, sub-attributes ordered as in the schema, unknown
/// sub-attributes and empty values dropped, and references without an id removed.
pub(crate) fn canonicalize(registry: &SchemaRegistry, kind: ResourceKind, doc: &Value) -> Value {
    let Some(fields) = doc.as_object() else {
        return doc.clone();
    };
    let mut out = Map::new();
    out.insert("schemas".into(), Value::Null);
    let common = registry.common_attributes();
    let core = registry.core_schema(kind);
    let mut known: Vec<&str> = vec!["schemas"];
    for attr in common.iter().filter(|attr| attr.name != "meta").chain(&core.attributes) {
        known.push(&attr.name);
        if let Some(value) = get_ci(fields, &attr.name).and_then(|value| tidy_value(attr, value)) {
            out.insert(attr.name.clone(), value);
        }
    }
    let mut schemas = vec![Value::String(core.id.clone())];
    for (schema, _) in registry.extensions(kind) {
        known.push(&schema.id);
        let Some(Value::Object(extension)) = get_ci(fields, &schema.id) else {
            continue;
        };
        let mut tidy = Map::new();
        for attr in &schema.attributes {
            if let Some(value) = get_ci(extension, &attr.name).and_then(|v| tidy_value(attr, v)) {
                tidy.insert(attr.name.clone(), value);
            }
        }
        if !tidy.is_empty() {
            out.insert(schema.id.clone(), Value::Object(tidy));
            schemas.push(Value::String(schema.id.clone()));
        }
    }
    known.push("meta");
    if let Some(meta) = get_ci(fields, "meta").filter(|meta| !meta.is_null()) {
        out.insert("meta".into(), meta.clone());
    }
    for (key, value) in fields {
        if !known.iter().any(|name| name.eq_ignore_ascii_case(key)) {
            out.insert(key.clone(), value.clone());
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    Value::Object(out)
}

fn tidy_value(attr: &AttributeDef, value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) if attr.multi_valued => {
            let items: Vec<Value> = items.iter().filter_map(|item| tidy_single(attr, item)).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Array(items) if items.is_empty() => None,
        other => tidy_single(attr, other),
    }
}

fn tidy_single(attr: &AttributeDef, value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(fields) if attr.attr_type == AttrType::Complex => {
            let mut out = Map::new();
            for sub in &attr.sub_attributes {
                if let Some(sub_value) = get_ci(fields, &sub.name).filter(|v| !v.is_null()) {
                    out.insert(sub.name.clone(), sub_value.clone());
                }
            }
            if out.is_empty() || (is_reference_like(attr) && !has_reference_value(&out)) {
                return None;
            }
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

/// Required attributes (`userName`, Group `displayName`, and those of extensions that are
/// present or required) must be present and not blank: 400 `invalidValue` otherwise.
pub(crate) fn check_required(registry: &SchemaRegistry, kind: ResourceKind, doc: &Value) -> ScimResult<()> {
    let empty = Map::new();
    let fields = doc.as_object().unwrap_or(&empty);
    let missing = |attributes: &[AttributeDef], fields: &Map<String, Value>| {
        attributes
            .iter()
            .filter(|attr| attr.required && attr.mutability != Mutability::ReadOnly)
            .find(|attr| match get_ci(fields, &attr.name) {
                None | Some(Value::Null) => true,
                Some(Value::String(text)) => text.trim().is_empty(),
                Some(Value::Array(items)) => items.is_empty(),
                Some(_) => false,
            })
            .map(|attr| attr.name.clone())
    };
    if let Some(name) = missing(&registry.core_schema(kind).attributes, fields) {
        return Err(ScimError::invalid_value(format!(
            "attribute \"{name}\" is required for a {} and must not be empty",
            kind.name()
        )));
    }
    for (schema, required) in registry.extensions(kind) {
        let extension = match get_ci(fields, &schema.id) {
            Some(Value::Object(extension)) => extension,
            _ if required => &empty,
            _ => continue,
        };
        if let Some(name) = missing(&schema.attributes, extension) {
            return Err(ScimError::invalid_value(format!(
                "attribute \"{}:{name}\" is required and must not be empty",
                schema.id
            )));
        }
    }
    Ok(())
}

pub(crate) fn is_primary(element: &Value) -> bool {
    element
        .as_object()
        .and_then(|fields| get_ci(fields, "primary"))
        .is_some_and(|primary| primary == &Value::Bool(true))
}

/// Looks `key` up exactly, then case-insensitively (RFC 7643 §2.1: names are case-insensitive).
pub(crate) fn get_ci<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    fields
        .get(key)
        .or_else(|| fields.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)).map(|(_, value)| value))
}

/// Renames a key spelled differently (case-insensitively equal) to its canonical `name`.
pub(crate) fn canonical_key(fields: &mut Map<String, Value>, name: &str) {
    let Some(existing) = find_key(fields, name).filter(|existing| existing != name) else {
        return;
    };
    if let Some(value) = fields.shift_remove(&existing) {
        fields.insert(name.to_owned(), value);
    }
}

/// The actual spelling of `key` in `fields`, matched case-insensitively.
pub(crate) fn find_key(fields: &Map<String, Value>, key: &str) -> Option<String> {
    if fields.contains_key(key) {
        return Some(key.to_owned());
    }
    fields.keys().find(|name| name.eq_ignore_ascii_case(key)).cloned()
}

/// A short rendering of a client value for error messages: the JSON text of scalars (truncated),
/// "an object" / "an array" for the rest.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Object(_) => "an object".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Null => "null".to_owned(),
        scalar => {
            let text = scalar.to_string();
            if text.chars().count() > 80 {
                format!("{}...", text.chars().take(80).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// RFC 4648 §4 base64 (standard alphabet, padding optional); line breaks are tolerated because
/// certificates are often sent PEM-wrapped.
fn is_base64(text: &str) -> bool {
    let body: Vec<u8> = text.bytes().filter(|byte| !matches!(byte, b'\r' | b'\n')).collect();
    let padding = body.iter().rev().take_while(|&&byte| byte == b'=').count();
    if padding > 2 {
        return false;
    }
    let data = &body[..body.len() - padding];
    let alphabet_ok = data.iter().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/'));
    let length_ok = if padding > 0 { body.len().is_multiple_of(4) } else { data.len() % 4 != 1 };
    alphabet_ok && length_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ScimType;
    use crate::schema::ENTERPRISE_USER_SCHEMA;
    use serde_json::json;

    fn user(body: Value) -> ScimResult<Value> {
        normalize_resource(&SchemaRegistry::standard(), ResourceKind::User, &body)
    }
    fn group(body: Value) -> ScimResult<Value> {
        normalize_resource(&SchemaRegistry::standard(), ResourceKind::Group, &body)
    }

    #[test]
    fn names_are_matched_case_insensitively_and_rewritten() {
        let out = user(json!({
            "USERNAME": "bjensen",
            "Name": {"GIVENNAME": "Barbara", "familyname": "Jensen"},
            "Emails": [{"Value": "b@x.org", "TYPE": "work", "Primary": "TRUE"}],
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bjensen",
                "name": {"givenName": "Barbara", "familyName": "Jensen"},
                "emails": [{"value": "b@x.org", "type": "work", "primary": true}],
            })
        );
    }

    #[test]
    fn type_errors_name_the_attribute_and_the_value() {
        let err = user(json!({"userName": "a", "active": "yes"})).unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
        assert_eq!(err.detail, "attribute \"active\" must be a boolean (true or false), got \"yes\"");
        let err = user(json!({"userName": 5})).unwrap_err();
        assert_eq!(err.detail, "attribute \"userName\" must be a string, got 5");
        let err = user(json!({"userName": "a", "name": "Barbara"})).unwrap_err();
        assert!(err.detail.starts_with("attribute \"name\" must be an object"), "{}", err.detail);
        let err = user(json!({"userName": "a", "emails": [{"value": 1}]})).unwrap_err();
        assert_eq!(err.detail, "attribute \"emails.value\" must be a string, got 1");
    }

    #[test]
    fn binary_and_datetime_are_checked_but_kept_as_sent() {
        let ok = user(json!({"userName": "a", "x509Certificates": [{"value": "TUlJ\nQ2dE"}]}));
        assert_eq!(ok.unwrap()["x509Certificates"][0]["value"], "TUlJ\nQ2dE");
        let err = user(json!({"userName": "a", "x509Certificates": [{"value": "not base64!"}]}));
        assert_eq!(err.unwrap_err().scim_type, Some(ScimType::InvalidValue));
        assert!(is_base64("QQ=="));
        assert!(is_base64("QQ"));
        assert!(!is_base64("Q"));
        assert!(!is_base64("QQ="));
        assert!(!is_base64("Q==="));
    }

    #[test]
    fn single_values_are_wrapped_and_two_primaries_are_rejected() {
        let out = user(json!({"userName": "a", "emails": {"value": "a@x"}})).unwrap();
        assert_eq!(out["emails"], json!([{"value": "a@x"}]));
        let err = user(json!({"userName": "a", "emails": [
            {"value": "a@x", "primary": true}, {"value": "b@x", "primary": "true"}]}))
        .unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
        assert!(err.detail.contains("more than one value with \"primary\": true"));
    }

    #[test]
    fn required_attributes_must_be_present_and_not_blank() {
        let err = user(json!({"name": {"givenName": "x"}})).unwrap_err();
        assert_eq!(err.detail, "attribute \"userName\" is required for a User and must not be empty");
        assert!(user(json!({"userName": "  "})).is_err());
        let err = group(json!({"members": []})).unwrap_err();
        assert_eq!(err.detail, "attribute \"displayName\" is required for a Group and must not be empty");
    }

    #[test]
    fn extension_attributes_nested_or_flattened() {
        let out = user(json!({
            "userName": "a",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "R&D"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter": "42",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value": "m1",
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
                "userName": "a",
                ENTERPRISE_USER_SCHEMA: {"costCenter": "42", "department": "R&D", "manager": {"value": "m1"}},
            })
        );
    }

    #[test]
    fn manager_accepts_object_array_string_and_empty_means_none() {
        let manager = |m: Value| {
            user(json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"manager": m}}))
                .map(|u| u.get(ENTERPRISE_USER_SCHEMA).cloned())
        };
        let expected = Some(json!({"manager": {"value": "m1"}}));
        assert_eq!(manager(json!({"value": "m1", "displayName": "Boss"})).unwrap(), expected);
        assert_eq!(manager(json!([{"value": "m1"}])).unwrap(), expected);
        assert_eq!(manager(json!("m1")).unwrap(), expected);
        assert_eq!(manager(json!({"value": ""})).unwrap(), None);
        assert_eq!(manager(json!("")).unwrap(), None);
        assert_eq!(manager(json!([])).unwrap(), None);
        assert!(manager(json!([{"value": "a"}, {"value": "b"}])).is_err());
    }

    #[test]
    fn password_is_validated_then_dropped() {
        let out = user(json!({"userName": "a", "password": "s3cret"})).unwrap();
        assert!(out.get("password").is_none());
        let err = user(json!({"userName": "a", "password": 12})).unwrap_err();
        assert_eq!(err.detail, "attribute \"password\" must be a string, got 12");
    }

    #[test]
    fn members_are_normalised_and_split_off() {
        let mut out = group(json!({
            "displayName": "G",
            "members": [
                {"value": "u1", "$ref": null, "type": "user"},
                {"value": "g2", "$ref": "https://x/Groups/g2", "display": "Nested", "type": "Group"},
                "u3",
            ],
        }))
        .unwrap();
        assert_eq!(
            out["members"],
            json!([{"value": "u1", "type": "User"}, {"value": "g2", "display": "Nested", "type": "Group"}, {"value": "u3"}])
        );
        let members = split_members(&mut out);
        assert_eq!(
            out,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"})
        );
        assert_eq!(members.len(), 3);
        assert_eq!(members[1].display.as_deref(), Some("Nested"));
        assert_eq!(members[0].member_type.as_deref(), Some("User"));
        let err = group(json!({"displayName": "G", "members": [{"display": "x"}]})).unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
        assert!(err.detail.starts_with("members[0] needs a non-empty string \"value\""));
        let err = group(json!({"displayName": "G", "members": [{"value": "x", "type": "Robot"}]}));
        assert!(err.is_err());
    }

    #[test]
    fn replace_keeps_id_and_meta_and_removes_absent_attributes() {
        let registry = SchemaRegistry::standard();
        let current = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "1", "userName": "a", "title": "Boss",
            "meta": {"resourceType": "User", "version": "W/\"1\""},
        });
        let replacement = user(json!({"userName": "b", "id": "2"})).unwrap();
        let out = replace_resource(&registry, ResourceKind::User, &current, &replacement).unwrap();
        assert_eq!(
            out,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "1", "userName": "b",
                "meta": {"resourceType": "User", "version": "W/\"1\""},
            })
        );
    }

    #[test]
    fn replace_rejects_changing_an_immutable_attribute() {
        let mut registry = SchemaRegistry::standard();
        registry.register_extension(
            ResourceKind::User,
            crate::schema::Schema {
                id: "urn:example:ext:1.0:User".into(),
                name: "Ext".into(),
                description: String::new(),
                attributes: vec![AttributeDef::string("badge").mutability(Mutability::Immutable)],
            },
            false,
        );
        let current = json!({"id": "1", "userName": "a", "urn:example:ext:1.0:User": {"badge": "7"}});
        let same = normalize_resource(
            &registry,
            ResourceKind::User,
            &json!({"userName": "a", "urn:example:ext:1.0:User:badge": "7"}),
        )
        .unwrap();
        assert!(replace_resource(&registry, ResourceKind::User, &current, &same).is_ok());
        let omitted = normalize_resource(&registry, ResourceKind::User, &json!({"userName": "b"})).unwrap();
        let out = replace_resource(&registry, ResourceKind::User, &current, &omitted).unwrap();
        assert_eq!(out["urn:example:ext:1.0:User"]["badge"], "7");
        let changed = normalize_resource(
            &registry,
            ResourceKind::User,
            &json!({"userName": "a", "urn:example:ext:1.0:User:badge": "8"}),
        )
        .unwrap();
        let err = replace_resource(&registry, ResourceKind::User, &current, &changed).unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::Mutability));
        assert_eq!(
            err.detail,
            "attribute \"badge\" is immutable: it is set to \"7\" and cannot be changed to \"8\""
        );
    }

    #[test]
    fn non_object_bodies_are_rejected_not_panicked_on() {
        assert_eq!(user(json!([1])).unwrap_err().scim_type, Some(ScimType::InvalidSyntax));
        assert!(user(json!({"userName": "a", ENTERPRISE_USER_SCHEMA: 3})).is_err());
    }
}
