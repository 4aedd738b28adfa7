//! The all-in-one source: the embedded store's change feed, read from a cursor kept in fanout's
//! database, so a restarted fanout continues where it committed.

mod common;

use common::*;
use prost::Message as _;
use scimflow_fanout::db::FanoutDb;
use scimflow_fanout::source::{ChangeSource, StoreFeedSource};
use scimflow_store::embedded::EmbeddedStore;
use scimflow_store::{ChangeRecord, PartitionPosition, StoreWriter};
use std::sync::Arc;
use std::time::Duration;

fn record(offset: u64, index: u32, user: &str) -> ChangeRecord {
    ChangeRecord { offset, index, envelope: user_upsert("acme", user, 1, user).encode_to_vec() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_feed_is_read_in_order_and_resumes_after_the_committed_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let db = FanoutDb::open(&dir.path().join("fanout")).unwrap();
    let changes = [record(0, 0, "a"), record(1, 0, "b"), record(1, 1, "c")];
    store.commit(0, &PartitionPosition::at(2), &[], &changes).unwrap();

    let mut source = StoreFeedSource::new(store.clone(), db.clone(), vec![0]).unwrap();
    let batch = source.next_batch(100, Duration::from_millis(100)).await.unwrap();
    let ids: Vec<&str> = batch.iter().map(|r| r.envelope.as_ref().unwrap().resource_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    source.commit().await.unwrap();
    assert!(source.next_batch(100, Duration::from_millis(50)).await.unwrap().is_empty());

    store.commit(0, &PartitionPosition::at(3), &[], &[record(2, 0, "d")]).unwrap();
    let mut restarted = StoreFeedSource::new(store.clone(), db.clone(), vec![0]).unwrap();
    let batch = restarted.next_batch(100, Duration::from_millis(500)).await.unwrap();
    let ids: Vec<&str> = batch.iter().map(|r| r.envelope.as_ref().unwrap().resource_id.as_str()).collect();
    assert_eq!(ids, ["d"], "only what came after the committed cursor");
    restarted.commit().await.unwrap();

    // A round that folded another tenant's command ahead of a backlog (offset 9, watermark 4):
    // its change is in the feed, and delivered, at once.
    let ahead = PartitionPosition::at(3).advanced(4, [("globex", 10)]);
    store.commit(0, &ahead, &[], &[record(3, 0, "e"), record(9, 0, "f")]).unwrap();
    let batch = restarted.next_batch(100, Duration::from_millis(500)).await.unwrap();
    let ids: Vec<&str> = batch.iter().map(|r| r.envelope.as_ref().unwrap().resource_id.as_str()).collect();
    assert_eq!(ids, ["e", "f"]);
}
