//! `system_secrets`: the gateway's own wrapped secrets (the index secret), by name.

use super::{DbError, Store};

/// A secret as stored: the master key version it is wrapped under, and the wrapped bytes.
pub type Wrapped = (u32, Vec<u8>);

/// The wrapped secret called `name`, if there is one.
pub async fn get(db: &Store, name: &str) -> Result<Option<Wrapped>, DbError> {
    let row: Option<(i64, Vec<u8>)> = on!(db, |c| sqlx::query_as(
        "SELECT master_version, wrapped FROM system_secrets WHERE name = $1"
    )
    .bind(name)
    .fetch_optional(c)
    .await)?;
    Ok(row.map(|(v, bytes)| (v as u32, bytes)))
}

/// The wrapped secret called `name` if it is not under master key `version`.
pub async fn get_not_under(
    db: &Store,
    name: &str,
    version: u32,
) -> Result<Option<Wrapped>, DbError> {
    Ok(get(db, name).await?.filter(|(v, _)| *v != version))
}

/// Stores `name` unless it exists (a second `init` keeps the first secret).
pub async fn insert(db: &Store, name: &str, (version, bytes): &Wrapped) -> Result<(), DbError> {
    on!(db, |c| {
        sqlx::query(
        "INSERT INTO system_secrets (name, master_version, wrapped) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(i64::from(*version))
    .bind(bytes)
    .execute(c)
    .await.map(drop)
    })?;
    Ok(())
}

/// Replaces `name` with its re-wrapped form.
pub async fn replace(db: &Store, name: &str, (version, bytes): &Wrapped) -> Result<(), DbError> {
    on!(db, |c| sqlx::query(
        "UPDATE system_secrets SET master_version = $1, wrapped = $2 WHERE name = $3"
    )
    .bind(i64::from(*version))
    .bind(bytes)
    .bind(name)
    .execute(c)
    .await
    .map(drop))?;
    Ok(())
}
