//! `scimflow tenant ...`: tenants and their bearer tokens. Tokens are printed once and stored
//! only as hashes.

use crate::embedded::open_tenants;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its bearer token (shown once).
    Create {
        name: String,
        #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
        data_dir: PathBuf,
        /// Print only the token, for scripts.
        #[arg(long)]
        quiet: bool,
    },
    /// List tenants.
    List {
        #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Revoke a tenant's token: its requests get 401 from then on; data is kept.
    Revoke {
        name: String,
        #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Issue a new token (the old one stops working at once) and print it.
    Rotate {
        name: String,
        #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        quiet: bool,
    },
}

pub fn run(command: TenantCommand) -> anyhow::Result<()> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    match command {
        TenantCommand::Create { name, data_dir, quiet } => {
            let (tenant, token) = open_tenants(&data_dir)?.create(&name, now_ms)?;
            if quiet {
                println!("{token}");
            } else {
                println!("created tenant {} (id {})", tenant.name, tenant.id);
                println!("bearer token (shown once, store it now): {token}");
            }
        }
        TenantCommand::List { data_dir } => {
            for tenant in open_tenants(&data_dir)?.list()? {
                let state = if tenant.revoked { "revoked" } else { "active" };
                println!("{}\t{}\t{}", tenant.name, tenant.id, state);
            }
        }
        TenantCommand::Revoke { name, data_dir } => {
            let tenant = open_tenants(&data_dir)?.revoke(&name)?;
            println!(
                "revoked tenant {}; `scimflow tenant rotate {}` issues a new token",
                tenant.name, tenant.name
            );
        }
        TenantCommand::Rotate { name, data_dir, quiet } => {
            let (tenant, token) = open_tenants(&data_dir)?.rotate(&name)?;
            if quiet {
                println!("{token}");
            } else {
                println!("new bearer token for {} (the old one no longer works): {token}", tenant.name);
            }
        }
    }
    Ok(())
}
