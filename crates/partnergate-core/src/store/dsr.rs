//! `dsr_requests` and `dsr_steps`: data-subject requests and the steps recorded for each; and
//! what an execution reads about the person (fields held, partners involved, what an erasure
//! kept).

use std::collections::BTreeMap;

use super::{DbError, Store};
use crate::vault::crypto::ParticipantId;

/// A `dsr_requests` row: id, kind, participant, received, due, extended due, extension
/// reason, state, outcome, receipt.
pub type Row = (
    String,
    String,
    Option<Vec<u8>>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

/// A request to store, in state `received`.
pub struct NewRow<'a> {
    /// Request id.
    pub id: &'a str,
    /// Kind, as stored.
    pub kind: &'a str,
    /// The keyed hash of the person's national number.
    pub insz_hash: &'a [u8],
    /// The participant, when the person is known.
    pub participant: Option<&'a ParticipantId>,
    /// Date of receipt (YYYY-MM-DD).
    pub received_at: &'a str,
    /// Legal deadline (YYYY-MM-DD).
    pub due: &'a str,
    /// The kind-specific details, sealed with the participant's key.
    pub details_sealed: Option<Vec<u8>>,
    /// Creation time.
    pub now: &'a str,
}

/// Stores a new request.
pub async fn insert(db: &Store, r: NewRow<'_>) -> Result<(), DbError> {
    on!(db, |c| {
        sqlx::query(
        "INSERT INTO dsr_requests (id, kind, insz_hash, participant_id, received_at, due, state, details_sealed, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'received', $7, $8, $9)",
    )
    .bind(r.id)
    .bind(r.kind)
    .bind(r.insz_hash)
    .bind(r.participant.map(|p| p.as_bytes().to_vec()))
    .bind(r.received_at)
    .bind(r.due)
    .bind(r.details_sealed)
    .bind(r.now)
    .bind(r.now)
    .execute(c)
    .await.map(drop)
    })?;
    Ok(())
}

/// Records a step once; false when it was recorded before.
pub async fn record_step(db: &Store, id: &str, step: &str, detail: &str) -> Result<bool, DbError> {
    let n = on!(db, |c| {
        sqlx::query("INSERT INTO dsr_steps (request_id, time, step, detail) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(id)
        .bind(super::now())
        .bind(step)
        .bind(detail)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n > 0)
}

/// The steps recorded so far, with their details.
pub async fn done_steps(db: &Store, id: &str) -> Result<BTreeMap<String, String>, DbError> {
    let rows: Vec<(String, String)> = on!(db, |c| sqlx::query_as(
        "SELECT step, detail FROM dsr_steps WHERE request_id = $1"
    )
    .bind(id)
    .fetch_all(c)
    .await)?;
    Ok(rows.into_iter().collect())
}

/// The steps of a request in the order recorded: time, step, detail.
pub async fn history(db: &Store, id: &str) -> Result<Vec<(String, String, String)>, DbError> {
    on!(db, |c| sqlx::query_as(
        "SELECT time, step, detail FROM dsr_steps WHERE request_id = $1 ORDER BY id"
    )
    .bind(id)
    .fetch_all(c)
    .await)
}

/// Forgets a recorded erasure plan, so that the next one replaces it.
pub async fn forget_plan(db: &Store, id: &str) -> Result<(), DbError> {
    on!(db, |c| sqlx::query(
        "DELETE FROM dsr_steps WHERE request_id = $1 AND step = 'plan'"
    )
    .bind(id)
    .execute(c)
    .await
    .map(drop))?;
    Ok(())
}

/// The request's row, if there is one.
pub async fn row(db: &Store, id: &str) -> Result<Option<Row>, DbError> {
    on!(db, |c| {
        sqlx::query_as(
        "SELECT id, kind, participant_id, received_at, due, extended_due, extension_reason, state, outcome, receipt FROM dsr_requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(c)
    .await
    })
}

/// Every request's row.
pub async fn rows(db: &Store) -> Result<Vec<Row>, DbError> {
    on!(db, |c| {
        sqlx::query_as(
        "SELECT id, kind, participant_id, received_at, due, extended_due, extension_reason, state, outcome, receipt FROM dsr_requests",
    )
    .fetch_all(c)
    .await
    })
}

/// Moves the request to `state`, keeping the earlier outcome when `outcome` is `None`.
pub async fn set_state(
    db: &Store,
    id: &str,
    state: &str,
    outcome: Option<&str>,
) -> Result<(), DbError> {
    on!(db, |c| {
        sqlx::query("UPDATE dsr_requests SET state = $1, outcome = coalesce($2, outcome), updated_at = $3 WHERE id = $4")
        .bind(state)
        .bind(outcome)
        .bind(super::now())
        .bind(id)
        .execute(c)
        .await.map(drop)
    })?;
    Ok(())
}

/// Sets the extended deadline and its reason.
pub async fn set_extension(db: &Store, id: &str, until: &str, reason: &str) -> Result<(), DbError> {
    on!(db, |c| {
        sqlx::query("UPDATE dsr_requests SET extended_due = $1, extension_reason = $2, updated_at = $3 WHERE id = $4")
        .bind(until)
        .bind(reason)
        .bind(super::now())
        .bind(id)
        .execute(c)
        .await.map(drop)
    })?;
    Ok(())
}

/// Stores the signed erasure receipt (JSON text).
pub async fn set_receipt(db: &Store, id: &str, receipt: &str) -> Result<(), DbError> {
    on!(db, |c| sqlx::query(
        "UPDATE dsr_requests SET receipt = $1 WHERE id = $2"
    )
    .bind(receipt)
    .bind(id)
    .execute(c)
    .await
    .map(drop))?;
    Ok(())
}

/// The participant a request names; `None` when it names none or there is no such request.
pub async fn person(db: &Store, id: &str) -> Result<Option<ParticipantId>, DbError> {
    let row: Option<(Option<Vec<u8>>,)> = on!(db, |c| sqlx::query_as(
        "SELECT participant_id FROM dsr_requests WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await)?;
    Ok(row
        .and_then(|r| r.0)
        .as_deref()
        .and_then(ParticipantId::from_slice))
}

/// The request's sealed details, if it has any (an error when there is no such request).
pub async fn details_sealed(db: &Store, id: &str) -> Result<Option<Vec<u8>>, DbError> {
    let (sealed,): (Option<Vec<u8>>,) = on!(db, |c| sqlx::query_as(
        "SELECT details_sealed FROM dsr_requests WHERE id = $1"
    )
    .bind(id)
    .fetch_one(c)
    .await)?;
    Ok(sealed)
}

/// The completed erasures about the same national number as request `request_id` whose
/// participant is gone, oldest first: the erased participant id and the receipt.
pub async fn former_erasures(
    db: &Store,
    request_id: &str,
) -> Result<Vec<(Vec<u8>, Option<String>)>, DbError> {
    on!(db, |c| {
        sqlx::query_as(
        "SELECT e.participant_id, e.receipt FROM dsr_requests r JOIN dsr_requests e ON e.insz_hash = r.insz_hash
         WHERE r.id = $1 AND e.kind = 'erasure' AND e.state = 'completed' AND e.participant_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM participants p WHERE p.id = e.participant_id)
         ORDER BY e.updated_at",
    )
    .bind(request_id)
    .fetch_all(c)
    .await
    })
}

/// The partners with an open involvement in the participant's case.
pub async fn involved_partners(db: &Store, id: &ParticipantId) -> Result<Vec<String>, DbError> {
    let partners: Vec<(String,)> = on!(db, |c| {
        sqlx::query_as(
        "SELECT DISTINCT partner FROM involvements WHERE participant_id = $1 AND ended_at IS NULL",
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(c)
    .await
    })?;
    Ok(partners.into_iter().map(|p| p.0).collect())
}

/// How many look-up entries an erasure kept for the participant (for retention).
pub async fn kept_lookups(db: &Store, id: &ParticipantId) -> Result<i64, DbError> {
    let (kept,): (i64,) = on!(db, |c| sqlx::query_as(
        "SELECT count(*) FROM erased_lookup WHERE participant_id = $1"
    )
    .bind(&id.as_bytes()[..])
    .fetch_one(c)
    .await)?;
    Ok(kept)
}

/// The names of the fields held for the participant, sorted.
pub async fn held_fields(db: &Store, id: &ParticipantId) -> Result<Vec<String>, DbError> {
    let held: Vec<(String,)> = on!(db, |c| sqlx::query_as(
        "SELECT field FROM field_values WHERE participant_id = $1 ORDER BY field"
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(c)
    .await)?;
    Ok(held.into_iter().map(|f| f.0).collect())
}
