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
    Ok(on!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO involvements (participant_id, partner, role, started_at, started_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(&id.as_bytes()[..])
    .bind(partner)
    .bind(role)
    .bind(now)
    .bind(by)
    .execute(c)
    .await?
    .rows_affected()
    }))
}

/// Whether a partner other than `partner` holds `role` in the case now.
pub async fn held_by_other(
    tx: &mut WriteTx,
    id: &ParticipantId,
    partner: &str,
    role: &str,
) -> Result<bool, DbError> {
    let (n,): (i64,) = on!(&mut *tx, |c| {
        sqlx::query_as(
        "SELECT count(*) FROM involvements WHERE participant_id = $1 AND role = $2 AND partner <> $3 AND ended_at IS NULL",
    )
    .bind(&id.as_bytes()[..])
    .bind(role)
    .bind(partner)
    .fetch_one(c)
    .await
    })?;
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
    Ok(on!(&mut *tx, |c| {
        sqlx::query(
        "UPDATE involvements SET ended_at = $1, ended_by = $2, end_reason = $3 WHERE participant_id = $4 AND partner = $5 AND role = $6 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(by)
    .bind(reason)
    .bind(&id.as_bytes()[..])
    .bind(partner)
    .bind(role)
    .execute(c)
    .await?
    .rows_affected()
    }))
}

/// Records consent for `scope` unless it is in force. Returns the rows written (0 or 1).
pub async fn record_consent(
    tx: &mut WriteTx,
    id: &ParticipantId,
    scope: &str,
    by: &str,
    now: &str,
) -> Result<u64, DbError> {
    Ok(on!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO consents (participant_id, scope, recorded_by, recorded_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(&id.as_bytes()[..])
    .bind(scope)
    .bind(by)
    .bind(now)
    .execute(c)
    .await?
    .rows_affected()
    }))
}

/// Withdraws the consent for `scope` in force. Returns the rows written (0 or 1).
pub async fn withdraw_consent(
    tx: &mut WriteTx,
    id: &ParticipantId,
    scope: &str,
    by: &str,
    now: &str,
) -> Result<u64, DbError> {
    Ok(on!(&mut *tx, |c| {
        sqlx::query(
        "UPDATE consents SET withdrawn_at = $1, withdrawn_by = $2 WHERE participant_id = $3 AND scope = $4 AND withdrawn_at IS NULL",
    )
    .bind(now)
    .bind(by)
    .bind(&id.as_bytes()[..])
    .bind(scope)
    .execute(c)
    .await?
    .rows_affected()
    }))
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
    on!(&mut *tx, |c| {
        sqlx::query("INSERT INTO notes (id, participant_id, author_partner, created_at, sealed) VALUES ($1, $2, $3, $4, $5)")
        .bind(&note_id.as_bytes()[..])
        .bind(&participant.as_bytes()[..])
        .bind(author_partner)
        .bind(created_at)
        .bind(sealed)
        .execute(c)
        .await.map(drop)
    })?;
    Ok(())
}

/// (partner, role) of the active involvements, optionally of one partner, oldest first.
pub async fn active_roles(
    db: &Store,
    id: &ParticipantId,
    partner: Option<&str>,
) -> Result<Vec<(String, String)>, DbError> {
    match partner {
        Some(p) => on!(db, |c| {
            sqlx::query_as(
            "SELECT partner, role FROM involvements WHERE participant_id = $1 AND partner = $2 AND ended_at IS NULL ORDER BY id",
        )
        .bind(&id.as_bytes()[..])
        .bind(p)
        .fetch_all(c)
        .await
        }),
        None => on!(db, |c| {
            sqlx::query_as(
            "SELECT partner, role FROM involvements WHERE participant_id = $1 AND ended_at IS NULL ORDER BY id",
        )
        .bind(&id.as_bytes()[..])
        .fetch_all(c)
        .await
        }),
    }
}

/// (id, author partner, created at, sealed text) of every note, oldest first.
pub async fn notes(
    db: &Store,
    id: &ParticipantId,
) -> Result<Vec<(Vec<u8>, String, String, Vec<u8>)>, DbError> {
    on!(db, |c| {
        sqlx::query_as(
        "SELECT id, author_partner, created_at, sealed FROM notes WHERE participant_id = $1 ORDER BY created_at, id",
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(c)
    .await
    })
}

/// (partner, role, started, ended) of every involvement ever, oldest first.
pub async fn role_history(
    db: &Store,
    id: &ParticipantId,
) -> Result<Vec<(String, String, String, Option<String>)>, DbError> {
    on!(db, |c| {
        sqlx::query_as(
        "SELECT partner, role, started_at, ended_at FROM involvements WHERE participant_id = $1 ORDER BY id",
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(c)
    .await
    })
}

/// (scope, recorded by, recorded at, withdrawn at) of every consent ever, oldest first.
pub async fn consent_history(
    db: &Store,
    id: &ParticipantId,
) -> Result<Vec<(String, String, String, Option<String>)>, DbError> {
    on!(db, |c| {
        sqlx::query_as(
        "SELECT scope, recorded_by, recorded_at, withdrawn_at FROM consents WHERE participant_id = $1 ORDER BY id",
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(c)
    .await
    })
}
