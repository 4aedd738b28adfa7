//! The environment layer: every `SCIMFLOW_*` variable the binary has ever read, applied over
//! the file. An empty variable counts as unset. A value that does not parse is an error naming
//! the variable and the setting it feeds, never a silent default.

use super::error::FieldError;
use super::model::{LogFormat, Settings};
use crate::pipeline::{LogKind, StoreKind};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

/// `SCIMFLOW_KAFKA_CLIENT_SECURITY_PROTOCOL=SASL_SSL` becomes `security.protocol = "SASL_SSL"`.
pub const KAFKA_CLIENT_PREFIX: &str = "SCIMFLOW_KAFKA_CLIENT_";

/// Applies the variables in `vars` to `settings`; returns the values that did not parse.
pub fn apply_env(settings: &mut Settings, vars: &BTreeMap<String, String>) -> Vec<FieldError> {
    let mut env = EnvLayer { vars, errors: Vec::new() };
    env.parse("SCIMFLOW_DATA_DIR", "data_dir", &mut settings.data_dir);

    let api = &mut settings.api;
    env.string("SCIMFLOW_LISTEN", &mut api.listen);
    env.string("SCIMFLOW_API_BASE_PATH", &mut api.base_path);
    env.parse("SCIMFLOW_API_MAX_BODY_BYTES", "api.max_body_bytes", &mut api.max_body_bytes);
    env.parse("SCIMFLOW_API_MAX_JSON_DEPTH", "api.max_json_depth", &mut api.max_json_depth);
    env.parse(
        "SCIMFLOW_API_MAX_FILTER_COMPLEXITY",
        "api.max_filter_complexity",
        &mut api.max_filter_complexity,
    );
    env.parse("SCIMFLOW_API_MAX_RESULTS", "api.max_results", &mut api.max_results);
    env.parse("SCIMFLOW_API_DEFAULT_PAGE_SIZE", "api.default_page_size", &mut api.default_page_size);
    env.parse("SCIMFLOW_API_BULK_MAX_OPERATIONS", "api.bulk_max_operations", &mut api.bulk_max_operations);
    env.parse(
        "SCIMFLOW_API_BULK_MAX_PAYLOAD_BYTES",
        "api.bulk_max_payload_bytes",
        &mut api.bulk_max_payload_bytes,
    );
    env.parse("SCIMFLOW_API_MEMBER_PAGE_CAP", "api.member_page_cap", &mut api.member_page_cap);
    env.parse(
        "SCIMFLOW_API_GROUP_PATCH_RETURNS_BODY",
        "api.group_patch_returns_body",
        &mut api.group_patch_returns_body,
    );
    env.parse(
        "SCIMFLOW_API_SHUTDOWN_TIMEOUT_SECS",
        "api.shutdown_timeout_secs",
        &mut api.shutdown_timeout_secs,
    );
    env.parse("SCIMFLOW_TENANT_RATE", "api.tenant_limits.rate", &mut api.tenant_limits.rate);
    env.parse("SCIMFLOW_TENANT_BURST", "api.tenant_limits.burst", &mut api.tenant_limits.burst);
    env.parse(
        "SCIMFLOW_TENANT_CONCURRENCY",
        "api.tenant_limits.concurrency",
        &mut api.tenant_limits.concurrency,
    );

    env.kind("SCIMFLOW_LOG", "log.kind", &mut settings.log.kind, parse_log_kind);
    let kafka = &mut settings.log.kafka;
    env.string("SCIMFLOW_KAFKA_BROKERS", &mut kafka.brokers);
    env.string("SCIMFLOW_KAFKA_TOPIC_PREFIX", &mut kafka.topic_prefix);
    env.parse(
        "SCIMFLOW_KAFKA_COMMAND_PARTITIONS",
        "log.kafka.command_partitions",
        &mut kafka.command_partitions,
    );
    env.parse(
        "SCIMFLOW_KAFKA_REPLICATION_FACTOR",
        "log.kafka.replication_factor",
        &mut kafka.replication_factor,
    );
    env.optional(
        "SCIMFLOW_KAFKA_MIN_INSYNC_REPLICAS",
        "log.kafka.min_insync_replicas",
        &mut kafka.min_insync_replicas,
    );
    env.parse(
        "SCIMFLOW_KAFKA_PRODUCE_DEADLINE_MS",
        "log.kafka.produce_deadline_ms",
        &mut kafka.produce_deadline_ms,
    );
    env.parse(
        "SCIMFLOW_KAFKA_OUTCOMES_RETENTION_MS",
        "log.kafka.outcomes_retention_ms",
        &mut kafka.outcomes_retention_ms,
    );
    env.parse(
        "SCIMFLOW_KAFKA_CHANGES_RETENTION_MS",
        "log.kafka.changes_retention_ms",
        &mut kafka.changes_retention_ms,
    );
    for (name, value) in vars {
        if let Some(key) = name.strip_prefix(KAFKA_CLIENT_PREFIX) {
            kafka.client.insert(key.to_ascii_lowercase().replace('_', "."), value.clone());
        }
    }

    env.kind("SCIMFLOW_STORE", "store.kind", &mut settings.store.kind, parse_store_kind);
    let cql = &mut settings.store.cql;
    if let Some(nodes) = env.get("SCIMFLOW_CQL_NODES") {
        cql.nodes =
            nodes.split(',').map(str::trim).filter(|node| !node.is_empty()).map(str::to_owned).collect();
    }
    env.string("SCIMFLOW_CQL_KEYSPACE", &mut cql.keyspace);
    env.string("SCIMFLOW_CQL_REPLICATION", &mut cql.replication);
    env.string("SCIMFLOW_CQL_CONSISTENCY", &mut cql.consistency);
    if let Some(dc) = env.get("SCIMFLOW_CQL_LOCAL_DC") {
        cql.local_dc = Some(dc.to_owned());
    }
    env.parse("SCIMFLOW_CQL_RESOURCE_BUCKETS", "store.cql.resource_buckets", &mut cql.resource_buckets);
    env.parse("SCIMFLOW_CQL_MEMBER_BUCKETS", "store.cql.member_buckets", &mut cql.member_buckets);
    env.parse("SCIMFLOW_CQL_WRITE_CONCURRENCY", "store.cql.write_concurrency", &mut cql.write_concurrency);

    let projector = &mut settings.projector;
    env.string("SCIMFLOW_PROJECTOR_GROUP_ID", &mut projector.group_id);
    if let Some(instance) = env.get("SCIMFLOW_PROJECTOR_INSTANCE_ID") {
        projector.instance_id = Some(instance.to_owned());
    }
    env.parse("SCIMFLOW_PROJECTOR_MAX_BATCH", "projector.max_batch", &mut projector.max_batch);
    env.optional("SCIMFLOW_PROJECTOR_TENANT_SHARE", "projector.tenant_share", &mut projector.tenant_share);
    env.parse(
        "SCIMFLOW_PROJECTOR_TRANSACTION_TIMEOUT_MS",
        "projector.transaction_timeout_ms",
        &mut projector.transaction_timeout_ms,
    );

    env.optional("SCIMFLOW_FANOUT_CONFIG", "fanout.subscriptions", &mut settings.fanout.subscriptions);
    env.string("SCIMFLOW_FANOUT_GROUP_ID", &mut settings.fanout.group_id);

    let telemetry = &mut settings.telemetry;
    env.kind("SCIMFLOW_LOG_FORMAT", "telemetry.format", &mut telemetry.format, parse_log_format);
    env.string("RUST_LOG", &mut telemetry.level);
    // The standard OpenTelemetry variable first, so the scimflow-specific one wins.
    env.optional("OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp_endpoint", &mut telemetry.otlp_endpoint);
    env.optional("SCIMFLOW_OTLP_ENDPOINT", "telemetry.otlp_endpoint", &mut telemetry.otlp_endpoint);

    env.optional("SCIMFLOW_TLS_CERT", "tls.cert_path", &mut settings.tls.cert_path);
    env.optional("SCIMFLOW_TLS_KEY", "tls.key_path", &mut settings.tls.key_path);
    env.errors
}

pub fn parse_log_kind(text: &str) -> Result<LogKind, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "embedded" => Ok(LogKind::Embedded),
        "kafka" => Ok(LogKind::Kafka),
        other => Err(format!("{other:?} is not a log kind (embedded or kafka)")),
    }
}

pub fn parse_store_kind(text: &str) -> Result<StoreKind, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "embedded" => Ok(StoreKind::Embedded),
        "cql" => Ok(StoreKind::Cql),
        other => Err(format!("{other:?} is not a store kind (embedded or cql)")),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?} is not a log format (text or json)")),
    }
}

struct EnvLayer<'a> {
    vars: &'a BTreeMap<String, String>,
    errors: Vec<FieldError>,
}

impl<'a> EnvLayer<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.vars.get(name).map(|value| value.trim()).filter(|value| !value.is_empty())
    }

    fn string(&mut self, name: &str, target: &mut String) {
        if let Some(value) = self.get(name) {
            *target = value.to_owned();
        }
    }

    fn parse<T: FromStr>(&mut self, name: &str, field: &str, target: &mut T) {
        if let Some(value) = self.get(name) {
            match value.parse() {
                Ok(parsed) => *target = parsed,
                Err(_) => self.errors.push(FieldError::from_env(
                    field,
                    name,
                    format!("{value:?} is not a valid {}", type_label::<T>()),
                )),
            }
        }
    }

    fn optional<T: FromStr>(&mut self, name: &str, field: &str, target: &mut Option<T>) {
        if let Some(value) = self.get(name) {
            match value.parse() {
                Ok(parsed) => *target = Some(parsed),
                Err(_) => self.errors.push(FieldError::from_env(
                    field,
                    name,
                    format!("{value:?} is not a valid {}", type_label::<T>()),
                )),
            }
        }
    }

    fn kind<T>(&mut self, name: &str, field: &str, target: &mut T, parse: fn(&str) -> Result<T, String>) {
        if let Some(value) = self.get(name) {
            match parse(value) {
                Ok(parsed) => *target = parsed,
                Err(reason) => self.errors.push(FieldError::from_env(field, name, reason)),
            }
        }
    }
}

/// Names the expected type in an error ("not a valid unsigned integer").
fn type_label<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    match name {
        "bool" => "boolean (true or false)",
        "i32" | "i64" => "integer",
        "u32" | "u64" | "usize" => "unsigned integer",
        _ if name == std::any::type_name::<PathBuf>() => "path",
        _ => "value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(pairs: &[(&str, &str)]) -> (Settings, Vec<FieldError>) {
        let vars = pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        let mut settings = Settings::default();
        let errors = apply_env(&mut settings, &vars);
        (settings, errors)
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let (settings, errors) = applied(&[("SCIMFLOW_LISTEN", " "), ("SCIMFLOW_TENANT_RATE", "")]);
        assert!(errors.is_empty());
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn the_tenant_share_is_unset_unless_given_so_each_log_keeps_its_default() {
        let (settings, _) = applied(&[]);
        assert_eq!(settings.projector.tenant_share, None);
        let (settings, errors) = applied(&[("SCIMFLOW_PROJECTOR_TENANT_SHARE", "16")]);
        assert!(errors.is_empty());
        assert_eq!(settings.projector.tenant_share, Some(16));
        let (_, errors) = applied(&[("SCIMFLOW_PROJECTOR_TENANT_SHARE", "many")]);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn kafka_client_variables_become_librdkafka_keys() {
        let (settings, _) = applied(&[("SCIMFLOW_KAFKA_CLIENT_SECURITY_PROTOCOL", "SASL_SSL")]);
        assert_eq!(settings.log.kafka.client["security.protocol"], "SASL_SSL");
    }

    #[test]
    fn kinds_are_read_case_insensitively_and_unknown_ones_named() {
        let (settings, errors) = applied(&[("SCIMFLOW_LOG", "Kafka"), ("SCIMFLOW_STORE", "postgres")]);
        assert_eq!(settings.log.kind, LogKind::Kafka);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "store.kind");
        assert_eq!(errors[0].env_var.as_deref(), Some("SCIMFLOW_STORE"));
    }

    #[test]
    fn the_scimflow_otlp_variable_beats_the_standard_one() {
        let (settings, _) = applied(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://standard:4317"),
            ("SCIMFLOW_OTLP_ENDPOINT", "http://scimflow:4317"),
        ]);
        assert_eq!(settings.telemetry.otlp_endpoint.as_deref(), Some("http://scimflow:4317"));
    }
}
