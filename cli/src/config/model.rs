//! The typed settings of `scimflow`: one struct per section of the configuration file, each
//! with the defaults the binary has always used. Unknown keys are errors (a typo must not
//! silently fall back to a default).

use crate::pipeline::{LogKind, StoreKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything `scimflow serve|ingest-api|projector|fanout|migrate` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Tenants (and the embedded log and store) live here.
    pub data_dir: PathBuf,
    pub api: ApiSettings,
    pub log: LogSettings,
    pub store: StoreSettings,
    pub projector: ProjectorSettings,
    pub fanout: FanoutSettings,
    pub telemetry: TelemetrySettings,
    pub tls: TlsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("scimflow-data"),
            api: ApiSettings::default(),
            log: LogSettings::default(),
            store: StoreSettings::default(),
            projector: ProjectorSettings::default(),
            fanout: FanoutSettings::default(),
            telemetry: TelemetrySettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

/// The SCIM API: where it listens and the limits it enforces (also advertised by
/// `/ServiceProviderConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// `host:port` to listen on; port 0 picks a free port.
    pub listen: String,
    /// Where the SCIM endpoints are mounted.
    pub base_path: String,
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub max_filter_complexity: usize,
    pub max_results: usize,
    pub default_page_size: usize,
    pub bulk_max_operations: usize,
    pub bulk_max_payload_bytes: usize,
    pub member_page_cap: usize,
    pub group_patch_returns_body: bool,
    /// How long a stopping server lets in-flight requests finish.
    pub shutdown_timeout_secs: u64,
    /// Limits of every tenant without an override.
    pub tenant_limits: TenantLimitSettings,
    /// Overrides by tenant name or id; unset fields keep [`Self::tenant_limits`].
    pub tenant_overrides: BTreeMap<String, TenantOverride>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        let api = scimflow_ingest_api::ApiConfig::default();
        ApiSettings {
            listen: "127.0.0.1:8080".to_owned(),
            base_path: api.base_path,
            max_body_bytes: api.max_body_bytes,
            max_json_depth: api.max_json_depth,
            max_filter_complexity: api.max_filter_complexity,
            max_results: api.max_results,
            default_page_size: api.default_page_size,
            bulk_max_operations: api.bulk_max_operations,
            bulk_max_payload_bytes: api.bulk_max_payload_bytes,
            member_page_cap: api.member_page_cap,
            group_patch_returns_body: api.group_patch_returns_body,
            shutdown_timeout_secs: api.shutdown_timeout.as_secs(),
            tenant_limits: TenantLimitSettings::default(),
            tenant_overrides: BTreeMap::new(),
        }
    }
}

/// Per-tenant limits (429 + `Retry-After` beyond them). Off by default; `rate = 50`,
/// `burst = 100`, `concurrency = 64` is a sound production start (Entra ID sends 25 req/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimitSettings {
    /// Sustained requests per second (0 = unlimited).
    pub rate: u32,
    /// Requests a tenant may send at once above its rate (0 is read as 1).
    pub burst: u32,
    /// Requests of one tenant served at the same time (0 = unlimited).
    pub concurrency: u32,
}

impl Default for TenantLimitSettings {
    fn default() -> Self {
        TenantLimitSettings { rate: 0, burst: 100, concurrency: 0 }
    }
}

/// The limits of one named tenant; each unset field is the default's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// The command log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `embedded` (redb in the data directory) or `kafka`. `ingest-api` and `projector` always
    /// use Kafka.
    pub kind: LogKind,
    pub kafka: KafkaSettings,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { kind: LogKind::Embedded, kafka: KafkaSettings::default() }
    }
}

/// Kafka: brokers, topics and librdkafka passthrough (see docs/kafka.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// `bootstrap.servers`, comma-separated; required when the log is Kafka.
    pub brokers: String,
    /// Prefix of the `commands`, `outcomes` and `changes` topics.
    pub topic_prefix: String,
    /// Partitions of the commands topic; fixed once commands were written.
    pub command_partitions: i32,
    pub replication_factor: i32,
    /// Unset: 2 when the replication factor is 3 or more, else 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<i32>,
    pub produce_deadline_ms: u64,
    pub outcomes_retention_ms: u64,
    pub changes_retention_ms: u64,
    /// librdkafka settings for every client (`"security.protocol" = "SASL_SSL"`).
    pub client: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        use scimflow_log::kafka::KafkaConfig;
        KafkaSettings {
            brokers: String::new(),
            topic_prefix: KafkaConfig::DEFAULT_TOPIC_PREFIX.to_owned(),
            command_partitions: KafkaConfig::DEFAULT_COMMAND_PARTITIONS,
            replication_factor: 1,
            min_insync_replicas: None,
            produce_deadline_ms: KafkaConfig::DEFAULT_PRODUCE_DEADLINE.as_millis() as u64,
            outcomes_retention_ms: KafkaConfig::DEFAULT_OUTCOMES_RETENTION.as_millis() as u64,
            changes_retention_ms: KafkaConfig::DEFAULT_CHANGES_RETENTION.as_millis() as u64,
            client: BTreeMap::new(),
        }
    }
}

/// The projection store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `embedded` (redb in the data directory) or `cql` (Cassandra / ScyllaDB).
    pub kind: StoreKind,
    pub cql: CqlSettings,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings { kind: StoreKind::Embedded, cql: CqlSettings::default() }
    }
}

/// Cassandra / ScyllaDB (see store/src/cql/config.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CqlSettings {
    /// Contact points, `host:port`; required when the store is CQL.
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// `simple:<rf>` or `<dc>:<rf>[,<dc>:<rf>…]`; used when the keyspace is created.
    pub replication: String,
    /// Consistency of every read and write (`local_quorum`, `quorum`, `one`, ...).
    pub consistency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_dc: Option<String>,
    pub resource_buckets: u32,
    pub member_buckets: u32,
    pub write_concurrency: usize,
}

impl Default for CqlSettings {
    fn default() -> Self {
        use scimflow_store::cql::config as cql;
        CqlSettings {
            nodes: Vec::new(),
            keyspace: cql::DEFAULT_KEYSPACE.to_owned(),
            replication: "simple:1".to_owned(),
            consistency: "local_quorum".to_owned(),
            local_dc: None,
            resource_buckets: cql::DEFAULT_RESOURCE_BUCKETS,
            member_buckets: cql::DEFAULT_MEMBER_BUCKETS,
            write_concurrency: cql::DEFAULT_WRITE_CONCURRENCY,
        }
    }
}

/// The Kafka projector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectorSettings {
    /// Consumer group shared by all projectors of one pipeline.
    pub group_id: String,
    /// Stable per-slot id (e.g. the pod name); unset picks a random one per start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub max_batch: usize,
    /// Most commands of one tenant in a round while other tenants of its partition wait;
    /// unset: the projector's default (64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_share: Option<usize>,
    pub transaction_timeout_ms: u64,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        use scimflow_projector::kafka::KafkaProjectorConfig;
        ProjectorSettings {
            group_id: KafkaProjectorConfig::DEFAULT_GROUP_ID.to_owned(),
            instance_id: None,
            max_batch: KafkaProjectorConfig::DEFAULT_MAX_BATCH,
            tenant_share: None,
            transaction_timeout_ms: KafkaProjectorConfig::DEFAULT_TRANSACTION_TIMEOUT.as_millis() as u64,
        }
    }
}

/// `scimflow fanout`, and fanout inside `scimflow serve` when `subscriptions` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FanoutSettings {
    /// The subscriptions file (TOML or JSON, docs/consumers.md); required by `scimflow fanout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<PathBuf>,
    pub group_id: String,
}

impl Default for FanoutSettings {
    fn default() -> Self {
        FanoutSettings { subscriptions: None, group_id: scimflow_fanout::source::DEFAULT_GROUP_ID.to_owned() }
    }
}

/// Structured logs and trace export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    pub format: LogFormat,
    /// A `tracing` filter directive (`info`, `scimflow=debug,info`).
    pub level: String,
    /// OTLP collector endpoint (`http://collector:4317`); unset exports no traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings { format: LogFormat::Text, level: "info".to_owned(), otlp_endpoint: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// HTTPS for the API: both paths or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_path: Option<PathBuf>,
}
