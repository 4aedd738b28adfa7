//! The write path of every SCIM write (POST, PUT, PATCH, DELETE, and each `/Bulk` operation):
//! build one [`Command`], submit it to the log, and turn the projector's outcome into an answer.
//!
//! Writes never read the store first: existence, uniqueness, `If-Match` and membership checks
//! are the fold's to decide, in log order, so concurrent writes to one group are all applied
//! and never rejected for contention. A 2xx is only built from an accepted outcome, so it means
//! the command is durable and folded.

use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::metrics::tenant_class;
use crate::state::ApiState;
use scimflow_core::ResourceKind;
use scimflow_core::command::{Action, Command, CommandMetadata};
use scimflow_log::SubmitError;
use scimflow_log::outcome::Accepted;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One write, as the handlers parsed it.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub kind: ResourceKind,
    /// The target id (a new UUID for a create, chosen by the API so the fold stays pure).
    pub resource_id: String,
    pub action: Action,
    /// `If-Match`, as sent; the fold answers 412 on a mismatch.
    pub if_match: Option<String>,
    /// The request as received, for the audit trail (`raw_body` already scrubbed of secrets).
    pub raw_method: String,
    pub raw_path: String,
    pub raw_body: Vec<u8>,
}

/// Milliseconds since the Unix epoch: the ingest time the fold stamps into `meta`.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Builds the command of a write. The tenant comes from the authenticated context only.
pub fn build_command(context: &RequestContext, request: WriteRequest) -> Command {
    Command {
        event_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: context.tenant_id().to_owned(),
        kind: request.kind,
        resource_id: request.resource_id,
        issued_at_ms: now_ms(),
        if_match: request.if_match,
        action: request.action,
        metadata: CommandMetadata {
            causation_id: context.request_id.clone(),
            correlation_id: context.correlation_id.clone(),
            actor: context.actor.clone(),
            // Set by the write path from its span when tracing is on.
            traceparent: String::new(),
            raw_method: request.raw_method,
            raw_path: request.raw_path,
            raw_body: request.raw_body,
        },
    }
}

/// Submits a write and waits for its outcome: the accepted result, the decided SCIM error, or
/// 503 + `Retry-After` when the log is unavailable or the outcome is late.
pub async fn submit(
    state: &ApiState,
    context: &RequestContext,
    request: WriteRequest,
) -> ApiResult<Accepted> {
    let command = build_command(context, request);
    let retry_after_secs = state.config.retry_after_seconds();
    let started = Instant::now();
    let submitted = state.write.submit(&command).await;
    // The log has no health call: readiness learns about it from the appends (see LogHealth).
    let runtime = &state.config.runtime;
    let result_label = match &submitted {
        Ok(outcome) if outcome.result.is_ok() => "accepted",
        Ok(_) => "rejected",
        Err(SubmitError::Log(_)) => "log_unavailable",
        Err(SubmitError::OutcomeTimeout(_)) => "timeout",
    };
    match &submitted {
        Err(SubmitError::Log(_)) => runtime.log_health().record_failure(),
        _ => runtime.log_health().record_success(),
    }
    let class = tenant_class(&state.config, context.tenant_id());
    runtime
        .metrics()
        .outcome_wait
        .with_label_values(&[class, result_label])
        .observe(started.elapsed().as_secs_f64());
    let outcome = submitted.map_err(|error| {
        tracing::warn!(
            event_id = %command.event_id,
            kind = command.kind.name(),
            resource_id = %command.resource_id,
            error = %error,
            "CommandSubmitError"
        );
        match error {
            SubmitError::Log(_) => ApiError::unavailable(error, retry_after_secs),
            SubmitError::OutcomeTimeout(_) => ApiError::unavailable(error, retry_after_secs),
        }
    })?;
    match outcome.result {
        Ok(accepted) => {
            tracing::info!(
                event_id = %command.event_id,
                kind = command.kind.name(),
                resource_id = %command.resource_id,
                action = command.action.name(),
                status = accepted.status,
                skipped_members = accepted.skipped_members.len(),
                "CommandAccepted"
            );
            if !accepted.skipped_members.is_empty() {
                tracing::warn!(
                    event_id = %command.event_id,
                    skipped = ?accepted.skipped_members,
                    "MembershipSkippedUnknownMembers"
                );
            }
            Ok(accepted)
        }
        Err(error) => {
            tracing::info!(
                event_id = %command.event_id,
                kind = command.kind.name(),
                resource_id = %command.resource_id,
                action = command.action.name(),
                status = error.status,
                detail = %error.detail,
                "CommandRejected"
            );
            Err(ApiError::Scim(error))
        }
    }
}
