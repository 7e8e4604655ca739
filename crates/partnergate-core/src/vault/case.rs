//! A participant's case: partners' roles (involvements), consents and notes.

use super::VaultError;
use super::crypto::{DataKey, ParticipantId};
use super::participants::{Participant, Vault, record_change};
use crate::store::now;

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

pub(super) async fn insert_involvement(
    tx: &mut crate::store::WriteTx,
    id: &ParticipantId,
    partner: &str,
    role: &str,
    by: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO involvements (participant_id, partner, role, started_at, started_by) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING",
    )
    .bind(&id.as_bytes()[..])
    .bind(partner)
    .bind(role)
    .bind(now())
    .bind(by)
    .execute(tx.conn())
    .await?
    .rows_affected())
}

/// Whether a partner other than `partner` holds `role` in the case now.
async fn held_by_other(
    tx: &mut crate::store::WriteTx,
    id: &ParticipantId,
    partner: &str,
    role: &str,
) -> Result<bool, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM involvements WHERE participant_id = ? AND role = ? AND partner <> ? AND ended_at IS NULL",
    )
    .bind(&id.as_bytes()[..])
    .bind(role)
    .bind(partner)
    .fetch_one(tx.conn())
    .await?;
    Ok(n > 0)
}

async fn end_involvement(
    tx: &mut crate::store::WriteTx,
    id: &ParticipantId,
    partner: &str,
    role: &str,
    by: &str,
    reason: Option<&str>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE involvements SET ended_at = ?, ended_by = ?, end_reason = ? WHERE participant_id = ? AND partner = ? AND role = ? AND ended_at IS NULL",
    )
    .bind(now())
    .bind(by)
    .bind(reason)
    .bind(&id.as_bytes()[..])
    .bind(partner)
    .bind(role)
    .execute(tx.conn())
    .await?
    .rows_affected())
}

pub(super) async fn insert_consent(
    tx: &mut crate::store::WriteTx,
    id: &ParticipantId,
    scope: &str,
    by: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO consents (participant_id, scope, recorded_by, recorded_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&id.as_bytes()[..])
    .bind(scope)
    .bind(by)
    .bind(now())
    .execute(tx.conn())
    .await?
    .rows_affected())
}

/// Adds a note sealed like a field, bound to its own id.
pub(super) async fn insert_note(
    tx: &mut crate::store::WriteTx,
    dek: &DataKey,
    participant: &ParticipantId,
    dek_version: u32,
    author_partner: &str,
    text: &str,
) -> Result<Note, VaultError> {
    let id = ParticipantId::generate()?; // 16 random bytes serve as a note id too
    let id_hex = hex::encode(id.as_bytes());
    let sealed = dek.seal(
        participant,
        &note_field(&id_hex),
        dek_version,
        text.as_bytes(),
    )?;
    let created_at = now();
    sqlx::query("INSERT INTO notes (id, participant_id, author_partner, created_at, sealed) VALUES (?, ?, ?, ?, ?)")
        .bind(&id.as_bytes()[..])
        .bind(&participant.as_bytes()[..])
        .bind(author_partner)
        .bind(&created_at)
        .bind(sealed)
        .execute(tx.conn())
        .await?;
    Ok(Note {
        id: id_hex,
        author_partner: author_partner.to_string(),
        created_at,
        text: text.to_string(),
    })
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
        let rows: Vec<(String, String)> = match partner {
            Some(p) => sqlx::query_as(
                "SELECT partner, role FROM involvements WHERE participant_id = ? AND partner = ? AND ended_at IS NULL ORDER BY id",
            )
            .bind(&id.as_bytes()[..])
            .bind(p)
            .fetch_all(self.store.pool())
            .await?,
            None => sqlx::query_as(
                "SELECT partner, role FROM involvements WHERE participant_id = ? AND ended_at IS NULL ORDER BY id",
            )
            .bind(&id.as_bytes()[..])
            .fetch_all(self.store.pool())
            .await?,
        };
        Ok(rows
            .into_iter()
            .map(|(partner, role)| Involvement { partner, role })
            .collect())
    }

    /// Applies one change to the case (a role or a consent) and notes it for the feeds.
    /// Returns `Unchanged` when there was nothing to change (already active, already ended,
    /// ...), and `Taken` when a role that one partner at a time may hold is held by another.
    pub async fn change_case(
        &self,
        id: &ParticipantId,
        change: CaseChange<'_>,
    ) -> Result<CaseOutcome, VaultError> {
        let mut tx = self.store.begin_write().await?;
        let n = match change {
            CaseChange::StartRole {
                partner,
                role,
                by,
                one_per_case,
            } => {
                if one_per_case && held_by_other(&mut tx, id, partner, role).await? {
                    return Ok(CaseOutcome::Taken);
                }
                insert_involvement(&mut tx, id, partner, role, by).await?
            }
            CaseChange::EndRole {
                partner,
                role,
                by,
                reason,
            } => end_involvement(&mut tx, id, partner, role, by, reason).await?,
            CaseChange::RecordConsent { scope, by } => insert_consent(&mut tx, id, scope, by).await?,
            CaseChange::WithdrawConsent { scope, by } => sqlx::query(
                "UPDATE consents SET withdrawn_at = ?, withdrawn_by = ? WHERE participant_id = ? AND scope = ? AND withdrawn_at IS NULL",
            )
            .bind(now())
            .bind(by)
            .bind(&id.as_bytes()[..])
            .bind(scope)
            .execute(tx.conn())
            .await?
            .rows_affected(),
        };
        if n > 0 {
            record_change(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(if n > 0 {
            CaseOutcome::Changed
        } else {
            CaseOutcome::Unchanged
        })
    }

    /// Hands `role` over from partner `from` to partner `to` in one transaction: the old
    /// involvement ends (reason `handover`) and the new one starts, or nothing happens.
    /// Returns `Unchanged` when `from` does not hold the role now, `Taken` when a third
    /// partner holds a one-per-case role.
    pub async fn handover(
        &self,
        id: &ParticipantId,
        role: &str,
        from: &str,
        to: &str,
        by: &str,
    ) -> Result<CaseOutcome, VaultError> {
        let mut tx = self.store.begin_write().await?;
        if end_involvement(&mut tx, id, from, role, by, Some("handover")).await? == 0 {
            return Ok(CaseOutcome::Unchanged);
        }
        if held_by_other(&mut tx, id, to, role).await? {
            return Ok(CaseOutcome::Taken);
        }
        insert_involvement(&mut tx, id, to, role, by).await?;
        record_change(&mut tx, id).await?;
        tx.commit().await?;
        Ok(CaseOutcome::Changed)
    }

    /// Adds a case note, sealed like a field (bound to its own id). Returns the note.
    pub async fn add_note(
        &self,
        p: &Participant,
        author_partner: &str,
        text: &str,
    ) -> Result<Note, VaultError> {
        let dek = self.unwrap(p)?;
        let mut tx = self.store.begin_write().await?;
        let note = insert_note(&mut tx, &dek, &p.id, p.dek_version, author_partner, text).await?;
        tx.commit().await?;
        Ok(note)
    }

    /// All notes of a participant, oldest first, decrypted.
    pub async fn notes(&self, p: &Participant) -> Result<Vec<Note>, VaultError> {
        let rows: Vec<(Vec<u8>, String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, author_partner, created_at, sealed FROM notes WHERE participant_id = ? ORDER BY created_at, id",
        )
        .bind(&p.id.as_bytes()[..])
        .fetch_all(self.store.pool())
        .await?;
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
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT partner, role, started_at, ended_at FROM involvements WHERE participant_id = ? ORDER BY id",
        )
        .bind(&id.as_bytes()[..])
        .fetch_all(self.store.pool())
        .await?;
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
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT scope, recorded_by, recorded_at, withdrawn_at FROM consents WHERE participant_id = ? ORDER BY id",
        )
        .bind(&id.as_bytes()[..])
        .fetch_all(self.store.pool())
        .await?;
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
