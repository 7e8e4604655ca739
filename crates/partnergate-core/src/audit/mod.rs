//! The tamper-evident audit log for the Data Protection Officers.
//!
//! - [`action`]: the actions an access can record, and which of them disclose personal data.
//! - [`record`]: what one record holds and its canonical encoding; events are built with a
//!   [`Draft`] that must end granted or refused.
//! - [`writer`]: the single writer with group commit; no answer leaves before its record.
//! - [`verify`]: chain and checkpoint verification, live and offline.
//! - this module: the signing key, search, export and live verification.

pub mod action;
pub mod commit;
pub mod prune;
pub mod record;
pub mod report;
pub mod verify;
pub mod writer;

use std::path::Path;

use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::store::{self, DbError, Store};

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

fn checkpoint(row: crate::store::audit::CheckpointRow) -> Checkpoint {
    let (seq, hash, time, sig) = row;
    Checkpoint {
        seq: seq as u64,
        hash: hex::encode(hash),
        time,
        signature: hex::encode(sig),
    }
}

async fn checkpoints(db: &Store, from: u64, to: u64) -> Result<Vec<Checkpoint>, DbError> {
    let rows = store::audit::checkpoints(db, from as i64, to as i64).await?;
    Ok(rows.into_iter().map(checkpoint).collect())
}

/// Records fetched per read when verifying (see [`store::audit::RecordChunk`]).
const VERIFY_CHUNK: i64 = 1_024;

/// Chunks the verifier has in flight (being read, hashed, or waiting for their turn in the
/// chain walk). Enough that a slow read does not leave the cores idle; it bounds memory at
/// about this many chunks, whatever the size of the log.
const VERIFY_IN_FLIGHT: usize = 16;

/// Verifies the whole live chain: every record's hash and link, every checkpoint's signature.
pub async fn verify_database(db: &Store, public_key: &[u8]) -> Result<VerifyReport, DbError> {
    let cps = checkpoints(db, 0, i64::MAX as u64).await?;
    // After pruning, the live chain starts right after a signed anchor checkpoint.
    let first = prune::first_live(db).await?;
    let anchor = cps
        .iter()
        .find(|c| c.seq + 1 == first && first > 1)
        .cloned();
    let mut v = verify::ChainVerifier::new(public_key, cps, anchor.as_ref());
    let last = store::audit::last_seq(db).await?.unwrap_or(0);
    // Chunks are read on several connections and hashed on the blocking threads, so reading
    // and hashing keep every core busy; only the chain walk, which is cheap, is serial. Reads
    // take turns with other long reads (`Store::long_read_turn`), so partners' reads go on.
    let read_and_hash = |from: i64| {
        let db = db.clone();
        tokio::spawn(async move {
            let chunk = {
                let _turn = db.long_read_turn().await;
                store::audit::record_chunk(&db, from, from + VERIFY_CHUNK).await?
            };
            tokio::task::spawn_blocking(move || chunk.records().map(verify::hash_all))
                .await
                .map_err(|e| DbError::Protocol(format!("the verifier's hashing stopped: {e}")))?
        })
    };
    let mut next = first as i64;
    let mut chunks = InFlight(std::collections::VecDeque::new());
    loop {
        while chunks.0.len() < VERIFY_IN_FLIGHT && next <= last {
            chunks.0.push_back(read_and_hash(next));
            next += VERIFY_CHUNK;
        }
        let Some(chunk) = chunks.0.pop_front() else {
            break;
        };
        let hashed = chunk
            .await
            .map_err(|e| DbError::Protocol(format!("the verifier's read stopped: {e}")))??;
        for record in &hashed {
            v.push_hashed(record);
            if v.failed() {
                return Ok(v.finish());
            }
        }
    }
    Ok(v.finish())
}

/// The verifier's chunks being read and hashed, in order. Dropping it (a fault found, an
/// error) stops the ones no longer needed.
struct InFlight<T>(std::collections::VecDeque<tokio::task::JoinHandle<T>>);

impl<T> Drop for InFlight<T> {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// Writes an export of records `from..=to` (extended to the next signed checkpoint) as JSON
/// lines into `out`, with a header signed by `signer` (the checkpoint key) that declares the
/// range and the last record's hash, so the file cannot be shortened unnoticed. Call
/// [`AuditLog::checkpoint`] first so the head is signed.
pub async fn export(
    db: &Store,
    from: u64,
    to: u64,
    signer: &Ed25519KeyPair,
    out: &mut Vec<u8>,
) -> Result<ExportHeader, DbError> {
    // Pruned records are in an archive: the export starts at the live chain's anchor.
    let from = from.max(prune::first_live(db).await?);
    let end = store::audit::checkpoint_from(db, to as i64).await?;
    let to = end
        .and_then(|e| u64::try_from(e.0).ok())
        .unwrap_or(to)
        .max(from);
    let anchor = store::audit::checkpoint_before(db, from as i64).await?;
    // The export starts right after its anchor, so the first record is bound to a signature.
    let (from, anchor) = match anchor {
        Some(row) => (row.0 as u64 + 1, Some(checkpoint(row))),
        None => (1, None),
    };
    // Asked to start past the head: an empty export that ends on its anchor.
    let to = if to < from { from - 1 } else { to };
    // The declared end hash comes from the checkpoint the writer signed there when there is one,
    // so the header repeats a signed fact rather than whatever the table holds now.
    let end = store::audit::hash_at(db, to as i64).await?;
    // No row at all only when the log is empty (to = 0): the chain's all-zero start.
    let to_hash = hex::encode(end.unwrap_or_else(|| vec![0u8; 32]));
    let header = ExportHeader::signed(from, to, to_hash, record::now(), signer);
    let line = |out: &mut Vec<u8>, v: serde_json::Value| {
        serde_json::to_writer(&mut *out, &v).expect("json");
        out.push(b'\n');
    };
    line(out, serde_json::json!({ "export": header }));
    if let Some(a) = anchor {
        line(out, serde_json::json!({ "anchor": a }));
    }
    store::audit::write_records(db, from as i64, to as i64, out).await?;
    for cp in checkpoints(db, from, to).await? {
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
pub async fn search(db: &Store, q: &AuditQuery) -> Result<Vec<AuditRecord>, DbError> {
    Ok(store::audit::search(db, q)
        .await?
        .into_iter()
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect())
}

/// Every record, oldest first, read a page at a time (for the report).
pub async fn all_records(db: &Store) -> Result<Vec<AuditRecord>, DbError> {
    let mut out = Vec::new();
    let mut q = AuditQuery {
        limit: Some(1000),
        ..Default::default()
    };
    loop {
        let page = search(db, &q).await?;
        let last = page.last().map(|r| r.seq);
        let full = page.len() == 1000;
        out.extend(page);
        match last {
            Some(seq) if full => q.after = Some(seq),
            _ => return Ok(out),
        }
    }
}
