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

/// Who is behind a request, as far as the gateway knows when it records an access.
#[derive(Clone, Debug)]
pub struct Requester {
    /// The request this access belongs to.
    pub request_id: String,
    /// The certificate CN of the caller (or `-` when there was none).
    pub client: String,
    /// The caller's partner, when known.
    pub partner: Option<String>,
    /// The partner's own staff id from `X-Acting-User`.
    pub acting_user: Option<String>,
    /// The purpose from `X-Purpose`.
    pub purpose: Option<String>,
}

impl Requester {
    /// Starts the audit event of `action` in this request.
    pub fn event(self, action: Action) -> Draft {
        Draft {
            by: self,
            action,
            participant: None,
            roles: Vec::new(),
            fields: Vec::new(),
        }
    }
}

/// An audit event whose outcome is still open. Name what it concerns, then end it with
/// [`granted`](Draft::granted), [`granted_with`](Draft::granted_with) or
/// [`refused`](Draft::refused): the only ways to make an [`AuditEvent`], so every record
/// states its outcome and every refusal its reason.
#[must_use = "an access is recorded only once its draft is granted or refused and appended"]
#[derive(Clone, Debug)]
pub struct Draft {
    by: Requester,
    action: Action,
    participant: Option<String>,
    roles: Vec<String>,
    fields: Vec<String>,
}

impl Draft {
    /// The participant's audit pseudonym (never a name, national number or pid).
    pub fn participant(mut self, audit_id: impl Into<Option<String>>) -> Self {
        self.participant = audit_id.into();
        self
    }

    /// The roles the decision was made for.
    pub fn roles(mut self, roles: Vec<String>) -> Self {
        self.roles = roles;
        self
    }

    /// Field names disclosed or written (never values).
    pub fn fields(mut self, names: Vec<String>) -> Self {
        self.fields = names;
        self
    }

    /// The access happened.
    pub fn granted(self) -> AuditEvent {
        self.end(Outcome::Granted, None)
    }

    /// The access happened; `detail` qualifies it (e.g. `existing`, or the scope recorded).
    pub fn granted_with(self, detail: impl Into<String>) -> AuditEvent {
        self.end(Outcome::Granted, Some(detail.into()))
    }

    /// The access was refused, for `reason`.
    pub fn refused(self, reason: impl Into<String>) -> AuditEvent {
        self.end(Outcome::Refused, Some(reason.into()))
    }

    fn end(self, outcome: Outcome, reason: Option<String>) -> AuditEvent {
        AuditEvent {
            draft: self,
            outcome,
            reason,
        }
    }
}

/// One access, ready for the writer, which adds sequence, time and chain. Made by a [`Draft`].
#[derive(Clone, Debug)]
pub struct AuditEvent {
    draft: Draft,
    outcome: Outcome,
    reason: Option<String>,
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
        let AuditEvent {
            draft:
                Draft {
                    by,
                    action,
                    participant,
                    roles,
                    fields,
                },
            outcome,
            reason,
        } = event;
        Self {
            v: RECORD_VERSION,
            seq,
            time,
            request_id: by.request_id,
            client: by.client,
            partner: by.partner,
            acting_user: by.acting_user,
            roles,
            purpose: by.purpose,
            action: action.as_str().to_string(),
            participant,
            fields,
            decision: outcome,
            reason,
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
    format_time(crate::clock::now())
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
        Requester {
            request_id: "r1".into(),
            client: "crm.x".into(),
            partner: Some("x".into()),
            acting_user: Some("u1".into()),
            purpose: Some("trajectory_guidance".into()),
        }
        .event(Action::ParticipantRead)
        .participant("ab".to_string())
        .roles(vec!["trajectgezel".into()])
        .fields(vec!["identity.given_name".into()])
        .granted()
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
    fn an_event_is_recorded_field_for_field() {
        let time = "2025-01-02T03:04:05.678Z".to_string();
        let r = AuditRecord::new(event(), 7, time, "pv", &[0; 32]);
        let expected = concat!(
            r#"{"v":1,"seq":7,"time":"2025-01-02T03:04:05.678Z","request_id":"r1","#,
            r#""client":"crm.x","partner":"x","acting_user":"u1","roles":["trajectgezel"],"#,
            r#""purpose":"trajectory_guidance","action":"participant.read","participant":"ab","#,
            r#""fields":["identity.given_name"],"decision":"granted","reason":null,"#,
            r#""policy_version":"pv","prev_hash":""#,
        );
        assert_eq!(r.canonical(), format!("{expected}{}\"}}", "0".repeat(64)));
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
