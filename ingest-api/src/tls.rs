//! HTTPS for the API with rustls on the `ring` provider (aws-lc-rs, rustls' default, needs
//! cmake to build). A certificate chain and its private key in PEM files become a
//! [`rustls::ServerConfig`]; every error names the file it is about.
//!
//! # Examples
//! ```no_run
//! # async fn run(state: scimflow_ingest_api::ApiState) -> Result<(), Box<dyn std::error::Error>> {
//! use scimflow_ingest_api::tls::{TlsFiles, server_config};
//! let files = TlsFiles { cert_path: "cert.pem".into(), key_path: "key.pem".into() };
//! let tls = server_config(&files)?;
//! let listener = std::net::TcpListener::bind("127.0.0.1:8443")?;
//! scimflow_ingest_api::startup::build_tls_server(listener, state, tls)?.await?;
//! # Ok(())
//! # }
//! ```

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the PEM certificate chain (leaf first) and its private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("TLS certificate file {path} holds no PEM certificate ({detail})")]
    NoCertificate { path: PathBuf, detail: String },
    #[error("TLS key file {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {detail}")]
    NoKey { path: PathBuf, detail: String },
    /// rustls refused the pair (e.g. the key does not belong to the certificate).
    #[error("TLS certificate {cert_path} and key {key_path} cannot be used together: {source}")]
    Rejected { cert_path: PathBuf, key_path: PathBuf, source: rustls::Error },
}

/// The crypto provider every TLS object of the process uses.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes `ring` the process-wide default provider, for any rustls user that asks for the
/// default. Idempotent; a provider installed earlier is kept.
pub fn install_default_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads and checks the certificate chain and key; the config offers TLS 1.2 and 1.3.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let certificates = read_certificates(&files.cert_path)?;
    let key = read_key(&files.key_path)?;
    let rejected = |source| TlsError::Rejected {
        cert_path: files.cert_path.clone(),
        key_path: files.key_path.clone(),
        source,
    };
    rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(rejected)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file("certificate", path)?;
    let no_certificate = |detail: String| TlsError::NoCertificate { path: path.to_owned(), detail };
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| no_certificate(error.to_string()))?;
    if certificates.is_empty() {
        return Err(no_certificate("no CERTIFICATE block".to_owned()));
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|error| TlsError::NoKey { path: path.to_owned(), detail: error.to_string() })
}
