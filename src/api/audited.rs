//! The one audited way out of a handler: the records of an access are durable before its
//! answer leaves, and when the audit log cannot make them so, the answer is 503 instead.

use super::error::ApiError;
use crate::audit::{AuditEvent, AuditLog};

/// Makes `events` durable, or answers 503: nothing is disclosed or changed unrecorded.
/// Returns the sequence number of the last record.
pub async fn record(log: &AuditLog, events: Vec<AuditEvent>) -> Result<u64, ApiError> {
    // `From<AuditError>` is the 503.
    Ok(log.append(events).await?)
}

/// Audits a refusal and returns `error`; 503 instead when the audit log is down, since a
/// refusal is an access too.
pub async fn refuse(log: &AuditLog, event: AuditEvent, error: ApiError) -> ApiError {
    match record(log, vec![event]).await {
        Ok(_) => error,
        Err(unavailable) => unavailable,
    }
}
