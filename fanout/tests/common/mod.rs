//! Test helpers: an in-memory change source and change builders; the local SET receiver is
//! `scimflow_fanout::testing`.
#![allow(dead_code)]

#[allow(unused_imports)] // each test file uses a different part
pub use scimflow_fanout::testing::{Behaviour, Received, start_receiver, wait_until};

use async_trait::async_trait;
use scimflow_core::ResourceKind;
use scimflow_core::change::{Change, ChangeBody};
use scimflow_fanout::source::{ChangeSource, SourceError, SourceRecord};
use scimflow_proto as pb;
use std::time::Duration;
use tokio::sync::mpsc;

/// A source fed by the test; `commit` counts how far the runner got.
pub struct ChannelSource {
    pub receiver: mpsc::UnboundedReceiver<pb::ChangeEnvelope>,
    next_offset: u64,
}

pub fn channel_source() -> (mpsc::UnboundedSender<pb::ChangeEnvelope>, Box<dyn ChangeSource>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (sender, Box::new(ChannelSource { receiver, next_offset: 0 }))
}

#[async_trait]
impl ChangeSource for ChannelSource {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceRecord>, SourceError> {
        let mut batch = Vec::new();
        if let Ok(Some(envelope)) = tokio::time::timeout(wait, self.receiver.recv()).await {
            batch.push(envelope);
            while batch.len() < max {
                match self.receiver.try_recv() {
                    Ok(envelope) => batch.push(envelope),
                    Err(_) => break,
                }
            }
        }
        Ok(batch
            .into_iter()
            .map(|envelope| {
                self.next_offset += 1;
                SourceRecord { partition: 0, offset: self.next_offset - 1, envelope: Some(envelope) }
            })
            .collect())
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// An upsert of user `id` at `version`, as the projector would publish it.
pub fn user_upsert(tenant: &str, id: &str, version: u64, user_name: &str) -> pb::ChangeEnvelope {
    let resource = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": id, "userName": user_name, "active": true, "title": "secret title",
        "meta": {"resourceType": "User", "version": format!("W/\"{version}\"")}
    });
    let change = Change {
        kind: ResourceKind::User,
        resource_id: id.into(),
        version,
        occurred_at_ms: now_ms(),
        body: ChangeBody::Upserted { resource, created: version == 1 },
    };
    change.to_proto(tenant, &format!("cmd-{id}-{version}"), 0, "trace")
}

pub fn user_delete(tenant: &str, id: &str, version: u64) -> pb::ChangeEnvelope {
    let change = Change {
        kind: ResourceKind::User,
        resource_id: id.into(),
        version,
        occurred_at_ms: now_ms(),
        body: ChangeBody::Deleted,
    };
    change.to_proto(tenant, &format!("cmd-{id}-{version}"), 0, "trace")
}
