//! Kafka delivery: per-product topics and the compacted latest-state topics.
//!
//! - `<prefix>product.<name>`: the subscription's (filtered, trimmed) `ChangeEnvelope`s, key
//!   `<tenant>/<User|Group>/<resource id>` so every change of a resource lands in one partition
//!   in order (membership deltas use their group's key). Headers `change-id`, `tenant` and,
//!   with tracing on, `traceparent` (the W3C context of the delivery span).
//! - `<prefix>state.users`, `<prefix>state.groups`: key `<tenant>/<id>`, value the latest
//!   upsert `ChangeEnvelope` (full resource), a tombstone (null value) on delete.
//! - `<prefix>state.memberships`: key `<tenant>/<group>/<member>`, value a `ChangeEnvelope` with
//!   `members_added` holding that one member, a tombstone on removal. A `members_cleared`
//!   (group replaced or deleted) is published as a marker record with key `<tenant>/<group>`:
//!   fanout does not know which members the group had, so a state consumer must drop every
//!   membership of that group it has seen so far. All records of a group go to one partition
//!   (chosen from `<tenant>/<group>`), so the marker is always read in order with them, also
//!   after compaction, which keeps the latest marker behind every member record it cleared.
//!
//! The producer is idempotent with `acks=all` and at most 5 requests in flight, so retries
//! neither duplicate nor reorder within a partition; `message.timeout.ms=0` makes it retry for
//! as long as it takes rather than drop a record and break the order.

use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use scimflow_log::kafka::KafkaConfig;
use scimflow_log::trace_context;
use scimflow_proto as pb;
use scimflow_proto::change_envelope::Change;
use std::time::Duration;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Topic names derived from the prefix.
pub fn product_topic(prefix: &str, product: &str) -> String {
    format!("{prefix}product.{product}")
}
pub fn state_topics(prefix: &str) -> [String; 3] {
    [format!("{prefix}state.users"), format!("{prefix}state.groups"), format!("{prefix}state.memberships")]
}

/// The record key that keeps a resource's changes in order.
pub fn resource_key(envelope: &pb::ChangeEnvelope) -> String {
    format!("{}/{}/{}", envelope.tenant_id, type_name(envelope.resource_type), envelope.resource_id)
}

fn type_name(resource_type: i32) -> &'static str {
    match pb::ResourceType::try_from(resource_type) {
        Ok(pb::ResourceType::Group) => "Group",
        _ => "User",
    }
}

pub struct KafkaSink {
    producer: FutureProducer,
    prefix: String,
    memberships_partitions: i32,
}

impl KafkaSink {
    /// Creates the topics that are missing, then the producer.
    pub async fn start(
        kafka: &KafkaConfig,
        products: &[String],
        state_topics_enabled: bool,
        partitions: i32,
    ) -> Result<Self, KafkaError> {
        let prefix = kafka.topic_prefix.clone();
        let retention = kafka.changes_retention.as_millis().to_string();
        let replication = || TopicReplication::Fixed(kafka.replication_factor);
        let product_topics: Vec<String> = products.iter().map(|p| product_topic(&prefix, p)).collect();
        let mut topics: Vec<NewTopic<'_>> = product_topics
            .iter()
            .map(|name| {
                NewTopic::new(name, partitions, replication())
                    .set("cleanup.policy", "delete")
                    .set("retention.ms", &retention)
            })
            .collect();
        let state = state_topics(&prefix);
        if state_topics_enabled {
            for name in &state {
                topics.push(NewTopic::new(name, partitions, replication()).set("cleanup.policy", "compact"));
            }
        }
        let admin: AdminClient<DefaultClientContext> = kafka.client_config(&[]).create()?;
        let options =
            AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT));
        if !topics.is_empty() {
            for result in admin.create_topics(&topics, &options).await? {
                match result {
                    Ok(topic) => tracing::info!(topic = %topic, "FanoutTopicCreated"),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => {
                        tracing::error!(topic = %topic, code = %code, "FanoutTopicCreateFailed");
                        return Err(KafkaError::AdminOp(code));
                    }
                }
            }
        }
        let producer: FutureProducer = kafka
            .client_config(&[("linger.ms", "5")])
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", "0")
            .create()?;
        let memberships_partitions = if state_topics_enabled {
            // An existing topic keeps its own count: ask rather than assume.
            let (probe, name) = (producer.clone(), state[2].clone());
            tokio::task::spawn_blocking(move || partition_count(&probe, &name, partitions))
                .await
                .map_err(|_| KafkaError::Canceled)??
        } else {
            partitions
        };
        Ok(KafkaSink { producer, prefix, memberships_partitions })
    }

    /// Queues one product record; the future resolves when the broker has it.
    pub fn send_product(
        &self,
        product: &str,
        envelope: &pb::ChangeEnvelope,
    ) -> Result<DeliveryFuture, KafkaError> {
        let topic = product_topic(&self.prefix, product);
        let key = resource_key(envelope);
        let value = envelope.encode_to_vec();
        self.send(&topic, &key, Some(&value), None, envelope)
    }

    /// Queues the state-topic records of one change (none for kinds the state topics do not
    /// hold).
    pub fn send_state(&self, envelope: &pb::ChangeEnvelope) -> Result<Vec<DeliveryFuture>, KafkaError> {
        let [users, groups, memberships] = state_topics(&self.prefix);
        let resource_topic = match pb::ResourceType::try_from(envelope.resource_type) {
            Ok(pb::ResourceType::Group) => groups,
            _ => users,
        };
        let tenant = &envelope.tenant_id;
        // State keys need no type: users and groups have their own topics.
        let state_key = format!("{tenant}/{}", envelope.resource_id);
        let group_key = &state_key;
        let group_partition = Some(partition_of(group_key, self.memberships_partitions));
        let mut futures = Vec::new();
        match &envelope.change {
            Some(Change::Upserted(_)) => futures.push(self.send(
                &resource_topic,
                &state_key,
                Some(&envelope.encode_to_vec()),
                None,
                envelope,
            )?),
            Some(Change::Deleted(_)) => {
                futures.push(self.send(&resource_topic, &state_key, None, None, envelope)?)
            }
            Some(Change::MembersAdded(added)) => {
                for member in &added.members {
                    let mut one = envelope.clone();
                    one.change =
                        Some(Change::MembersAdded(pb::MembersAdded { members: vec![member.clone()] }));
                    let key = format!("{group_key}/{}", member.value);
                    futures.push(self.send(
                        &memberships,
                        &key,
                        Some(&one.encode_to_vec()),
                        group_partition,
                        envelope,
                    )?);
                }
            }
            Some(Change::MembersRemoved(removed)) => {
                for value in &removed.values {
                    let key = format!("{group_key}/{value}");
                    futures.push(self.send(&memberships, &key, None, group_partition, envelope)?);
                }
            }
            Some(Change::MembersCleared(_)) => futures.push(self.send(
                &memberships,
                group_key,
                Some(&envelope.encode_to_vec()),
                group_partition,
                envelope,
            )?),
            None => {}
        }
        Ok(futures)
    }

    fn send(
        &self,
        topic: &str,
        key: &str,
        value: Option<&Vec<u8>>,
        partition: Option<i32>,
        envelope: &pb::ChangeEnvelope,
    ) -> Result<DeliveryFuture, KafkaError> {
        let headers = OwnedHeaders::new()
            .insert(Header { key: "change-id", value: Some(envelope.change_id.as_str()) })
            .insert(Header { key: "tenant", value: Some(envelope.tenant_id.as_str()) });
        // The delivery span the dispatcher entered: consumers continue the write's trace.
        let traceparent = trace_context::traceparent_of(&tracing::Span::current());
        let headers = match &traceparent {
            Some(traceparent) => {
                headers.insert(Header { key: trace_context::TRACEPARENT, value: Some(traceparent.as_str()) })
            }
            None => headers,
        };
        let mut record: FutureRecord<'_, str, Vec<u8>> = FutureRecord::to(topic).key(key).headers(headers);
        if let Some(value) = value {
            record = record.payload(value);
        }
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(future) => return Ok(future),
                // The local queue is full: let librdkafka drain it. Records are queued in call
                // order, so waiting here keeps the order.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => return Err(error),
            }
        }
    }
}

/// Partitions of `topic` as the brokers see them; a topic created a moment ago can show none
/// for a while, so ask a few times before falling back to the count it was created with.
fn partition_count(producer: &FutureProducer, topic: &str, created_with: i32) -> Result<i32, KafkaError> {
    for _ in 0..20 {
        let metadata = producer.client().fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let count = metadata.topics().first().map_or(0, |topic| topic.partitions().len());
        if count > 0 {
            return Ok(count as i32);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(created_with)
}

/// FNV-1a: stable across versions and platforms, so a group's records keep one partition.
fn partition_of(key: &str, partitions: i32) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % partitions.max(1) as u32) as i32
}

/// Waits for deliveries; the first failure is the batch's failure.
pub async fn await_deliveries(futures: Vec<DeliveryFuture>) -> Result<(), KafkaError> {
    for future in futures {
        match future.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => return Err(error),
            Err(_) => return Err(KafkaError::Canceled),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_key_names_tenant_type_and_id() {
        let envelope = pb::ChangeEnvelope {
            tenant_id: "acme".into(),
            resource_type: pb::ResourceType::Group as i32,
            resource_id: "g1".into(),
            ..Default::default()
        };
        assert_eq!(resource_key(&envelope), "acme/Group/g1");
    }

    #[test]
    fn a_group_always_maps_to_the_same_partition() {
        assert_eq!(partition_of("acme/g1", 12), partition_of("acme/g1", 12));
        assert!((0..12).contains(&partition_of("acme/g1", 12)));
    }
}
