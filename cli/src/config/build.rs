//! Settings to the configs the adapters take. Called on validated settings: a value validation
//! accepts converts, so the conversions that parse text still return errors rather than panic.

use super::model::Settings;
use super::tls::tls_files;
use crate::pipeline::PipelineOptions;
use anyhow::Context;
use scimflow_ingest_api::ApiConfig;
use scimflow_ingest_api::limits::{LimitsConfig, TenantLimits};
use scimflow_log::kafka::KafkaConfig;
use scimflow_projector::RoundLimits;
use scimflow_projector::kafka::KafkaProjectorConfig;
use scimflow_projector::window::DEFAULT_TENANT_SHARE;
use scimflow_store::cql::CqlConfig;
use scimflow_store::cql::config::{Replication, parse_consistency};
use std::time::Duration;

impl Settings {
    /// The API's limits and switches. Tenant overrides are keyed by name or id as written;
    /// [`super::tenant_limits::resolve_tenant_names`] turns names into ids once the tenant
    /// directory is open.
    pub fn api_config(&self) -> ApiConfig {
        let api = &self.api;
        let default_limits = TenantLimits {
            requests_per_second: api.tenant_limits.rate,
            burst: api.tenant_limits.burst.max(1),
            max_concurrent: api.tenant_limits.concurrency,
        };
        let tenants = api
            .tenant_overrides
            .iter()
            .map(|(tenant, limits)| {
                let merged = TenantLimits {
                    requests_per_second: limits.rate.unwrap_or(default_limits.requests_per_second),
                    burst: limits.burst.unwrap_or(default_limits.burst).max(1),
                    max_concurrent: limits.concurrency.unwrap_or(default_limits.max_concurrent),
                };
                (tenant.clone(), merged)
            })
            .collect();
        ApiConfig {
            base_path: api.base_path.clone(),
            max_body_bytes: api.max_body_bytes,
            max_json_depth: api.max_json_depth,
            max_filter_complexity: api.max_filter_complexity,
            max_results: api.max_results,
            default_page_size: api.default_page_size,
            bulk_max_operations: api.bulk_max_operations,
            bulk_max_payload_bytes: api.bulk_max_payload_bytes,
            member_page_cap: api.member_page_cap,
            group_patch_returns_body: api.group_patch_returns_body,
            shutdown_timeout: Duration::from_secs(api.shutdown_timeout_secs),
            limits: LimitsConfig { default_limits, tenants, ..LimitsConfig::default() },
            ..ApiConfig::default()
        }
    }

    pub fn kafka_config(&self) -> KafkaConfig {
        let kafka = &self.log.kafka;
        let mut config = KafkaConfig::new(kafka.brokers.trim());
        config.topic_prefix = kafka.topic_prefix.clone();
        config.command_partitions = kafka.command_partitions;
        config.replication_factor = kafka.replication_factor;
        config.min_insync_replicas =
            kafka.min_insync_replicas.unwrap_or(if kafka.replication_factor >= 3 { 2 } else { 1 });
        config.produce_deadline = Duration::from_millis(kafka.produce_deadline_ms);
        config.outcomes_retention = Duration::from_millis(kafka.outcomes_retention_ms);
        config.changes_retention = Duration::from_millis(kafka.changes_retention_ms);
        config.client_settings = kafka.client.clone();
        config
    }

    pub fn projector_config(&self) -> KafkaProjectorConfig {
        let projector = &self.projector;
        let mut config = KafkaProjectorConfig::new(self.kafka_config());
        config.group_id = projector.group_id.clone();
        if let Some(instance_id) = &projector.instance_id {
            config.instance_id = instance_id.clone();
        }
        config.max_batch = projector.max_batch;
        config.tenant_share = projector.tenant_share.unwrap_or(KafkaProjectorConfig::DEFAULT_TENANT_SHARE);
        config.transaction_timeout = Duration::from_millis(projector.transaction_timeout_ms);
        config
    }

    pub fn cql_config(&self) -> anyhow::Result<CqlConfig> {
        let cql = &self.store.cql;
        let mut config = CqlConfig::new(cql.nodes.clone());
        config.keyspace = cql.keyspace.clone();
        config.replication = Replication::parse(&cql.replication)
            .map_err(anyhow::Error::msg)
            .context("store.cql.replication")?;
        config.consistency = parse_consistency(&cql.consistency)
            .map_err(anyhow::Error::msg)
            .context("store.cql.consistency")?;
        config.local_dc = cql.local_dc.clone();
        config.resource_buckets = cql.resource_buckets;
        config.member_buckets = cql.member_buckets;
        config.write_concurrency = cql.write_concurrency;
        Ok(config)
    }

    /// The pipeline these settings describe, with the roles this process runs. Kafka and CQL
    /// configs are filled in only when a Kafka log or a CQL store is configured.
    pub fn pipeline_options(&self, run_api: bool, run_projector: bool) -> anyhow::Result<PipelineOptions> {
        let kafka_configured = !self.log.kafka.brokers.trim().is_empty();
        let cql_configured = !self.store.cql.nodes.is_empty();
        Ok(PipelineOptions {
            data_dir: self.data_dir.clone(),
            listen: self.api.listen.clone(),
            log: self.log.kind,
            store: self.store.kind,
            run_api,
            run_projector,
            api: self.api_config(),
            kafka: kafka_configured.then(|| self.kafka_config()),
            projector: kafka_configured.then(|| self.projector_config()),
            cql: if cql_configured { Some(self.cql_config()?) } else { None },
            tls: tls_files(&self.tls),
            // Only `serve` runs fanout in the process; it sets this itself.
            fanout: None,
            rounds: RoundLimits {
                tenant_share: self.projector.tenant_share.unwrap_or(DEFAULT_TENANT_SHARE),
                ..RoundLimits::for_round(self.projector.max_batch)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TenantOverride;

    #[test]
    fn tenant_overrides_inherit_the_unset_limits() {
        let mut settings = Settings::default();
        settings.api.tenant_limits.rate = 50;
        settings.api.tenant_limits.concurrency = 64;
        settings
            .api
            .tenant_overrides
            .insert("acme".into(), TenantOverride { rate: Some(500), ..TenantOverride::default() });
        let limits = settings.api_config().limits;
        assert_eq!(
            limits.limits_of("acme"),
            TenantLimits { requests_per_second: 500, burst: 100, max_concurrent: 64 }
        );
        assert_eq!(limits.limits_of("other").requests_per_second, 50);
    }

    #[test]
    fn derived_kafka_settings_match_the_environment_reader() {
        let mut settings = Settings::default();
        settings.log.kafka.brokers = "b:9092".into();
        settings.log.kafka.replication_factor = 3;
        let from_settings = settings.kafka_config();
        let from_env = KafkaConfig::from_vars([
            ("SCIMFLOW_KAFKA_BROKERS".to_owned(), "b:9092".to_owned()),
            ("SCIMFLOW_KAFKA_REPLICATION_FACTOR".to_owned(), "3".to_owned()),
        ])
        .unwrap();
        assert_eq!(from_settings.min_insync_replicas, 2);
        assert_eq!(format!("{from_settings:?}"), format!("{from_env:?}"));
    }
}
