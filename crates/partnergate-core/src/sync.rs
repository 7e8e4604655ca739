//! The sync feed: each client's view of the participants that changed since its cursor.
//!
//! A page lists participants by their latest change, in commit order. For each one the client
//! gets either an upsert with every field it may now see, or a removal if it was shown the
//! participant before and may not see it any more (erased, restricted, no longer involved).
//! The cursor is the last change sequence on the page, MAC'd to the client, so a client that
//! crashes mid-page and asks again with its last cursor sees the same changes again: no gaps.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use sqlx::SqlitePool;

use crate::access::Context as Ctx;
use crate::audit::{Action, AuditEvent};
use crate::policy::{Policy, RoleLevel, RoleSet, ScopeSet};
use crate::vault::crypto::ParticipantId;
use crate::vault::keys::IndexKeys;
use crate::vault::{Vault, VaultError};

/// The largest page a client may ask for.
pub const MAX_LIMIT: i64 = 1000;
/// The page size when the client does not say.
pub const DEFAULT_LIMIT: i64 = 500;

/// One entry of the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Change {
    /// The participant as this client may now see it (replace your copy).
    Upsert {
        /// Your pid.
        pid: String,
        /// Record version.
        version: i64,
        /// Every field you may see.
        #[schema(value_type = Object)]
        fields: BTreeMap<String, Value>,
    },
    /// Delete your copy.
    Remove {
        /// Your pid.
        pid: String,
        /// `erased`, `restricted`, `no_longer_involved`, `no_longer_visible` or `partner_left`.
        reason: &'static str,
    },
}

/// Why a cursor was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadCursor;

/// Encodes a change sequence as an opaque cursor bound to `client`.
pub fn encode_cursor(vault: &Vault, client: &str, seq: i64) -> String {
    encode_cursor_with(vault.index(), client, seq)
}

/// [`encode_cursor`] with the index keys alone (no database), for tests and fuzzing.
pub fn encode_cursor_with(keys: &IndexKeys, client: &str, seq: i64) -> String {
    let mac = keys.token_mac(format!("cursor/{client}/{seq}").as_bytes());
    format!("{seq}.{}", hex::encode(mac))
}

/// Decodes a cursor; a forged one or another client's is refused.
pub fn decode_cursor(vault: &Vault, client: &str, cursor: &str) -> Result<i64, BadCursor> {
    decode_cursor_with(vault.index(), client, cursor)
}

/// [`decode_cursor`] with the index keys alone (no database), for tests and fuzzing.
pub fn decode_cursor_with(keys: &IndexKeys, client: &str, cursor: &str) -> Result<i64, BadCursor> {
    let (seq, mac) = cursor.split_once('.').ok_or(BadCursor)?;
    let seq: i64 = seq.parse().map_err(|_| BadCursor)?;
    let expected = keys.token_mac(format!("cursor/{client}/{seq}").as_bytes());
    let mut given = [0u8; 16];
    hex::decode_to_slice(mac, &mut given).map_err(|_| BadCursor)?;
    // Compare without an early exit, so timing does not reveal how much of a forgery matched.
    let diff = expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(BadCursor);
    }
    Ok(seq)
}

/// A computed page: what to send, what to audit, and the client's new sync state.
pub struct Page {
    /// The entries.
    pub changes: Vec<Change>,
    /// The change sequence to resume after.
    pub next: i64,
    /// One audit event per participant on the page.
    pub events: Vec<AuditEvent>,
    /// (participant, visible now) for the client's sync state.
    pub state: Vec<(ParticipantId, bool)>,
}

async fn known_to(
    pool: &SqlitePool,
    client: &str,
    ids: &[ParticipantId],
) -> Result<HashSet<ParticipantId>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut q = sqlx::QueryBuilder::new("SELECT participant_id FROM sync_state WHERE client = ");
    q.push_bind(client).push(" AND participant_id IN (");
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(id.as_bytes().to_vec());
    }
    sep.push_unseparated(")");
    let rows: Vec<(Vec<u8>,)> = q.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(b,)| ParticipantId::from_slice(&b))
        .collect())
}

/// Builds the page after `after` for the asking client.
pub async fn page(
    policy: &Policy,
    vault: &Vault,
    ctx: &Ctx,
    after: i64,
    limit: i64,
) -> Result<Page, VaultError> {
    let caller = &ctx.caller;
    let entries = vault.changes_after(after, limit).await?.entries;
    let ids: Vec<ParticipantId> = entries.iter().map(|(id, _)| *id).collect();
    let snapshots = vault.snapshots(&ids, &caller.partner).await?;
    let known = known_to(vault.pool(), &caller.client, &ids).await?;
    let pids = vault.index().partner(&caller.partner);
    let client_roles: RoleSet = caller
        .allowed_roles
        .iter()
        .filter(|r| policy.role_level(*r) == RoleLevel::Client)
        .collect();
    let mut page = Page {
        changes: Vec::new(),
        next: entries.last().map(|e| e.1).unwrap_or(after),
        events: Vec::new(),
        state: Vec::new(),
    };
    for (id, _) in &entries {
        let snap = &snapshots[id];
        let pid = pids.pid_for(id).into_string();
        let audit_id = vault.index().audit_pseudonym(id);
        let case_roles: RoleSet = snap
            .roles
            .iter()
            .filter_map(|r| policy.role(r))
            .filter(|r| caller.allowed_roles.contains(*r))
            .collect();
        let roles = case_roles.union(client_roles);
        let names: Vec<String> = roles
            .iter()
            .map(|r| policy.role_name(r).to_string())
            .collect();
        let removal = match &snap.participant {
            None => Some("erased"),
            Some(p) if p.restricted => Some("restricted"),
            Some(p)
                if p.objection
                    && crate::access::objection_applies(
                        policy,
                        &caller.partner,
                        &ctx.purpose_name,
                    ) =>
            {
                Some("objection")
            }
            Some(_) => {
                let consents: ScopeSet = snap
                    .consents
                    .iter()
                    .filter_map(|s| policy.scope(s))
                    .collect();
                let readable = policy.decide(roles, ctx.purpose).readable(consents);
                if readable.is_empty() {
                    Some(if case_roles.is_empty() {
                        "no_longer_involved"
                    } else {
                        "no_longer_visible"
                    })
                } else {
                    let fields = vault.open_snapshot(snap, |f| {
                        policy
                            .field(f)
                            .is_some_and(|r| readable.contains(r.category))
                    })?;
                    let version = snap.participant.as_ref().map(|p| p.version).unwrap_or(0);
                    let event = ctx
                        .event(Action::SyncDisclose)
                        .participant(audit_id.clone());
                    let event = event
                        .roles(names.clone())
                        .fields(fields.keys().cloned().collect());
                    page.events.push(event.granted());
                    page.changes.push(Change::Upsert {
                        pid: pid.clone(),
                        version,
                        fields,
                    });
                    page.state.push((*id, true));
                    None
                }
            }
        };
        if let Some(reason) = removal
            && known.contains(id)
        {
            let event = ctx.event(Action::SyncRemove).participant(audit_id);
            page.events.push(event.roles(names).granted_with(reason));
            page.changes.push(Change::Remove { pid, reason });
            page.state.push((*id, false));
        }
    }
    Ok(page)
}

/// The last page of a partner that left: a removal for every participant its client still
/// holds. Empty once they have all been sent.
pub async fn exit_page(vault: &Vault, ctx: &Ctx, limit: i64) -> Result<Page, VaultError> {
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT participant_id FROM sync_state WHERE client = ? AND visible = 1 LIMIT ?",
    )
    .bind(&*ctx.caller.client)
    .bind(limit)
    .fetch_all(vault.pool())
    .await?;
    let pids = vault.index().partner(&ctx.caller.partner);
    let mut page = Page {
        changes: Vec::new(),
        next: 0,
        events: Vec::new(),
        state: Vec::new(),
    };
    for id in rows
        .into_iter()
        .filter_map(|(b,)| ParticipantId::from_slice(&b))
    {
        let event = ctx.event(Action::SyncRemove);
        let event = event.participant(vault.index().audit_pseudonym(&id));
        page.events.push(event.granted_with("partner_left"));
        page.changes.push(Change::Remove {
            pid: pids.pid_for(&id).into_string(),
            reason: "partner_left",
        });
        page.state.push((id, false));
    }
    Ok(page)
}

/// Records what the client has now been shown.
pub async fn save_state(
    pool: &SqlitePool,
    client: &str,
    state: &[(ParticipantId, bool)],
) -> Result<(), sqlx::Error> {
    if state.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for chunk in state.chunks(300) {
        let mut q =
            sqlx::QueryBuilder::new("INSERT INTO sync_state (client, participant_id, visible) ");
        q.push_values(chunk, |mut row, (id, visible)| {
            row.push_bind(client)
                .push_bind(id.as_bytes().to_vec())
                .push_bind(*visible);
        });
        q.push(" ON CONFLICT (client, participant_id) DO UPDATE SET visible = excluded.visible");
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}
