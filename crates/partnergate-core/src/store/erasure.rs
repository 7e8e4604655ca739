//! Erasure: the rows a crypto-shredding removes, and `erased_lookup`, where the records that
//! retention keeps after an erasure are found (by data-subject requests only).

use super::{DbError, Store, WriteTx};
use crate::vault::crypto::ParticipantId;

/// Removes every row of a participant: the wrapped key is overwritten before the row goes, so
/// no page ever holds it again; details of earlier requests (sealed under that key) go too.
pub async fn remove_participant(tx: &mut WriteTx, id: &ParticipantId) -> Result<(), DbError> {
    for sql in [
        // Overwritten before the delete, so no old page or WAL frame keeps the wrapped key.
        "UPDATE participants SET wrapped_dek = substr(wrapped_dek, 1, 0) WHERE id = $1",
        "DELETE FROM field_values WHERE participant_id = $1",
        "DELETE FROM notes WHERE participant_id = $1",
        "DELETE FROM consents WHERE participant_id = $1",
        "DELETE FROM involvements WHERE participant_id = $1",
        "DELETE FROM idempotency WHERE participant_id = $1",
        "DELETE FROM erased_lookup WHERE participant_id = $1",
        "UPDATE dsr_requests SET details_sealed = NULL WHERE participant_id = $1",
        "DELETE FROM participants WHERE id = $1",
    ] {
        on!(&mut *tx, |c| sqlx::query(sql)
            .bind(&id.as_bytes()[..])
            .execute(c)
            .await
            .map(drop))?;
    }
    Ok(())
}

/// The real look-up hash of a participant: a record kept by an earlier erasure has a random
/// `insz_hash`, and its real one in `erased_lookup`.
pub async fn real_insz_hash(tx: &mut WriteTx, id: &ParticipantId) -> Result<Vec<u8>, DbError> {
    let (hash,): (Vec<u8>,) = on!(&mut *tx, |c| {
        sqlx::query_as(
        "SELECT coalesce((SELECT insz_hash FROM erased_lookup WHERE participant_id = $1), insz_hash) FROM participants WHERE id = $1",
    )
    .bind(&id.as_bytes()[..])
    .fetch_one(c)
    .await
    })?;
    Ok(hash)
}

/// Makes a kept record findable by data-subject requests under `insz_hash`.
pub async fn add_lookup(
    tx: &mut WriteTx,
    kept: &ParticipantId,
    insz_hash: &[u8],
) -> Result<(), DbError> {
    on!(&mut *tx, |c| sqlx::query(
        "INSERT INTO erased_lookup (participant_id, insz_hash) VALUES ($1, $2)"
    )
    .bind(&kept.as_bytes()[..])
    .bind(insz_hash)
    .execute(c)
    .await
    .map(drop))?;
    Ok(())
}

/// The most recent kept record under `insz_hash`.
pub async fn find_kept(db: &Store, insz_hash: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
    let row: Option<(Vec<u8>,)> = on!(db, |c| {
        sqlx::query_as(
        "SELECT e.participant_id FROM erased_lookup e JOIN participants p ON p.id = e.participant_id
         WHERE e.insz_hash = $1 ORDER BY p.created_at DESC LIMIT 1",
    )
    .bind(insz_hash)
    .fetch_optional(c)
    .await
    })?;
    Ok(row.map(|(id,)| id))
}
