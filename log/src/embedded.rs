//! The embedded command log on redb: one partition, one table `commands (offset) -> envelope`.
//!
//! Appends are group-committed: a writer thread takes every append waiting, writes them in one
//! transaction with an fsync ([`redb::Durability::Immediate`]) and only then answers each caller,
//! so many concurrent requests share one disk flush and none is acknowledged before it is durable.

use crate::port::{Appended, CommandLog, LogError, LogReader, LogRecord};
use async_trait::async_trait;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

const COMMANDS: TableDefinition<u64, &[u8]> = TableDefinition::new("commands");

/// The embedded log has one partition: a single ordered stream for all tenants.
pub const EMBEDDED_PARTITION: u32 = 0;

/// redb's page cache for the log: the projector reads the tail just written, so a small cache
/// suffices and memory does not grow with the log.
const LOG_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Most appends folded into one transaction; bounds the latency of the first append of a batch.
const MAX_GROUP_COMMIT: usize = 4096;

struct PendingAppend {
    payload: Vec<u8>,
    reply: oneshot::Sender<Result<Appended, LogError>>,
}

#[derive(Clone)]
pub struct EmbeddedLog {
    db: Arc<Database>,
    appends: mpsc::Sender<PendingAppend>,
    /// The offset the next append will get; readers wait on it to learn about new records.
    end: watch::Receiver<u64>,
}

impl EmbeddedLog {
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let db = Database::builder().set_cache_size(LOG_CACHE_BYTES).create(path).map_err(|error| {
            LogError::Unavailable(format!("cannot open command log {}: {error}", path.display()))
        })?;
        let db = Arc::new(db);
        let end_offset = {
            let txn = db.begin_write().map_err(unavailable)?;
            let end = {
                let table = txn.open_table(COMMANDS).map_err(unavailable)?;
                table.last().map_err(unavailable)?.map(|(offset, _)| offset.value() + 1).unwrap_or(0)
            };
            txn.commit().map_err(unavailable)?;
            end
        };
        let (end_sender, end) = watch::channel(end_offset);
        // Bounded, so a stalled disk pushes back on the API instead of buffering without limit.
        let (appends, receiver) = mpsc::channel(MAX_GROUP_COMMIT * 4);
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("scimflow-log-writer".into())
            .spawn(move || run_writer(writer_db, receiver, end_offset, end_sender))
            .map_err(unavailable)?;
        Ok(EmbeddedLog { db, appends, end })
    }

    /// Records with offsets in `[from, ..)`, at most `limit`.
    pub fn read(&self, from: u64, limit: usize) -> Result<Vec<LogRecord>, LogError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(COMMANDS).map_err(unavailable)?;
        let mut records = Vec::new();
        for entry in table.range(from..).map_err(unavailable)?.take(limit) {
            let (offset, payload) = entry.map_err(unavailable)?;
            records.push(LogRecord {
                partition: EMBEDDED_PARTITION,
                offset: offset.value(),
                payload: payload.value().to_vec(),
            });
        }
        Ok(records)
    }

    /// A receiver of the log's end offset, to wait for new records.
    pub fn watch_end(&self) -> watch::Receiver<u64> {
        self.end.clone()
    }

    pub fn end_offset(&self) -> u64 {
        *self.end.borrow()
    }
}

impl LogReader for EmbeddedLog {
    fn partitions(&self) -> Result<Vec<u32>, LogError> {
        Ok(vec![EMBEDDED_PARTITION])
    }

    fn end_offset(&self, _partition: u32) -> Result<u64, LogError> {
        Ok(EmbeddedLog::end_offset(self))
    }

    fn read(&self, _partition: u32, from: u64, limit: usize) -> Result<Vec<LogRecord>, LogError> {
        EmbeddedLog::read(self, from, limit)
    }

    /// A scan from the start: the embedded log keeps no time index (it is meant for one node's
    /// data, where a scan takes seconds).
    fn offset_for_time(&self, partition: u32, unix_ms: i64) -> Result<u64, LogError> {
        crate::scan::first_issued_at_or_after(self, partition, 0, unix_ms)
    }
}

fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}

fn run_writer(
    db: Arc<Database>,
    mut receiver: mpsc::Receiver<PendingAppend>,
    mut next_offset: u64,
    end: watch::Sender<u64>,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP_COMMIT {
            match receiver.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        match write_batch(&db, next_offset, &batch) {
            Ok(()) => {
                let appended = batch.len() as u64;
                for (index, pending) in batch.into_iter().enumerate() {
                    let offset = next_offset + index as u64;
                    let _ = pending.reply.send(Ok(Appended { partition: EMBEDDED_PARTITION, offset }));
                }
                next_offset += appended;
                let _ = end.send(next_offset);
            }
            Err(error) => {
                tracing::error!(error = %error, "CommandLogAppendFailed");
                for pending in batch {
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

fn write_batch(db: &Database, first_offset: u64, batch: &[PendingAppend]) -> Result<(), LogError> {
    let mut txn = db.begin_write().map_err(unavailable)?;
    txn.set_durability(Durability::Immediate).map_err(unavailable)?;
    {
        let mut table = txn.open_table(COMMANDS).map_err(unavailable)?;
        for (index, pending) in batch.iter().enumerate() {
            table.insert(first_offset + index as u64, pending.payload.as_slice()).map_err(unavailable)?;
        }
    }
    txn.commit().map_err(unavailable)
}

#[async_trait]
impl CommandLog for EmbeddedLog {
    async fn append(
        &self,
        _tenant_id: &str,
        payload: Vec<u8>,
        _headers: Vec<(String, String)>,
    ) -> Result<Appended, LogError> {
        let (reply, answer) = oneshot::channel();
        // Waits (asynchronously) while the queue is full: back-pressure instead of unbounded memory.
        self.appends
            .send(PendingAppend { payload, reply })
            .await
            .map_err(|_| LogError::Unavailable("the log writer has stopped".into()))?;
        answer.await.map_err(|_| LogError::Unavailable("the log writer has stopped".into()))?
    }
}
