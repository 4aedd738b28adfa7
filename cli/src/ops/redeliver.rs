//! `scimflow redeliver`: send one product subscription (of a fanout config) the changes one
//! tenant's commands applied in a time range again, rebuilt from the command log with their
//! original `change_id`s ([`scimflow_fanout::redeliver`]).

use super::parse_instant;
use crate::pipeline::LogKind;
use anyhow::Context;
use scimflow_fanout::config::FanoutConfig;
use scimflow_fanout::redeliver::{Redelivery, redeliver};
use scimflow_log::kafka::KafkaConfig;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct RedeliverArgs {
    /// The fanout subscriptions (TOML or JSON), as `scimflow fanout --config` reads them.
    #[arg(long, env = "SCIMFLOW_FANOUT_CONFIG")]
    pub config: PathBuf,
    /// The product (subscription) to send to.
    #[arg(long)]
    pub product: String,
    /// The tenant id whose changes are sent.
    #[arg(long, value_name = "TENANT_ID")]
    pub tenant: String,
    /// Changes of commands issued at or after this RFC 3339 instant ...
    #[arg(long, value_name = "RFC3339")]
    pub from: String,
    /// ... and before this one.
    #[arg(long, value_name = "RFC3339")]
    pub to: String,
    /// The command log the changes are rebuilt from.
    #[arg(long, value_enum, default_value = "kafka", env = "SCIMFLOW_LOG")]
    pub log: LogKind,
    /// With `--log embedded`: the data directory holding `log.redb`.
    #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// `scimflow redeliver`.
pub async fn command(args: RedeliverArgs) -> anyhow::Result<()> {
    let config = FanoutConfig::load(&args.config)?;
    let kafka = KafkaConfig::from_env().ok();
    let log: Arc<dyn scimflow_log::LogReader> = match args.log {
        LogKind::Kafka => Arc::new(scimflow_log::kafka::KafkaLogReader::new(
            kafka.as_ref().context("--log kafka needs SCIMFLOW_KAFKA_BROKERS")?,
        )?),
        LogKind::Embedded => Arc::new(super::open_embedded_log(&args.data_dir)?),
    };
    let request = Redelivery {
        product: args.product.clone(),
        tenant: args.tenant.clone(),
        from_ms: parse_instant(&args.from)?,
        to_ms: parse_instant(&args.to)?,
    };
    let report = redeliver(&config, kafka.as_ref(), log, &request).await?;
    println!(
        "redelivered {} of {} changes of tenant {} issued in [{}, {}) to product {}",
        report.sent, report.changes, args.tenant, args.from, args.to, args.product
    );
    Ok(())
}
