//! The sync feed: each client's view of the participants that changed since its cursor.
//!
//! A page lists participants by their latest change, in commit order. For each one the client
//! gets either an upsert with every field it may now see, or a removal if it was shown the
//! participant before and may not see it any more (erased, restricted, no longer involved).
//! The cursor is the last change sequence on the page, MAC'd to the client, so a client that
//! crashes mid-page and asks again with its last cursor sees the same changes again: no gaps.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::access::{self, Context as Ctx, Refusal, role_names};
use crate::audit::commit::{Applied, Apply, Isolation};
use crate::audit::{Action, AuditError, AuditEvent, AuditLog};
use crate::policy::Policy;
use crate::store;
use crate::vault::crypto::ParticipantId;
use crate::vault::keys::{IndexKeys, PartnerPidKey};
use crate::vault::{Snapshot, Vault, VaultError};

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
        /// `retention_expired` when this change is a retention purge: fields you held are
        /// gone because their retention period ended (delete them too). Absent otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    /// Delete your copy.
    Remove {
        /// Your pid.
        pid: String,
        /// `erased`, `restricted`, `no_longer_involved`, `no_longer_visible`, `partner_left` or
        /// `retention_expired` (nothing of the participant was left to keep).
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

/// Builds the page after `after` for the asking client.
pub async fn page(
    policy: &Policy,
    vault: &Vault,
    ctx: &Ctx,
    after: i64,
    limit: i64,
) -> Result<Page, VaultError> {
    let mut after = after;
    loop {
        let (page, full) = batch(policy, vault, ctx, after, limit).await?;
        // An empty page tells the client it is up to date, so one goes out only at the end of
        // the log: a batch of changes this client may not see moves on to the next batch.
        if !page.changes.is_empty() || !full {
            return Ok(page);
        }
        after = page.next;
    }
}

/// The page of the `limit` participants that changed after `after`, and whether there were
/// that many (more may follow).
async fn batch(
    policy: &Policy,
    vault: &Vault,
    ctx: &Ctx,
    after: i64,
    limit: i64,
) -> Result<(Page, bool), VaultError> {
    let caller = &ctx.caller;
    let entries = vault.changes_after(after, limit).await?.entries;
    let full = entries.len() as i64 == limit;
    let ids: Vec<ParticipantId> = entries.iter().map(|(id, _)| *id).collect();
    // The snapshots, and meanwhile on one more connection what the client was shown and which
    // entries are retention purges (they say so).
    let (mut snapshots, (known, purges)) =
        tokio::try_join!(vault.snapshots(&ids, &caller.partner), async {
            let known = store::sync::known_to(vault.store(), &caller.client, &ids).await?;
            let purges = crate::retention::purge_seqs(vault, &ids).await?;
            Ok::<_, VaultError>((known, purges))
        },)?;
    let mut page = Page {
        changes: Vec::new(),
        next: entries.last().map(|e| e.1).unwrap_or(after),
        events: Vec::new(),
        state: Vec::new(),
    };
    let work: Vec<Entry> = entries
        .iter()
        .filter_map(|(id, seq)| {
            let snapshot = snapshots.remove(id)?;
            Some(Entry {
                id: *id,
                retention: purges.get(id) == Some(seq),
                known: known.contains(id),
                snapshot,
            })
        })
        .collect();
    // Deciding and decrypting is CPU work, unlike the rest of a page: it runs on every core.
    let pids = vault.index().partner(&caller.partner);
    let decide = |entry| decide(policy, vault, ctx, &pids, entry);
    let decided = crate::parallel::blocking(|| crate::parallel::map_in_order(work, 64, decide));
    for decision in decided {
        if let Some((id, change, event)) = decision? {
            page.state
                .push((id, matches!(change, Change::Upsert { .. })));
            page.changes.push(change);
            page.events.push(event);
        }
    }
    Ok((page, full))
}

/// One participant on a page, before the decision.
struct Entry {
    id: ParticipantId,
    /// Its latest change is a retention purge.
    retention: bool,
    /// The client was shown it before.
    known: bool,
    snapshot: Snapshot,
}

/// What the client gets for one participant and its audit event; nothing if it neither may
/// see it nor was shown it before.
fn decide(
    policy: &Policy,
    vault: &Vault,
    ctx: &Ctx,
    pids: &PartnerPidKey,
    entry: Entry,
) -> Result<Option<(ParticipantId, Change, AuditEvent)>, VaultError> {
    let Entry {
        id,
        retention,
        known,
        snapshot,
    } = entry;
    let pid = pids.pid_for(&id).into_string();
    // The same decision as a single read; a refusal is a removal for a client that has it.
    let (reason, names) = match access::standing(policy, vault.index(), ctx, Some(snapshot)) {
        Err(refused) => {
            let reason = match refused.refusal {
                Refusal::Gone if retention => "retention_expired",
                refusal => refusal.removal(),
            };
            (reason, role_names(policy, refused.roles))
        }
        Ok(standing) => {
            let readable = standing.readable();
            if readable.is_empty() {
                let refusal = if standing.case_roles.is_empty() {
                    Refusal::NotInvolved
                } else {
                    Refusal::NoGrantForPurpose
                };
                (refusal.removal(), standing.role_names(policy))
            } else {
                let fields = vault.open_snapshot(&standing.snapshot, |f| {
                    policy
                        .field(f)
                        .is_some_and(|r| readable.contains(r.category))
                })?;
                let event = standing.event(ctx, policy, Action::SyncDisclose);
                let event = event.fields(fields.keys().cloned().collect()).granted();
                let change = Change::Upsert {
                    pid,
                    version: standing.participant.version,
                    fields,
                    reason: retention.then_some("retention_expired"),
                };
                return Ok(Some((id, change, event)));
            }
        }
    };
    if !known {
        return Ok(None);
    }
    let event = ctx.event(Action::SyncRemove);
    let event = event.participant(vault.index().audit_pseudonym(&id));
    let event = event.roles(names).granted_with(reason);
    Ok(Some((id, Change::Remove { pid, reason }, event)))
}

/// The last page of a partner that left: a removal for every participant its client still
/// holds. Empty once they have all been sent.
pub async fn exit_page(vault: &Vault, ctx: &Ctx, limit: i64) -> Result<Page, VaultError> {
    let rows = store::sync::visible_to(vault.store(), &ctx.caller.client, limit).await?;
    let pids = vault.index().partner(&ctx.caller.partner);
    let mut page = Page {
        changes: Vec::new(),
        next: 0,
        events: Vec::new(),
        state: Vec::new(),
    };
    for id in rows {
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

/// Makes a page's records durable together with what the client has now been shown, in one
/// commit of the audit writer: the record of every disclosure and the state that decides the
/// client's later removals are kept both, or neither (and then the page is not sent).
pub async fn commit(
    audit: &AuditLog,
    client: &str,
    events: Vec<AuditEvent>,
    state: Vec<(ParticipantId, bool)>,
) -> Result<(), AuditError> {
    // An up-to-date client polls with empty pages: no write transaction (and fsync) for those.
    if state.is_empty() {
        return audit.append(events).await.map(drop);
    }
    let client = client.to_string();
    let write: Apply<()> = Box::new(move |tx| {
        Box::pin(async move {
            store::sync::save(tx, &client, &state).await?;
            Ok(Applied::kept(()))
        })
    });
    audit.write(events, Isolation::Savepoint, write).await
}
