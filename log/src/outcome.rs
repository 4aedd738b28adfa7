//! Outcomes: what the projector decided for a command, delivered to the API request waiting on
//! it. In one process the hub is handed outcomes directly; across processes they travel on an
//! outcomes topic and each API instance feeds its own hub.

use scimflow_core::error::{ScimError, ScimType};
use scimflow_core::state::StoredResource;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub event_id: String,
    pub result: Result<Accepted, ScimError>,
}

/// The accepted part of a decision that the API needs to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub status: u16,
    pub resource: Option<StoredResource>,
    pub skipped_members: Vec<String>,
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        match &self.result {
            Ok(accepted) => json!({
                "eventId": self.event_id,
                "status": accepted.status,
                "resource": accepted.resource.as_ref().map(|stored| &stored.resource),
                "version": accepted.resource.as_ref().map(|stored| stored.version),
                "skippedMembers": accepted.skipped_members,
            }),
            Err(error) => json!({
                "eventId": self.event_id,
                "error": {
                    "status": error.status,
                    "scimType": error.scim_type.map(ScimType::as_str),
                    "detail": error.detail,
                },
            }),
        }
    }

    pub fn from_json(value: &Value) -> Option<Outcome> {
        let event_id = value.get("eventId")?.as_str()?.to_owned();
        if let Some(error) = value.get("error") {
            let status = error.get("status")?.as_u64()? as u16;
            let scim_type = error.get("scimType").and_then(Value::as_str).and_then(ScimType::parse);
            let detail = error.get("detail")?.as_str()?.to_owned();
            return Some(Outcome { event_id, result: Err(ScimError { status, scim_type, detail }) });
        }
        let status = value.get("status")?.as_u64()? as u16;
        let resource = match (value.get("resource"), value.get("version").and_then(Value::as_u64)) {
            (Some(resource), Some(version)) if !resource.is_null() => {
                Some(StoredResource { resource: resource.clone(), version })
            }
            _ => None,
        };
        let skipped_members = value
            .get("skippedMembers")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Some(Outcome { event_id, result: Ok(Accepted { status, resource, skipped_members }) })
    }
}

/// Where API requests wait for the outcome of their command, by event id.
#[derive(Default)]
pub struct OutcomeHub {
    waiters: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
}

impl OutcomeHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers interest in `event_id`; must be called before the command is appended, or a
    /// fast projector could report the outcome before anyone listens.
    pub fn register(&self, event_id: &str) -> oneshot::Receiver<Outcome> {
        let (sender, receiver) = oneshot::channel();
        self.lock().insert(event_id.to_owned(), sender);
        receiver
    }

    /// Forgets a waiter that gave up (timeout or client gone).
    pub fn forget(&self, event_id: &str) {
        self.lock().remove(event_id);
    }

    /// Hands an outcome to its waiter, if this instance has one.
    pub fn deliver(&self, outcome: Outcome) {
        let waiter = self.lock().remove(&outcome.event_id);
        if let Some(waiter) = waiter {
            // The receiver may have been dropped by a request that timed out: nothing to do.
            let _ = waiter.send(outcome);
        }
    }

    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Outcome>>> {
        // A panic while holding this lock cannot leave the map inconsistent: recover it.
        self.waiters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_through_json() {
        let accepted = Outcome {
            event_id: "e1".into(),
            result: Ok(Accepted {
                status: 201,
                resource: Some(StoredResource { resource: json!({"id": "u1"}), version: 1 }),
                skipped_members: vec!["x".into()],
            }),
        };
        assert_eq!(Outcome::from_json(&accepted.to_json()), Some(accepted));
        let rejected = Outcome { event_id: "e2".into(), result: Err(ScimError::uniqueness("taken")) };
        assert_eq!(Outcome::from_json(&rejected.to_json()), Some(rejected));
    }
}
