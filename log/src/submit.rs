//! The write path as the API sees it: register for the outcome, append durably, wait for the
//! projector's decision. A 2xx is only ever built from an outcome, so it implies the command is
//! durable in the log and folded into the store.

use crate::outcome::{Outcome, OutcomeHub};
use crate::port::{CommandLog, LogError};
use scimflow_core::command::Command;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Not durable: the client must retry (503 + Retry-After).
    #[error(transparent)]
    Log(#[from] LogError),
    /// Durable, but the outcome did not arrive in time; the command will still be folded.
    /// The client may retry (a retried create then meets the uniqueness check).
    #[error("the command was logged but its outcome did not arrive within {0:?}")]
    OutcomeTimeout(Duration),
}

#[derive(Clone)]
pub struct WritePath {
    log: Arc<dyn CommandLog>,
    hub: Arc<OutcomeHub>,
    outcome_timeout: Duration,
}

impl WritePath {
    pub fn new(log: Arc<dyn CommandLog>, hub: Arc<OutcomeHub>, outcome_timeout: Duration) -> Self {
        WritePath { log, hub, outcome_timeout }
    }

    pub fn hub(&self) -> &Arc<OutcomeHub> {
        &self.hub
    }

    pub async fn submit(&self, command: &Command) -> Result<Outcome, SubmitError> {
        let waiter = self.hub.register(&command.event_id);
        let headers = vec![
            ("request-id".to_owned(), command.metadata.causation_id.clone()),
            // The W3C trace id of the request; a full `traceparent` arrives with tracing.
            ("trace-id".to_owned(), command.metadata.correlation_id.clone()),
        ];
        if let Err(error) = self.log.append(&command.tenant_id, command.encode(), headers).await {
            self.hub.forget(&command.event_id);
            return Err(error.into());
        }
        match tokio::time::timeout(self.outcome_timeout, waiter).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => {
                self.hub.forget(&command.event_id);
                Err(SubmitError::OutcomeTimeout(self.outcome_timeout))
            }
        }
    }
}
