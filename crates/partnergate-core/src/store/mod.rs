//! The store: every SQL statement the gateway runs, behind [`Store`] and [`WriteTx`].
//!
//! Callers (the vault, DSR, the sync feed, the audit log, the CLI) call functions in the
//! modules below, named after what they keep; none of them names sqlx or writes SQL.
//! Each function runs the same SQL text on either backend through [`on!`].
//!
//! SQLite through sqlx is the embedded default (migrations from `migrations/sqlite`), PostgreSQL
//! the store for several instances (`migrations/postgres`); never `sqlx::Any`.
//! Queries are runtime-checked (`query_as::<_, Row>`), so building needs no `DATABASE_URL` and
//! no offline cache. Readers share a pool; the audit writer has its own connection.

/// Runs `$body` on whichever backend `$on` (a `&Store` or a `&mut WriteTx`) uses, with `$c`
/// bound to its pool or connection. The body is compiled once per backend, so the same SQL text
/// and binds are type-checked against both; [`Store::pick`] chooses text where dialects differ.
macro_rules! on {
    ($on:expr, |$c:ident| $body:expr) => {
        match $crate::store::Target::target($on) {
            $crate::store::Backend::Sqlite($c) => $body,
            $crate::store::Backend::Postgres($c) => $body,
        }
    };
}

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

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, SqlitePool, Transaction};

/// What a query can fail with.
pub use sqlx::Error as DbError;

/// One value per backend: the pools of a [`Store`], the connection of a [`WriteTx`].
pub(crate) enum Backend<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// What [`on!`] runs a query on.
pub(crate) trait Target {
    type Sqlite;
    type Postgres;
    fn target(self) -> Backend<Self::Sqlite, Self::Postgres>;
}

impl<'a> Target for &'a Store {
    type Sqlite = &'a SqlitePool;
    type Postgres = &'a PgPool;
    fn target(self) -> Backend<&'a SqlitePool, &'a PgPool> {
        match &self.pools {
            Backend::Sqlite(p) => Backend::Sqlite(&p.reads),
            Backend::Postgres(p) => Backend::Postgres(&p.reads),
        }
    }
}

impl<'a> Target for &'a mut WriteTx {
    type Sqlite = &'a mut SqliteConnection;
    type Postgres = &'a mut PgConnection;
    fn target(self) -> Backend<&'a mut SqliteConnection, &'a mut PgConnection> {
        match &mut self.tx {
            Backend::Sqlite(t) => Backend::Sqlite(&mut **t),
            Backend::Postgres(t) => Backend::Postgres(&mut **t),
        }
    }
}

/// Where the data lives: `database_url` in `partnergate.toml` or `PARTNERGATE_DATABASE_URL`.
#[derive(Clone)]
pub enum Database {
    /// An SQLite file (the embedded default, `data/partnergate.db`): one gateway process.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://...`): several gateway instances may share it.
    Postgres(String),
}

impl Database {
    /// Where it is, for messages: the file, or the server and database without credentials.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => match url.split_once("://") {
                Some((scheme, rest)) => {
                    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
                    format!("{scheme}://{rest}")
                }
                None => "postgres".into(),
            },
        }
    }
}

// Never print a PostgreSQL password.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Readers share `reads`; every write transaction uses `writes`, one connection: writers take
/// turns anyway, and a writer never waits for a connection behind a crowd of readers.
#[derive(Clone)]
struct Pools<P> {
    reads: P,
    writes: P,
}

/// A handle on the database: cheap to clone, shared by every layer.
#[derive(Clone)]
pub struct Store {
    pools: Backend<Pools<SqlitePool>, Pools<PgPool>>,
    gate: WriteGate,
    /// Turns for verification's chunk reads: half the read connections, shared by every
    /// verification of this process, so that partners' reads usually find a connection.
    long_reads: std::sync::Arc<tokio::sync::Semaphore>,
}

impl<S: Clone, P: Clone> Clone for Backend<S, P> {
    fn clone(&self) -> Self {
        match self {
            Backend::Sqlite(s) => Backend::Sqlite(s.clone()),
            Backend::Postgres(p) => Backend::Postgres(p.clone()),
        }
    }
}

/// A write transaction, taken in its turn to write: this process's turn (see [`WriteGate`]) and,
/// on PostgreSQL, the database-wide write lock every instance takes (see [`WRITE_LOCK`]).
/// Dropping it without [`WriteTx::commit`] rolls it back.
pub struct WriteTx {
    tx: Backend<Transaction<'static, Sqlite>, Transaction<'static, Postgres>>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// The PostgreSQL advisory lock every write transaction takes first, in every instance: writes
/// stay one total order, as on SQLite. The audit chain needs that order (each record hashes the
/// one before), and it makes "is this national number registered?", `If-Match` and the feed's
/// change sequence decisions taken by one writer at a time, whichever instance answers.
pub const WRITE_LOCK: i64 = 0x7061_7274_6e67_7465; // "partngte"

impl WriteTx {
    /// Makes the transaction's writes durable.
    pub async fn commit(self) -> Result<(), DbError> {
        match self.tx {
            Backend::Sqlite(t) => t.commit().await,
            Backend::Postgres(t) => t.commit().await,
        }
    }

    /// Marks a point the transaction can roll back to without ending (one at a time).
    pub async fn savepoint(&mut self) -> Result<(), DbError> {
        on!(&mut *self, |c| sqlx::query("SAVEPOINT write")
            .execute(c)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Keeps what was done since the savepoint.
    pub async fn release(&mut self) -> Result<(), DbError> {
        on!(&mut *self, |c| sqlx::query("RELEASE SAVEPOINT write")
            .execute(c)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Undoes what was done since the savepoint, and drops it.
    pub async fn rollback_to_savepoint(&mut self) -> Result<(), DbError> {
        on!(&mut *self, |c| sqlx::query("ROLLBACK TO SAVEPOINT write")
            .execute(c)
            .await
            .map(drop))?;
        self.release().await
    }
}

impl Store {
    /// Opens (creating if needed) an SQLite database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::connect(&Database::Sqlite(path.to_path_buf())).await
    }

    /// Connects to the database and applies pending migrations (sqlx takes a lock for that, so
    /// instances starting together apply them once).
    pub async fn connect(database: &Database) -> Result<Self, StoreError> {
        let pools = match database {
            Database::Sqlite(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Sqlx(sqlx::Error::Io(e)))?;
                }
                let reads = SqlitePoolOptions::new()
                    .max_connections(8)
                    .min_connections(1)
                    .connect_with(sqlite_options(path)?)
                    .await?;
                SQLITE_MIGRATOR.run(&reads).await?;
                let writes = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .connect_with(sqlite_options(path)?)
                    .await?;
                Backend::Sqlite(Pools { reads, writes })
            }
            Database::Postgres(url) => {
                let options = postgres_options(url)?;
                let reads = PgPoolOptions::new()
                    .max_connections(16)
                    .min_connections(1)
                    .connect_with(options.clone())
                    .await?;
                POSTGRES_MIGRATOR.run(&reads).await?;
                let writes = PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .connect_with(options)
                    .await?;
                Backend::Postgres(Pools { reads, writes })
            }
        };
        let long_reads = match &pools {
            Backend::Sqlite(p) => p.reads.options().get_max_connections(),
            Backend::Postgres(p) => p.reads.options().get_max_connections(),
        } as usize
            / 2;
        Ok(Self {
            pools,
            gate: WriteGate::default(),
            long_reads: std::sync::Arc::new(tokio::sync::Semaphore::new(long_reads.max(1))),
        })
    }

    /// Removes every table of the gateway (`init --force`: a new master key cannot open the old
    /// data): the SQLite files, or the tables in the PostgreSQL database.
    pub async fn destroy(database: &Database) -> Result<(), StoreError> {
        match database {
            Database::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Database::Postgres(url) => {
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(postgres_options(url)?)
                    .await?;
                sqlx::query(
                    "DROP TABLE IF EXISTS system_secrets, participants, field_values, involvements,
                       consents, notes, changes, sync_state, idempotency, dsr_requests, dsr_steps,
                       audit_records, audit_checkpoints, erased_lookup, retention_purges,
                       _sqlx_migrations CASCADE",
                )
                .execute(&pool)
                .await?;
                pool.close().await;
            }
        }
        Ok(())
    }

    /// Starts a write transaction in its turn (this process's, and the database-wide one).
    pub async fn begin_write(&self) -> Result<WriteTx, DbError> {
        let turn = self.gate.enter().await;
        let tx = match &self.pools {
            Backend::Sqlite(p) => Backend::Sqlite(p.writes.begin().await?),
            Backend::Postgres(p) => {
                let mut tx = p.writes.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Backend::Postgres(tx)
            }
        };
        Ok(WriteTx { tx, _turn: turn })
    }

    /// Whether other processes may write to this database too (PostgreSQL): what this process
    /// holds in memory about the database may be stale.
    pub fn is_shared(&self) -> bool {
        matches!(self.pools, Backend::Postgres(_))
    }

    /// Waits for a turn to run one read of a long job (a verification chunk). Hold the permit
    /// for the read only.
    pub async fn long_read_turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.long_reads
            .acquire()
            .await
            .expect("the long-read semaphore is never closed")
    }

    /// `sqlite` or `postgres`, whichever is this store's backend.
    pub(crate) fn pick(&self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self.pools {
            Backend::Sqlite(_) => sqlite,
            Backend::Postgres(_) => postgres,
        }
    }

    /// Closes every connection (after a CLI command, so that the files can be removed).
    pub async fn close(&self) {
        match &self.pools {
            Backend::Sqlite(p) => {
                p.writes.close().await;
                p.reads.close().await;
            }
            Backend::Postgres(p) => {
                p.writes.close().await;
                p.reads.close().await;
            }
        }
    }

    /// After deleting personal data: on SQLite, folds the write-ahead log into the database
    /// file and truncates it, retrying while readers hold an older snapshot, so deleted content
    /// is gone from both files. On PostgreSQL, vacuums the tables that hold sealed data so the
    /// dead rows' space is reclaimed (their keys are already shredded; see the README on backups).
    pub async fn checkpoint(&self) -> Result<(), DbError> {
        match &self.pools {
            Backend::Sqlite(p) => {
                for _ in 0..50 {
                    let (busy, _, _): (i64, i64, i64) =
                        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                            .fetch_one(&p.reads)
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
            Backend::Postgres(p) => {
                sqlx::query(
                    "VACUUM participants, field_values, notes, dsr_requests, idempotency, erased_lookup",
                )
                .execute(&p.reads)
                .await?;
                Ok(())
            }
        }
    }
}

/// The embedded SQLite migrations.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The embedded PostgreSQL migrations.
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database or sqlx failed.
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

fn sqlite_options(path: &Path) -> Result<SqliteConnectOptions, sqlx::Error> {
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

fn postgres_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("partnergate")
        .options([
            // Durability is a promise: a commit is acknowledged only once the WAL is flushed,
            // whatever the server's default says.
            ("synchronous_commit", "on"),
            // An instance that hangs (or is cut off) inside a write transaction holds the write
            // lock: the server ends its session, and the others' writes fail (503) instead of
            // queueing without end.
            ("idle_in_transaction_session_timeout", "30s"),
            ("lock_timeout", "10s"),
        ])
        .disable_statement_logging())
}

/// Serialises this process's write transactions before they reach the database.
///
/// SQLite allows one writer at a time; a second one waits in SQLite's busy handler, which
/// sleeps in steps of up to 100 ms. Queueing writers here instead (the audit writer and the
/// vault's transactions) keeps waits as short as the transaction ahead. On PostgreSQL the
/// [`WRITE_LOCK`] orders instances; this gate keeps one process's writers off that lock's queue.
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
    /// A store on a new SQLite file, with the folder that must outlive it.
    async fn fresh() -> (tempfile::TempDir, super::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::Store::open(&dir.path().join("t.db")).await.unwrap();
        (dir, store)
    }

    fn read_pool(store: &super::Store) -> &sqlx::SqlitePool {
        let super::Backend::Sqlite(pools) = &store.pools else {
            unreachable!()
        };
        &pools.reads
    }

    #[tokio::test]
    async fn every_connection_overwrites_deleted_content_and_syncs_fully() {
        let (_dir, store) = fresh().await;
        let reads = read_pool(&store);
        let (secure,): (i64,) = sqlx::query_as("PRAGMA secure_delete")
            .fetch_one(reads)
            .await
            .unwrap();
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(reads)
            .await
            .unwrap();
        assert_eq!((secure, sync), (1, 2));
    }

    #[tokio::test]
    async fn sqlite_is_built_without_the_global_memory_statistics_lock() {
        let (_dir, store) = fresh().await;
        let reads = read_pool(&store);
        let options: Vec<(String,)> = sqlx::query_as("PRAGMA compile_options")
            .fetch_all(reads)
            .await
            .unwrap();
        // Set in .cargo/config.toml; without it the read connections contend on one mutex.
        assert!(
            options.iter().any(|(o,)| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    #[tokio::test]
    async fn long_reads_share_half_the_read_connections_between_all_jobs() {
        let (_dir, store) = fresh().await;
        let reads = read_pool(&store);
        let other_job = store.clone();
        // The first job takes every turn it can, each with the connection its read would hold.
        let mut first_job = Vec::new();
        for _ in 0..4 {
            let turn = store.long_read_turn().await;
            first_job.push((turn, reads.acquire().await.unwrap()));
        }
        let wait = std::time::Duration::from_millis(50);
        assert!(
            tokio::time::timeout(wait, other_job.long_read_turn())
                .await
                .is_err(),
            "a second job must wait while the first holds half of the 8 read connections"
        );
        let mut partners = Vec::new();
        for _ in 0..4 {
            // Seconds, not `wait`: a new SQLite connection may be opened on a busy machine.
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(10), reads.acquire()).await;
            partners.push(
                read.expect("partners' reads find a free connection")
                    .unwrap(),
            );
        }
        first_job.pop();
        assert!(
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                other_job.long_read_turn()
            )
            .await
            .is_ok()
        );
    }
}
