//! The vault: pseudonyms, envelope encryption and participant records.
//!
//! Nothing leaves this module in plaintext except the fields a caller's policy decision allows,
//! and only at the moment they are returned.

mod case;
pub mod crypto;
mod erase;
/// The national register number (from the core crate, where the tools share it).
pub use crate::insz;
pub mod keys;
mod participants;
mod purge;
mod snapshot;

pub use case::{CaseChange, CaseOutcome, ConsentHistory, Involvement, InvolvementHistory, Note};
pub use participants::{Flag, Participant, Seed, Vault, WriteError};
pub use purge::Purged;
pub use snapshot::{ChangePage, Snapshot};

use crate::config::Settings;
use crate::store;
use crypto::{CryptoError, WrappedKey};
use keys::{IndexKeys, IndexSecret, MasterKeyring};

/// The environment variable that can hold the master keyring instead of the key file.
pub const MASTER_KEY_ENV: &str = "PARTNERGATE_MASTER_KEY";

/// Why the vault could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A key could not be read, made or used.
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] store::DbError),
    /// The database could not be opened.
    #[error("{0}")]
    Store(#[from] store::StoreError),
    /// The audit log could not make the write's records durable: nothing was written.
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    /// A write with audit records was asked of a vault that has no audit log attached.
    #[error("this vault has no audit log to record its writes in")]
    NoAuditLog,
    /// The database has no index secret: `init` was not run against it.
    #[error("the database has no index secret; run `partnergate init`")]
    NotInitialised,
}

/// Loads the master keyring from `PARTNERGATE_MASTER_KEY` or, if unset, from the key file.
pub fn load_keyring(settings: &Settings) -> Result<MasterKeyring, CryptoError> {
    match MasterKeyring::from_env(MASTER_KEY_ENV)? {
        Some(k) => Ok(k),
        None => MasterKeyring::load(&settings.master_key_path()),
    }
}

/// The name of the index secret in the store.
pub(crate) const INDEX_SECRET: &str = "index";

/// Creates the master key file (unless it exists, or `force`) and the database with its
/// wrapped index secret. Returns whether a new master key was made.
pub async fn init_keys(settings: &Settings, force: bool) -> Result<bool, VaultError> {
    let path = settings.master_key_path();
    if force {
        // A new master key cannot open the old data: start from an empty database too.
        store::Store::destroy(&settings.database()).await?;
        let _ = std::fs::remove_file(&path);
    }
    let created = if std::env::var_os(MASTER_KEY_ENV).is_none() && !path.exists() {
        MasterKeyring::generate_file(&path)?;
        true
    } else {
        false
    };
    let keyring = load_keyring(settings)?;
    let db = store::Store::connect(&settings.database()).await?;
    if store::secrets::get(&db, INDEX_SECRET).await?.is_none() {
        let w = IndexSecret::generate()?.wrap(&keyring)?;
        store::secrets::insert(&db, INDEX_SECRET, &(w.master_version, w.bytes)).await?;
    }
    db.close().await;
    Ok(created)
}

/// Reads and unwraps the index secret, and derives the look-up and pseudonym keys from it.
pub async fn load_index_keys(
    db: &store::Store,
    keyring: &MasterKeyring,
) -> Result<IndexKeys, VaultError> {
    let (master_version, bytes) = store::secrets::get(db, INDEX_SECRET)
        .await?
        .ok_or(VaultError::NotInitialised)?;
    let wrapped = WrappedKey {
        master_version,
        bytes,
    };
    Ok(IndexKeys::derive(&IndexSecret::unwrap_from(
        keyring, &wrapped,
    )?))
}
