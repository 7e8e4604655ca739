//! Retention purges: a participant's expired fields go; when nothing is left, the key is
//! shredded exactly as an erasure does it ([`Vault::erase`]).

use super::crypto::ParticipantId;
use super::participants::{Vault, WriteError};
use crate::store::{self, now, retention};

/// What a purge did to one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Field values deleted.
    pub fields: u64,
    /// Nothing remained, so the record and its key were destroyed.
    pub shredded: bool,
}

impl Vault {
    /// Deletes the participant's values of `fields` (names as stored, `notes.text` for the
    /// case notes) in one transaction that also records the change for the feeds, which tell
    /// every recipient `retention_expired`. If nothing remains, the record goes as in an
    /// erasure: key overwritten, rows deleted, write-ahead log checkpointed.
    pub async fn purge_fields(
        &self,
        id: &ParticipantId,
        fields: &[String],
    ) -> Result<Purged, WriteError> {
        let key = &id.as_bytes()[..];
        let (deleted, left) = {
            let mut tx = self.store.begin_write().await?;
            if self.participant(id).await?.is_none() {
                return Err(WriteError::NotFound);
            }
            let deleted = retention::delete_fields(&mut tx, key, fields).await?;
            let left = retention::anything_left(&mut tx, key).await?;
            store::changes::record(&mut tx, id).await?;
            retention::remember_purge(&mut tx, key, false, &now()).await?;
            tx.commit().await?;
            (deleted, left)
        };
        if left {
            return Ok(Purged {
                fields: deleted,
                shredded: false,
            });
        }
        self.erase(id, &[], None).await?;
        let mut tx = self.store.begin_write().await?;
        retention::remember_purge(&mut tx, key, true, &now()).await?;
        tx.commit().await?;
        Ok(Purged {
            fields: deleted,
            shredded: true,
        })
    }
}
