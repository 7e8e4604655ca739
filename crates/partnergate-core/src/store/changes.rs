//! `changes`: the log of which participant changed last, in commit order, that the partners'
//! sync feeds read.

use super::{DbError, Store, WriteTx};
use crate::vault::crypto::ParticipantId;

/// Notes that a participant changed: it moves to the end of the log.
pub async fn record(tx: &mut WriteTx, id: &ParticipantId) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO changes (participant_id, seq) VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM changes))
         ON CONFLICT (participant_id) DO UPDATE SET seq = excluded.seq",
    )
    .bind(&id.as_bytes()[..])
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// (participant id, sequence) of the changes after `after`, in commit order, at most `limit`.
pub async fn after(db: &Store, after: i64, limit: i64) -> Result<Vec<(Vec<u8>, i64)>, DbError> {
    sqlx::query_as("SELECT participant_id, seq FROM changes WHERE seq > ? ORDER BY seq LIMIT ?")
        .bind(after)
        .bind(limit)
        .fetch_all(&db.pool)
        .await
}
