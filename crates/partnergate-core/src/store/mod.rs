//! The store: every SQL statement the gateway runs, behind [`Store`] and [`WriteTx`].
//!
//! Callers (the vault, DSR, the sync feed, the audit log, the CLI) call functions in the
//! modules below, named after what they keep; none of them names sqlx or writes SQL. A second
//! backend (PostgreSQL, issue 15) fills in these types and modules without touching callers.
//!
//! SQLite through sqlx is the embedded default, migrations embedded from `migrations/sqlite`.
//! Queries are runtime-checked (`query_as::<_, Row>`), so building needs no `DATABASE_URL` and
//! no offline cache. Readers share a pool; the audit writer has its own connection.

pub mod audit;
pub mod case;
pub mod changes;
pub mod dsr;
pub mod erasure;
pub mod idempotency;
pub mod participants;
pub mod reporting;
pub mod retention;
pub mod secrets;
pub mod stats;
pub mod sync;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, SqlitePool, Transaction};

/// What a query can fail with.
pub use sqlx::Error as DbError;

/// A handle on the database: cheap to clone, shared by every layer.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// One connection for every write transaction: writers take turns anyway (SQLite has one
    /// writer), and a writer never waits for a connection behind a crowd of readers.
    writes: SqlitePool,
    gate: WriteGate,
}

/// A write transaction, taken in this process's turn to write (see [`WriteGate`]). Dropping it
/// without [`WriteTx::commit`] rolls it back.
pub struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    /// Makes the transaction's writes durable.
    pub async fn commit(self) -> Result<(), DbError> {
        self.tx.commit().await
    }

    /// Marks a point the transaction can roll back to without ending (one at a time).
    pub async fn savepoint(&mut self) -> Result<(), DbError> {
        sqlx::query("SAVEPOINT write").execute(self.conn()).await?;
        Ok(())
    }

    /// Keeps what was done since the savepoint.
    pub async fn release(&mut self) -> Result<(), DbError> {
        sqlx::query("RELEASE write").execute(self.conn()).await?;
        Ok(())
    }

    /// Undoes what was done since the savepoint, and drops it.
    pub async fn rollback_to_savepoint(&mut self) -> Result<(), DbError> {
        sqlx::query("ROLLBACK TO write")
            .execute(self.conn())
            .await?;
        self.release().await
    }

    fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Sqlx(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options(path)?)
            .await?;
        MIGRATOR.run(&pool).await?;
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options(path)?)
            .await?;
        Ok(Self {
            pool,
            writes,
            gate: WriteGate::default(),
        })
    }

    /// Starts a write transaction in this process's turn.
    pub async fn begin_write(&self) -> Result<WriteTx, DbError> {
        let turn = self.gate.enter().await;
        Ok(WriteTx {
            tx: self.writes.begin().await?,
            _turn: turn,
        })
    }

    /// Closes every connection (after a CLI command, so that the files can be removed).
    pub async fn close(&self) {
        self.writes.close().await;
        self.pool.close().await;
    }

    /// Folds the write-ahead log into the database file and truncates it, retrying while readers
    /// hold an older snapshot. After it returns, deleted content is gone from both files.
    pub async fn checkpoint(&self) -> Result<(), DbError> {
        for _ in 0..50 {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
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
}

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
        let store = super::Store::open(&dir.path().join("t.db")).await.unwrap();
        let pool = &store.pool;
        let (secure,): (i64,) = sqlx::query_as("PRAGMA secure_delete")
            .fetch_one(pool)
            .await
            .unwrap();
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!((secure, sync), (1, 2));
    }
}
