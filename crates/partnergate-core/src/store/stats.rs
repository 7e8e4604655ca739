//! Counts across tables for the operator's commands (`partners`, `keys rotate/retire`).

use super::{DbError, Store};

/// How many participant keys and system secrets are still wrapped under a master version
/// below `version`.
pub async fn wrapped_below(db: &Store, version: u32) -> Result<i64, DbError> {
    let (n,): (i64,) = on!(db, |c| sqlx::query_as(
        "SELECT (SELECT count(*) FROM participants WHERE master_version < $1)
              + (SELECT count(*) FROM system_secrets WHERE master_version < $1)",
    )
    .bind(i64::from(version))
    .fetch_one(c)
    .await)?;
    Ok(n)
}

/// For each partner with an open involvement, how many participants it has one for.
pub async fn participants_per_partner(db: &Store) -> Result<Vec<(String, i64)>, DbError> {
    on!(db, |c| {
        sqlx::query_as(
        "SELECT partner, count(DISTINCT participant_id) FROM involvements WHERE ended_at IS NULL GROUP BY partner",
    )
    .fetch_all(c)
    .await
    })
}
