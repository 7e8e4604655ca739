//! The audit record and its canonical, versioned encoding.
//!
//! A record is stored and exported as the exact JSON bytes that were hashed. Field order is the
//! struct's declaration order, so re-encoding a parsed record gives the same bytes back.

use serde::{Deserialize, Serialize};

use super::action::Action;

/// The encoding version written into every record.
pub const RECORD_VERSION: u8 = 1;

/// Whether an access was allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The access happened.
    Granted,
    /// The access was refused.
    Refused,
}

/// What a handler knows about one access; the writer adds sequence, time and chain.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    /// The request this access belongs to.
    pub request_id: String,
    /// The certificate CN of the caller (or `-` when there was none).
    pub client: String,
    /// The caller's partner, when known.
    pub partner: Option<String>,
    /// The partner's own staff id from `X-Acting-User`.
    pub acting_user: Option<String>,
    /// The roles the decision was made for.
    pub roles: Vec<String>,
    /// The purpose from `X-Purpose`.
    pub purpose: Option<String>,
    /// What was done.
    pub action: Action,
    /// The participant's audit pseudonym (never a name, national number or pid).
    pub participant: Option<String>,
    /// Field names disclosed or written (never values).
    pub fields: Vec<String>,
    /// Granted or refused.
    pub outcome: Outcome,
    /// Why it was refused, or a short qualifier.
    pub reason: Option<String>,
}

/// One link of the chain, exactly as hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Encoding version.
    pub v: u8,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When the writer committed it (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The request id.
    pub request_id: String,
    /// Certificate CN of the caller.
    pub client: String,
    /// The caller's partner.
    pub partner: Option<String>,
    /// The acting user (the partner's own staff id).
    pub acting_user: Option<String>,
    /// Effective roles.
    pub roles: Vec<String>,
    /// Stated purpose.
    pub purpose: Option<String>,
    /// The action.
    pub action: String,
    /// The participant's audit pseudonym.
    pub participant: Option<String>,
    /// Field names disclosed or written.
    pub fields: Vec<String>,
    /// Granted or refused.
    pub decision: Outcome,
    /// Why.
    pub reason: Option<String>,
    /// SHA-256 of the compiled policy the decision was made under.
    pub policy_version: String,
    /// Hash of the previous record (hex), all zeros for the first.
    pub prev_hash: String,
}

impl AuditRecord {
    /// Builds the record for `event` at position `seq`.
    pub fn new(
        event: AuditEvent,
        seq: u64,
        time: String,
        policy_version: &str,
        prev_hash: &[u8; 32],
    ) -> Self {
        Self {
            v: RECORD_VERSION,
            seq,
            time,
            request_id: event.request_id,
            client: event.client,
            partner: event.partner,
            acting_user: event.acting_user,
            roles: event.roles,
            purpose: event.purpose,
            action: event.action.as_str().to_string(),
            participant: event.participant,
            fields: event.fields,
            decision: event.outcome,
            reason: event.reason,
            policy_version: policy_version.to_string(),
            prev_hash: hex::encode(prev_hash),
        }
    }

    /// The canonical bytes: compact JSON in declaration order.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("a record always serializes")
    }
}

/// The chain hash of a record's canonical bytes.
pub fn hash(canonical: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, canonical);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The bytes a checkpoint signature covers.
pub fn checkpoint_message(seq: u64, hash_hex: &str, time: &str) -> Vec<u8> {
    format!("partnergate/audit-checkpoint/v1\n{seq}\n{hash_hex}\n{time}\n").into_bytes()
}

/// The current time in the audit format: RFC 3339, UTC, always milliseconds, so that text
/// order is time order.
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// A moment in the format of [`now`] (UTC, milliseconds), so stored times compare as text.
pub fn format_time(t: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .expect("UTC time formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        AuditEvent {
            request_id: "r1".into(),
            client: "crm.x".into(),
            partner: Some("x".into()),
            acting_user: Some("u1".into()),
            roles: vec!["trajectgezel".into()],
            purpose: Some("trajectory_guidance".into()),
            action: Action::ParticipantRead,
            participant: Some("ab".into()),
            fields: vec!["identity.given_name".into()],
            outcome: Outcome::Granted,
            reason: None,
        }
    }

    #[test]
    fn canonical_encoding_round_trips_to_the_same_bytes() {
        let r = AuditRecord::new(event(), 7, now(), "pv", &[0; 32]);
        let text = r.canonical();
        let back: AuditRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.canonical(), text);
        assert!(text.starts_with("{\"v\":1,\"seq\":7,"));
    }

    #[test]
    fn one_changed_byte_changes_the_hash() {
        let r = AuditRecord::new(event(), 1, now(), "pv", &[0; 32]).canonical();
        let mut other = r.clone().into_bytes();
        let i = other.len() / 2;
        other[i] ^= 1;
        assert_ne!(hash(r.as_bytes()), hash(&other));
    }
}
