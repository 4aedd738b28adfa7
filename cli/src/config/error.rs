//! Configuration errors that say what to fix: the setting's path in the file, where the bad
//! value came from, and why it is wrong.

use std::fmt;
use std::path::PathBuf;

/// One setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the setting in the file (`log.kafka.brokers`).
    pub field: String,
    /// The environment variable the value came from, when it did not come from the file.
    pub env_var: Option<String>,
    /// What is wrong and, where it helps, what to do.
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), env_var: None, reason: reason.into() }
    }

    pub fn from_env(field: impl Into<String>, env_var: &str, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), env_var: Some(env_var.to_owned()), reason: reason.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env_var {
            Some(env_var) => write!(formatter, "{} (from {env_var}): {}", self.field, self.reason),
            None => write!(formatter, "{}: {}", self.field, self.reason),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML, an unknown key or a value of the wrong type; `message` names line and key.
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration:\n{}", list(.0))]
    Invalid(Vec<FieldError>),
}

impl ConfigError {
    /// The field errors, if this is a validation error.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ConfigError::Invalid(errors) => errors,
            _ => &[],
        }
    }
}

fn list(errors: &[FieldError]) -> String {
    errors.iter().map(|error| format!("  - {error}")).collect::<Vec<_>>().join("\n")
}
