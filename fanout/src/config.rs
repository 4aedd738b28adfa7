//! Subscriptions: which product gets which changes, and how they are delivered.
//!
//! Read from a TOML or JSON file (chosen by extension), e.g.:
//!
//! ```toml
//! data_dir = "/var/lib/scimflow/fanout"
//! issuer = "https://scim.example.com"
//!
//! [[subscriptions]]
//! product = "billing"
//! tenants = ["6f1c0b9e-…"]              # tenant ids (`scimflow tenant list`), or "all" (the default)
//! resource_types = ["User"]             # default: User and Group
//! attributes = ["userName", "active"]   # default: every attribute
//! delivery = { kind = "kafka" }
//!
//! [[subscriptions]]
//! product = "chat"
//! delivery = { kind = "webhook", url = "https://chat.example/scim/events", secret_env = "CHAT_SET_SECRET",
//!              ca_cert = "/etc/scimflow/chat-ca.pem" }   # ca_cert: optional, e.g. a private CA
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("invalid fanout configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanoutConfig {
    /// Where the webhook outboxes, dead letters and the store-feed cursor live (one redb file).
    pub data_dir: PathBuf,
    /// `iss` of every Security Event Token.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Publish the compacted latest-state topics (`<prefix>state.users|groups|memberships`).
    /// Needs a Kafka producer, so only meaningful when Kafka is configured.
    #[serde(default = "yes")]
    pub state_topics: bool,
    /// Partitions of the topics fanout creates (product and state topics).
    #[serde(default = "default_partitions")]
    pub topic_partitions: i32,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Product name: names its Kafka topic (`<prefix>product.<product>`) and its webhook queue.
    pub product: String,
    #[serde(default)]
    pub tenants: TenantSelection,
    /// `User`, `Group`; empty means both.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Top-level attribute names (or `urn:...:Extension:attr`) kept in upserted resources.
    /// `id`, `externalId`, `schemas` and `meta` are always kept. Absent means every attribute.
    /// Group membership changes are delivered only when `members` is selected (or absent).
    #[serde(default)]
    pub attributes: Option<Vec<String>>,
    pub delivery: Delivery,
}

/// `"all"` or a list of tenant ids (the `tenant_id` of the changes, not tenant names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTenants", into = "RawTenants")]
pub enum TenantSelection {
    #[default]
    All,
    List(Vec<String>),
}

/// The file form of [`TenantSelection`]: the word `all` or a list.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawTenants {
    Word(String),
    List(Vec<String>),
}

impl TryFrom<RawTenants> for TenantSelection {
    type Error = String;

    fn try_from(raw: RawTenants) -> Result<Self, String> {
        match raw {
            RawTenants::Word(word) if word == "all" => Ok(TenantSelection::All),
            RawTenants::Word(word) => Err(format!("tenants must be \"all\" or a list, not {word:?}")),
            RawTenants::List(list) => Ok(TenantSelection::List(list)),
        }
    }
}

impl From<TenantSelection> for RawTenants {
    fn from(selection: TenantSelection) -> Self {
        match selection {
            TenantSelection::All => RawTenants::Word("all".into()),
            TenantSelection::List(list) => RawTenants::List(list),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Delivery {
    /// Typed `ChangeEnvelope` records on `<prefix>product.<product>`.
    Kafka {},
    /// RFC 8935 push of signed Security Event Tokens.
    Webhook(WebhookConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// HS256 key. Prefer `secret_env` so the file holds no secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// Name of the environment variable holding the HS256 key.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// `kid` in the JWS header, so a subscriber can rotate keys.
    #[serde(default)]
    pub key_id: Option<String>,
    /// `aud` of the SETs; defaults to the URL.
    #[serde(default)]
    pub audience: Option<String>,
    /// Attempts before an event is dead-lettered; 0 retries forever (the lane waits).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Parallel in-order lanes; a resource always uses the same lane.
    #[serde(default = "default_lanes")]
    pub lanes: u32,
    /// PEM file of CA certificates trusted for an `https://` url in addition to the system's
    /// roots (a private CA, or a receiver's self-signed certificate).
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            secret: Some(secret.into()),
            secret_env: None,
            key_id: None,
            audience: None,
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            timeout_ms: default_timeout_ms(),
            lanes: default_lanes(),
            ca_cert: None,
        }
    }

    /// The signing key, from `secret` or the variable named by `secret_env`.
    pub fn resolve_secret(&self) -> Result<Vec<u8>, ConfigError> {
        match (&self.secret, &self.secret_env) {
            (Some(secret), None) => Ok(secret.as_bytes().to_vec()),
            (None, Some(name)) => std::env::var(name)
                .map(String::into_bytes)
                .map_err(|_| ConfigError::Invalid(format!("secret variable {name} is not set"))),
            _ => Err(ConfigError::Invalid(format!(
                "webhook {}: set exactly one of secret, secret_env",
                self.url
            ))),
        }
    }

    pub fn audience(&self) -> &str {
        self.audience.as_deref().unwrap_or(&self.url)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

fn default_issuer() -> String {
    "urn:scimflow".to_owned()
}
fn yes() -> bool {
    true
}
fn default_partitions() -> i32 {
    12
}
fn default_max_attempts() -> u32 {
    20
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    300_000
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_lanes() -> u32 {
    4
}

impl FanoutConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        FanoutConfig {
            data_dir: data_dir.into(),
            issuer: default_issuer(),
            state_topics: true,
            topic_partitions: default_partitions(),
            subscriptions: Vec::new(),
        }
    }

    /// Reads a `.toml` or `.json` file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.into(), error })?;
        let json = path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
        let config: FanoutConfig = if json {
            serde_json::from_str(&text).map_err(|error| ConfigError::Invalid(error.to_string()))?
        } else {
            toml::from_str(&text).map_err(|error| ConfigError::Invalid(error.to_string()))?
        };
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: FanoutConfig =
            toml::from_str(text).map_err(|error| ConfigError::Invalid(error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses what would fail late: duplicate or unusable product names (they become topic
    /// names and database keys), unknown resource types, webhooks without a key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for subscription in &self.subscriptions {
            let name = &subscription.product;
            let valid_name = !name.is_empty()
                && name.len() <= 100
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid_name {
                return Err(ConfigError::Invalid(format!(
                    "product name {name:?} must be 1-100 characters of a-z, A-Z, 0-9, '-', '_', '.'"
                )));
            }
            if !seen.insert(name.clone()) {
                return Err(ConfigError::Invalid(format!("product {name} is subscribed twice")));
            }
            for kind in &subscription.resource_types {
                if kind != "User" && kind != "Group" {
                    return Err(ConfigError::Invalid(format!(
                        "product {name}: unknown resource type {kind:?} (User or Group)"
                    )));
                }
            }
            if let Delivery::Webhook(webhook) = &subscription.delivery {
                if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://")) {
                    return Err(ConfigError::Invalid(format!("product {name}: webhook url must be http(s)")));
                }
                if webhook.lanes == 0 {
                    return Err(ConfigError::Invalid(format!("product {name}: lanes must be at least 1")));
                }
                if webhook.secret.is_some() == webhook.secret_env.is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "product {name}: set exactly one of secret, secret_env"
                    )));
                }
            }
        }
        if self.topic_partitions < 1 {
            return Err(ConfigError::Invalid("topic_partitions must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_file_with_both_delivery_kinds_parses() {
        let config = FanoutConfig::from_toml(
            r#"
            data_dir = "/tmp/fanout"
            [[subscriptions]]
            product = "billing"
            tenants = ["acme"]
            resource_types = ["User"]
            attributes = ["userName"]
            delivery = { kind = "kafka" }
            [[subscriptions]]
            product = "chat"
            delivery = { kind = "webhook", url = "http://127.0.0.1:1/", secret = "s", lanes = 2 }
            "#,
        )
        .unwrap();
        assert_eq!(config.subscriptions[0].tenants, TenantSelection::List(vec!["acme".into()]));
        assert_eq!(config.subscriptions[1].tenants, TenantSelection::All);
        let Delivery::Webhook(webhook) = &config.subscriptions[1].delivery else { panic!("not a webhook") };
        assert_eq!((webhook.lanes, webhook.max_attempts), (2, 20));
        assert_eq!(webhook.audience(), "http://127.0.0.1:1/");
    }

    #[test]
    fn tenants_all_is_accepted_and_other_words_are_not() {
        let base = |tenants: &str| {
            format!(
                "data_dir = \"x\"\n[[subscriptions]]\nproduct = \"p\"\ntenants = {tenants}\ndelivery = {{ kind = \"kafka\" }}\n"
            )
        };
        assert!(FanoutConfig::from_toml(&base("\"all\"")).is_ok());
        assert!(FanoutConfig::from_toml(&base("\"some\"")).is_err());
    }

    #[test]
    fn duplicate_products_and_unsafe_names_are_refused() {
        let mut config = FanoutConfig::new("x");
        let subscription = Subscription {
            product: "a".into(),
            tenants: TenantSelection::All,
            resource_types: vec![],
            attributes: None,
            delivery: Delivery::Kafka {},
        };
        config.subscriptions = vec![subscription.clone(), subscription.clone()];
        assert!(config.validate().is_err());
        config.subscriptions = vec![Subscription { product: "a/b".into(), ..subscription }];
        assert!(config.validate().is_err());
    }
}
