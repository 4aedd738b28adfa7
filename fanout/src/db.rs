//! Fanout's own durable state, one redb file under the data dir: the webhook outboxes, the
//! dead-letter store, and the store-feed cursor of the all-in-one mode.
//!
//! The outbox is what isolates subscribers: the dispatcher only appends to it (a local write),
//! and one worker per (product, lane) drains it at the subscriber's pace. A dead subscriber
//! grows its outbox on disk; it never holds back the source or the other subscribers.

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// (product, lane, sequence) → encoded `ChangeEnvelope` (already filtered and trimmed).
const OUTBOX: TableDefinition<(&str, u32, u64), &[u8]> = TableDefinition::new("outbox");
/// (product, sequence) → JSON [`DeadLetter`].
const DEAD_LETTERS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead_letters");
/// partition → next command offset of the store's change feed to read.
const CURSORS: TableDefinition<u32, u64> = TableDefinition::new("store_feed_cursors");
/// "seq" → last sequence handed out; one counter orders outbox and dead letters alike.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

#[derive(Debug, thiserror::Error)]
#[error("fanout database: {0}")]
pub struct DbError(pub String);

fn db_error(error: impl std::fmt::Display) -> DbError {
    DbError(error.to_string())
}

/// An event that exhausted its attempts (or that the subscriber refused), kept for redrive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub product: String,
    pub sequence: u64,
    pub change_id: String,
    pub attempts: u32,
    pub last_error: String,
    pub dead_at_unix_ms: i64,
    /// The encoded `ChangeEnvelope` as it was queued.
    #[serde(with = "base64_bytes")]
    pub envelope: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        STANDARD.decode(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// One queued item handed to a worker.
#[derive(Debug, Clone)]
pub struct Queued {
    pub sequence: u64,
    pub envelope: Vec<u8>,
}

#[derive(Clone)]
pub struct FanoutDb {
    db: Arc<Database>,
}

impl FanoutDb {
    pub fn open(data_dir: &Path) -> Result<Self, DbError> {
        std::fs::create_dir_all(data_dir).map_err(db_error)?;
        let db = Database::create(data_dir.join("fanout.redb")).map_err(db_error)?;
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(OUTBOX).map_err(db_error)?;
        txn.open_table(DEAD_LETTERS).map_err(db_error)?;
        txn.open_table(CURSORS).map_err(db_error)?;
        txn.open_table(COUNTERS).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(FanoutDb { db: Arc::new(db) })
    }

    /// Appends `(product, lane, envelope)` items in one transaction, in the given order.
    pub fn enqueue(&self, items: &[(&str, u32, Vec<u8>)]) -> Result<(), DbError> {
        if items.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut counters = txn.open_table(COUNTERS).map_err(db_error)?;
            let mut sequence = counters.get("seq").map_err(db_error)?.map(|v| v.value()).unwrap_or(0);
            let mut outbox = txn.open_table(OUTBOX).map_err(db_error)?;
            for (product, lane, envelope) in items {
                sequence += 1;
                outbox.insert((*product, *lane, sequence), envelope.as_slice()).map_err(db_error)?;
            }
            counters.insert("seq", sequence).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    /// The oldest queued item of a lane.
    pub fn head(&self, product: &str, lane: u32) -> Result<Option<Queued>, DbError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_error)?;
        let mut range = outbox.range((product, lane, 0)..=(product, lane, u64::MAX)).map_err(db_error)?;
        match range.next() {
            Some(entry) => {
                let (key, value) = entry.map_err(db_error)?;
                Ok(Some(Queued { sequence: key.value().2, envelope: value.value().to_vec() }))
            }
            None => Ok(None),
        }
    }

    /// How many items wait in a product's outbox (all lanes).
    pub fn depth(&self, product: &str) -> Result<u64, DbError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_error)?;
        let range = outbox.range((product, 0, 0)..=(product, u32::MAX, u64::MAX)).map_err(db_error)?;
        Ok(range.count() as u64)
    }

    /// Removes a delivered item. Without an fsync: losing the removal in a crash only means one
    /// redelivery (allowed, consumers deduplicate), and a disk flush per delivered event would
    /// cap each lane at the disk's flush rate. The next durable commit (an enqueue) makes it
    /// durable.
    pub fn delivered(&self, product: &str, lane: u32, sequence: u64) -> Result<(), DbError> {
        let mut txn = self.db.begin_write().map_err(db_error)?;
        txn.set_durability(Durability::None).map_err(db_error)?;
        txn.open_table(OUTBOX).map_err(db_error)?.remove((product, lane, sequence)).map_err(db_error)?;
        txn.commit().map_err(db_error)
    }

    /// Moves an outbox item to the dead letters, atomically.
    pub fn dead_letter(&self, lane: u32, letter: &DeadLetter) -> Result<(), DbError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let json = serde_json::to_vec(letter).map_err(db_error)?;
            txn.open_table(OUTBOX)
                .map_err(db_error)?
                .remove((letter.product.as_str(), lane, letter.sequence))
                .map_err(db_error)?;
            txn.open_table(DEAD_LETTERS)
                .map_err(db_error)?
                .insert((letter.product.as_str(), letter.sequence), json.as_slice())
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    pub fn dead_letters(&self, product: &str) -> Result<Vec<DeadLetter>, DbError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(DEAD_LETTERS).map_err(db_error)?;
        let mut letters = Vec::new();
        for entry in table.range((product, 0)..=(product, u64::MAX)).map_err(db_error)? {
            let (_, value) = entry.map_err(db_error)?;
            letters.push(serde_json::from_slice(value.value()).map_err(db_error)?);
        }
        Ok(letters)
    }

    /// Moves every dead letter of `product` back to its outbox (lane chosen by `lane_of`), in
    /// their original order, behind whatever is queued now. Returns how many moved.
    pub fn redrive(&self, product: &str, lane_of: impl Fn(&[u8]) -> u32) -> Result<usize, DbError> {
        let letters = self.dead_letters(product)?;
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut counters = txn.open_table(COUNTERS).map_err(db_error)?;
            let mut sequence = counters.get("seq").map_err(db_error)?.map(|v| v.value()).unwrap_or(0);
            let mut outbox = txn.open_table(OUTBOX).map_err(db_error)?;
            let mut dead = txn.open_table(DEAD_LETTERS).map_err(db_error)?;
            for letter in &letters {
                sequence += 1;
                outbox
                    .insert((product, lane_of(&letter.envelope), sequence), letter.envelope.as_slice())
                    .map_err(db_error)?;
                dead.remove((product, letter.sequence)).map_err(db_error)?;
            }
            counters.insert("seq", sequence).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        Ok(letters.len())
    }

    pub fn cursor(&self, partition: u32) -> Result<u64, DbError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(CURSORS).map_err(db_error)?;
        Ok(table.get(partition).map_err(db_error)?.map(|v| v.value()).unwrap_or(0))
    }

    pub fn set_cursors(&self, cursors: &[(u32, u64)]) -> Result<(), DbError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(CURSORS).map_err(db_error)?;
            for (partition, next) in cursors {
                table.insert(*partition, *next).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_are_redriven_behind_the_queued_items_and_leave_the_dead_letter_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = FanoutDb::open(dir.path()).unwrap();
        db.enqueue(&[("p", 0, b"a".to_vec()), ("p", 0, b"b".to_vec())]).unwrap();
        let head = db.head("p", 0).unwrap().unwrap();
        assert_eq!(head.envelope, b"a");
        let letter = DeadLetter {
            product: "p".into(),
            sequence: head.sequence,
            change_id: "e/0".into(),
            attempts: 3,
            last_error: "503".into(),
            dead_at_unix_ms: 0,
            envelope: head.envelope,
        };
        db.dead_letter(0, &letter).unwrap();
        assert_eq!(db.dead_letters("p").unwrap(), vec![letter]);
        assert_eq!(db.redrive("p", |_| 0).unwrap(), 1);
        assert!(db.dead_letters("p").unwrap().is_empty());
        let first = db.head("p", 0).unwrap().unwrap();
        assert_eq!(first.envelope, b"b");
        db.delivered("p", 0, first.sequence).unwrap();
        assert_eq!(db.head("p", 0).unwrap().unwrap().envelope, b"a");
        assert_eq!(db.depth("p").unwrap(), 1);
    }
}
