//! `sync_state`: which participants each client's feed has shown it, and whether they are
//! still visible there.

use std::collections::HashSet;

use super::{DbError, Store, WriteTx};
use crate::vault::crypto::ParticipantId;

/// Which of `ids` the client's feed has shown it before (visible now or removed since).
pub async fn known_to(
    db: &Store,
    client: &str,
    ids: &[ParticipantId],
) -> Result<HashSet<ParticipantId>, DbError> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(Vec<u8>,)> = on!(db, |c| {
        let mut q =
            sqlx::QueryBuilder::new("SELECT participant_id FROM sync_state WHERE client = ");
        q.push_bind(client).push(" AND participant_id IN (");
        let mut sep = q.separated(", ");
        for id in ids {
            sep.push_bind(id.as_bytes().to_vec());
        }
        sep.push_unseparated(")");
        q.build_query_as().fetch_all(c).await?
    });
    Ok(rows
        .into_iter()
        .filter_map(|(b,)| ParticipantId::from_slice(&b))
        .collect())
}

/// Up to `limit` participants the client still holds (shown and not removed).
pub async fn visible_to(
    db: &Store,
    client: &str,
    limit: i64,
) -> Result<Vec<ParticipantId>, DbError> {
    let rows: Vec<(Vec<u8>,)> = on!(db, |c| sqlx::query_as(
        "SELECT participant_id FROM sync_state WHERE client = $1 AND visible = TRUE LIMIT $2",
    )
    .bind(client)
    .bind(limit)
    .fetch_all(c)
    .await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(b,)| ParticipantId::from_slice(&b))
        .collect())
}

/// The clients whose feed showed the participant: those that still hold it when
/// `visible_only`, else every one, removed since or not.
pub async fn clients_shown(
    db: &Store,
    id: &ParticipantId,
    visible_only: bool,
) -> Result<Vec<String>, DbError> {
    let sql = if visible_only {
        "SELECT client FROM sync_state WHERE participant_id = $1 AND visible = TRUE"
    } else {
        "SELECT DISTINCT client FROM sync_state WHERE participant_id = $1"
    };
    let rows: Vec<(String,)> = on!(db, |c| sqlx::query_as(sql)
        .bind(&id.as_bytes()[..])
        .fetch_all(c)
        .await)?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Records what the client has now been shown: (participant, visible now).
pub async fn save(
    tx: &mut WriteTx,
    client: &str,
    state: &[(ParticipantId, bool)],
) -> Result<(), DbError> {
    for chunk in state.chunks(300) {
        on!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO sync_state (client, participant_id, visible) ",
            );
            q.push_values(chunk, |mut row, (id, visible)| {
                row.push_bind(client)
                    .push_bind(id.as_bytes().to_vec())
                    .push_bind(*visible);
            });
            q.push(
                " ON CONFLICT (client, participant_id) DO UPDATE SET visible = excluded.visible",
            );
            q.build().execute(c).await?;
        });
    }
    Ok(())
}
