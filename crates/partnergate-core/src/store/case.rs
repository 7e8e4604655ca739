//! `involvements`, `consents` and `notes`: a participant's case. Notes are stored sealed.

use super::{DbError, Store, WriteTx};
use crate::vault::crypto::ParticipantId;

/// Starts `partner`'s `role` unless it is active already. Returns the rows written (0 or 1).
pub async fn start_role(
    tx: &mut WriteTx,
    id: &ParticipantId,
    partner: &str,
    role: &str,
    by: &str,
    now: &str,
) -> Result<u64, DbError> {
    Ok(sqlx::query(
        "INSERT INTO involvements (participant_id, partner, role, started_at, started_by) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING",
    )
    .bind(&id.as_bytes()[..])
    .bind(partner)
    .bind(role)
    .bind(now)
    .bind(by)
    .execute(tx.conn())
    .await?
    .rows_affected())
}

/// Whether a partner other than `partner` holds `role` in the case now.
pub async fn held_by_other(
    tx: &mut WriteTx,
    id: &ParticipantId,
    partner: &str,
    role: &str,
) -> Result<bool, DbError> {
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

/// Ends `partner`'s active `role`. Returns the rows written (0 or 1).
pub async fn end_role(
    tx: &mut WriteTx,
    id: &ParticipantId,
    (partner, role): (&str, &str),
    by: &str,
    reason: Option<&str>,
    now: &str,
) -> Result<u64, DbError> {
    Ok(sqlx::query(
        "UPDATE involvements SET ended_at = ?, ended_by = ?, end_reason = ? WHERE participant_id = ? AND partner = ? AND role = ? AND ended_at IS NULL",
    )
    .bind(now)
    .bind(by)
    .bind(reason)
    .bind(&id.as_bytes()[..])
    .bind(partner)
    .bind(role)
    .execute(tx.conn())
    .await?
    .rows_affected())
}

/// Records consent for `scope` unless it is in force. Returns the rows written (0 or 1).
pub async fn record_consent(
    tx: &mut WriteTx,
    id: &ParticipantId,
    scope: &str,
    by: &str,
    now: &str,
) -> Result<u64, DbError> {
    Ok(sqlx::query(
        "INSERT INTO consents (participant_id, scope, recorded_by, recorded_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&id.as_bytes()[..])
    .bind(scope)
    .bind(by)
    .bind(now)
    .execute(tx.conn())
    .await?
    .rows_affected())
}

/// Withdraws the consent for `scope` in force. Returns the rows written (0 or 1).
pub async fn withdraw_consent(
    tx: &mut WriteTx,
    id: &ParticipantId,
    scope: &str,
    by: &str,
    now: &str,
) -> Result<u64, DbError> {
    Ok(sqlx::query(
        "UPDATE consents SET withdrawn_at = ?, withdrawn_by = ? WHERE participant_id = ? AND scope = ? AND withdrawn_at IS NULL",
    )
    .bind(now)
    .bind(by)
    .bind(&id.as_bytes()[..])
    .bind(scope)
    .execute(tx.conn())
    .await?
    .rows_affected())
}

/// Stores a sealed note.
pub async fn insert_note(
    tx: &mut WriteTx,
    note_id: &ParticipantId,
    participant: &ParticipantId,
    author_partner: &str,
    created_at: &str,
    sealed: &[u8],
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO notes (id, participant_id, author_partner, created_at, sealed) VALUES (?, ?, ?, ?, ?)")
        .bind(&note_id.as_bytes()[..])
        .bind(&participant.as_bytes()[..])
        .bind(author_partner)
        .bind(created_at)
        .bind(sealed)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// (partner, role) of the active involvements, optionally of one partner, oldest first.
pub async fn active_roles(
    db: &Store,
    id: &ParticipantId,
    partner: Option<&str>,
) -> Result<Vec<(String, String)>, DbError> {
    match partner {
        Some(p) => sqlx::query_as(
            "SELECT partner, role FROM involvements WHERE participant_id = ? AND partner = ? AND ended_at IS NULL ORDER BY id",
        )
        .bind(&id.as_bytes()[..])
        .bind(p)
        .fetch_all(&db.pool)
        .await,
        None => sqlx::query_as(
            "SELECT partner, role FROM involvements WHERE participant_id = ? AND ended_at IS NULL ORDER BY id",
        )
        .bind(&id.as_bytes()[..])
        .fetch_all(&db.pool)
        .await,
    }
}

/// (id, author partner, created at, sealed text) of every note, oldest first.
pub async fn notes(
    db: &Store,
    id: &ParticipantId,
) -> Result<Vec<(Vec<u8>, String, String, Vec<u8>)>, DbError> {
    sqlx::query_as(
        "SELECT id, author_partner, created_at, sealed FROM notes WHERE participant_id = ? ORDER BY created_at, id",
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(&db.pool)
    .await
}

/// (partner, role, started, ended) of every involvement ever, oldest first.
pub async fn role_history(
    db: &Store,
    id: &ParticipantId,
) -> Result<Vec<(String, String, String, Option<String>)>, DbError> {
    sqlx::query_as(
        "SELECT partner, role, started_at, ended_at FROM involvements WHERE participant_id = ? ORDER BY id",
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(&db.pool)
    .await
}

/// (scope, recorded by, recorded at, withdrawn at) of every consent ever, oldest first.
pub async fn consent_history(
    db: &Store,
    id: &ParticipantId,
) -> Result<Vec<(String, String, String, Option<String>)>, DbError> {
    sqlx::query_as(
        "SELECT scope, recorded_by, recorded_at, withdrawn_at FROM consents WHERE participant_id = ? ORDER BY id",
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(&db.pool)
    .await
}
