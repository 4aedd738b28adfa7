//! Configuration of `scimflow`: one typed [`Settings`] from a TOML file, the environment and
//! command-line flags, validated before anything starts. docs/configuration.md lists every
//! setting.
//!
//! Precedence, highest first: flags > environment (`SCIMFLOW_*`) > file (`--config FILE` or
//! `SCIMFLOW_CONFIG`) > defaults. Each layer sets only what it names, so a file may hold three
//! keys and the rest keep their defaults.
//!
//! ## Layout
//! - [`model`]: the sections and their defaults (`deny_unknown_fields`: a typo is an error).
//! - [`env`]: the environment layer (every variable the binary has read, names unchanged).
//! - [`validate`](mod@validate) and [`tls`]: what makes settings unusable, as
//!   [`FieldError`]s naming the setting.
//! - [`build`]: settings to the adapters' configs ([`PipelineOptions`](crate::pipeline::PipelineOptions),
//!   Kafka, CQL, projector, API).
//! - [`tenant_limits`]: per-tenant limit overrides by tenant name or id.
//! - [`check`]: `scimflow config check`, printing the effective settings with secrets redacted.
//!
//! # Examples
//! ```
//! use scimflow::config::{Overrides, load};
//! use std::collections::BTreeMap;
//! let vars = BTreeMap::from([("SCIMFLOW_TENANT_RATE".to_owned(), "50".to_owned())]);
//! let flags = Overrides { tenant_rate: Some(80), ..Overrides::default() };
//! let settings = load(None, &vars, &flags).unwrap();
//! assert_eq!(settings.api.tenant_limits.rate, 80, "a flag beats the environment");
//! ```

pub mod build;
pub mod check;
pub mod env;
pub mod error;
pub mod model;
pub mod tenant_limits;
pub mod tls;
pub mod validate;

pub use error::{ConfigError, FieldError};
pub use model::{
    ApiSettings, CqlSettings, FanoutSettings, KafkaSettings, LogFormat, LogSettings, ProjectorSettings,
    Settings, StoreSettings, TelemetrySettings, TenantLimitSettings, TenantOverride, TlsSettings,
};

use crate::pipeline::{LogKind, StoreKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment variable naming the configuration file (same as `--config`).
pub const CONFIG_ENV: &str = "SCIMFLOW_CONFIG";

/// Values given as command-line flags; `None` leaves the layer below in charge.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub log: Option<LogKind>,
    pub store: Option<StoreKind>,
    pub tenant_rate: Option<u32>,
    pub tenant_burst: Option<u32>,
    pub tenant_concurrency: Option<u32>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub fanout_subscriptions: Option<PathBuf>,
}

impl Overrides {
    fn apply(&self, settings: &mut Settings) {
        set(&mut settings.data_dir, &self.data_dir);
        set(&mut settings.api.listen, &self.listen);
        set(&mut settings.log.kind, &self.log);
        set(&mut settings.store.kind, &self.store);
        set(&mut settings.api.tenant_limits.rate, &self.tenant_rate);
        set(&mut settings.api.tenant_limits.burst, &self.tenant_burst);
        set(&mut settings.api.tenant_limits.concurrency, &self.tenant_concurrency);
        if self.tls_cert.is_some() {
            settings.tls.cert_path = self.tls_cert.clone();
        }
        if self.tls_key.is_some() {
            settings.tls.key_path = self.tls_key.clone();
        }
        if self.fanout_subscriptions.is_some() {
            settings.fanout.subscriptions = self.fanout_subscriptions.clone();
        }
    }
}

fn set<T: Clone>(target: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *target = value.clone();
    }
}

/// Defaults, then `file` (if any), then `vars`, then `flags`; then validation.
pub fn load(
    file: Option<&Path>,
    vars: &BTreeMap<String, String>,
    flags: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut settings = match file {
        Some(path) => read_file(path)?,
        None => Settings::default(),
    };
    let mut errors = env::apply_env(&mut settings, vars);
    flags.apply(&mut settings);
    errors.extend(validate::validate(&settings));
    if errors.is_empty() { Ok(settings) } else { Err(ConfigError::Invalid(errors)) }
}

/// [`load`] with the process environment.
pub fn load_from_process(file: Option<&Path>, flags: &Overrides) -> Result<Settings, ConfigError> {
    load(file, &process_vars(), flags)
}

/// The process environment (values that are not UTF-8 are read lossily; none of ours are).
pub fn process_vars() -> BTreeMap<String, String> {
    std::env::vars_os()
        .map(|(name, value)| (name.to_string_lossy().into_owned(), value.to_string_lossy().into_owned()))
        .collect()
}

/// Parses a configuration file; missing keys keep their defaults.
pub fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text)
        .map_err(|error| ConfigError::Parse { path: path.to_owned(), message: error.to_string() })
}
