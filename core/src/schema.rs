//! Schema definitions as data (RFC 7643 §2 and §7): attribute characteristics, the built-in User,
//! Enterprise User and Group schemas, and the registry that resolves attribute paths against them.
//!
//! Everything that validates, filters, patches or renders a resource asks this module what an
//! attribute is, so a tenant-defined extension is just another [`Schema`] in the registry.

use serde_json::{Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute and its characteristics (RFC 7643 §2.2 and §7).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeDef {
    pub name: String,
    pub attr_type: AttrType,
    pub multi_valued: bool,
    pub description: String,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: Vec<String>,
    pub reference_types: Vec<String>,
    pub sub_attributes: Vec<AttributeDef>,
}

impl AttributeDef {
    /// A readWrite, optional, single-valued, case-insensitive string: the RFC's defaults.
    pub fn new(name: &str, attr_type: AttrType) -> Self {
        AttributeDef {
            name: name.to_owned(),
            attr_type,
            multi_valued: false,
            description: String::new(),
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: Vec::new(),
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
        }
    }
    pub fn string(name: &str) -> Self {
        Self::new(name, AttrType::String)
    }
    pub fn boolean(name: &str) -> Self {
        Self::new(name, AttrType::Boolean)
    }
    pub fn reference(name: &str, types: &[&str]) -> Self {
        let mut attr = Self::new(name, AttrType::Reference);
        attr.reference_types = types.iter().map(|t| t.to_string()).collect();
        attr.case_exact = true;
        attr
    }
    pub fn complex(name: &str, sub_attributes: Vec<AttributeDef>) -> Self {
        let mut attr = Self::new(name, AttrType::Complex);
        attr.sub_attributes = sub_attributes;
        attr
    }
    pub fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    pub fn mutability(mut self, mutability: Mutability) -> Self {
        self.mutability = mutability;
        self
    }
    pub fn returned(mut self, returned: Returned) -> Self {
        self.returned = returned;
        self
    }
    pub fn unique(mut self, uniqueness: Uniqueness) -> Self {
        self.uniqueness = uniqueness;
        self
    }
    pub fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|v| v.to_string()).collect();
        self
    }
    pub fn describe(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }

    /// Finds a sub-attribute by name, case-insensitively (RFC 7643 §2.1).
    pub fn sub_attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.sub_attributes.iter().find(|sub| sub.name.eq_ignore_ascii_case(name))
    }

    /// The RFC 7643 §7 representation, as served by `/Schemas`.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "name": self.name,
            "type": self.attr_type.as_str(),
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability.as_str(),
            "returned": self.returned.as_str(),
            "uniqueness": self.uniqueness.as_str(),
        });
        if !self.canonical_values.is_empty() {
            body["canonicalValues"] = json!(self.canonical_values);
        }
        if !self.reference_types.is_empty() {
            body["referenceTypes"] = json!(self.reference_types);
        }
        if !self.sub_attributes.is_empty() {
            body["subAttributes"] =
                Value::Array(self.sub_attributes.iter().map(AttributeDef::to_json).collect());
        }
        body
    }
}

/// A schema (core or extension): its URN id and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub id: String,
    pub name: String,
    pub description: String,
    pub attributes: Vec<AttributeDef>,
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes.iter().find(|attr| attr.name.eq_ignore_ascii_case(name))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(AttributeDef::to_json).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema", "location": format!("/Schemas/{}", self.id)},
        })
    }
}

/// The two resource types scimflow serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "/Users",
            ResourceKind::Group => "/Groups",
        }
    }
    pub fn core_schema(self) -> &'static str {
        match self {
            ResourceKind::User => USER_SCHEMA,
            ResourceKind::Group => GROUP_SCHEMA,
        }
    }
    pub fn parse(name: &str) -> Option<ResourceKind> {
        if name.eq_ignore_ascii_case("User") {
            Some(ResourceKind::User)
        } else if name.eq_ignore_ascii_case("Group") {
            Some(ResourceKind::Group)
        } else {
            None
        }
    }
}

/// A resource type: its core schema and the extensions it accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceTypeDef {
    pub kind: ResourceKind,
    pub description: String,
    /// Extension schema ids and whether each is required.
    pub extensions: Vec<(String, bool)>,
}

impl ResourceTypeDef {
    pub fn to_json(&self) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.kind.name(),
            "name": self.kind.name(),
            "endpoint": self.kind.endpoint(),
            "description": self.description,
            "schema": self.kind.core_schema(),
            "schemaExtensions": self.extensions.iter().map(|(id, required)| json!({"schema": id, "required": required})).collect::<Vec<_>>(),
            "meta": {"resourceType": "ResourceType", "location": format!("/ResourceTypes/{}", self.kind.name())},
        })
    }
}

/// Where an attribute lives: at the top level of the resource (core schema and common
/// attributes) or inside an extension object keyed by the extension URN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrHome<'a> {
    Core,
    Extension(&'a str),
}

/// An attribute path resolved against the registry: the attribute, optionally one sub-attribute,
/// and where it lives in the JSON document.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAttr<'a> {
    pub home: AttrHome<'a>,
    pub attr: &'a AttributeDef,
    pub sub: Option<&'a AttributeDef>,
}

impl<'a> ResolvedAttr<'a> {
    /// The definition of the addressed value: the sub-attribute if there is one.
    pub fn leaf(&self) -> &'a AttributeDef {
        self.sub.unwrap_or(self.attr)
    }
    /// Canonical dotted path without URN, e.g. `name.givenName` (for index names and messages).
    pub fn dotted(&self) -> String {
        match self.sub {
            Some(sub) => format!("{}.{}", self.attr.name, sub.name),
            None => self.attr.name.clone(),
        }
    }
}

/// All schemas and resource types. Built-ins come from [`SchemaRegistry::standard`]; more
/// extension schemas can be registered as data.
#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    schemas: Vec<Schema>,
    resource_types: Vec<ResourceTypeDef>,
    common: Vec<AttributeDef>,
}

impl SchemaRegistry {
    /// User (with the Enterprise User extension) and Group, as RFC 7643 defines them.
    pub fn standard() -> Self {
        SchemaRegistry {
            schemas: vec![user_schema(), enterprise_user_schema(), group_schema()],
            resource_types: vec![
                ResourceTypeDef {
                    kind: ResourceKind::User,
                    description: "User Account".into(),
                    extensions: vec![(ENTERPRISE_USER_SCHEMA.into(), false)],
                },
                ResourceTypeDef {
                    kind: ResourceKind::Group,
                    description: "Group".into(),
                    extensions: vec![],
                },
            ],
            common: common_attributes(),
        }
    }

    /// Adds an extension schema to a resource type (e.g. a tenant's custom attributes).
    pub fn register_extension(&mut self, kind: ResourceKind, schema: Schema, required: bool) {
        if let Some(resource_type) = self.resource_types.iter_mut().find(|rt| rt.kind == kind) {
            resource_type.extensions.push((schema.id.clone(), required));
        }
        self.schemas.push(schema);
    }

    pub fn schemas(&self) -> &[Schema] {
        &self.schemas
    }
    pub fn resource_types(&self) -> &[ResourceTypeDef] {
        &self.resource_types
    }
    pub fn schema(&self, id: &str) -> Option<&Schema> {
        self.schemas.iter().find(|schema| schema.id.eq_ignore_ascii_case(id))
    }
    pub fn resource_type(&self, kind: ResourceKind) -> &ResourceTypeDef {
        self.resource_types
            .iter()
            .find(|rt| rt.kind == kind)
            .expect("every ResourceKind is registered by SchemaRegistry::standard")
    }
    pub fn core_schema(&self, kind: ResourceKind) -> &Schema {
        self.schema(kind.core_schema()).expect("core schemas are always registered")
    }
    /// The extension schemas of `kind`, with their `required` flag.
    pub fn extensions(&self, kind: ResourceKind) -> impl Iterator<Item = (&Schema, bool)> {
        self.resource_type(kind)
            .extensions
            .iter()
            .filter_map(|(id, required)| self.schema(id).map(|schema| (schema, *required)))
    }
    /// `id`, `externalId` and `meta`: attributes every resource has (RFC 7643 §3.1).
    pub fn common_attributes(&self) -> &[AttributeDef] {
        &self.common
    }

    /// Returns the extension schema id that `key` names (case-insensitively), if `key` is the
    /// URN of one of `kind`'s extensions.
    pub fn extension_id(&self, kind: ResourceKind, key: &str) -> Option<&str> {
        self.resource_type(kind)
            .extensions
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(key))
            .map(|(id, _)| id.as_str())
    }

    /// Finds a top-level attribute of `kind` in its core schema or the common attributes.
    pub fn core_attribute(&self, kind: ResourceKind, name: &str) -> Option<&AttributeDef> {
        self.core_schema(kind)
            .attribute(name)
            .or_else(|| self.common.iter().find(|attr| attr.name.eq_ignore_ascii_case(name)))
    }

    /// Resolves a textual attribute path such as `userName`, `name.givenName`, `emails.value`,
    /// `urn:ietf:params:scim:schemas:core:2.0:User:name.givenName` or
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
    /// Names match case-insensitively. Returns `None` for unknown attributes.
    pub fn resolve(&self, kind: ResourceKind, path: &str) -> Option<ResolvedAttr<'_>> {
        let (urn, rest) = self.split_urn(kind, path);
        let (name, sub_name) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        let (home, attr) = match urn {
            None => (AttrHome::Core, self.core_attribute(kind, name)?),
            Some(id) if id.eq_ignore_ascii_case(kind.core_schema()) => {
                (AttrHome::Core, self.core_attribute(kind, name)?)
            }
            Some(id) => {
                let schema = self.schema(id)?;
                (AttrHome::Extension(schema.id.as_str()), schema.attribute(name)?)
            }
        };
        let sub = match sub_name {
            Some(sub_name) => Some(attr.sub_attribute(sub_name)?),
            None => None,
        };
        Some(ResolvedAttr { home, attr, sub })
    }

    /// Splits a leading schema URN off `path`. The URN is the longest registered schema id of
    /// `kind` (core or extension) followed by `:`; returns `(None, path)` when there is none.
    pub fn split_urn<'p>(&self, kind: ResourceKind, path: &'p str) -> (Option<&str>, &'p str) {
        if !path.get(..4).is_some_and(|head| head.eq_ignore_ascii_case("urn:")) {
            return (None, path);
        }
        let candidates = std::iter::once(kind.core_schema())
            .chain(self.resource_type(kind).extensions.iter().map(|(id, _)| id.as_str()));
        let mut best: Option<&str> = None;
        for id in candidates {
            let matches = path.len() > id.len()
                && path.as_bytes()[id.len()] == b':'
                && path[..id.len()].eq_ignore_ascii_case(id);
            if matches && best.is_none_or(|current| id.len() > current.len()) {
                best = Some(id);
            }
        }
        match best {
            Some(id) => (Some(id), &path[id.len() + 1..]),
            None => (None, path),
        }
    }
}

fn common_attributes() -> Vec<AttributeDef> {
    use Mutability::*;
    vec![
        AttributeDef::string("id")
            .case_exact()
            .mutability(ReadOnly)
            .returned(Returned::Always)
            .unique(Uniqueness::Server)
            .describe("Unique identifier for the resource, assigned by the service provider."),
        AttributeDef::string("externalId")
            .case_exact()
            .unique(Uniqueness::Server)
            .describe("Identifier of the resource as defined by the provisioning client."),
        AttributeDef::complex(
            "meta",
            vec![
                AttributeDef::string("resourceType").case_exact().mutability(ReadOnly),
                AttributeDef::new("created", AttrType::DateTime).mutability(ReadOnly),
                AttributeDef::new("lastModified", AttrType::DateTime).mutability(ReadOnly),
                AttributeDef::reference("location", &["uri"]).mutability(ReadOnly),
                AttributeDef::string("version").case_exact().mutability(ReadOnly),
            ],
        )
        .mutability(ReadOnly)
        .describe("Resource metadata."),
    ]
}

fn multi_valued_string(name: &str, types: &[&str]) -> AttributeDef {
    AttributeDef::complex(
        name,
        vec![
            AttributeDef::string("value"),
            AttributeDef::string("display"),
            AttributeDef::string("type").canonical(types),
            AttributeDef::boolean("primary"),
        ],
    )
    .multi()
}

fn user_schema() -> Schema {
    use Mutability::*;
    let name = AttributeDef::complex(
        "name",
        vec![
            AttributeDef::string("formatted"),
            AttributeDef::string("familyName"),
            AttributeDef::string("givenName"),
            AttributeDef::string("middleName"),
            AttributeDef::string("honorificPrefix"),
            AttributeDef::string("honorificSuffix"),
        ],
    )
    .describe("The components of the user's real name.");
    let mut photos = multi_valued_string("photos", &["photo", "thumbnail"]);
    photos.sub_attributes[0] = AttributeDef::reference("value", &["external"]);
    let mut x509 = multi_valued_string("x509Certificates", &[]);
    x509.sub_attributes[0] = AttributeDef::new("value", AttrType::Binary);
    let addresses = AttributeDef::complex(
        "addresses",
        vec![
            AttributeDef::string("formatted"),
            AttributeDef::string("streetAddress"),
            AttributeDef::string("locality"),
            AttributeDef::string("region"),
            AttributeDef::string("postalCode"),
            AttributeDef::string("country"),
            AttributeDef::string("type").canonical(&["work", "home", "other"]),
            AttributeDef::boolean("primary"),
        ],
    )
    .multi();
    let groups = AttributeDef::complex(
        "groups",
        vec![
            AttributeDef::string("value").mutability(ReadOnly),
            AttributeDef::reference("$ref", &["User", "Group"]).mutability(ReadOnly),
            AttributeDef::string("display").mutability(ReadOnly),
            AttributeDef::string("type").canonical(&["direct", "indirect"]).mutability(ReadOnly),
        ],
    )
    .multi()
    .mutability(ReadOnly)
    .describe("Groups the user belongs to; derived from Group memberships.");
    Schema {
        id: USER_SCHEMA.into(),
        name: "User".into(),
        description: "User Account".into(),
        attributes: vec![
            AttributeDef::string("userName")
                .required()
                .unique(Uniqueness::Server)
                .describe("Unique identifier for the User, used to authenticate."),
            name,
            AttributeDef::string("displayName"),
            AttributeDef::string("nickName"),
            AttributeDef::reference("profileUrl", &["external"]),
            AttributeDef::string("title"),
            AttributeDef::string("userType"),
            AttributeDef::string("preferredLanguage"),
            AttributeDef::string("locale"),
            AttributeDef::string("timezone"),
            AttributeDef::boolean("active"),
            AttributeDef::string("password")
                .mutability(WriteOnly)
                .returned(Returned::Never)
                .describe("Write-only; never returned."),
            multi_valued_string("emails", &["work", "home", "other"]),
            multi_valued_string("phoneNumbers", &["work", "home", "mobile", "fax", "pager", "other"]),
            multi_valued_string("ims", &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
            photos,
            addresses,
            groups,
            multi_valued_string("entitlements", &[]),
            multi_valued_string("roles", &[]),
            x509,
        ],
    }
}

fn enterprise_user_schema() -> Schema {
    let manager = AttributeDef::complex(
        "manager",
        vec![
            AttributeDef::string("value").case_exact(),
            AttributeDef::reference("$ref", &["User"]),
            AttributeDef::string("displayName").mutability(Mutability::ReadOnly),
        ],
    );
    Schema {
        id: ENTERPRISE_USER_SCHEMA.into(),
        name: "EnterpriseUser".into(),
        description: "Enterprise User".into(),
        attributes: vec![
            AttributeDef::string("employeeNumber"),
            AttributeDef::string("costCenter"),
            AttributeDef::string("organization"),
            AttributeDef::string("division"),
            AttributeDef::string("department"),
            manager,
        ],
    }
}

fn group_schema() -> Schema {
    let members = AttributeDef::complex(
        "members",
        vec![
            AttributeDef::string("value").case_exact().mutability(Mutability::Immutable),
            AttributeDef::reference("$ref", &["User", "Group"]).mutability(Mutability::Immutable),
            AttributeDef::string("display").mutability(Mutability::Immutable),
            AttributeDef::string("type").canonical(&["User", "Group"]).mutability(Mutability::Immutable),
        ],
    )
    .multi()
    .describe("A list of members of the Group; stored one row per membership.");
    Schema {
        id: GROUP_SCHEMA.into(),
        name: "Group".into(),
        description: "Group".into(),
        attributes: vec![
            AttributeDef::string("displayName")
                .required()
                .unique(Uniqueness::Server)
                .describe("A human-readable name for the Group."),
            members,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_case_insensitively_with_and_without_urn() {
        let registry = SchemaRegistry::standard();
        let given = registry.resolve(ResourceKind::User, "NAME.givenname").unwrap();
        assert_eq!(given.dotted(), "name.givenName");
        let urn = registry
            .resolve(ResourceKind::User, "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName")
            .unwrap();
        assert_eq!(urn.dotted(), "name.givenName");
        let manager = registry
            .resolve(
                ResourceKind::User,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            )
            .unwrap();
        assert_eq!(manager.home, AttrHome::Extension(ENTERPRISE_USER_SCHEMA));
        assert_eq!(manager.dotted(), "manager.value");
        assert!(registry.resolve(ResourceKind::User, "nosuch").is_none());
        assert!(registry.resolve(ResourceKind::Group, "userName").is_none());
        assert_eq!(
            registry.resolve(ResourceKind::Group, "meta.lastModified").unwrap().dotted(),
            "meta.lastModified"
        );
    }

    #[test]
    fn extension_urn_is_preferred_over_the_shorter_core_urn() {
        let registry = SchemaRegistry::standard();
        let (urn, rest) = registry.split_urn(
            ResourceKind::User,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        );
        assert_eq!(urn, Some(ENTERPRISE_USER_SCHEMA));
        assert_eq!(rest, "department");
    }
}
