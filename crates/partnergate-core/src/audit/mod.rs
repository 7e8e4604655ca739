//! The tamper-evident audit log for the Data Protection Officers.
//!
//! - [`action`]: the actions an access can record, and which of them disclose personal data.
//! - [`record`]: what one record holds and its canonical encoding; events are built with a
//!   [`Draft`] that must end granted or refused.
//! - [`writer`]: the single writer with group commit; no answer leaves before its record.
//! - [`verify`]: chain and checkpoint verification, live and offline.
//! - this module: the signing key, search, export and live verification.

pub mod action;
pub mod prune;
pub mod record;
pub mod report;
pub mod verify;
pub mod writer;

use std::path::Path;

use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

pub use action::Action;
pub use record::{AuditEvent, AuditRecord, Draft, Outcome, Requester};
pub use verify::{Checkpoint, ExportHeader, VerifyReport};
pub use writer::{AuditError, AuditLog};

/// The signing key file could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// I/O on the key file.
    #[error("{0}")]
    Io(String),
    /// The file does not hold an Ed25519 PKCS#8 key.
    #[error("{0} is not an Ed25519 key")]
    Invalid(String),
}

/// Creates the checkpoint signing key (0600) and writes its public key (hex) beside the certs.
/// Keeps an existing key.
pub fn init_signing_key(key_path: &Path, public_path: &Path) -> Result<bool, KeyError> {
    if key_path.exists() {
        let key = load_signing_key(key_path)?;
        write_public(public_path, &key)?;
        return Ok(false);
    }
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| KeyError::Io("cannot generate a key".into()))?;
    crate::files::write_file(key_path, hex::encode(pkcs8.as_ref()).as_bytes(), 0o600)
        .map_err(|e| KeyError::Io(format!("{}: {e}", key_path.display())))?;
    write_public(public_path, &load_signing_key(key_path)?)?;
    Ok(true)
}

fn write_public(path: &Path, key: &Ed25519KeyPair) -> Result<(), KeyError> {
    let text = format!("{}\n", hex::encode(key.public_key().as_ref()));
    crate::files::write_file(path, text.as_bytes(), 0o644)
        .map_err(|e| KeyError::Io(format!("{}: {e}", path.display())))
}

/// Loads the checkpoint signing key.
pub fn load_signing_key(path: &Path) -> Result<Ed25519KeyPair, KeyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KeyError::Io(format!("{}: {e}", path.display())))?;
    let der =
        hex::decode(text.trim()).map_err(|_| KeyError::Invalid(path.display().to_string()))?;
    Ed25519KeyPair::from_pkcs8(&der).map_err(|_| KeyError::Invalid(path.display().to_string()))
}

/// Reads a public key file written by [`init_signing_key`] (hex, 32 bytes).
pub fn load_public_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KeyError::Io(format!("{}: {e}", path.display())))?;
    let key =
        hex::decode(text.trim()).map_err(|_| KeyError::Invalid(path.display().to_string()))?;
    if key.len() != 32 {
        return Err(KeyError::Invalid(path.display().to_string()));
    }
    Ok(key)
}

async fn checkpoints(
    pool: &SqlitePool,
    from: u64,
    to: u64,
) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let rows: Vec<(i64, Vec<u8>, String, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, hash, time, signature FROM audit_checkpoints WHERE seq BETWEEN ? AND ? ORDER BY seq",
    )
    .bind(from as i64)
    .bind(to as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, hash, time, sig)| Checkpoint {
            seq: seq as u64,
            hash: hex::encode(hash),
            time,
            signature: hex::encode(sig),
        })
        .collect())
}

/// Records fetched per query when verifying; each chunk comes back as one row, because
/// moving rows one by one through the driver dominated verification time.
const VERIFY_CHUNK: i64 = 20_000;

/// Verifies the whole live chain: every record's hash and link, every checkpoint's signature.
pub async fn verify_database(
    pool: &SqlitePool,
    public_key: &[u8],
) -> Result<VerifyReport, sqlx::Error> {
    let cps = checkpoints(pool, 0, i64::MAX as u64).await?;
    // After pruning, the live chain starts right after a signed anchor checkpoint.
    let first = prune::first_live(pool).await?;
    let anchor = cps
        .iter()
        .find(|c| c.seq + 1 == first && first > 1)
        .cloned();
    let mut v = verify::ChainVerifier::new(public_key, cps, anchor.as_ref());
    let (last,): (Option<i64>,) = sqlx::query_as("SELECT max(seq) FROM audit_records")
        .fetch_one(pool)
        .await?;
    let mut from = first as i64;
    while from <= last.unwrap_or(0) && !v.failed() {
        // Canonical records never contain a raw newline (JSON escapes it), so it separates them.
        let (records, hashes): (Option<String>, Option<String>) = sqlx::query_as(
            "SELECT group_concat(record, char(10)), group_concat(hex(hash), ',')
             FROM (SELECT record, hash FROM audit_records WHERE seq >= ? AND seq < ? ORDER BY seq)",
        )
        .bind(from)
        .bind(from + VERIFY_CHUNK)
        .fetch_one(pool)
        .await?;
        let hashes: Vec<Vec<u8>> = hashes
            .unwrap_or_default()
            .split(',')
            .map(|h| hex::decode(h).unwrap_or_default())
            .collect();
        for (i, text) in records
            .as_deref()
            .unwrap_or("")
            .split('\n')
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            v.push(text, Some(hashes.get(i).map(Vec::as_slice).unwrap_or(&[])));
            if v.failed() {
                break;
            }
        }
        from += VERIFY_CHUNK;
    }
    Ok(v.finish())
}

/// Writes an export of records `from..=to` (extended to the next signed checkpoint) as JSON
/// lines into `out`, with a header signed by `signer` (the checkpoint key) that declares the
/// range and the last record's hash, so the file cannot be shortened unnoticed. Call
/// [`AuditLog::checkpoint`] first so the head is signed.
pub async fn export(
    pool: &SqlitePool,
    from: u64,
    to: u64,
    signer: &Ed25519KeyPair,
    out: &mut Vec<u8>,
) -> Result<ExportHeader, sqlx::Error> {
    use futures_util::TryStreamExt;
    // Pruned records are in an archive: the export starts at the live chain's anchor.
    let from = from.max(prune::first_live(pool).await?);
    let end: Option<(i64,)> =
        sqlx::query_as("SELECT min(seq) FROM audit_checkpoints WHERE seq >= ?")
            .bind(to as i64)
            .fetch_optional(pool)
            .await?;
    let to = end
        .and_then(|e| u64::try_from(e.0).ok())
        .unwrap_or(to)
        .max(from);
    let anchor: Option<(i64, Vec<u8>, String, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, hash, time, signature FROM audit_checkpoints WHERE seq < ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(from as i64)
    .fetch_optional(pool)
    .await?;
    // The export starts right after its anchor, so the first record is bound to a signature.
    let (from, anchor) = match anchor {
        Some((seq, hash, time, sig)) => (
            seq as u64 + 1,
            Some(Checkpoint {
                seq: seq as u64,
                hash: hex::encode(hash),
                time,
                signature: hex::encode(sig),
            }),
        ),
        None => (1, None),
    };
    // Asked to start past the head: an empty export that ends on its anchor.
    let to = if to < from { from - 1 } else { to };
    // The declared end hash comes from the checkpoint the writer signed there when there is one,
    // so the header repeats a signed fact rather than whatever the table holds now.
    let end: Option<(Vec<u8>,)> = sqlx::query_as(
        "SELECT hash FROM audit_checkpoints WHERE seq = ?1
         UNION ALL SELECT hash FROM audit_records WHERE seq = ?1 LIMIT 1",
    )
    .bind(to as i64)
    .fetch_optional(pool)
    .await?;
    // No row at all only when the log is empty (to = 0): the chain's all-zero start.
    let to_hash = hex::encode(end.map_or(vec![0u8; 32], |(h,)| h));
    let header = ExportHeader::signed(from, to, to_hash, record::now(), signer);
    let line = |out: &mut Vec<u8>, v: serde_json::Value| {
        serde_json::to_writer(&mut *out, &v).expect("json");
        out.push(b'\n');
    };
    line(out, serde_json::json!({ "export": header }));
    if let Some(a) = anchor {
        line(out, serde_json::json!({ "anchor": a }));
    }
    let mut rows = sqlx::query_as::<_, (String,)>(
        "SELECT record FROM audit_records WHERE seq BETWEEN ? AND ? ORDER BY seq",
    )
    .bind(from as i64)
    .bind(to as i64)
    .fetch(pool);
    while let Some((text,)) = rows.try_next().await? {
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
    }
    drop(rows);
    for cp in checkpoints(pool, from, to).await? {
        line(out, serde_json::json!({ "checkpoint": cp }));
    }
    Ok(header)
}

/// Filters for `GET /v1/audit`; every one optional, all combined with AND.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Audit pseudonym of one participant (the API fills it from an INSZ the DPO gives).
    #[serde(skip)]
    #[param(ignore)]
    pub participant: Option<String>,
    /// Partner id.
    pub partner: Option<String>,
    /// Client certificate name.
    pub client: Option<String>,
    /// The partner's acting user id.
    pub acting_user: Option<String>,
    /// Purpose id.
    pub purpose: Option<String>,
    /// `granted` or `refused`.
    pub decision: Option<String>,
    /// From this time (RFC 3339), inclusive.
    pub since: Option<String>,
    /// Until this time (RFC 3339), exclusive.
    pub until: Option<String>,
    /// Only records after this sequence number (paging).
    pub after: Option<u64>,
    /// Page size, at most 1000.
    pub limit: Option<u32>,
}

/// Searches the log, oldest first, one page.
pub async fn search(pool: &SqlitePool, q: &AuditQuery) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let mut b = sqlx::QueryBuilder::new("SELECT record FROM audit_records WHERE seq > ");
    b.push_bind(q.after.unwrap_or(0) as i64);
    let filters = [
        ("participant", &q.participant),
        ("partner", &q.partner),
        ("client", &q.client),
        ("acting_user", &q.acting_user),
        ("purpose", &q.purpose),
        ("decision", &q.decision),
    ];
    for (column, value) in filters {
        if let Some(v) = value {
            b.push(format_args!(" AND {column} = "));
            b.push_bind(v.clone());
        }
    }
    if let Some(s) = &q.since {
        b.push(" AND time >= ").push_bind(s.clone());
    }
    if let Some(u) = &q.until {
        b.push(" AND time < ").push_bind(u.clone());
    }
    b.push(" ORDER BY seq LIMIT ")
        .push_bind(i64::from(q.limit.unwrap_or(100).clamp(1, 1000)));
    let rows: Vec<(String,)> = b.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(t,)| serde_json::from_str(&t).ok())
        .collect())
}
