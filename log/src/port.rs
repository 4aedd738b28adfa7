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

/// Reading the command log back in order, partition by partition: what replay, verification and
/// history folds are built on. Calls block (the embedded log reads redb, Kafka polls a
/// consumer): call them from a blocking thread.
pub trait LogReader: Send + Sync {
    /// The partitions of the log, ascending (one for the embedded log).
    fn partitions(&self) -> Result<Vec<u32>, LogError>;

    /// The offset the next record of `partition` will get (its high watermark).
    fn end_offset(&self, partition: u32) -> Result<u64, LogError>;

    /// Records of `partition` with offsets in `[from, end_offset)`, in order, at most `limit`;
    /// fewer (but at least one while `from` is below the end) when fewer are at hand.
    fn read(&self, partition: u32, from: u64, limit: usize) -> Result<Vec<LogRecord>, LogError>;

    /// The first offset of `partition` whose command was issued (Kafka: produced) at or after
    /// `unix_ms`, or the end offset if none was.
    fn offset_for_time(&self, partition: u32, unix_ms: i64) -> Result<u64, LogError>;

    /// The one partition that holds every command of `tenant_id`, where the log can tell (Kafka:
    /// the producer's key hash); `None` means every partition must be scanned.
    fn tenant_partition(&self, tenant_id: &str) -> Result<Option<u32>, LogError> {
        let _ = tenant_id;
        Ok(None)
    }
}
