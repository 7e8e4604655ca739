//! Participant records: sealed fields, involvements, consents and notes.
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
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::VaultError;
use super::crypto::{DataKey, ParticipantId, WrappedKey};
use super::insz::Insz;
use super::keys::{IndexKeys, MasterKeyring};

/// The data-key version of newly registered participants.
const DEK_VERSION: u32 = 1;

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
    dek_version: u32,
    wrapped: WrappedKey,
}

/// A `participants` row as stored.
#[derive(sqlx::FromRow)]
struct ParticipantRow {
    id: Vec<u8>,
    version: i64,
    restricted: bool,
    objection: bool,
    dek_version: i64,
    master_version: i64,
    wrapped_dek: Vec<u8>,
}

impl ParticipantRow {
    fn into_participant(self) -> Option<Participant> {
        Some(Participant {
            id: ParticipantId::from_slice(&self.id)?,
            version: self.version,
            restricted: self.restricted,
            objection: self.objection,
            dek_version: self.dek_version as u32,
            wrapped: WrappedKey {
                master_version: self.master_version as u32,
                bytes: self.wrapped_dek,
            },
        })
    }
}

/// An active role of a partner in a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Involvement {
    /// Partner id.
    pub partner: String,
    /// Case role id.
    pub role: String,
}

/// A case note, decrypted.
#[derive(Debug, Clone)]
pub struct Note {
    /// Note id (hex).
    pub id: String,
    /// The partner that wrote it.
    pub author_partner: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// The text.
    pub text: String,
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
    pool: SqlitePool,
    gate: crate::store::WriteGate,
    keyring: ArcSwap<MasterKeyring>,
    keyring_source: Option<std::path::PathBuf>,
    keyring_mtime: std::sync::Mutex<Option<SystemTime>>,
    index: IndexKeys,
}

fn now() -> String {
    crate::store::now()
}

impl Vault {
    /// Opens the vault on `pool` with `keyring` (read from `keyring_file` when given, so that
    /// [`Vault::reload_keyring_if_changed`] can pick up a rotation).
    pub async fn open(
        pool: SqlitePool,
        gate: crate::store::WriteGate,
        keyring: MasterKeyring,
        keyring_file: Option<&Path>,
    ) -> Result<Self, VaultError> {
        let index = super::load_index_keys(&pool, &keyring).await?;
        let mtime = keyring_file.and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        Ok(Self {
            pool,
            gate,
            keyring: ArcSwap::from_pointee(keyring),
            keyring_source: keyring_file.map(Path::to_path_buf),
            keyring_mtime: std::sync::Mutex::new(mtime),
            index,
        })
    }

    /// Starts a write transaction in this process's turn (see [`crate::store::WriteGate`]).
    async fn begin_write(
        &self,
    ) -> Result<
        (
            tokio::sync::OwnedMutexGuard<()>,
            Transaction<'static, Sqlite>,
        ),
        sqlx::Error,
    > {
        let turn = self.gate.enter().await;
        Ok((turn, self.pool.begin().await?))
    }

    /// The look-up, pseudonym and audit keys.
    pub fn index(&self) -> &IndexKeys {
        &self.index
    }

    /// The database pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
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

    fn unwrap(&self, p: &Participant) -> Result<DataKey, VaultError> {
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
        let row: Option<ParticipantRow> = sqlx::query_as(
            "SELECT id, version, restricted, objection, dek_version, master_version, wrapped_dek FROM participants WHERE id = ?",
        )
        .bind(&id.as_bytes()[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(ParticipantRow::into_participant))
    }

    /// The participant with this national number, if registered.
    pub async fn find_by_insz(&self, insz: &Insz) -> Result<Option<ParticipantId>, VaultError> {
        let hash = self.index.insz_lookup_hash(insz);
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT id FROM participants WHERE insz_hash = ?")
                .bind(&hash[..])
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(id,)| ParticipantId::from_slice(&id)))
    }

    /// Registers a participant with `fields` (which must include `identity.insz` as the
    /// normalized number) and makes `partner` the first involvement with `role`.
    /// Returns `false` when the national number is already registered (nothing written).
    pub async fn register(
        &self,
        id: &ParticipantId,
        insz: &Insz,
        fields: &BTreeMap<String, Value>,
        partner: &str,
        role: &str,
    ) -> Result<bool, VaultError> {
        let seed = Seed {
            id: *id,
            insz,
            fields,
            involvements: &[(partner.to_string(), role.to_string())],
            consents: &[],
            notes: &[],
        };
        let (_turn, mut tx) = self.begin_write().await?;
        let inserted = self.insert_new(&mut tx, &seed).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// Stores many new participants in one transaction (migrations and demo data). Returns how
    /// many were new; known national numbers are skipped.
    pub async fn seed_many(&self, seeds: &[Seed<'_>]) -> Result<usize, VaultError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let mut n = 0;
        for seed in seeds {
            n += usize::from(self.insert_new(&mut tx, seed).await?);
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn insert_new(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        seed: &Seed<'_>,
    ) -> Result<bool, VaultError> {
        let id = &seed.id;
        let dek = DataKey::generate()?;
        let wrapped = self.keyring.load().wrap(id, &dek)?;
        let hash = self.index.insz_lookup_hash(seed.insz);
        let sealed = seal_all(&dek, id, DEK_VERSION, seed.fields)?;
        let now = now();
        let inserted = sqlx::query(
            "INSERT INTO participants (id, insz_hash, dek_version, master_version, wrapped_dek, version, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (insz_hash) DO NOTHING",
        )
        .bind(&id.as_bytes()[..])
        .bind(&hash[..])
        .bind(i64::from(DEK_VERSION))
        .bind(i64::from(wrapped.master_version))
        .bind(&wrapped.bytes)
        .bind(&now)
        .bind(&now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        write_sealed(tx, id, sealed).await?;
        let first = seed
            .involvements
            .first()
            .map(|(p, _)| p.as_str())
            .unwrap_or("");
        for (partner, role) in seed.involvements {
            insert_involvement(tx, id, partner, role, first).await?;
        }
        for scope in seed.consents {
            insert_consent(tx, id, scope, first).await?;
        }
        for (author, text) in seed.notes {
            insert_note(tx, &dek, id, DEK_VERSION, author, text).await?;
        }
        record_change(tx, id).await?;
        Ok(true)
    }

    /// Decrypts the fields of `p` for which `wanted` is true; the others stay sealed.
    pub async fn read(
        &self,
        p: &Participant,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, Value>, VaultError> {
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT field, sealed FROM field_values WHERE participant_id = ?")
                .bind(&p.id.as_bytes()[..])
                .fetch_all(&self.pool)
                .await?;
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

    /// Writes `changes` (a `null` clears the field) if the record is still at `expected`.
    /// A corrected national number (`new_insz`) moves the look-up hash in the same
    /// transaction, so the old number finds nobody. Returns the new version.
    pub async fn update(
        &self,
        p: &Participant,
        expected: i64,
        changes: &BTreeMap<String, Value>,
        new_insz: Option<&Insz>,
    ) -> Result<i64, WriteError> {
        let dek = self.unwrap(p)?;
        let (clear, set): (Vec<_>, Vec<_>) = changes.iter().partition(|(_, v)| v.is_null());
        let set: BTreeMap<String, Value> = set
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let sealed = seal_all(&dek, &p.id, p.dek_version, &set)?;
        let (_turn, mut tx) = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE participants SET version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
        )
        .bind(now())
        .bind(&p.id.as_bytes()[..])
        .bind(expected)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            drop(tx);
            return match self.participant(&p.id).await? {
                Some(current) => Err(WriteError::Stale(current.version)),
                None => Err(WriteError::NotFound),
            };
        }
        if let Some(insz) = new_insz {
            let hash = self.index.insz_lookup_hash(insz);
            let moved = sqlx::query(
                "UPDATE participants SET insz_hash = ?1 WHERE id = ?2
                 AND NOT EXISTS (SELECT 1 FROM participants WHERE insz_hash = ?1 AND id <> ?2)",
            )
            .bind(&hash[..])
            .bind(&p.id.as_bytes()[..])
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Err(WriteError::InszTaken);
            }
        }
        write_sealed(&mut tx, &p.id, sealed).await?;
        for (field, _) in clear {
            sqlx::query("DELETE FROM field_values WHERE participant_id = ? AND field = ?")
                .bind(&p.id.as_bytes()[..])
                .bind(field)
                .execute(&mut *tx)
                .await?;
        }
        record_change(&mut tx, &p.id).await?;
        tx.commit().await?;
        Ok(expected + 1)
    }

    /// The active involvements of a participant, optionally only those of one partner.
    pub async fn involvements(
        &self,
        id: &ParticipantId,
        partner: Option<&str>,
    ) -> Result<Vec<Involvement>, VaultError> {
        let rows: Vec<(String, String)> = match partner {
            Some(p) => sqlx::query_as(
                "SELECT partner, role FROM involvements WHERE participant_id = ? AND partner = ? AND ended_at IS NULL ORDER BY id",
            )
            .bind(&id.as_bytes()[..])
            .bind(p)
            .fetch_all(&self.pool)
            .await?,
            None => sqlx::query_as(
                "SELECT partner, role FROM involvements WHERE participant_id = ? AND ended_at IS NULL ORDER BY id",
            )
            .bind(&id.as_bytes()[..])
            .fetch_all(&self.pool)
            .await?,
        };
        Ok(rows
            .into_iter()
            .map(|(partner, role)| Involvement { partner, role })
            .collect())
    }

    /// Applies one change to the case (a role or a consent) and notes it for the feeds.
    /// Returns `Unchanged` when there was nothing to change (already active, already ended,
    /// ...), and `Taken` when a role that one partner at a time may hold is held by another.
    pub async fn change_case(
        &self,
        id: &ParticipantId,
        change: CaseChange<'_>,
    ) -> Result<CaseOutcome, VaultError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let n = match change {
            CaseChange::StartRole {
                partner,
                role,
                by,
                one_per_case,
            } => {
                if one_per_case && held_by_other(&mut tx, id, partner, role).await? {
                    return Ok(CaseOutcome::Taken);
                }
                insert_involvement(&mut tx, id, partner, role, by).await?
            }
            CaseChange::EndRole {
                partner,
                role,
                by,
                reason,
            } => end_involvement(&mut tx, id, partner, role, by, reason).await?,
            CaseChange::RecordConsent { scope, by } => insert_consent(&mut tx, id, scope, by).await?,
            CaseChange::WithdrawConsent { scope, by } => sqlx::query(
                "UPDATE consents SET withdrawn_at = ?, withdrawn_by = ? WHERE participant_id = ? AND scope = ? AND withdrawn_at IS NULL",
            )
            .bind(now())
            .bind(by)
            .bind(&id.as_bytes()[..])
            .bind(scope)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        };
        if n > 0 {
            record_change(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(if n > 0 {
            CaseOutcome::Changed
        } else {
            CaseOutcome::Unchanged
        })
    }

    /// Hands `role` over from partner `from` to partner `to` in one transaction: the old
    /// involvement ends (reason `handover`) and the new one starts, or nothing happens.
    /// Returns `Unchanged` when `from` does not hold the role now, `Taken` when a third
    /// partner holds a one-per-case role.
    pub async fn handover(
        &self,
        id: &ParticipantId,
        role: &str,
        from: &str,
        to: &str,
        by: &str,
    ) -> Result<CaseOutcome, VaultError> {
        let (_turn, mut tx) = self.begin_write().await?;
        if end_involvement(&mut tx, id, from, role, by, Some("handover")).await? == 0 {
            return Ok(CaseOutcome::Unchanged);
        }
        if held_by_other(&mut tx, id, to, role).await? {
            return Ok(CaseOutcome::Taken);
        }
        insert_involvement(&mut tx, id, to, role, by).await?;
        record_change(&mut tx, id).await?;
        tx.commit().await?;
        Ok(CaseOutcome::Changed)
    }

    /// Adds a case note, sealed like a field (bound to its own id). Returns the note.
    pub async fn add_note(
        &self,
        p: &Participant,
        author_partner: &str,
        text: &str,
    ) -> Result<Note, VaultError> {
        let dek = self.unwrap(p)?;
        let (_turn, mut tx) = self.begin_write().await?;
        let note = insert_note(&mut tx, &dek, &p.id, p.dek_version, author_partner, text).await?;
        tx.commit().await?;
        Ok(note)
    }

    /// All notes of a participant, oldest first, decrypted.
    pub async fn notes(&self, p: &Participant) -> Result<Vec<Note>, VaultError> {
        let rows: Vec<(Vec<u8>, String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, author_partner, created_at, sealed FROM notes WHERE participant_id = ? ORDER BY created_at, id",
        )
        .bind(&p.id.as_bytes()[..])
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let dek = self.unwrap(p)?;
        rows.into_iter()
            .map(|(id, author_partner, created_at, sealed)| {
                let id = hex::encode(id);
                let plain = dek.open(&p.id, &note_field(&id), p.dek_version, &sealed)?;
                let text = String::from_utf8(plain.to_vec())
                    .map_err(|_| super::crypto::CryptoError::Malformed)?;
                Ok(Note {
                    id,
                    author_partner,
                    created_at,
                    text,
                })
            })
            .collect()
    }

    /// Re-wraps every data key and the index secret that is not under the current master
    /// version, in batches, while the server keeps serving. Returns how many were re-wrapped.
    pub async fn rewrap_all(&self, keyring: &MasterKeyring) -> Result<u64, VaultError> {
        let current = i64::from(keyring.current_version());
        let mut done = 0;
        let secret: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT master_version, wrapped FROM system_secrets WHERE name = 'index' AND master_version <> ?",
        )
        .bind(current)
        .fetch_optional(&self.pool)
        .await?;
        if let Some((v, bytes)) = secret {
            let w = super::keys::IndexSecret::rewrap(
                keyring,
                &WrappedKey {
                    master_version: v as u32,
                    bytes,
                },
            )?;
            sqlx::query(
                "UPDATE system_secrets SET master_version = ?, wrapped = ? WHERE name = 'index'",
            )
            .bind(i64::from(w.master_version))
            .bind(&w.bytes)
            .execute(&self.pool)
            .await?;
            done += 1;
        }
        loop {
            let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT id, master_version, wrapped_dek FROM participants WHERE master_version <> ? LIMIT 500",
            )
            .bind(current)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(done);
            }
            let (_turn, mut tx) = self.begin_write().await?;
            for (id, v, bytes) in rows {
                let Some(pid) = ParticipantId::from_slice(&id) else {
                    continue;
                };
                let w = keyring.rewrap(
                    &pid,
                    &WrappedKey {
                        master_version: v as u32,
                        bytes: bytes.clone(),
                    },
                )?;
                // Compare-and-set: a concurrent erasure or rotation wins; we never resurrect.
                sqlx::query(
                    "UPDATE participants SET master_version = ?, wrapped_dek = ? WHERE id = ? AND wrapped_dek = ?",
                )
                .bind(i64::from(w.master_version))
                .bind(&w.bytes)
                .bind(&id)
                .bind(&bytes)
                .execute(&mut *tx)
                .await?;
                done += 1;
            }
            tx.commit().await?;
        }
    }
}

/// Everything the sync feed needs about one participant, read in bulk and still sealed.
pub struct Snapshot {
    /// The participant row, `None` when it was erased.
    pub participant: Option<Participant>,
    /// Roles of the asking partner in the case.
    pub roles: Vec<String>,
    /// Consent scopes in force.
    pub consents: Vec<String>,
    sealed: Vec<(String, Vec<u8>)>,
}

/// A page of the changes log.
pub struct ChangePage {
    /// Participant ids with their latest change sequence, in commit order.
    pub entries: Vec<(ParticipantId, i64)>,
}

/// The columns of [`Vault::load`]: the participant row and its case, aggregated.
#[derive(sqlx::FromRow)]
struct LoadRow {
    #[sqlx(flatten)]
    row: ParticipantRow,
    roles: Option<String>,
    consents: Option<String>,
    fields: Option<String>,
}

/// Splits a `group_concat` list. Agreement ids (roles, scopes, field names) never contain the
/// separators: they are lower-case letters, digits, `_` and `.`.
fn split_list(list: Option<String>) -> Vec<String> {
    list.map(|l| l.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// Parses `group_concat(field || ':' || hex(sealed), ',')`.
fn parse_sealed(list: Option<String>) -> Result<Vec<(String, Vec<u8>)>, VaultError> {
    split_list(list)
        .into_iter()
        .map(|entry| {
            let (field, hex_value) = entry
                .split_once(':')
                .ok_or(super::crypto::CryptoError::Malformed)?;
            let bytes =
                hex::decode(hex_value).map_err(|_| super::crypto::CryptoError::Malformed)?;
            Ok((field.to_string(), bytes))
        })
        .collect()
}

impl Vault {
    /// Everything a request about one participant needs, for `partner`, in one query: the row,
    /// the partner's active roles in the case, the consents in force and the sealed fields.
    pub async fn load(
        &self,
        partner: &str,
        id: &ParticipantId,
    ) -> Result<Option<Snapshot>, VaultError> {
        let row: Option<LoadRow> = sqlx::query_as(
            "SELECT p.id, p.version, p.restricted, p.objection, p.dek_version, p.master_version, p.wrapped_dek,
               (SELECT group_concat(role, ',') FROM involvements i
                 WHERE i.participant_id = p.id AND i.partner = ?2 AND i.ended_at IS NULL) AS roles,
               (SELECT group_concat(scope, ',') FROM consents c
                 WHERE c.participant_id = p.id AND c.withdrawn_at IS NULL) AS consents,
               (SELECT group_concat(field || ':' || hex(sealed), ',') FROM field_values f
                 WHERE f.participant_id = p.id) AS fields
             FROM participants p WHERE p.id = ?1",
        )
        .bind(&id.as_bytes()[..])
        .bind(partner)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Snapshot {
            participant: row.row.into_participant(),
            roles: split_list(row.roles),
            consents: split_list(row.consents),
            sealed: parse_sealed(row.fields)?,
        }))
    }

    /// The participants whose latest change is after `after`, in commit order, at most `limit`.
    pub async fn changes_after(&self, after: i64, limit: i64) -> Result<ChangePage, VaultError> {
        let rows: Vec<(Vec<u8>, i64)> = sqlx::query_as(
            "SELECT participant_id, seq FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ChangePage {
            entries: rows
                .into_iter()
                .filter_map(|(id, seq)| ParticipantId::from_slice(&id).map(|id| (id, seq)))
                .collect(),
        })
    }

    /// Reads the rows, `partner`'s involvements, consents and sealed fields of many
    /// participants with one query per table.
    pub async fn snapshots(
        &self,
        ids: &[ParticipantId],
        partner: &str,
    ) -> Result<std::collections::HashMap<ParticipantId, Snapshot>, VaultError> {
        use std::collections::HashMap;
        let mut out: HashMap<ParticipantId, Snapshot> = ids
            .iter()
            .map(|id| {
                (
                    *id,
                    Snapshot {
                        participant: None,
                        roles: Vec::new(),
                        consents: Vec::new(),
                        sealed: Vec::new(),
                    },
                )
            })
            .collect();
        if ids.is_empty() {
            return Ok(out);
        }
        let in_list = |b: &mut sqlx::QueryBuilder<Sqlite>| {
            let mut sep = b.separated(", ");
            for id in ids {
                sep.push_bind(id.as_bytes().to_vec());
            }
            sep.push_unseparated(")");
        };
        let mut q = sqlx::QueryBuilder::new(
            "SELECT id, version, restricted, objection, dek_version, master_version, wrapped_dek FROM participants WHERE id IN (",
        );
        in_list(&mut q);
        let rows: Vec<ParticipantRow> = q.build_query_as().fetch_all(&self.pool).await?;
        for p in rows
            .into_iter()
            .filter_map(ParticipantRow::into_participant)
        {
            if let Some(s) = out.get_mut(&p.id) {
                s.participant = Some(p);
            }
        }
        let mut q = sqlx::QueryBuilder::new(
            "SELECT participant_id, role FROM involvements WHERE ended_at IS NULL AND partner = ",
        );
        q.push_bind(partner).push(" AND participant_id IN (");
        in_list(&mut q);
        let rows: Vec<(Vec<u8>, String)> = q.build_query_as().fetch_all(&self.pool).await?;
        for (id, role) in rows {
            if let Some(s) = ParticipantId::from_slice(&id).and_then(|id| out.get_mut(&id)) {
                s.roles.push(role);
            }
        }
        let mut q = sqlx::QueryBuilder::new(
            "SELECT participant_id, scope FROM consents WHERE withdrawn_at IS NULL AND participant_id IN (",
        );
        in_list(&mut q);
        let rows: Vec<(Vec<u8>, String)> = q.build_query_as().fetch_all(&self.pool).await?;
        for (id, scope) in rows {
            if let Some(s) = ParticipantId::from_slice(&id).and_then(|id| out.get_mut(&id)) {
                s.consents.push(scope);
            }
        }
        // One row per participant, not per field: rows cross a thread boundary one by one.
        let mut q = sqlx::QueryBuilder::new(
            "SELECT participant_id, group_concat(field || ':' || hex(sealed), ',') FROM field_values WHERE participant_id IN (",
        );
        in_list(&mut q);
        q.push(" GROUP BY participant_id");
        let rows: Vec<(Vec<u8>, Option<String>)> = q.build_query_as().fetch_all(&self.pool).await?;
        for (id, fields) in rows {
            if let Some(s) = ParticipantId::from_slice(&id).and_then(|id| out.get_mut(&id)) {
                s.sealed = parse_sealed(fields)?;
            }
        }
        Ok(out)
    }

    /// Decrypts the fields of a snapshot for which `wanted` is true.
    pub fn open_snapshot(
        &self,
        snapshot: &Snapshot,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, Value>, VaultError> {
        let Some(p) = &snapshot.participant else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        let mut dek = None;
        for (field, sealed) in snapshot.sealed.iter().filter(|(f, _)| wanted(f)) {
            let key = match &dek {
                Some(k) => k,
                None => dek.insert(self.unwrap(p)?),
            };
            let plain = key.open(&p.id, field, p.dek_version, sealed)?;
            let value = serde_json::from_slice(&plain)
                .map_err(|_| super::crypto::CryptoError::Malformed)?;
            out.insert(field.clone(), value);
        }
        Ok(out)
    }
}

/// A role in a case, with its dates (for a participant's own access export).
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvolvementHistory {
    /// Partner id.
    pub partner: String,
    /// Role.
    pub role: String,
    /// Started.
    pub started_at: String,
    /// Ended, if it did.
    pub ended_at: Option<String>,
}

/// A consent with its dates.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsentHistory {
    /// Scope.
    pub scope: String,
    /// Partner that recorded it.
    pub recorded_by: String,
    /// When.
    pub recorded_at: String,
    /// When withdrawn, if it was.
    pub withdrawn_at: Option<String>,
}

impl Vault {
    /// Every role ever held in the case, with dates.
    pub async fn involvement_history(
        &self,
        id: &ParticipantId,
    ) -> Result<Vec<InvolvementHistory>, VaultError> {
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT partner, role, started_at, ended_at FROM involvements WHERE participant_id = ? ORDER BY id",
        )
        .bind(&id.as_bytes()[..])
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(partner, role, started_at, ended_at)| InvolvementHistory {
                partner,
                role,
                started_at,
                ended_at,
            })
            .collect())
    }

    /// Every consent ever recorded, with dates.
    pub async fn consent_history(
        &self,
        id: &ParticipantId,
    ) -> Result<Vec<ConsentHistory>, VaultError> {
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT scope, recorded_by, recorded_at, withdrawn_at FROM consents WHERE participant_id = ? ORDER BY id",
        )
        .bind(&id.as_bytes()[..])
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(scope, recorded_by, recorded_at, withdrawn_at)| ConsentHistory {
                    scope,
                    recorded_by,
                    recorded_at,
                    withdrawn_at,
                },
            )
            .collect())
    }

    /// Sets the restriction (Art. 18) or objection (Art. 21) flag; partners' feeds see the change.
    pub async fn set_flag(
        &self,
        id: &ParticipantId,
        flag: Flag,
        on: bool,
    ) -> Result<(), VaultError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let sql = match flag {
            Flag::Restricted => "UPDATE participants SET restricted = ? WHERE id = ?",
            Flag::Objection => "UPDATE participants SET objection = ? WHERE id = ?",
        };
        sqlx::query(sql)
            .bind(on)
            .bind(&id.as_bytes()[..])
            .execute(&mut *tx)
            .await?;
        record_change(&mut tx, id).await?;
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

    /// Erases a participant, keeping exactly the fields named in `keep` (retention, e.g. ESF
    /// evidence) and nothing else.
    ///
    /// The record's data key is destroyed (crypto-shredding: every ciphertext of this person,
    /// including details of earlier data-subject requests and any copy in old pages, becomes
    /// unreadable) and every row of the record goes: fields, notes, consents, involvements with
    /// their history, stored idempotent replies. Its id stays in the changes log and the feeds'
    /// sync state, so every client that was shown it gets the removal `erased`.
    ///
    /// Kept fields are re-sealed under a new data key in a new, restricted record with a new
    /// random id, which no partner pseudonym, feed or audit pseudonym of the old record leads
    /// to. Its `insz_hash` is random, so look-up and registration no longer find it; the real
    /// keyed hash goes to `erased_lookup`, where only a data-subject request looks.
    ///
    /// `planned_version` is the record version the caller's plan saw: if the fields changed
    /// since, nothing is written and the answer is [`WriteError::Stale`] (plan again).
    /// Idempotent: erasing what is already gone only checkpoints the log again.
    pub async fn erase(
        &self,
        id: &ParticipantId,
        keep: &[String],
        planned_version: Option<i64>,
    ) -> Result<(), WriteError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let key = &id.as_bytes()[..];
        let row: Option<ParticipantRow> = sqlx::query_as(
            "SELECT id, version, restricted, objection, dek_version, master_version, wrapped_dek FROM participants WHERE id = ?",
        )
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            if let Some(v) = planned_version
                && v != row.version
            {
                return Err(WriteError::Stale(row.version));
            }
            let p = row
                .into_participant()
                .ok_or(super::crypto::CryptoError::Malformed)?;
            if !keep.is_empty() {
                self.keep_apart(&mut tx, &p, keep).await?;
            }
            for sql in [
                // Overwrite the key before the row goes, so no page ever holds it again.
                "UPDATE participants SET wrapped_dek = zeroblob(length(wrapped_dek)) WHERE id = ?",
                "DELETE FROM field_values WHERE participant_id = ?",
                "DELETE FROM notes WHERE participant_id = ?",
                "DELETE FROM consents WHERE participant_id = ?",
                "DELETE FROM involvements WHERE participant_id = ?",
                "DELETE FROM idempotency WHERE participant_id = ?",
                "DELETE FROM erased_lookup WHERE participant_id = ?",
                // Sealed under the destroyed key already; drop the ciphertext too.
                "UPDATE dsr_requests SET details_sealed = NULL WHERE participant_id = ?",
                "DELETE FROM participants WHERE id = ?",
            ] {
                sqlx::query(sql).bind(key).execute(&mut *tx).await?;
            }
            record_change(&mut tx, id).await?;
        }
        tx.commit().await?;
        // Until the write-ahead log is folded into the database file, the file's old page
        // images still hold the key: checkpoint now (also on a re-run after a crash).
        crate::store::checkpoint(&self.pool).await?;
        Ok(())
    }

    /// Re-seals the `keep` fields of `p` under a fresh key in a new restricted record that only
    /// `erased_lookup` leads to. Part of [`Vault::erase`]'s transaction.
    async fn keep_apart(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        p: &Participant,
        keep: &[String],
    ) -> Result<(), VaultError> {
        let key = &p.id.as_bytes()[..];
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT field, sealed FROM field_values WHERE participant_id = ?")
                .bind(key)
                .fetch_all(&mut **tx)
                .await?;
        let rows: Vec<_> = rows.into_iter().filter(|(f, _)| keep.contains(f)).collect();
        if rows.is_empty() {
            return Ok(());
        }
        // A record kept by an earlier erasure already has a random insz_hash: the real one is
        // in erased_lookup.
        let (insz_hash,): (Vec<u8>,) = sqlx::query_as(
            "SELECT coalesce((SELECT insz_hash FROM erased_lookup WHERE participant_id = ?1), insz_hash) FROM participants WHERE id = ?1",
        )
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
        let old = self.unwrap(p)?;
        let kept_id = ParticipantId::generate()?;
        let dek = DataKey::generate()?;
        let wrapped = self.keyring.load().wrap(&kept_id, &dek)?;
        let sealed = rows
            .iter()
            .map(|(field, sealed)| {
                let plain = old.open(&p.id, field, p.dek_version, sealed)?;
                Ok((
                    field.clone(),
                    dek.seal(&kept_id, field, DEK_VERSION, &plain)?,
                ))
            })
            .collect::<Result<Vec<_>, VaultError>>()?;
        let mut unfindable = [0u8; 32];
        super::crypto::random_fill(&mut unfindable)?;
        let now = now();
        sqlx::query(
            "INSERT INTO participants (id, insz_hash, dek_version, master_version, wrapped_dek, version, restricted, objection, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 1, 1, ?, ?, ?)",
        )
        .bind(&kept_id.as_bytes()[..])
        .bind(&unfindable[..])
        .bind(i64::from(DEK_VERSION))
        .bind(i64::from(wrapped.master_version))
        .bind(&wrapped.bytes)
        .bind(p.objection)
        .bind(&now)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
        write_sealed(tx, &kept_id, sealed).await?;
        sqlx::query("INSERT INTO erased_lookup (participant_id, insz_hash) VALUES (?, ?)")
            .bind(&kept_id.as_bytes()[..])
            .bind(insz_hash)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The participant a data-subject request about `insz` concerns: the registered one, or
    /// else the record an erasure kept for retention (the most recent), which only this
    /// look-up finds.
    pub async fn find_for_dsr(&self, insz: &Insz) -> Result<Option<ParticipantId>, VaultError> {
        if let Some(id) = self.find_by_insz(insz).await? {
            return Ok(Some(id));
        }
        let hash = self.index.insz_lookup_hash(insz);
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT e.participant_id FROM erased_lookup e JOIN participants p ON p.id = e.participant_id
             WHERE e.insz_hash = ? ORDER BY p.created_at DESC LIMIT 1",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(id,)| ParticipantId::from_slice(&id)))
    }
}

/// What a change to a case did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseOutcome {
    /// The change was made.
    Changed,
    /// It was already so (or there was nothing to end).
    Unchanged,
    /// Another partner holds this one-per-case role: nothing was written.
    Taken,
}

/// A change to a case; `by` is the partner making it.
#[derive(Debug, Clone, Copy)]
pub enum CaseChange<'a> {
    /// `partner` starts `role`.
    StartRole {
        /// Partner id.
        partner: &'a str,
        /// Case role.
        role: &'a str,
        /// Who assigned it.
        by: &'a str,
        /// Only one partner at a time may hold this role.
        one_per_case: bool,
    },
    /// `partner` ends `role`.
    EndRole {
        /// Partner id.
        partner: &'a str,
        /// Case role.
        role: &'a str,
        /// Who ended it.
        by: &'a str,
        /// Why (a code), when another partner's role is ended.
        reason: Option<&'a str>,
    },
    /// The participant's consent for `scope` is recorded.
    RecordConsent {
        /// Consent scope.
        scope: &'a str,
        /// Who recorded it.
        by: &'a str,
    },
    /// The consent for `scope` is withdrawn.
    WithdrawConsent {
        /// Consent scope.
        scope: &'a str,
        /// Who recorded the withdrawal.
        by: &'a str,
    },
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

async fn insert_involvement(
    tx: &mut Transaction<'_, Sqlite>,
    id: &ParticipantId,
    partner: &str,
    role: &str,
    by: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO involvements (participant_id, partner, role, started_at, started_by) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING",
    )
    .bind(&id.as_bytes()[..])
    .bind(partner)
    .bind(role)
    .bind(now())
    .bind(by)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Whether a partner other than `partner` holds `role` in the case now.
async fn held_by_other(
    tx: &mut Transaction<'_, Sqlite>,
    id: &ParticipantId,
    partner: &str,
    role: &str,
) -> Result<bool, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM involvements WHERE participant_id = ? AND role = ? AND partner <> ? AND ended_at IS NULL",
    )
    .bind(&id.as_bytes()[..])
    .bind(role)
    .bind(partner)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}

async fn end_involvement(
    tx: &mut Transaction<'_, Sqlite>,
    id: &ParticipantId,
    partner: &str,
    role: &str,
    by: &str,
    reason: Option<&str>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE involvements SET ended_at = ?, ended_by = ?, end_reason = ? WHERE participant_id = ? AND partner = ? AND role = ? AND ended_at IS NULL",
    )
    .bind(now())
    .bind(by)
    .bind(reason)
    .bind(&id.as_bytes()[..])
    .bind(partner)
    .bind(role)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

async fn insert_consent(
    tx: &mut Transaction<'_, Sqlite>,
    id: &ParticipantId,
    scope: &str,
    by: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO consents (participant_id, scope, recorded_by, recorded_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&id.as_bytes()[..])
    .bind(scope)
    .bind(by)
    .bind(now())
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Adds a note sealed like a field, bound to its own id.
async fn insert_note(
    tx: &mut Transaction<'_, Sqlite>,
    dek: &DataKey,
    participant: &ParticipantId,
    dek_version: u32,
    author_partner: &str,
    text: &str,
) -> Result<Note, VaultError> {
    let id = ParticipantId::generate()?; // 16 random bytes serve as a note id too
    let id_hex = hex::encode(id.as_bytes());
    let sealed = dek.seal(
        participant,
        &note_field(&id_hex),
        dek_version,
        text.as_bytes(),
    )?;
    let created_at = now();
    sqlx::query("INSERT INTO notes (id, participant_id, author_partner, created_at, sealed) VALUES (?, ?, ?, ?, ?)")
        .bind(&id.as_bytes()[..])
        .bind(&participant.as_bytes()[..])
        .bind(author_partner)
        .bind(&created_at)
        .bind(sealed)
        .execute(&mut **tx)
        .await?;
    Ok(Note {
        id: id_hex,
        author_partner: author_partner.to_string(),
        created_at,
        text: text.to_string(),
    })
}

fn note_field(note_id: &str) -> String {
    format!("notes.text/{note_id}")
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

async fn write_sealed(
    tx: &mut Transaction<'_, Sqlite>,
    id: &ParticipantId,
    sealed: Vec<(String, Vec<u8>)>,
) -> Result<(), sqlx::Error> {
    if sealed.is_empty() {
        return Ok(());
    }
    // One statement for all fields (an agreement has far fewer than SQLite's variable limit).
    let mut q =
        sqlx::QueryBuilder::new("INSERT INTO field_values (participant_id, field, sealed) ");
    q.push_values(sealed, |mut row, (field, bytes)| {
        row.push_bind(id.as_bytes().to_vec())
            .push_bind(field)
            .push_bind(bytes);
    });
    q.push(" ON CONFLICT (participant_id, field) DO UPDATE SET sealed = excluded.sealed");
    q.build().execute(&mut **tx).await?;
    Ok(())
}

/// Notes that a participant changed, for the partners' sync feeds.
async fn record_change(
    tx: &mut Transaction<'_, Sqlite>,
    id: &ParticipantId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO changes (participant_id, seq) VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM changes))
         ON CONFLICT (participant_id) DO UPDATE SET seq = excluded.seq",
    )
    .bind(&id.as_bytes()[..])
    .execute(&mut **tx)
    .await?;
    Ok(())
}
