//! Erasure (GDPR Art. 17): crypto-shredding, with retained categories re-sealed apart, and
//! the data-subject look-up that still reaches what retention keeps.

use super::VaultError;
use super::crypto::{DataKey, ParticipantId};
use super::insz::Insz;
use super::participants::{
    DEK_VERSION, Participant, ParticipantRow, Vault, WriteError, record_change, write_sealed,
};
use crate::store::now;

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
        let key = &id.as_bytes()[..];
        let row: Option<ParticipantRow> = sqlx::query_as(
            "SELECT id, version, restricted, objection, dek_version, master_version, wrapped_dek FROM participants WHERE id = ?",
        )
        .bind(key)
        .fetch_optional(tx.conn())
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
                sqlx::query(sql).bind(key).execute(tx.conn()).await?;
            }
            record_change(&mut tx, id).await?;
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
        tx: &mut crate::store::WriteTx,
        p: &Participant,
        keep: &[String],
    ) -> Result<(), VaultError> {
        let key = &p.id.as_bytes()[..];
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT field, sealed FROM field_values WHERE participant_id = ?")
                .bind(key)
                .fetch_all(tx.conn())
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
        .fetch_one(tx.conn())
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
        .execute(tx.conn())
        .await?;
        write_sealed(tx, &kept_id, sealed).await?;
        sqlx::query("INSERT INTO erased_lookup (participant_id, insz_hash) VALUES (?, ?)")
            .bind(&kept_id.as_bytes()[..])
            .bind(insz_hash)
            .execute(tx.conn())
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
        .fetch_optional(self.store.pool())
        .await?;
        Ok(row.and_then(|(id,)| ParticipantId::from_slice(&id)))
    }
}
