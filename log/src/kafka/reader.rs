//! [`LogReader`] on the Kafka commands topic: replay, verification and history read the source of
//! truth directly, partition by partition, with a consumer that never joins a group and never
//! commits (it cannot disturb the projectors' offsets).
//!
//! Reads are positioned explicitly (`assign` at an offset). Sequential reads of one partition
//! keep the consumer's fetch pipeline running; a read elsewhere re-assigns it.

use super::KafkaSetupError;
use super::config::KafkaConfig;
use super::context::TracingContext;
use crate::port::{LogError, LogReader, LogRecord};
use crate::scan::first_issued_at_or_after;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Timeout of metadata, watermark and offsets-for-times requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one poll waits for the next record.
const POLL: Duration = Duration::from_millis(200);
/// A read that gets nothing while records are known to exist gives up after this long.
const STALL: Duration = Duration::from_secs(30);

struct Cursor {
    consumer: BaseConsumer<TracingContext>,
    /// The assigned partition and the offset the next polled record should have.
    position: Option<(u32, u64)>,
    /// Last known end offsets, refreshed when a read reaches them.
    ends: BTreeMap<u32, u64>,
}

/// Reads the commands topic. One consumer, used by one read at a time.
pub struct KafkaLogReader {
    topic: String,
    cursor: Mutex<Cursor>,
}

fn unavailable(context: &str, error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("{context}: {error}"))
}

impl KafkaLogReader {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaSetupError> {
        let consumer: BaseConsumer<TracingContext> = config
            .client_config(&[])
            // librdkafka wants a group id even for `assign()`; this one never joins or commits.
            .set("group.id", "scimflow-log-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            // An offset below the retained head starts at the head; `read` reports the gap.
            .set("auto.offset.reset", "earliest")
            .create_with_context(TracingContext { client: "log-reader" })?;
        Ok(KafkaLogReader {
            topic: config.topics().commands,
            cursor: Mutex::new(Cursor { consumer, position: None, ends: BTreeMap::new() }),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cursor> {
        // A panic mid-read leaves at worst a stale position, which the next read re-assigns.
        self.cursor.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn watermark(&self, cursor: &mut Cursor, partition: u32) -> Result<u64, LogError> {
        let (_low, high) =
            cursor.consumer.fetch_watermarks(&self.topic, partition as i32, REQUEST_TIMEOUT).map_err(
                |error| unavailable(&format!("end offset of {} partition {partition}", self.topic), error),
            )?;
        let end = high.max(0) as u64;
        cursor.ends.insert(partition, end);
        Ok(end)
    }
}

impl LogReader for KafkaLogReader {
    fn partitions(&self) -> Result<Vec<u32>, LogError> {
        let cursor = self.lock();
        let metadata = cursor
            .consumer
            .fetch_metadata(Some(&self.topic), REQUEST_TIMEOUT)
            .map_err(|error| unavailable(&format!("metadata of {}", self.topic), error))?;
        let mut partitions: Vec<u32> = metadata
            .topics()
            .iter()
            .filter(|topic| topic.name() == self.topic && topic.error().is_none())
            .flat_map(|topic| topic.partitions().iter().map(|partition| partition.id() as u32))
            .collect();
        partitions.sort_unstable();
        if partitions.is_empty() {
            return Err(LogError::Unavailable(format!(
                "topic {} has no partitions (does it exist? check SCIMFLOW_KAFKA_TOPIC_PREFIX)",
                self.topic
            )));
        }
        Ok(partitions)
    }

    fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        let mut cursor = self.lock();
        self.watermark(&mut cursor, partition)
    }

    fn read(&self, partition: u32, from: u64, limit: usize) -> Result<Vec<LogRecord>, LogError> {
        let mut cursor = self.lock();
        let mut end = match cursor.ends.get(&partition) {
            Some(end) if from < *end => *end,
            _ => self.watermark(&mut cursor, partition)?,
        };
        if from >= end || limit == 0 {
            return Ok(Vec::new());
        }
        if cursor.position != Some((partition, from)) {
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&self.topic, partition as i32, Offset::Offset(from as i64))
                .map_err(|error| unavailable("assign", error))?;
            cursor.consumer.assign(&assignment).map_err(|error| unavailable("assign", error))?;
            cursor.position = Some((partition, from));
        }
        let mut records = Vec::with_capacity(limit.min(4096));
        let mut next = from;
        let mut last_progress = Instant::now();
        while records.len() < limit && next < end {
            match cursor.consumer.poll(POLL) {
                Some(Ok(message)) => {
                    let offset = message.offset() as u64;
                    // Records of an earlier assignment still in flight are not ours.
                    if message.partition() as u32 != partition || offset < next {
                        continue;
                    }
                    records.push(LogRecord {
                        partition,
                        offset,
                        payload: message.payload().unwrap_or_default().to_vec(),
                    });
                    next = offset + 1;
                    last_progress = Instant::now();
                }
                Some(Err(error)) => {
                    tracing::warn!(error = %error, partition, "KafkaLogReadFailed");
                }
                None if !records.is_empty() => break,
                None => {
                    // The end may have been a transaction marker or compacted away: re-check.
                    end = self.watermark(&mut cursor, partition)?;
                    if last_progress.elapsed() > STALL {
                        return Err(LogError::Unavailable(format!(
                            "no record of {} partition {partition} from offset {next} arrived within {STALL:?} \
                             (end offset {end})",
                            self.topic
                        )));
                    }
                }
            }
        }
        if let Some(first) = records.first()
            && first.offset > from
        {
            tracing::warn!(topic = %self.topic, partition, from, first = first.offset, "KafkaLogGap");
        }
        cursor.position = Some((partition, next));
        Ok(records)
    }

    /// Kafka's time index (`offsetsForTimes`, on the records' produce time, which follows the
    /// command's ingest time), then a short scan to the first command issued at or after it.
    fn offset_for_time(&self, partition: u32, unix_ms: i64) -> Result<u64, LogError> {
        let found = {
            let cursor = self.lock();
            let mut query = TopicPartitionList::new();
            query
                .add_partition_offset(&self.topic, partition as i32, Offset::Offset(unix_ms))
                .map_err(|error| unavailable("offsets for times", error))?;
            let answer = cursor
                .consumer
                .offsets_for_times(query, REQUEST_TIMEOUT)
                .map_err(|error| unavailable("offsets for times", error))?;
            answer.find_partition(&self.topic, partition as i32).map(|element| element.offset())
        };
        let start = match found {
            Some(Offset::Offset(offset)) if offset >= 0 => offset as u64,
            // No record produced at or after the instant.
            _ => return self.end_offset(partition),
        };
        first_issued_at_or_after(self, partition, start, unix_ms)
    }

    /// The producer's partitioner is `murmur2_random` (Java's `murmur2(key) & 0x7fffffff` modulo
    /// the partition count), so a tenant's partition is computed, never searched.
    fn tenant_partition(&self, tenant_id: &str) -> Result<Option<u32>, LogError> {
        let partitions = self.partitions()?.len() as u32;
        Ok(Some(java_murmur2_partition(tenant_id.as_bytes(), partitions)))
    }
}

/// Kafka's default key partitioning (Java `Utils.murmur2`, librdkafka `murmur2_random`).
pub fn java_murmur2_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions.max(1)
}

/// Java Kafka's `Utils.murmur2`: MurmurHash2, 32 bit, seed `0x9747b28c`.
fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() == 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_java_kafka() {
        // The vectors of Kafka's own `UtilsTest.testMurmur2`.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }
}
