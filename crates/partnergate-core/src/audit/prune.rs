//! Audit log retention: records older than the configured period may leave the live database,
//! but only into an archive that was written, read back and verified first. The live chain
//! then starts right after the signed checkpoint on the last archived record (its anchor),
//! which stays, so `verify_database` and exports of what remains still verify.

use std::path::{Path, PathBuf};

use crate::store::{self, DbError, Store};
use ring::signature::Ed25519KeyPair;

use super::verify::verify_export;

/// The first sequence number still in the live database (1 when nothing was pruned).
pub async fn first_live(db: &Store) -> Result<u64, DbError> {
    let first = store::audit::first_seq(db).await?;
    Ok(first.map(|f| f.max(1) as u64).unwrap_or(1))
}

/// The range that may be pruned for `cutoff` (a stored time): from the first live record to
/// the last signed checkpoint whose record is older than the cutoff. `None` when there is none.
pub async fn prunable(db: &Store, cutoff: &str) -> Result<Option<(u64, u64)>, DbError> {
    let first = first_live(db).await?;
    let to = store::audit::last_checkpoint_before(db, cutoff).await?;
    Ok(to
        .map(|t| t as u64)
        .filter(|&t| t >= first)
        .map(|t| (first, t)))
}

/// A written and verified archive.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The file.
    pub path: PathBuf,
    /// First and last record in it.
    pub range: (u64, u64),
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// Why nothing was pruned.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// The archive could not be written or read back.
    #[error("archive {path}: {message}")]
    Io {
        /// The file or folder.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The archive read back does not verify or does not cover the range: nothing is pruned.
    #[error("the archive does not verify ({0}); nothing was pruned")]
    Unverified(String),
}

/// Exports `from..=to` into `dir`, syncs it to disk, reads it back and verifies it with the
/// public key: signatures, chain, and that it ends exactly at `to`.
pub async fn archive(
    db: &Store,
    signer: &Ed25519KeyPair,
    public_key: &[u8],
    (from, to): (u64, u64),
    dir: &Path,
) -> Result<Archive, PruneError> {
    let io = |path: &Path, e: std::io::Error| PruneError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut buf = Vec::new();
    let header = super::export(db, from, to, signer, &mut buf).await?;
    if header.to_seq != to {
        return Err(PruneError::Unverified(format!(
            "export ends at {} instead of {to}",
            header.to_seq
        )));
    }
    let path = dir.join(format!("audit-{:010}-{:010}.jsonl", header.from_seq, to));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
        f.write_all(&buf).map_err(|e| io(&path, e))?;
        f.sync_all().map_err(|e| io(&path, e))?;
    }
    let back = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let report = verify_export(&back, public_key);
    if !report.ok || report.signed_through != to {
        return Err(PruneError::Unverified(report.problem.unwrap_or_else(
            || format!("signed through {}", report.signed_through),
        )));
    }
    Ok(Archive {
        path,
        range: (header.from_seq, to),
        sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, back.as_bytes())),
    })
}

/// Deletes the records up to `to` and the checkpoints before it; the checkpoint on `to` stays
/// as the live chain's anchor. Call only after [`archive`] succeeded for that range.
pub async fn prune(db: &Store, to: u64) -> Result<u64, DbError> {
    let mut tx = db.begin_write().await?;
    let n = store::audit::delete_through(&mut tx, to as i64).await?;
    tx.commit().await?;
    // Deleted records leave no page image behind in the write-ahead log either.
    db.checkpoint().await?;
    Ok(n)
}
