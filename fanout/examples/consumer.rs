//! A product team's consumer: bootstrap the current directory from the compacted state topics,
//! then follow the product topic, skipping changes already applied.
//!
//! ```sh
//! SCIMFLOW_KAFKA_BROKERS=127.0.0.1:9092 cargo run -p scimflow-fanout --example consumer -- billing
//! ```
//!
//! Steps (see docs/consumers.md):
//! 1. Note the product topic's end offsets *before* bootstrapping, so nothing that happens
//!    during the bootstrap is missed.
//! 2. Read `state.users`, `state.groups`, `state.memberships` from the beginning to their end
//!    offsets: the latest state of every resource (tombstones = deleted; a `members_cleared`
//!    marker drops the group's memberships read so far).
//! 3. Follow the product topic from the offsets of step 1, as a consumer group, committing
//!    after applying. Changes already reflected by the bootstrap arrive again: applying a
//!    change whose `resource_version` is not newer than what is held is a no-op, and a
//!    `change_id` seen before is skipped (redeliveries).

use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use scimflow_proto as pb;
use scimflow_proto::change_envelope::Change;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What the product keeps: resources by (tenant, id) with their version, and memberships.
#[derive(Default)]
struct Directory {
    resources: BTreeMap<(String, String), (u64, String)>,
    memberships: BTreeSet<(String, String, String)>,
    /// Recent change ids, to skip redeliveries (bounded: redeliveries are recent).
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
}

impl Directory {
    fn apply(&mut self, envelope: &pb::ChangeEnvelope) {
        if !self.seen.insert(envelope.change_id.clone()) {
            return; // a redelivery
        }
        self.seen_order.push_back(envelope.change_id.clone());
        if self.seen_order.len() > 100_000
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        let key = (envelope.tenant_id.clone(), envelope.resource_id.clone());
        let held = self.resources.get(&key).map(|(version, _)| *version);
        match &envelope.change {
            Some(Change::Upserted(upserted)) => {
                // Versions only grow; an older one is a replay the bootstrap already covers.
                if held.is_none_or(|held| envelope.resource_version > held) {
                    self.resources.insert(key, (envelope.resource_version, upserted.resource_json.clone()));
                }
            }
            Some(Change::Deleted(_)) => {
                self.resources.remove(&key);
            }
            Some(Change::MembersAdded(added)) => {
                for member in &added.members {
                    self.memberships.insert((key.0.clone(), key.1.clone(), member.value.clone()));
                }
            }
            Some(Change::MembersRemoved(removed)) => {
                for value in &removed.values {
                    self.memberships.remove(&(key.0.clone(), key.1.clone(), value.clone()));
                }
            }
            Some(Change::MembersCleared(_)) => {
                self.memberships.retain(|(tenant, group, _)| !(tenant == &key.0 && group == &key.1));
            }
            // A kind newer than this consumer: skip it, as the schema rules say.
            None => eprintln!("skipping change {} of an unknown kind", envelope.change_id),
        }
    }

    /// A state-topic record: the latest upsert, a tombstone, a membership or a cleared marker.
    fn bootstrap(&mut self, topic: &str, key: &str, value: Option<&[u8]>) {
        let parts: Vec<&str> = key.splitn(3, '/').collect();
        match (value.map(pb::ChangeEnvelope::decode), parts.as_slice()) {
            (Some(Ok(envelope)), _) => {
                // Bootstrap records are state, not deliveries: do not mark them seen.
                self.apply(&envelope);
                self.seen.remove(&envelope.change_id);
            }
            (None, [tenant, id]) if !topic.ends_with("memberships") => {
                self.resources.remove(&(tenant.to_string(), id.to_string()));
            }
            (None, [tenant, group, member]) => {
                self.memberships.remove(&(tenant.to_string(), group.to_string(), member.to_string()));
            }
            _ => eprintln!("unreadable state record {key} on {topic}"),
        }
    }
}

fn end_offsets(
    consumer: &BaseConsumer,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, rdkafka::error::KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let mut ends = BTreeMap::new();
    for partition in metadata.topics()[0].partitions() {
        ends.insert(partition.id(), consumer.fetch_watermarks(topic, partition.id(), TIMEOUT)?.1);
    }
    Ok(ends)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let product = std::env::args().nth(1).unwrap_or_else(|| "billing".into());
    let brokers = std::env::var("SCIMFLOW_KAFKA_BROKERS")?;
    let prefix = std::env::var("SCIMFLOW_KAFKA_TOPIC_PREFIX").unwrap_or_else(|_| "scimflow.".into());
    let product_topic = format!("{prefix}product.{product}");
    let group = format!("{product}-directory");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;

    // 1. Where the product topic ends now.
    let follow_from = end_offsets(&consumer, &product_topic)?;

    // 2. Bootstrap from the compacted state topics.
    let mut directory = Directory::default();
    for suffix in ["state.users", "state.groups", "state.memberships"] {
        let topic = format!("{prefix}{suffix}");
        let ends = end_offsets(&consumer, &topic)?;
        let mut assignment = TopicPartitionList::new();
        for partition in ends.keys() {
            assignment.add_partition_offset(&topic, *partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let mut done: BTreeSet<i32> = ends.iter().filter(|(_, end)| **end == 0).map(|(p, _)| *p).collect();
        while done.len() < ends.len() {
            let Some(message) = consumer.poll(TIMEOUT) else { break };
            let message = message?;
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            directory.bootstrap(&topic, &key, message.payload());
            if message.offset() + 1 >= ends[&message.partition()] {
                done.insert(message.partition());
            }
        }
    }
    println!(
        "bootstrapped {} resources and {} memberships",
        directory.resources.len(),
        directory.memberships.len()
    );

    // 3. Follow the product topic. A group that already committed resumes from its offsets;
    //    a new one starts where the bootstrap left off.
    let mut assignment = TopicPartitionList::new();
    let committed = consumer.committed_offsets(
        {
            let mut list = TopicPartitionList::new();
            for partition in follow_from.keys() {
                list.add_partition(&product_topic, *partition);
            }
            list
        },
        TIMEOUT,
    )?;
    for (partition, end) in &follow_from {
        let offset = match committed.find_partition(&product_topic, *partition).map(|p| p.offset()) {
            Some(Offset::Offset(offset)) => Offset::Offset(offset),
            _ => Offset::Offset(*end),
        };
        assignment.add_partition_offset(&product_topic, *partition, offset)?;
    }
    consumer.assign(&assignment)?;
    loop {
        let Some(message) = consumer.poll(Duration::from_secs(1)) else { continue };
        let message = message?;
        match message.payload().map(pb::ChangeEnvelope::decode) {
            Some(Ok(envelope)) => {
                directory.apply(&envelope);
                println!(
                    "{} {}/{} v{} ({} resources)",
                    envelope.change_id,
                    envelope.tenant_id,
                    envelope.resource_id,
                    envelope.resource_version,
                    directory.resources.len()
                );
            }
            _ => eprintln!("skipping unreadable record at offset {}", message.offset()),
        }
        // Commit after applying: a crash re-reads, and `apply` skips what it saw.
        consumer.commit_message(&message, CommitMode::Async)?;
    }
}
