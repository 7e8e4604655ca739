//! Storage: SQLite through sqlx, migrations embedded from `migrations/sqlite`.
//!
//! Queries are runtime-checked (`query_as::<_, Row>`), so building needs no `DATABASE_URL` and
//! no offline cache. Readers share a pool; the audit writer has its own connection.

pub mod idempotency;
pub mod reporting;
pub mod retention;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection, SqlitePool};

/// What a query can fail with.
pub use sqlx::Error as DbError;
/// The database pool every layer shares, named here so that callers need not name sqlx.
pub use sqlx::SqlitePool as Pool;

/// The embedded SQLite migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite or sqlx failed.
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

fn options(path: &Path) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Durability is a promise here: an acknowledged write survives power loss.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("temp_store", "memory")
        // Deleted rows are overwritten, so an erasure leaves no old page content behind.
        .pragma("secure_delete", "on")
        .disable_statement_logging())
}

/// Opens (creating if needed) the database and applies pending migrations.
pub async fn open(path: &Path) -> Result<SqlitePool, StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sqlx(sqlx::Error::Io(e)))?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .connect_with(options(path)?)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// A dedicated connection for the audit writer.
pub async fn writer_connection(path: &Path) -> Result<SqliteConnection, StoreError> {
    Ok(options(path)?.connect().await?)
}

/// Folds the write-ahead log into the database file and truncates it, retrying while readers
/// hold an older snapshot. After it returns, deleted content is gone from both files.
pub async fn checkpoint(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    for _ in 0..50 {
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(pool)
            .await?;
        if busy == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(sqlx::Error::Protocol(
        "the write-ahead log could not be checkpointed".into(),
    ))
}

/// Serialises this process's write transactions before they reach SQLite.
///
/// SQLite allows one writer at a time; a second one waits in SQLite's busy handler, which
/// sleeps in steps of up to 100 ms. Queueing writers here instead (the audit writer and the
/// vault's transactions) keeps waits as short as the transaction ahead.
#[derive(Clone, Default)]
pub struct WriteGate(std::sync::Arc<tokio::sync::Mutex<()>>);

impl WriteGate {
    /// Waits for the turn to write; the turn ends when the guard drops.
    pub async fn enter(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.0.clone().lock_owned().await
    }
}

/// The current time as stored in the database (RFC 3339 UTC, milliseconds), by [`crate::clock`].
pub fn now() -> String {
    crate::audit::record::now()
}

/// Today's date (UTC), for membership, deadlines and whether a partner takes new cases.
pub fn today() -> time::Date {
    crate::clock::today()
}

/// The stored-time text of the moment `age` ago.
pub fn ago(age: std::time::Duration) -> String {
    crate::audit::record::format_time(crate::clock::now() - age)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn every_connection_overwrites_deleted_content_and_syncs_fully() {
        let dir = tempfile::tempdir().unwrap();
        let pool = super::open(&dir.path().join("t.db")).await.unwrap();
        let (secure,): (i64,) = sqlx::query_as("PRAGMA secure_delete")
            .fetch_one(&pool)
            .await
            .unwrap();
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((secure, sync), (1, 2));
    }
}
