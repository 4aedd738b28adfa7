//! How to reach the CQL cluster and how the keyspace is laid out, from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SCIMFLOW_CQL_NODES` | (required) | comma-separated contact points, `host:port` |
//! | `SCIMFLOW_CQL_KEYSPACE` | `scimflow` | keyspace name (created by [`super::schema::migrate`]) |
//! | `SCIMFLOW_CQL_REPLICATION` | `simple:1` | `simple:<rf>` (SimpleStrategy) or `<dc>:<rf>[,<dc>:<rf>…]` (NetworkTopologyStrategy) |
//! | `SCIMFLOW_CQL_CONSISTENCY` | `local_quorum` | consistency of every read and write |
//! | `SCIMFLOW_CQL_LOCAL_DC` | unset | datacenter the driver prefers (set it with `LOCAL_*` consistencies on several DCs) |
//! | `SCIMFLOW_CQL_RESOURCE_BUCKETS` | 64 | buckets per (tenant, kind) of the `resources` table |
//! | `SCIMFLOW_CQL_MEMBER_BUCKETS` | 16 | buckets per group of the `memberships` table |
//! | `SCIMFLOW_CQL_WRITE_CONCURRENCY` | 64 | row writes in flight during one commit |
//!
//! Replication and the bucket counts only matter when the keyspace is created: after that the
//! keyspace's own settings win (bucket counts are recorded in `store_settings`, because changing
//! them would make every stored row unreachable).

use crate::port::StoreError;
use scylla::statement::Consistency;
use std::collections::BTreeMap;

/// Keyspace replication, rendered into `CREATE KEYSPACE … WITH replication = {…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy`: development and single-DC test clusters only.
    Simple { factor: u32 },
    /// `NetworkTopologyStrategy`: datacenter name → replication factor. The production choice.
    NetworkTopology(BTreeMap<String, u32>),
}

impl Replication {
    /// Parses `simple:<rf>` or `<dc>:<rf>[,<dc>:<rf>…]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let factor = |value: &str| -> Result<u32, String> {
            match value.trim().parse::<u32>() {
                Ok(factor) if factor > 0 => Ok(factor),
                _ => Err(format!("replication factor {value:?} is not a positive integer")),
            }
        };
        if let Some(rf) = text.strip_prefix("simple:").or_else(|| text.strip_prefix("SimpleStrategy:")) {
            return Ok(Replication::Simple { factor: factor(rf)? });
        }
        let mut dcs = BTreeMap::new();
        for entry in text.split(',').filter(|entry| !entry.trim().is_empty()) {
            let (dc, rf) = entry
                .split_once(':')
                .ok_or_else(|| format!("replication entry {entry:?} is not <dc>:<rf> (or simple:<rf>)"))?;
            let dc = dc.trim();
            // The name is embedded in a CQL string literal.
            if dc.is_empty() || !dc.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(format!("datacenter name {dc:?} is not valid"));
            }
            dcs.insert(dc.to_owned(), factor(rf)?);
        }
        if dcs.is_empty() {
            return Err("replication is empty".into());
        }
        Ok(Replication::NetworkTopology(dcs))
    }

    /// The CQL map literal of `WITH replication = …`.
    pub fn to_cql(&self) -> String {
        match self {
            Replication::Simple { factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Replication::NetworkTopology(dcs) => {
                let mut cql = String::from("{'class': 'NetworkTopologyStrategy'");
                for (dc, factor) in dcs {
                    cql.push_str(&format!(", '{dc}': {factor}"));
                }
                cql.push('}');
                cql
            }
        }
    }
}

/// Everything [`super::CqlStore::connect`] needs.
#[derive(Debug, Clone)]
pub struct CqlConfig {
    pub nodes: Vec<String>,
    pub keyspace: String,
    pub replication: Replication,
    pub consistency: Consistency,
    pub local_dc: Option<String>,
    /// Buckets per (tenant, kind) of `resources`, used when the keyspace is created.
    pub resource_buckets: u32,
    /// Buckets per group of `memberships`, used when the keyspace is created.
    pub member_buckets: u32,
    /// Row writes in flight during one commit.
    pub write_concurrency: usize,
}

pub const DEFAULT_KEYSPACE: &str = "scimflow";
pub const DEFAULT_RESOURCE_BUCKETS: u32 = 64;
pub const DEFAULT_MEMBER_BUCKETS: u32 = 16;
pub const DEFAULT_WRITE_CONCURRENCY: usize = 64;
/// Upper bound for both bucket counts: a page read fans out to every bucket.
pub const MAX_BUCKETS: u32 = 1024;

impl CqlConfig {
    /// A configuration with the defaults (LOCAL_QUORUM, `simple:1`) for `nodes`.
    pub fn new(nodes: Vec<String>) -> Self {
        CqlConfig {
            nodes,
            keyspace: DEFAULT_KEYSPACE.into(),
            replication: Replication::Simple { factor: 1 },
            consistency: Consistency::LocalQuorum,
            local_dc: None,
            resource_buckets: DEFAULT_RESOURCE_BUCKETS,
            member_buckets: DEFAULT_MEMBER_BUCKETS,
            write_concurrency: DEFAULT_WRITE_CONCURRENCY,
        }
    }

    /// Reads the `SCIMFLOW_CQL_*` variables; `Ok(None)` when `SCIMFLOW_CQL_NODES` is unset or
    /// empty (the CQL store is not configured), an error when a variable is set but invalid.
    pub fn from_env() -> Result<Option<Self>, StoreError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] over any variable source (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, StoreError> {
        let invalid = |name: &str, error: String| StoreError::Unavailable(format!("{name}: {error}"));
        let Some(nodes) = lookup("SCIMFLOW_CQL_NODES") else { return Ok(None) };
        let nodes: Vec<String> =
            nodes.split(',').map(str::trim).filter(|node| !node.is_empty()).map(str::to_owned).collect();
        if nodes.is_empty() {
            return Ok(None);
        }
        let mut config = CqlConfig::new(nodes);
        if let Some(keyspace) = lookup("SCIMFLOW_CQL_KEYSPACE") {
            validate_keyspace(&keyspace).map_err(|error| invalid("SCIMFLOW_CQL_KEYSPACE", error))?;
            config.keyspace = keyspace;
        }
        if let Some(replication) = lookup("SCIMFLOW_CQL_REPLICATION") {
            config.replication = Replication::parse(&replication)
                .map_err(|error| invalid("SCIMFLOW_CQL_REPLICATION", error))?;
        }
        if let Some(consistency) = lookup("SCIMFLOW_CQL_CONSISTENCY") {
            config.consistency = parse_consistency(&consistency)
                .map_err(|error| invalid("SCIMFLOW_CQL_CONSISTENCY", error))?;
        }
        config.local_dc = lookup("SCIMFLOW_CQL_LOCAL_DC").filter(|dc| !dc.trim().is_empty());
        let number = |name: &str, default: u64, max: u64| -> Result<u64, StoreError> {
            match lookup(name) {
                None => Ok(default),
                Some(text) => match text.trim().parse::<u64>() {
                    Ok(value) if (1..=max).contains(&value) => Ok(value),
                    _ => Err(invalid(name, format!("{text:?} is not an integer in 1..={max}"))),
                },
            }
        };
        let max_buckets = u64::from(MAX_BUCKETS);
        config.resource_buckets =
            number("SCIMFLOW_CQL_RESOURCE_BUCKETS", DEFAULT_RESOURCE_BUCKETS.into(), max_buckets)? as u32;
        config.member_buckets =
            number("SCIMFLOW_CQL_MEMBER_BUCKETS", DEFAULT_MEMBER_BUCKETS.into(), max_buckets)? as u32;
        config.write_concurrency =
            number("SCIMFLOW_CQL_WRITE_CONCURRENCY", DEFAULT_WRITE_CONCURRENCY as u64, 4096)? as usize;
        Ok(Some(config))
    }
}

/// Keyspace names go into statement text (CQL cannot bind identifiers), so only plain
/// unquoted identifiers are accepted.
pub fn validate_keyspace(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if starts_well
        && name.len() <= 48
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(())
    } else {
        Err(format!("keyspace {name:?} must match [a-z][a-z0-9_]{{0,47}}"))
    }
}

pub fn parse_consistency(text: &str) -> Result<Consistency, String> {
    Ok(match text.trim().to_ascii_lowercase().as_str() {
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        other => return Err(format!("unknown consistency {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Option<CqlConfig>, StoreError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CqlConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn unset_nodes_mean_not_configured() {
        assert!(config(&[]).unwrap().is_none());
        assert!(config(&[("SCIMFLOW_CQL_NODES", " , ")]).unwrap().is_none());
    }

    #[test]
    fn defaults_are_production_safe() {
        let config = config(&[("SCIMFLOW_CQL_NODES", "10.0.0.1:9042, 10.0.0.2:9042")]).unwrap().unwrap();
        assert_eq!(config.nodes, ["10.0.0.1:9042", "10.0.0.2:9042"]);
        assert_eq!(config.keyspace, "scimflow");
        assert_eq!(config.consistency, Consistency::LocalQuorum);
        assert_eq!((config.resource_buckets, config.member_buckets), (64, 16));
    }

    #[test]
    fn replication_forms() {
        assert_eq!(Replication::parse("simple:3").unwrap(), Replication::Simple { factor: 3 });
        let nts = Replication::parse("dc1:3, dc2:2").unwrap();
        assert_eq!(nts.to_cql(), "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}");
        assert!(Replication::parse("dc1").is_err());
        assert!(Replication::parse("dc'1:3").is_err());
        assert!(Replication::parse("simple:0").is_err());
    }

    #[test]
    fn invalid_values_are_errors_not_defaults() {
        assert!(config(&[("SCIMFLOW_CQL_NODES", "n"), ("SCIMFLOW_CQL_KEYSPACE", "Bad-Name")]).is_err());
        assert!(config(&[("SCIMFLOW_CQL_NODES", "n"), ("SCIMFLOW_CQL_CONSISTENCY", "most")]).is_err());
        assert!(config(&[("SCIMFLOW_CQL_NODES", "n"), ("SCIMFLOW_CQL_MEMBER_BUCKETS", "0")]).is_err());
        let one =
            config(&[("SCIMFLOW_CQL_NODES", "n"), ("SCIMFLOW_CQL_CONSISTENCY", "ONE")]).unwrap().unwrap();
        assert_eq!(one.consistency, Consistency::One);
    }
}
