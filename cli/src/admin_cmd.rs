//! `scimflow admin token ...`: the operator's bearer tokens for the API's `/admin` endpoints
//! (any tenant's history), distinct from tenant tokens. Printed once, stored only as hashes in
//! `DATA_DIR/tenants.redb`. Like tenants, they are managed while `serve` is stopped.

use crate::embedded::open_tenants;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Admin tokens.
    Token {
        #[command(subcommand)]
        command: AdminTokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create an admin token and print it (shown once).
    Create {
        /// A name for the token (who or what holds it).
        name: String,
        #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
        data_dir: PathBuf,
        /// Print only the token, for scripts.
        #[arg(long)]
        quiet: bool,
    },
    /// List admin token names.
    List {
        #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Revoke an admin token: its requests get 401 from then on.
    Revoke {
        name: String,
        #[arg(long, default_value = "scimflow-data", env = "SCIMFLOW_DATA_DIR")]
        data_dir: PathBuf,
    },
}

pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    let AdminCommand::Token { command } = command;
    match command {
        AdminTokenCommand::Create { name, data_dir, quiet } => {
            let token = open_tenants(&data_dir)?.admins()?.create(&name)?;
            if quiet {
                println!("{token}");
            } else {
                println!("created admin token {name:?}");
                println!("bearer token for /admin (shown once, store it now): {token}");
            }
        }
        AdminTokenCommand::List { data_dir } => {
            for name in open_tenants(&data_dir)?.admins()?.list()? {
                println!("{name}");
            }
        }
        AdminTokenCommand::Revoke { name, data_dir } => {
            open_tenants(&data_dir)?.admins()?.revoke(&name)?;
            println!("revoked admin token {name:?}");
        }
    }
    Ok(())
}
