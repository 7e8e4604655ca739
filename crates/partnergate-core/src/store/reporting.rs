//! Reads for the aggregate reports: which participants exist and which partners were ever
//! involved in each case. Ids only; the fields stay sealed in `field_values`.

use super::{DbError, Store};

/// Every participant id.
pub async fn participant_ids(db: &Store) -> Result<Vec<Vec<u8>>, DbError> {
    let rows: Vec<(Vec<u8>,)> = on!(db, |c| sqlx::query_as(
        "SELECT id FROM participants ORDER BY id"
    )
    .fetch_all(c)
    .await)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// (participant id, partner) for every partner ever involved in a case, ended roles included.
pub async fn involved_partners(db: &Store) -> Result<Vec<(Vec<u8>, String)>, DbError> {
    on!(db, |c| sqlx::query_as(
        "SELECT DISTINCT participant_id, partner FROM involvements"
    )
    .fetch_all(c)
    .await)
}
