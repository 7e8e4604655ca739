//! The `idempotency` table: one row per client and key, claimed (status 0) by the first
//! request and completed with its answer. The HTTP side is `crate::api::idempotency`: it
//! claims, reads and takes over a key inside one [`WriteTx`].

use std::time::Duration;

use super::{DbError, Store, WriteTx};

/// A key as a retry finds it.
pub struct Stored {
    /// The keyed hash of the request that claimed the key.
    pub request_hash: Vec<u8>,
    /// The answer's HTTP status; 0 while the first request is still answering.
    pub status: i64,
    /// The answer's JSON body (empty while claimed).
    pub body: Vec<u8>,
    /// The participant the answer concerns, once answered.
    pub participant: Option<Vec<u8>>,
    /// When the key was claimed (or last taken over).
    pub created_at: String,
}

/// Deletes keys claimed more than `ttl` ago.
pub async fn purge_expired(tx: &mut WriteTx, ttl: Duration) -> Result<(), DbError> {
    sqlx::query("DELETE FROM idempotency WHERE created_at < ?")
        .bind(super::ago(ttl))
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Claims the key for a request; false when it is already claimed or answered.
pub async fn claim(
    tx: &mut WriteTx,
    client: &str,
    key: &str,
    request_hash: &[u8],
    action: &str,
    now: &str,
) -> Result<bool, DbError> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency (client, key, request_hash, status, body, created_at, action)
         VALUES (?, ?, ?, 0, x'', ?, ?) ON CONFLICT (client, key) DO NOTHING",
    )
    .bind(client)
    .bind(key)
    .bind(request_hash)
    .bind(now)
    .bind(action)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// Reads a claimed or answered key.
pub async fn read(tx: &mut WriteTx, client: &str, key: &str) -> Result<Stored, DbError> {
    let (request_hash, status, body, participant, created_at) = sqlx::query_as(
        "SELECT request_hash, status, body, participant_id, created_at FROM idempotency WHERE client = ? AND key = ?",
    )
    .bind(client)
    .bind(key)
    .fetch_one(tx.conn())
    .await?;
    Ok(Stored {
        request_hash,
        status,
        body,
        participant,
        created_at,
    })
}

/// Takes over a claim whose request never answered, if it is still the one claimed at
/// `claimed_at` (two retries cannot both take it); true when taken.
pub async fn take_over(
    tx: &mut WriteTx,
    client: &str,
    key: &str,
    claimed_at: &str,
    now: &str,
) -> Result<bool, DbError> {
    let taken = sqlx::query(
        "UPDATE idempotency SET created_at = ? WHERE client = ? AND key = ? AND status = 0 AND created_at = ?",
    )
    .bind(now)
    .bind(client)
    .bind(key)
    .bind(claimed_at)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// Stores the answer for replays, bound to the participant it concerns (so that an erasure
/// removes it).
pub async fn complete(
    db: &Store,
    client: &str,
    key: &str,
    status: u16,
    body: &[u8],
    participant: &[u8],
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE idempotency SET status = ?, body = ?, participant_id = ? WHERE client = ? AND key = ?",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(participant)
    .bind(client)
    .bind(key)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Gives up a claim that has no answer yet.
pub async fn release(db: &Store, client: &str, key: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM idempotency WHERE client = ? AND key = ? AND status = 0")
        .bind(client)
        .bind(key)
        .execute(&db.pool)
        .await?;
    Ok(())
}
