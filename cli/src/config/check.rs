//! `scimflow config check`: loads the file and the environment, validates, and prints the
//! effective settings as TOML (secrets redacted), so an operator sees what a server would run
//! with. Exits non-zero, listing every problem, when the settings are invalid.

use super::model::Settings;
use super::{CONFIG_ENV, Overrides, load_from_process};
use std::path::PathBuf;

/// What stands in for a secret in printed settings.
pub const REDACTED: &str = "<redacted>";

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The configuration file (TOML); without it, defaults and the environment are checked.
    #[arg(long, env = CONFIG_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file + environment) and print the effective settings.
    Check(CheckArgs),
}

pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check(args) => {
            let settings = load_from_process(args.config.as_deref(), &Overrides::default())?;
            print!("{}", effective_toml(&settings)?);
            eprintln!("configuration is valid");
            Ok(())
        }
    }
}

/// The settings as TOML with every secret replaced by [`REDACTED`].
pub fn effective_toml(settings: &Settings) -> anyhow::Result<String> {
    Ok(toml::to_string(&redacted(settings))?)
}

/// A copy safe to print or log: librdkafka settings that hold credentials are redacted.
pub fn redacted(settings: &Settings) -> Settings {
    let mut copy = settings.clone();
    for (key, value) in copy.log.kafka.client.iter_mut() {
        if is_secret_setting(key) {
            *value = REDACTED.to_owned();
        }
    }
    copy
}

/// librdkafka keys that carry credentials (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, `sasl.jaas.config`, ...).
fn is_secret_setting(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "jaas", "oauthbearer.config", "ssl.key.pem", "keystore.pem"]
        .iter()
        .any(|marker| key.contains(marker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_and_other_settings_kept() {
        let mut settings = Settings::default();
        let client = &mut settings.log.kafka.client;
        client.insert("sasl.password".into(), "hunter2".into());
        client.insert("sasl.oauthbearer.client.secret".into(), "s3cret".into());
        client.insert("security.protocol".into(), "SASL_SSL".into());
        let printed = effective_toml(&settings).unwrap();
        assert!(!printed.contains("hunter2") && !printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("\"security.protocol\" = \"SASL_SSL\""), "{printed}");
        assert_eq!(printed.matches(REDACTED).count(), 2, "{printed}");
    }

    #[test]
    fn printed_settings_read_back_as_the_same_settings() {
        let mut settings = Settings::default();
        settings.api.tenant_overrides.insert("acme".into(), Default::default());
        settings.tls.cert_path = Some("/etc/scimflow/cert.pem".into());
        let printed = effective_toml(&settings).unwrap();
        let read_back: Settings = toml::from_str(&printed).unwrap();
        assert_eq!(read_back, settings);
    }
}
