//! Validation of the effective settings: every problem is collected (not only the first), each
//! naming the setting and what a valid value looks like. Files the settings point to (TLS
//! certificate and key, fanout subscriptions) are read too, so `scimflow config check` catches
//! them before a deploy does.

use super::error::FieldError;
use super::model::{ApiSettings, CqlSettings, KafkaSettings, ProjectorSettings, Settings, TelemetrySettings};
use crate::pipeline::{LogKind, StoreKind};
use scimflow_store::cql::config::{MAX_BUCKETS, Replication, parse_consistency, validate_keyspace};

/// Every problem of `settings`, empty when it can be used.
pub fn validate(settings: &Settings) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if settings.data_dir.as_os_str().is_empty() {
        errors.push(FieldError::new("data_dir", "must not be empty"));
    }
    validate_api(&settings.api, &mut errors);
    if settings.log.kind == LogKind::Kafka && settings.log.kafka.brokers.trim().is_empty() {
        errors.push(FieldError::new(
            "log.kafka.brokers",
            "required when the log is Kafka: set it or SCIMFLOW_KAFKA_BROKERS (e.g. 127.0.0.1:9092); \
             deploy/local/services.sh up kafka starts one",
        ));
    }
    validate_kafka(&settings.log.kafka, &mut errors);
    if settings.store.kind == StoreKind::Cql && settings.store.cql.nodes.is_empty() {
        errors.push(FieldError::new(
            "store.cql.nodes",
            "required when the store is CQL: set it or SCIMFLOW_CQL_NODES (e.g. 127.0.0.1:9042); \
             deploy/local/services.sh up cassandra starts one",
        ));
    }
    validate_cql(&settings.store.cql, &mut errors);
    validate_projector(&settings.projector, &mut errors);
    if let Some(path) = &settings.fanout.subscriptions
        && let Err(error) = scimflow_fanout::config::FanoutConfig::load(path)
    {
        errors.push(FieldError::new("fanout.subscriptions", error.to_string()));
    }
    validate_telemetry(&settings.telemetry, &mut errors);
    errors.extend(super::tls::validate_tls(&settings.tls));
    errors
}

fn validate_api(api: &ApiSettings, errors: &mut Vec<FieldError>) {
    match api.listen.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
        _ => errors.push(FieldError::new(
            "api.listen",
            format!("{:?} is not host:port (e.g. 127.0.0.1:8080, 0.0.0.0:443)", api.listen),
        )),
    }
    if !api.base_path.starts_with('/') || api.base_path.contains(char::is_whitespace) {
        errors.push(FieldError::new(
            "api.base_path",
            format!("{:?} must start with / and contain no spaces (e.g. /scim/v2)", api.base_path),
        ));
    }
    let positive = [
        ("api.max_body_bytes", api.max_body_bytes),
        ("api.max_json_depth", api.max_json_depth),
        ("api.max_filter_complexity", api.max_filter_complexity),
        ("api.max_results", api.max_results),
        ("api.default_page_size", api.default_page_size),
        ("api.bulk_max_operations", api.bulk_max_operations),
        ("api.bulk_max_payload_bytes", api.bulk_max_payload_bytes),
        ("api.member_page_cap", api.member_page_cap),
    ];
    for (field, value) in positive {
        if value == 0 {
            errors.push(FieldError::new(field, "must be at least 1"));
        }
    }
    if api.default_page_size > api.max_results {
        errors.push(FieldError::new(
            "api.default_page_size",
            format!("{} is above api.max_results {}", api.default_page_size, api.max_results),
        ));
    }
    for name in api.tenant_overrides.keys() {
        if name.trim().is_empty() {
            errors.push(FieldError::new("api.tenant_overrides", "a tenant name or id must not be empty"));
        }
    }
}

fn validate_kafka(kafka: &KafkaSettings, errors: &mut Vec<FieldError>) {
    if kafka.command_partitions < 1 {
        errors.push(FieldError::new(
            "log.kafka.command_partitions",
            format!("must be at least 1, not {}", kafka.command_partitions),
        ));
    }
    if kafka.replication_factor < 1 {
        errors.push(FieldError::new(
            "log.kafka.replication_factor",
            format!("must be at least 1, not {}", kafka.replication_factor),
        ));
    }
    if let Some(replicas) = kafka.min_insync_replicas
        && (replicas < 1 || replicas > kafka.replication_factor)
    {
        errors.push(FieldError::new(
            "log.kafka.min_insync_replicas",
            format!(
                "must be between 1 and log.kafka.replication_factor ({}), not {replicas}",
                kafka.replication_factor
            ),
        ));
    }
    // librdkafka refuses message.timeout.ms below linger.ms.
    if kafka.produce_deadline_ms < 100 {
        errors.push(FieldError::new(
            "log.kafka.produce_deadline_ms",
            format!("must be at least 100, not {}", kafka.produce_deadline_ms),
        ));
    }
    for key in kafka.client.keys() {
        if key.trim().is_empty() || key.contains(char::is_whitespace) {
            errors.push(FieldError::new(
                format!("log.kafka.client.{key:?}"),
                "is not a librdkafka setting name",
            ));
        }
    }
}

fn validate_cql(cql: &CqlSettings, errors: &mut Vec<FieldError>) {
    if cql.nodes.iter().any(|node| node.trim().is_empty()) {
        errors.push(FieldError::new("store.cql.nodes", "contains an empty contact point"));
    }
    if let Err(reason) = validate_keyspace(&cql.keyspace) {
        errors.push(FieldError::new("store.cql.keyspace", reason));
    }
    if let Err(reason) = Replication::parse(&cql.replication) {
        errors.push(FieldError::new("store.cql.replication", reason));
    }
    if let Err(reason) = parse_consistency(&cql.consistency) {
        errors.push(FieldError::new(
            "store.cql.consistency",
            format!("{reason} (one of one, two, three, quorum, all, local_quorum, each_quorum, local_one)"),
        ));
    }
    for (field, buckets) in [
        ("store.cql.resource_buckets", cql.resource_buckets),
        ("store.cql.member_buckets", cql.member_buckets),
    ] {
        if !(1..=MAX_BUCKETS).contains(&buckets) {
            errors.push(FieldError::new(field, format!("must be in 1..={MAX_BUCKETS}, not {buckets}")));
        }
    }
    if !(1..=4096).contains(&cql.write_concurrency) {
        errors.push(FieldError::new(
            "store.cql.write_concurrency",
            format!("must be in 1..=4096, not {}", cql.write_concurrency),
        ));
    }
}

fn validate_projector(projector: &ProjectorSettings, errors: &mut Vec<FieldError>) {
    if projector.group_id.trim().is_empty() {
        errors.push(FieldError::new("projector.group_id", "must not be empty"));
    }
    if projector.instance_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
        errors.push(FieldError::new("projector.instance_id", "must not be empty when set"));
    }
    if projector.max_batch == 0 {
        errors.push(FieldError::new("projector.max_batch", "must be at least 1"));
    }
    if projector.tenant_share == Some(0) {
        errors.push(FieldError::new("projector.tenant_share", "must be at least 1"));
    }
    if projector.transaction_timeout_ms < 1000 {
        errors.push(FieldError::new(
            "projector.transaction_timeout_ms",
            format!("must be at least 1000, not {}", projector.transaction_timeout_ms),
        ));
    }
}

fn validate_telemetry(telemetry: &TelemetrySettings, errors: &mut Vec<FieldError>) {
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&telemetry.level) {
        errors.push(FieldError::new(
            "telemetry.level",
            format!("{:?} is not a log filter ({error}); e.g. info or scimflow=debug,info", telemetry.level),
        ));
    }
    if let Some(endpoint) = &telemetry.otlp_endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        errors.push(FieldError::new(
            "telemetry.otlp_endpoint",
            format!("{endpoint:?} must be an http:// or https:// URL (e.g. http://127.0.0.1:4317)"),
        ));
    }
}
