//! The write path as the API sees it: register for the outcome, append durably, wait for the
//! projector's decision. A 2xx is only ever built from an outcome, so it implies the command is
//! durable in the log and folded into the store.

use crate::outcome::{Outcome, OutcomeHub};
use crate::port::{CommandLog, LogError};
use crate::trace_context;
use prost::Message as _;
use scimflow_core::command::Command;
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, Span};

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

    /// Appends `command` and waits for its outcome, in a `command_submit` span whose W3C
    /// context the command carries (in its envelope and as a `traceparent` header), so the
    /// projector's span for it joins the caller's trace.
    pub async fn submit(&self, command: &Command) -> Result<Outcome, SubmitError> {
        let span = tracing::info_span!(
            "command_submit",
            event_id = %command.event_id,
            tenant_id = %command.tenant_id,
            kind = command.kind.name(),
            action = command.action.name(),
        );
        self.submit_traced(command, &span).instrument(span.clone()).await
    }

    async fn submit_traced(&self, command: &Command, span: &Span) -> Result<Outcome, SubmitError> {
        let mut envelope = command.to_proto();
        let mut headers = vec![("request-id".to_owned(), command.metadata.causation_id.clone())];
        if let Some(traceparent) = trace_context::traceparent_of(span) {
            // Kafka tooling and other consumers look for the context in the headers.
            headers.push((trace_context::TRACEPARENT.to_owned(), traceparent.clone()));
            envelope.traceparent = traceparent;
        }
        let waiter = self.hub.register(&command.event_id);
        if let Err(error) = self.log.append(&command.tenant_id, envelope.encode_to_vec(), headers).await {
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
