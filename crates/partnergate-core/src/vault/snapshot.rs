//! Snapshots: a participant's row, case and still-sealed fields read in one go, for single
//! reads and for the sync feed's pages.

use std::collections::BTreeMap;

use serde_json::Value;
use zeroize::Zeroizing;

use super::VaultError;
use super::crypto::ParticipantId;
use super::participants::{Participant, Vault, from_row};
use crate::store;

/// Everything the sync feed needs about one participant, read in bulk and still sealed.
pub struct Snapshot {
    /// The participant row, `None` when it was erased.
    pub participant: Option<Participant>,
    /// Roles of the asking partner in the case.
    pub roles: Vec<String>,
    /// Consent scopes in force.
    pub consents: Vec<String>,
    sealed: store::participants::SealedList,
}

/// A page of the changes log.
pub struct ChangePage {
    /// Participant ids with their latest change sequence, in commit order.
    pub entries: Vec<(ParticipantId, i64)>,
}

impl Vault {
    /// Everything a request about one participant needs, for `partner`, in one query: the row,
    /// the partner's active roles in the case, the consents in force and the sealed fields.
    pub async fn load(
        &self,
        partner: &str,
        id: &ParticipantId,
    ) -> Result<Option<Snapshot>, VaultError> {
        let loaded = store::participants::load(&self.store, partner, id).await?;
        Ok(loaded.map(|l| Snapshot {
            participant: from_row(l.row),
            roles: l.roles,
            consents: l.consents,
            sealed: l.sealed,
        }))
    }

    /// The participants whose latest change is after `after`, in commit order, at most `limit`.
    pub async fn changes_after(&self, after: i64, limit: i64) -> Result<ChangePage, VaultError> {
        let rows = store::changes::after(&self.store, after, limit).await?;
        Ok(ChangePage {
            entries: rows
                .into_iter()
                .filter_map(|(id, seq)| ParticipantId::from_slice(&id).map(|id| (id, seq)))
                .collect(),
        })
    }

    /// Reads the rows, `partner`'s involvements, consents and sealed fields of many
    /// participants with a query or two per table.
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
                        sealed: Default::default(),
                    },
                )
            })
            .collect();
        let bulk = store::participants::load_many(&self.store, ids, partner).await?;
        for p in bulk.rows.into_iter().filter_map(from_row) {
            if let Some(s) = out.get_mut(&p.id) {
                s.participant = Some(p);
            }
        }
        fn entry<'a>(
            out: &'a mut HashMap<ParticipantId, Snapshot>,
            id: &[u8],
        ) -> Option<&'a mut Snapshot> {
            ParticipantId::from_slice(id).and_then(|id| out.get_mut(&id))
        }
        for (id, role) in bulk.roles {
            if let Some(s) = entry(&mut out, &id) {
                s.roles.push(role);
            }
        }
        for (id, scope) in bulk.consents {
            if let Some(s) = entry(&mut out, &id) {
                s.consents.push(scope);
            }
        }
        for (id, sealed) in bulk.sealed {
            if let Some(s) = entry(&mut out, &id) {
                s.sealed = sealed;
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
        // One buffer for every field: each is decoded, then decrypted, where it lies.
        let mut buf = Zeroizing::new(Vec::new());
        for entry in snapshot.sealed.entries() {
            let entry = entry?;
            if !wanted(entry.field) {
                continue;
            }
            let key = match &dek {
                Some(k) => k,
                None => dek.insert(self.unwrap(p)?),
            };
            entry.sealed_into(&mut buf)?;
            let plain = key.open_in_place(&p.id, entry.field, p.dek_version, &mut buf)?;
            let value =
                serde_json::from_slice(plain).map_err(|_| super::crypto::CryptoError::Malformed)?;
            out.insert(entry.field.to_string(), value);
        }
        Ok(out)
    }
}
