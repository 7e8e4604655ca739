//! `partnergate crm-sync`: the reference CRM client. It mirrors its partner's view into a
//! local SQLite file, page by page, and resumes from its stored cursor.
//!
//! Each page is applied in one local transaction together with the new cursor, so a client
//! killed at any moment restarts exactly after the last page it applied: no gaps, no
//! duplicates. Partners can copy this file as the template of their own connector.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, SqliteConnection};

use crate::{GatewayClient, Identity};

/// Where and how to sync.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// The gateway, e.g. https://localhost:8443.
    #[arg(long)]
    pub url: String,
    /// This client's certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// This client's key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The partnership CA (PEM).
    #[arg(long)]
    pub ca: PathBuf,
    /// The local mirror (SQLite file, created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// The purpose stated for the sync.
    #[arg(long, default_value = "trajectory_guidance")]
    pub purpose: String,
    /// The acting user recorded in the audit log.
    #[arg(long, default_value = "crm-sync")]
    pub acting_user: String,
    /// Page size.
    #[arg(long, default_value_t = 500)]
    pub limit: u32,
    /// Keep polling every this many seconds instead of stopping when up to date.
    #[arg(long)]
    pub follow: Option<u64>,
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// Pages fetched.
    pub pages: u64,
    /// Upserts applied.
    pub upserts: u64,
    /// Removals applied.
    pub removals: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mirror (pid TEXT PRIMARY KEY, version INTEGER NOT NULL, fields TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sync_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), cursor TEXT NOT NULL);
";

/// Opens (creating) the mirror file.
pub async fn open_mirror(path: &Path) -> Result<SqliteConnection, String> {
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| e.to_string())?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(SCHEMA)
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

async fn stored_cursor(conn: &mut SqliteConnection) -> Result<Option<String>, String> {
    let row: Option<(String,)> = sqlx::query_as("SELECT cursor FROM sync_cursor WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.map(|r| r.0))
}

/// Applies one page and its cursor atomically.
async fn apply(
    conn: &mut SqliteConnection,
    changes: &[Value],
    next: &str,
) -> Result<(u64, u64), String> {
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    let (mut up, mut rm) = (0, 0);
    for c in changes {
        let pid = c["pid"].as_str().ok_or("change without pid")?;
        match c["op"].as_str() {
            Some("upsert") => {
                sqlx::query("INSERT INTO mirror (pid, version, fields) VALUES (?, ?, ?) ON CONFLICT (pid) DO UPDATE SET version = excluded.version, fields = excluded.fields")
                    .bind(pid)
                    .bind(c["version"].as_i64().unwrap_or(0))
                    .bind(c["fields"].to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                up += 1;
            }
            Some("remove") => {
                sqlx::query("DELETE FROM mirror WHERE pid = ?")
                    .bind(pid)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                rm += 1;
            }
            _ => return Err("unknown change op".into()),
        }
    }
    sqlx::query("INSERT INTO sync_cursor (id, cursor) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor")
        .bind(next)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok((up, rm))
}

/// Syncs until up to date (or forever with `follow`).
pub async fn run(args: &SyncArgs) -> Result<SyncStats, String> {
    let identity =
        Identity::from_files(&args.ca, &args.cert, &args.key).map_err(|e| e.to_string())?;
    let api = GatewayClient::new(&args.url, &identity, 1)
        .map_err(|e| e.to_string())?
        .acting(&args.purpose, &args.acting_user);
    let mut conn = open_mirror(&args.db).await?;
    let mut stats = SyncStats::default();
    let first_sync = stored_cursor(&mut conn).await?.is_none();
    let bar = if first_sync {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message("first full sync");
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    loop {
        let cursor = stored_cursor(&mut conn).await?;
        let path = match &cursor {
            Some(c) => format!("/v1/changes?limit={}&since={c}", args.limit),
            None => format!("/v1/changes?limit={}", args.limit),
        };
        let res = api.get(&path).await.map_err(|e| e.to_string())?;
        if !res.status.is_success() {
            let body = res.json();
            return Err(format!(
                "gateway answered {}: {} ({})",
                res.status,
                body["error"].as_str().unwrap_or("?"),
                body["message"].as_str().unwrap_or("")
            ));
        }
        let page = res.json();
        let changes = page["changes"].as_array().cloned().unwrap_or_default();
        let next = page["next"].as_str().ok_or("page without next cursor")?;
        let (up, rm) = apply(&mut conn, &changes, next).await?;
        stats.pages += 1;
        stats.upserts += up;
        stats.removals += rm;
        bar.set_position(stats.upserts + stats.removals);
        bar.tick();
        if changes.is_empty() {
            match args.follow {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs.max(1))).await,
                None => break,
            }
        }
    }
    bar.finish_and_clear();
    Ok(stats)
}
