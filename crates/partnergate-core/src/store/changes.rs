//! `changes`: the log of which participant changed last, in commit order, that the partners'
//! sync feeds read.

use super::{DbError, Store, WriteTx};
use crate::vault::crypto::ParticipantId;

/// Notes that a participant changed: it moves to the end of the log.
pub async fn record(tx: &mut WriteTx, id: &ParticipantId) -> Result<(), DbError> {
    on!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO changes (participant_id, seq) VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM changes))
         ON CONFLICT (participant_id) DO UPDATE SET seq = excluded.seq",
    )
    .bind(&id.as_bytes()[..])
    .execute(c)
    .await.map(drop)
    })?;
    Ok(())
}

/// (participant id, sequence) of the changes after `after`, in commit order, at most `limit`.
pub async fn after(db: &Store, after: i64, limit: i64) -> Result<Vec<(Vec<u8>, i64)>, DbError> {
    on!(db, |c| sqlx::query_as(
        "SELECT participant_id, seq FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2"
    )
    .bind(after)
    .bind(limit)
    .fetch_all(c)
    .await)
}
