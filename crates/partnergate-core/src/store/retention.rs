//! SQL of retention purges: which fields each participant holds (names only, still sealed),
//! deleting a category's fields and notes, and remembering the purge for the feeds.

use std::collections::HashMap;

use super::{DbError, Store, WriteTx};

/// (participant id, field name) of every stored field value, and of `notes.text` for every
/// participant with a case note; values stay sealed.
pub async fn stored_fields(db: &Store) -> Result<Vec<(Vec<u8>, String)>, DbError> {
    on!(db, |c| sqlx::query_as(
        "SELECT participant_id, field FROM field_values
         UNION SELECT DISTINCT participant_id, 'notes.text' FROM notes
         ORDER BY 1, 2",
    )
    .fetch_all(c)
    .await)
}

/// Deletes the participant's values of `fields` (and its notes when `notes.text` is among
/// them); returns how many field values went.
pub async fn delete_fields(
    tx: &mut WriteTx,
    participant: &[u8],
    fields: &[String],
) -> Result<u64, DbError> {
    let mut deleted = 0;
    for f in fields {
        if f == "notes.text" {
            on!(&mut *tx, |c| sqlx::query(
                "DELETE FROM notes WHERE participant_id = $1"
            )
            .bind(participant)
            .execute(c)
            .await
            .map(drop))?;
            continue;
        }
        deleted += on!(&mut *tx, |c| sqlx::query(
            "DELETE FROM field_values WHERE participant_id = $1 AND field = $2"
        )
        .bind(participant)
        .bind(f)
        .execute(c)
        .await?
        .rows_affected());
    }
    Ok(deleted)
}

/// Whether anything of the participant is left: a field value or a note.
pub async fn anything_left(tx: &mut WriteTx, participant: &[u8]) -> Result<bool, DbError> {
    let (n,): (i64,) = on!(&mut *tx, |c| sqlx::query_as(
        "SELECT (SELECT count(*) FROM field_values WHERE participant_id = $1)
              + (SELECT count(*) FROM notes WHERE participant_id = $1)",
    )
    .bind(participant)
    .fetch_one(c)
    .await)?;
    Ok(n > 0)
}

/// Remembers the purge as the participant's latest change (call after its change is recorded).
pub async fn remember_purge(
    tx: &mut WriteTx,
    participant: &[u8],
    shredded: bool,
    now: &str,
) -> Result<(), DbError> {
    on!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO retention_purges (participant_id, seq, shredded, purged_at)
         VALUES ($1, (SELECT seq FROM changes WHERE participant_id = $1), $2, $3)
         ON CONFLICT (participant_id) DO UPDATE SET seq = excluded.seq, shredded = excluded.shredded, purged_at = excluded.purged_at",
    )
    .bind(participant)
    .bind(shredded)
    .bind(now)
    .execute(c)
    .await.map(drop)
    })?;
    Ok(())
}

/// For the feed: the change sequence of each of `ids`' last purge.
pub async fn purge_seqs(db: &Store, ids: &[Vec<u8>]) -> Result<HashMap<Vec<u8>, i64>, DbError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Vec<u8>, i64)> = on!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT participant_id, seq FROM retention_purges WHERE participant_id IN (",
        );
        let mut sep = q.separated(", ");
        for id in ids {
            sep.push_bind(id.clone());
        }
        sep.push_unseparated(")");
        q.build_query_as().fetch_all(c).await?
    });
    Ok(rows.into_iter().collect())
}
