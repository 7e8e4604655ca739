//! Snapshots: a participant's row, case and still-sealed fields read in one go, for single
//! reads and for the sync feed's pages.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Sqlite;

use super::VaultError;
use super::crypto::ParticipantId;
use super::participants::{Participant, ParticipantRow, Vault};

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
        .fetch_optional(self.store.pool())
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
        .fetch_all(self.store.pool())
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
        let rows: Vec<ParticipantRow> = q.build_query_as().fetch_all(self.store.pool()).await?;
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
        let rows: Vec<(Vec<u8>, String)> = q.build_query_as().fetch_all(self.store.pool()).await?;
        for (id, role) in rows {
            if let Some(s) = ParticipantId::from_slice(&id).and_then(|id| out.get_mut(&id)) {
                s.roles.push(role);
            }
        }
        let mut q = sqlx::QueryBuilder::new(
            "SELECT participant_id, scope FROM consents WHERE withdrawn_at IS NULL AND participant_id IN (",
        );
        in_list(&mut q);
        let rows: Vec<(Vec<u8>, String)> = q.build_query_as().fetch_all(self.store.pool()).await?;
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
        let rows: Vec<(Vec<u8>, Option<String>)> =
            q.build_query_as().fetch_all(self.store.pool()).await?;
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
