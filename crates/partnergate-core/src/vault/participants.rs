//! Participant records: the vault's keys and database, registration, sealed fields and
//! their versioned writes, processing flags and key re-wrapping.
//!
//! The vault knows nothing of HTTP or policy: callers say which fields they want and get back
//! only those, decrypted at that moment. Every row stores ciphertext bound (by AAD) to its
//! participant, field and data-key version.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde_json::Value;

use super::VaultError;
use super::case::SealedNote;
use super::crypto::{DataKey, ParticipantId, WrappedKey};
use super::insz::Insz;
use super::keys::{IndexKeys, MasterKeyring};
use crate::audit::commit::{Applied, Apply, Isolation};
use crate::audit::{AuditEvent, AuditLog};
use crate::store::{self, Store, now};

/// The data-key version of newly registered participants.
pub(super) const DEK_VERSION: u32 = 1;

/// A participant's row, without any field values.
#[derive(Debug, Clone)]
pub struct Participant {
    /// The internal id (never shown to partners).
    pub id: ParticipantId,
    /// Record version, for If-Match.
    pub version: i64,
    /// Whether processing is restricted (GDPR Art. 18).
    pub restricted: bool,
    /// Whether the participant objected (GDPR Art. 21) to public-task and
    /// legitimate-interest processing.
    pub objection: bool,
    pub(super) dek_version: u32,
    wrapped: WrappedKey,
}

/// Reads a stored row; `None` if its id is malformed.
pub(super) fn from_row(row: store::participants::Row) -> Option<Participant> {
    Some(Participant {
        id: ParticipantId::from_slice(&row.id)?,
        version: row.version,
        restricted: row.restricted,
        objection: row.objection,
        dek_version: row.dek_version as u32,
        wrapped: WrappedKey {
            master_version: row.master_version as u32,
            bytes: row.wrapped_dek,
        },
    })
}

/// Outcome of a write that checks the record version.
#[derive(Debug)]
pub enum WriteError {
    /// The participant does not exist (anymore).
    NotFound,
    /// `If-Match` named an older version; the current one is given.
    Stale(i64),
    /// The corrected national number belongs to another participant: nothing was written.
    InszTaken,
    /// Anything else.
    Vault(VaultError),
}

impl<E: Into<VaultError>> From<E> for WriteError {
    fn from(e: E) -> Self {
        WriteError::Vault(e.into())
    }
}

/// The vault: keys plus the database.
pub struct Vault {
    pub(super) store: Store,
    journal: std::sync::OnceLock<AuditLog>,
    pub(super) keyring: ArcSwap<MasterKeyring>,
    keyring_source: Option<std::path::PathBuf>,
    keyring_mtime: std::sync::Mutex<Option<SystemTime>>,
    pub(super) index: IndexKeys,
}

/// A per-participant processing flag.
#[derive(Debug, Clone, Copy)]
pub enum Flag {
    /// Art. 18 restriction.
    Restricted,
    /// Art. 21 objection.
    Objection,
}

/// A new participant to store in bulk.
pub struct Seed<'a> {
    /// Its new random id.
    pub id: ParticipantId,
    /// The national number (already validated).
    pub insz: &'a Insz,
    /// Field values (validated by the caller against the agreement).
    pub fields: &'a BTreeMap<String, Value>,
    /// (partner, role); the first one is the referrer.
    pub involvements: &'a [(String, String)],
    /// Consent scopes in force.
    pub consents: &'a [String],
    /// (author partner, text) case notes.
    pub notes: &'a [(String, String)],
}

fn seal_all(
    dek: &DataKey,
    id: &ParticipantId,
    dek_version: u32,
    fields: &BTreeMap<String, Value>,
) -> Result<Vec<(String, Vec<u8>)>, VaultError> {
    fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(name, value)| {
            let plain = zeroize::Zeroizing::new(serde_json::to_vec(value).expect("json"));
            Ok((name.clone(), dek.seal(id, name, dek_version, &plain)?))
        })
        .collect()
}

/// A registration with its key work done: only storing is left.
struct NewRecord {
    id: ParticipantId,
    insz_hash: Vec<u8>,
    wrapped: WrappedKey,
    sealed: Vec<(String, Vec<u8>)>,
    involvements: Vec<(String, String)>,
    consents: Vec<String>,
    notes: Vec<SealedNote>,
}

impl NewRecord {
    /// Stores the record unless its national number is registered. Returns whether it was new;
    /// see [`store::participants::insert_record`] for the savepoint it opens.
    async fn apply(self, tx: &mut store::WriteTx) -> Result<bool, store::DbError> {
        let now = now();
        let notes: Vec<_> = self.notes.iter().map(SealedNote::to_store).collect();
        let record = store::participants::NewRecord {
            row: store::participants::New {
                id: &self.id,
                insz_hash: &self.insz_hash,
                dek_version: DEK_VERSION,
                master_version: self.wrapped.master_version,
                wrapped_dek: &self.wrapped.bytes,
                restricted: false,
                objection: false,
                now: &now,
            },
            fields: &self.sealed,
            involvements: &self.involvements,
            // The first involvement is the referrer's, who starts them all.
            started_by: self.involvements.first().map_or("", |(p, _)| p.as_str()),
            consents: &self.consents,
            notes: &notes,
        };
        store::participants::insert_record(tx, &record).await
    }
}

/// What [`Vault::update`] found.
enum Updated {
    Done,
    Stale,
    InszTaken,
}

impl Vault {
    /// Opens the vault on `store` with `keyring` (read from `keyring_file` when given, so that
    /// [`Vault::reload_keyring_if_changed`] can pick up a rotation).
    pub async fn open(
        store: Store,
        keyring: MasterKeyring,
        keyring_file: Option<&Path>,
    ) -> Result<Self, VaultError> {
        let index = super::load_index_keys(&store, &keyring).await?;
        let mtime = keyring_file.and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        Ok(Self {
            store,
            journal: std::sync::OnceLock::new(),
            keyring: ArcSwap::from_pointee(keyring),
            keyring_source: keyring_file.map(Path::to_path_buf),
            keyring_mtime: std::sync::Mutex::new(mtime),
            index,
        })
    }

    /// The look-up, pseudonym and audit keys.
    pub fn index(&self) -> &IndexKeys {
        &self.index
    }

    /// Commits the vault's writes through `log` from now on, each in one transaction with its
    /// audit records (see [`crate::audit::commit`]). Without it (the offline CLI), writes that
    /// have records are refused.
    pub fn attach_audit(&self, log: AuditLog) {
        let _ = self.journal.set(log);
    }

    /// Runs `write` and makes `records` durable with it: both or neither. Returns the write's
    /// value; a write it says not to keep is rolled back and its records are not appended.
    pub(super) async fn commit<T: Send + 'static>(
        &self,
        records: Vec<AuditEvent>,
        isolation: Isolation,
        write: Apply<T>,
    ) -> Result<T, VaultError> {
        match self.journal.get() {
            Some(log) => return Ok(log.write(records, isolation, write).await?),
            None if records.is_empty() => {}
            None => return Err(VaultError::NoAuditLog),
        };
        let mut tx = self.store.begin_write().await?;
        let applied = write(&mut tx).await?;
        if applied.keep {
            tx.commit().await?;
        }
        Ok(applied.value)
    }

    /// The store the vault keeps its records in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Re-reads the key file if it changed (after `keys rotate`), so new data keys are wrapped
    /// under the newest version and keys re-wrapped by the rotation can be opened.
    pub fn reload_keyring_if_changed(&self) {
        let Some(path) = &self.keyring_source else {
            return;
        };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut seen = self.keyring_mtime.lock().expect("not poisoned");
        if *seen == mtime {
            return;
        }
        match MasterKeyring::load(path) {
            Ok(k) => {
                tracing::info!(
                    current_version = k.current_version(),
                    "master keyring reloaded"
                );
                self.keyring.store(Arc::new(k));
                *seen = mtime;
            }
            Err(e) => {
                tracing::error!(error = %e, "master key file changed but does not load; keeping the previous keyring")
            }
        }
    }

    pub(super) fn unwrap(&self, p: &Participant) -> Result<DataKey, VaultError> {
        match self.keyring.load().unwrap(&p.id, &p.wrapped) {
            Err(super::crypto::CryptoError::UnknownMasterVersion(_)) => {
                // A rotation may have re-wrapped it a moment ago: look at the key file again.
                self.reload_keyring_if_changed();
                Ok(self.keyring.load().unwrap(&p.id, &p.wrapped)?)
            }
            other => Ok(other?),
        }
    }

    /// The participant row.
    pub async fn participant(&self, id: &ParticipantId) -> Result<Option<Participant>, VaultError> {
        let row = store::participants::get(&self.store, id).await?;
        Ok(row.and_then(from_row))
    }

    /// The participant with this national number, if registered.
    pub async fn find_by_insz(&self, insz: &Insz) -> Result<Option<ParticipantId>, VaultError> {
        let hash = self.index.insz_lookup_hash(insz);
        let id = store::participants::id_by_insz_hash(&self.store, &hash).await?;
        Ok(id.and_then(|id| ParticipantId::from_slice(&id)))
    }

    /// Registers a participant with `fields` (which must include `identity.insz` as the
    /// normalized number) and makes `partner` the first involvement with `role`, committed with
    /// `records`. Returns `false` when the national number is already registered (nothing
    /// written, nothing recorded).
    pub async fn register(
        &self,
        id: &ParticipantId,
        insz: &Insz,
        fields: &BTreeMap<String, Value>,
        (partner, role): (&str, &str),
        records: Vec<AuditEvent>,
    ) -> Result<bool, VaultError> {
        let seed = Seed {
            id: *id,
            insz,
            fields,
            involvements: &[(partner.to_string(), role.to_string())],
            consents: &[],
            notes: &[],
        };
        let new = self.prepare_new(&seed)?;
        let write: Apply<bool> = Box::new(move |tx| {
            Box::pin(async move {
                let inserted = new.apply(tx).await?;
                Ok(if inserted {
                    Applied::kept(true)
                } else {
                    Applied::undone(false)
                })
            })
        });
        self.commit(records, Isolation::OwnSavepoint, write).await
    }

    /// Stores many new participants in one transaction (migrations and demo data). Returns how
    /// many were new; known national numbers are skipped.
    pub async fn seed_many(&self, seeds: &[Seed<'_>]) -> Result<usize, VaultError> {
        let prepared = seeds
            .iter()
            .map(|seed| self.prepare_new(seed))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tx = self.store.begin_write().await?;
        let mut n = 0;
        for new in prepared {
            n += usize::from(new.apply(&mut tx).await?);
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Does the key work of a registration (a new data key, wrapped; the look-up hash; every
    /// field and note sealed) before the write transaction, which then only stores.
    fn prepare_new(&self, seed: &Seed<'_>) -> Result<NewRecord, VaultError> {
        let id = seed.id;
        let dek = DataKey::generate()?;
        let wrapped = self.keyring.load().wrap(&id, &dek)?;
        let notes = seed
            .notes
            .iter()
            .map(|(author, text)| SealedNote::seal(&dek, &id, DEK_VERSION, author, text))
            .collect::<Result<_, _>>()?;
        Ok(NewRecord {
            id,
            insz_hash: self.index.insz_lookup_hash(seed.insz).to_vec(),
            wrapped,
            sealed: seal_all(&dek, &id, DEK_VERSION, seed.fields)?,
            involvements: seed.involvements.to_vec(),
            consents: seed.consents.to_vec(),
            notes,
        })
    }

    /// Decrypts the fields of `p` for which `wanted` is true; the others stay sealed.
    pub async fn read(
        &self,
        p: &Participant,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, Value>, VaultError> {
        let rows = store::participants::sealed_fields(&self.store, &p.id).await?;
        let mut out = BTreeMap::new();
        let mut dek = None;
        for (field, sealed) in rows.into_iter().filter(|(f, _)| wanted(f)) {
            let key = match &dek {
                Some(k) => k,
                None => dek.insert(self.unwrap(p)?),
            };
            let plain = key.open(&p.id, &field, p.dek_version, &sealed)?;
            // A value that decrypts but does not parse was written by a bug; fail closed.
            let value = serde_json::from_slice(&plain)
                .map_err(|_| super::crypto::CryptoError::Malformed)?;
            out.insert(field, value);
        }
        Ok(out)
    }

    /// Writes `changes` (a `null` clears the field) if the record is still at `expected`,
    /// committed with `records`. A corrected national number (`new_insz`) moves the look-up
    /// hash in the same transaction, so the old number finds nobody. Returns the new version.
    pub async fn update(
        &self,
        p: &Participant,
        expected: i64,
        changes: &BTreeMap<String, Value>,
        new_insz: Option<&Insz>,
        records: Vec<AuditEvent>,
    ) -> Result<i64, WriteError> {
        let dek = self.unwrap(p)?;
        let (clear, set): (Vec<_>, Vec<_>) = changes.iter().partition(|(_, v)| v.is_null());
        let set: BTreeMap<String, Value> = set
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let sealed = seal_all(&dek, &p.id, p.dek_version, &set)?;
        let clear: Vec<String> = clear.into_iter().map(|(k, _)| k.clone()).collect();
        let new_hash = new_insz.map(|insz| self.index.insz_lookup_hash(insz));
        let id = p.id;
        let write: Apply<Updated> = Box::new(move |tx| {
            Box::pin(async move {
                if !store::participants::bump_version(tx, &id, expected, &now()).await? {
                    return Ok(Applied::undone(Updated::Stale));
                }
                if let Some(hash) = new_hash
                    && !store::participants::move_insz_hash(tx, &id, &hash).await?
                {
                    return Ok(Applied::undone(Updated::InszTaken));
                }
                store::participants::write_fields(tx, &id, &sealed).await?;
                for field in &clear {
                    store::participants::clear_field(tx, &id, field).await?;
                }
                store::changes::record(tx, &id).await?;
                Ok(Applied::kept(Updated::Done))
            })
        });
        match self.commit(records, Isolation::Savepoint, write).await? {
            Updated::Done => Ok(expected + 1),
            Updated::InszTaken => Err(WriteError::InszTaken),
            Updated::Stale => match self.participant(&p.id).await? {
                Some(current) => Err(WriteError::Stale(current.version)),
                None => Err(WriteError::NotFound),
            },
        }
    }

    /// Re-wraps every data key and the index secret that is not under the current master
    /// version, in batches, while the server keeps serving. Returns how many were re-wrapped.
    pub async fn rewrap_all(&self, keyring: &MasterKeyring) -> Result<u64, VaultError> {
        let mut done = 0;
        let index = super::INDEX_SECRET;
        if let Some((master_version, bytes)) =
            store::secrets::get_not_under(&self.store, index, keyring.current_version()).await?
        {
            let w = super::keys::IndexSecret::rewrap(
                keyring,
                &WrappedKey {
                    master_version,
                    bytes,
                },
            )?;
            store::secrets::replace(&self.store, index, &(w.master_version, w.bytes)).await?;
            done += 1;
        }
        loop {
            let rows =
                store::participants::wrapped_not_under(&self.store, keyring.current_version(), 500)
                    .await?;
            if rows.is_empty() {
                return Ok(done);
            }
            let mut tx = self.store.begin_write().await?;
            for (id, v, bytes) in rows {
                let Some(pid) = ParticipantId::from_slice(&id) else {
                    continue;
                };
                let w = keyring.rewrap(
                    &pid,
                    &WrappedKey {
                        master_version: v,
                        bytes: bytes.clone(),
                    },
                )?;
                // Compare-and-set: a concurrent erasure or rotation wins; we never resurrect.
                store::participants::replace_wrapped(
                    &mut tx,
                    &id,
                    &bytes,
                    (w.master_version, &w.bytes),
                )
                .await?;
                done += 1;
            }
            tx.commit().await?;
        }
    }

    /// Sets the restriction (Art. 18) or objection (Art. 21) flag; partners' feeds see the change.
    pub async fn set_flag(
        &self,
        id: &ParticipantId,
        flag: Flag,
        on: bool,
    ) -> Result<(), VaultError> {
        let mut tx = self.store.begin_write().await?;
        let column = match flag {
            Flag::Restricted => store::participants::FlagColumn::Restricted,
            Flag::Objection => store::participants::FlagColumn::Objection,
        };
        store::participants::set_flag(&mut tx, id, column, on).await?;
        store::changes::record(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Seals request details with the participant's own key (so erasure shreds them too).
    pub fn seal_for(
        &self,
        p: &Participant,
        label: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        Ok(self.unwrap(p)?.seal(&p.id, label, p.dek_version, plain)?)
    }

    /// Opens what [`Vault::seal_for`] sealed.
    pub fn open_for(
        &self,
        p: &Participant,
        label: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError> {
        Ok(self.unwrap(p)?.open(&p.id, label, p.dek_version, sealed)?)
    }
}
