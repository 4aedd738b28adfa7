//! The `[tls]` section: both paths or neither, and the files must make a usable rustls
//! configuration (read at validation, so `scimflow config check` reports a bad file).

use super::error::FieldError;
use super::model::TlsSettings;
use scimflow_ingest_api::tls::{TlsError, TlsFiles, server_config};

/// The certificate and key files when TLS is configured.
pub fn tls_files(tls: &TlsSettings) -> Option<TlsFiles> {
    match (&tls.cert_path, &tls.key_path) {
        (Some(cert_path), Some(key_path)) => {
            Some(TlsFiles { cert_path: cert_path.clone(), key_path: key_path.clone() })
        }
        _ => None,
    }
}

pub fn validate_tls(tls: &TlsSettings) -> Vec<FieldError> {
    match (&tls.cert_path, &tls.key_path) {
        (None, None) => Vec::new(),
        (Some(_), None) => vec![FieldError::new("tls.key_path", "required when tls.cert_path is set")],
        (None, Some(_)) => vec![FieldError::new("tls.cert_path", "required when tls.key_path is set")],
        (Some(cert_path), Some(key_path)) => {
            let files = TlsFiles { cert_path: cert_path.clone(), key_path: key_path.clone() };
            match server_config(&files) {
                Ok(_) => Vec::new(),
                Err(error) => vec![FieldError::new(field_of(&error), error.to_string())],
            }
        }
    }
}

fn field_of(error: &TlsError) -> &'static str {
    match error {
        TlsError::Read { what: "key", .. } | TlsError::NoKey { .. } => "tls.key_path",
        TlsError::Read { .. } | TlsError::NoCertificate { .. } => "tls.cert_path",
        TlsError::Rejected { .. } => "tls",
    }
}
