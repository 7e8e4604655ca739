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
    on!(&mut *tx, |c| sqlx::query(
        "DELETE FROM idempotency WHERE created_at < $1"
    )
    .bind(super::ago(ttl))
    .execute(c)
    .await
    .map(drop))?;
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
    let claimed = on!(&mut *tx, |c| sqlx::query(
        "INSERT INTO idempotency (client, key, request_hash, status, body, created_at, action)
         VALUES ($1, $2, $3, 0, $6, $4, $5) ON CONFLICT (client, key) DO NOTHING",
    )
    .bind(client)
    .bind(key)
    .bind(request_hash)
    .bind(now)
    .bind(action)
    .bind(&[][..] as &[u8])
    .execute(c)
    .await?
    .rows_affected());
    Ok(claimed == 1)
}

/// Reads a claimed or answered key.
pub async fn read(tx: &mut WriteTx, client: &str, key: &str) -> Result<Stored, DbError> {
    let (request_hash, status, body, participant, created_at) = on!(&mut *tx, |c| {
        sqlx::query_as(
        "SELECT request_hash, status, body, participant_id, created_at FROM idempotency WHERE client = $1 AND key = $2",
    )
    .bind(client)
    .bind(key)
    .fetch_one(c)
    .await
    })?;
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
    let taken = on!(&mut *tx, |c| {
        sqlx::query(
        "UPDATE idempotency SET created_at = $1 WHERE client = $2 AND key = $3 AND status = 0 AND created_at = $4",
    )
    .bind(now)
    .bind(client)
    .bind(key)
    .bind(claimed_at)
    .execute(c)
    .await?
    .rows_affected()
    });
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
    on!(db, |c| {
        sqlx::query(
        "UPDATE idempotency SET status = $1, body = $2, participant_id = $3 WHERE client = $4 AND key = $5",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(participant)
    .bind(client)
    .bind(key)
    .execute(c)
    .await.map(drop)
    })?;
    Ok(())
}

/// Gives up a claim that has no answer yet.
pub async fn release(db: &Store, client: &str, key: &str) -> Result<(), DbError> {
    on!(db, |c| sqlx::query(
        "DELETE FROM idempotency WHERE client = $1 AND key = $2 AND status = 0"
    )
    .bind(client)
    .bind(key)
    .execute(c)
    .await
    .map(drop))?;
    Ok(())
}
