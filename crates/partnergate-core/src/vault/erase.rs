//! Erasure (GDPR Art. 17): crypto-shredding, with retained categories re-sealed apart, and
//! the data-subject look-up that still reaches what retention keeps.

use super::VaultError;
use super::crypto::{DataKey, ParticipantId};
use super::insz::Insz;
use super::participants::{DEK_VERSION, Participant, Vault, WriteError, from_row};
use crate::store::{self, now};

impl Vault {
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
        let mut tx = self.store.begin_write().await?;
        if let Some(row) = store::participants::get_for_update(&mut tx, id).await? {
            if let Some(v) = planned_version
                && v != row.version
            {
                return Err(WriteError::Stale(row.version));
            }
            let p = from_row(row).ok_or(super::crypto::CryptoError::Malformed)?;
            if !keep.is_empty() {
                self.keep_apart(&mut tx, &p, keep).await?;
            }
            store::erasure::remove_participant(&mut tx, id).await?;
            store::changes::record(&mut tx, id).await?;
        }
        tx.commit().await?;
        // Until the write-ahead log is folded into the database file, the file's old page
        // images still hold the key: checkpoint now (also on a re-run after a crash).
        self.store.checkpoint().await?;
        Ok(())
    }

    /// Re-seals the `keep` fields of `p` under a fresh key in a new restricted record that only
    /// `erased_lookup` leads to. Part of [`Vault::erase`]'s transaction.
    async fn keep_apart(
        &self,
        tx: &mut store::WriteTx,
        p: &Participant,
        keep: &[String],
    ) -> Result<(), VaultError> {
        let rows = store::participants::sealed_fields_for_update(tx, &p.id).await?;
        let rows: Vec<_> = rows.into_iter().filter(|(f, _)| keep.contains(f)).collect();
        if rows.is_empty() {
            return Ok(());
        }
        // A record kept by an earlier erasure already has a random insz_hash: the real one is
        // in erased_lookup.
        let insz_hash = store::erasure::real_insz_hash(tx, &p.id).await?;
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
        let kept = store::participants::New {
            id: &kept_id,
            insz_hash: &unfindable,
            dek_version: DEK_VERSION,
            master_version: wrapped.master_version,
            wrapped_dek: &wrapped.bytes,
            restricted: true,
            objection: p.objection,
            now: &now(),
        };
        store::participants::insert(tx, &kept).await?;
        store::participants::write_fields(tx, &kept_id, &sealed).await?;
        store::erasure::add_lookup(tx, &kept_id, &insz_hash).await?;
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
        let kept = store::erasure::find_kept(&self.store, &hash).await?;
        Ok(kept.and_then(|id| ParticipantId::from_slice(&id)))
    }
}
