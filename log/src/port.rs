//! The log port: append a command and learn where it landed once it is durable.

use async_trait::async_trait;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub partition: u32,
    pub offset: u64,
}

/// A record read back from the log by the projector.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub partition: u32,
    pub offset: u64,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The log cannot take writes now; the API answers 503 with `Retry-After`.
    #[error("command log unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait CommandLog: Send + Sync {
    /// Appends one encoded command under `tenant_id` (the partitioning key, so a tenant's
    /// commands stay totally ordered). Returns only once the record is durable.
    async fn append(
        &self,
        tenant_id: &str,
        payload: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Result<Appended, LogError>;
}
