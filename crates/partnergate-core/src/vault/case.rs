//! A participant's case: partners' roles (involvements), consents and notes.

use super::VaultError;
use super::crypto::{DataKey, ParticipantId};
use super::participants::{Participant, Vault};
use crate::audit::AuditEvent;
use crate::audit::commit::{Applied, Apply, Isolation};
use crate::store::{self, now};

/// An active role of a partner in a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Involvement {
    /// Partner id.
    pub partner: String,
    /// Case role id.
    pub role: String,
}

/// A case note, decrypted.
#[derive(Debug, Clone)]
pub struct Note {
    /// Note id (hex).
    pub id: String,
    /// The partner that wrote it.
    pub author_partner: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// The text.
    pub text: String,
}

/// A role in a case, with its dates (for a participant's own access export).
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvolvementHistory {
    /// Partner id.
    pub partner: String,
    /// Role.
    pub role: String,
    /// Started.
    pub started_at: String,
    /// Ended, if it did.
    pub ended_at: Option<String>,
}

/// A consent with its dates.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsentHistory {
    /// Scope.
    pub scope: String,
    /// Partner that recorded it.
    pub recorded_by: String,
    /// When.
    pub recorded_at: String,
    /// When withdrawn, if it was.
    pub withdrawn_at: Option<String>,
}

/// What a change to a case did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseOutcome {
    /// The change was made.
    Changed,
    /// It was already so (or there was nothing to end).
    Unchanged,
    /// Another partner holds this one-per-case role: nothing was written.
    Taken,
}

/// A [`CaseChange`] that owns its strings, to move into the writer.
enum OwnedChange {
    StartRole(String, String, String, bool),
    EndRole(String, String, String, Option<String>),
    RecordConsent(String, String),
    WithdrawConsent(String, String),
}

impl From<CaseChange<'_>> for OwnedChange {
    fn from(change: CaseChange<'_>) -> Self {
        let o = str::to_string;
        match change {
            CaseChange::StartRole {
                partner,
                role,
                by,
                one_per_case,
            } => Self::StartRole(o(partner), o(role), o(by), one_per_case),
            CaseChange::EndRole {
                partner,
                role,
                by,
                reason,
            } => Self::EndRole(o(partner), o(role), o(by), reason.map(o)),
            CaseChange::RecordConsent { scope, by } => Self::RecordConsent(o(scope), o(by)),
            CaseChange::WithdrawConsent { scope, by } => Self::WithdrawConsent(o(scope), o(by)),
        }
    }
}

/// A change to a case; `by` is the partner making it.
#[derive(Debug, Clone, Copy)]
pub enum CaseChange<'a> {
    /// `partner` starts `role`.
    StartRole {
        /// Partner id.
        partner: &'a str,
        /// Case role.
        role: &'a str,
        /// Who assigned it.
        by: &'a str,
        /// Only one partner at a time may hold this role.
        one_per_case: bool,
    },
    /// `partner` ends `role`.
    EndRole {
        /// Partner id.
        partner: &'a str,
        /// Case role.
        role: &'a str,
        /// Who ended it.
        by: &'a str,
        /// Why (a code), when another partner's role is ended.
        reason: Option<&'a str>,
    },
    /// The participant's consent for `scope` is recorded.
    RecordConsent {
        /// Consent scope.
        scope: &'a str,
        /// Who recorded it.
        by: &'a str,
    },
    /// The consent for `scope` is withdrawn.
    WithdrawConsent {
        /// Consent scope.
        scope: &'a str,
        /// Who recorded the withdrawal.
        by: &'a str,
    },
}

/// A note sealed like a field, bound to its own id, ready to store.
pub(super) struct SealedNote {
    id: ParticipantId,
    author_partner: String,
    created_at: String,
    sealed: Vec<u8>,
}

impl SealedNote {
    /// Seals `text` under the participant's data key.
    pub(super) fn seal(
        dek: &DataKey,
        participant: &ParticipantId,
        dek_version: u32,
        author_partner: &str,
        text: &str,
    ) -> Result<Self, VaultError> {
        let id = ParticipantId::generate()?; // 16 random bytes serve as a note id too
        let field = note_field(&hex::encode(id.as_bytes()));
        Ok(Self {
            id,
            author_partner: author_partner.to_string(),
            created_at: now(),
            sealed: dek.seal(participant, &field, dek_version, text.as_bytes())?,
        })
    }

    pub(super) async fn store(
        &self,
        tx: &mut store::WriteTx,
        participant: &ParticipantId,
    ) -> Result<(), store::DbError> {
        let (id, author, at) = (&self.id, &self.author_partner, &self.created_at);
        store::case::insert_note(tx, id, participant, author, at, &self.sealed).await
    }

    /// The note as a new record stores it.
    pub(super) fn to_store(&self) -> store::participants::NewNote<'_> {
        store::participants::NewNote {
            id: &self.id,
            author_partner: &self.author_partner,
            created_at: &self.created_at,
            sealed: &self.sealed,
        }
    }
}

fn note_field(note_id: &str) -> String {
    format!("notes.text/{note_id}")
}

impl Vault {
    /// The active involvements of a participant, optionally only those of one partner.
    pub async fn involvements(
        &self,
        id: &ParticipantId,
        partner: Option<&str>,
    ) -> Result<Vec<Involvement>, VaultError> {
        let rows = store::case::active_roles(&self.store, id, partner).await?;
        Ok(rows
            .into_iter()
            .map(|(partner, role)| Involvement { partner, role })
            .collect())
    }

    /// Applies one change to the case (a role or a consent), committed with `records`, and
    /// notes it for the feeds. Returns `Unchanged` when there was nothing to change (already
    /// active, already ended, ...), and `Taken` when a role that one partner at a time may hold
    /// is held by another; neither writes or records anything.
    pub async fn change_case(
        &self,
        id: &ParticipantId,
        change: CaseChange<'_>,
        records: Vec<AuditEvent>,
    ) -> Result<CaseOutcome, VaultError> {
        let (id, change) = (*id, OwnedChange::from(change));
        let write: Apply<CaseOutcome> = Box::new(move |tx| {
            Box::pin(async move {
                let now = now();
                let n = match &change {
                    OwnedChange::StartRole(partner, role, by, one_per_case) => {
                        if *one_per_case
                            && store::case::held_by_other(tx, &id, partner, role).await?
                        {
                            return Ok(Applied::undone(CaseOutcome::Taken));
                        }
                        store::case::start_role(tx, &id, partner, role, by, &now).await?
                    }
                    OwnedChange::EndRole(partner, role, by, reason) => {
                        let role = (partner.as_str(), role.as_str());
                        let reason = reason.as_deref();
                        store::case::end_role(tx, &id, role, by, reason, &now).await?
                    }
                    OwnedChange::RecordConsent(scope, by) => {
                        store::case::record_consent(tx, &id, scope, by, &now).await?
                    }
                    OwnedChange::WithdrawConsent(scope, by) => {
                        store::case::withdraw_consent(tx, &id, scope, by, &now).await?
                    }
                };
                if n == 0 {
                    return Ok(Applied::undone(CaseOutcome::Unchanged));
                }
                store::changes::record(tx, &id).await?;
                Ok(Applied::kept(CaseOutcome::Changed))
            })
        });
        self.commit(records, Isolation::Savepoint, write).await
    }

    /// Hands `role` over from partner `from` to partner `to` in one transaction with
    /// `records`: the old involvement ends (reason `handover`) and the new one starts, or
    /// nothing happens. Returns `Unchanged` when `from` does not hold the role now, `Taken`
    /// when a third partner holds a one-per-case role.
    pub async fn handover(
        &self,
        id: &ParticipantId,
        (role, from, to): (&str, &str, &str),
        by: &str,
        records: Vec<AuditEvent>,
    ) -> Result<CaseOutcome, VaultError> {
        let id = *id;
        let (role, from, to, by) = (
            role.to_string(),
            from.to_string(),
            to.to_string(),
            by.to_string(),
        );
        let write: Apply<CaseOutcome> = Box::new(move |tx| {
            Box::pin(async move {
                let now = now();
                let ended = (from.as_str(), role.as_str());
                if store::case::end_role(tx, &id, ended, &by, Some("handover"), &now).await? == 0 {
                    return Ok(Applied::undone(CaseOutcome::Unchanged));
                }
                if store::case::held_by_other(tx, &id, &to, &role).await? {
                    return Ok(Applied::undone(CaseOutcome::Taken));
                }
                store::case::start_role(tx, &id, &to, &role, &by, &now).await?;
                store::changes::record(tx, &id).await?;
                Ok(Applied::kept(CaseOutcome::Changed))
            })
        });
        self.commit(records, Isolation::Savepoint, write).await
    }

    /// Adds a case note, sealed like a field (bound to its own id), committed with `records`.
    /// Returns the note.
    pub async fn add_note(
        &self,
        p: &Participant,
        author_partner: &str,
        text: &str,
        records: Vec<AuditEvent>,
    ) -> Result<Note, VaultError> {
        let dek = self.unwrap(p)?;
        let note = SealedNote::seal(&dek, &p.id, p.dek_version, author_partner, text)?;
        let answer = Note {
            id: hex::encode(note.id.as_bytes()),
            author_partner: author_partner.to_string(),
            created_at: note.created_at.clone(),
            text: text.to_string(),
        };
        let id = p.id;
        let write: Apply<()> = Box::new(move |tx| {
            Box::pin(async move {
                note.store(tx, &id).await?;
                Ok(Applied::kept(()))
            })
        });
        self.commit(records, Isolation::Savepoint, write).await?;
        Ok(answer)
    }

    /// All notes of a participant, oldest first, decrypted.
    pub async fn notes(&self, p: &Participant) -> Result<Vec<Note>, VaultError> {
        let rows = store::case::notes(&self.store, &p.id).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let dek = self.unwrap(p)?;
        rows.into_iter()
            .map(|(id, author_partner, created_at, sealed)| {
                let id = hex::encode(id);
                let plain = dek.open(&p.id, &note_field(&id), p.dek_version, &sealed)?;
                let text = String::from_utf8(plain.to_vec())
                    .map_err(|_| super::crypto::CryptoError::Malformed)?;
                Ok(Note {
                    id,
                    author_partner,
                    created_at,
                    text,
                })
            })
            .collect()
    }

    /// Every role ever held in the case, with dates.
    pub async fn involvement_history(
        &self,
        id: &ParticipantId,
    ) -> Result<Vec<InvolvementHistory>, VaultError> {
        let rows = store::case::role_history(&self.store, id).await?;
        Ok(rows
            .into_iter()
            .map(|(partner, role, started_at, ended_at)| InvolvementHistory {
                partner,
                role,
                started_at,
                ended_at,
            })
            .collect())
    }

    /// Every consent ever recorded, with dates.
    pub async fn consent_history(
        &self,
        id: &ParticipantId,
    ) -> Result<Vec<ConsentHistory>, VaultError> {
        let rows = store::case::consent_history(&self.store, id).await?;
        Ok(rows
            .into_iter()
            .map(
                |(scope, recorded_by, recorded_at, withdrawn_at)| ConsentHistory {
                    scope,
                    recorded_by,
                    recorded_at,
                    withdrawn_at,
                },
            )
            .collect())
    }
}
