//! The request state machine: creating, listing, getting, verifying, extending and refusing
//! requests. Their rows are kept by [`crate::store::dsr`].

use serde_json::Value;

use super::{DATE, DsrError, Kind, NewRequest, Request, State, Step, add_months, parse_date};
use crate::policy::Policy;
use crate::store::{self, DbError, Store};
use crate::vault::crypto::ParticipantId;
use crate::vault::{Participant, Vault, VaultError};

pub(super) use store::dsr::{done_steps, forget_plan, record_step};

/// A random request id, as hex.
fn new_id() -> Result<String, DsrError> {
    Ok(hex::encode(
        ParticipantId::generate()
            .map_err(VaultError::from)?
            .as_bytes(),
    ))
}

/// Checks kind-specific details against the agreement; returns what to store.
fn check_details(
    policy: &Policy,
    kind: Kind,
    details: &Option<Value>,
) -> Result<Option<Value>, DsrError> {
    let obj = details.as_ref().and_then(Value::as_object);
    // Only the keys a kind takes, with their types: anything else is refused, not ignored.
    let takes: &[&str] = match kind {
        Kind::Rectification => &["fields"],
        Kind::Restriction => &["lift"],
        Kind::Objection => &["compelling_grounds"],
        Kind::Access | Kind::Portability | Kind::Erasure => &[],
    };
    let well_formed = match details {
        None => true,
        Some(_) if takes.is_empty() => false,
        Some(d) => d.as_object().is_some_and(|o| {
            o.iter().all(|(k, v)| match k.as_str() {
                "lift" => takes.contains(&"lift") && v.is_boolean(),
                "compelling_grounds" => takes.contains(&"compelling_grounds") && v.is_string(),
                "fields" => takes.contains(&"fields"),
                _ => false,
            })
        }),
    };
    if !well_formed {
        return Err(DsrError::Invalid(
            "invalid_details",
            format!(
                "details of a {} request take only: {}",
                kind.as_str(),
                if takes.is_empty() {
                    "nothing (omit details)".to_string()
                } else {
                    takes.join(", ")
                }
            ),
        ));
    }
    match kind {
        Kind::Rectification => {
            let fields = obj
                .and_then(|o| o.get("fields"))
                .and_then(Value::as_object)
                .filter(|f| !f.is_empty())
                .ok_or_else(|| {
                    DsrError::Invalid(
                        "invalid_details",
                        "a rectification needs details.fields with the corrected values".into(),
                    )
                })?;
            for (name, value) in fields {
                if value.is_null() {
                    return Err(DsrError::Invalid(
                        "invalid_details",
                        format!(
                            "`{name}`: a rectification corrects, it does not clear; use erasure"
                        ),
                    ));
                }
                policy
                    .validate_value(name, value)
                    .map_err(|e| DsrError::Invalid("invalid_value", e.to_string()))?;
            }
            Ok(Some(serde_json::json!({ "fields": fields })))
        }
        Kind::Restriction => Ok(Some(
            serde_json::json!({ "lift": obj.and_then(|o| o.get("lift")).and_then(Value::as_bool).unwrap_or(false) }),
        )),
        Kind::Objection => Ok(obj
            .and_then(|o| o.get("compelling_grounds"))
            .and_then(Value::as_str)
            .map(|g| serde_json::json!({ "compelling_grounds": g }))),
        Kind::Access | Kind::Portability | Kind::Erasure => Ok(None),
    }
}

/// The label sealed request details are bound to, followed by the request id.
const DETAILS_LABEL: &str = "dsr/details";

/// Creates a request. Returns it and the participant's id when the person is known.
pub async fn create(
    policy: &Policy,
    vault: &Vault,
    new: &NewRequest,
) -> Result<(Request, Option<ParticipantId>), DsrError> {
    let kind = Kind::parse(&new.kind).ok_or_else(|| {
        DsrError::Invalid(
            "invalid_kind",
            "kind is one of access, portability, rectification, erasure, restriction, objection"
                .into(),
        )
    })?;
    let insz = crate::vault::insz::Insz::parse(&new.insz)
        .map_err(|e| DsrError::Invalid("invalid_insz", format!("insz: {e}")))?;
    let received = parse_date(&new.received_at).ok_or_else(|| {
        DsrError::Invalid(
            "invalid_date",
            "received_at must be a date YYYY-MM-DD".into(),
        )
    })?;
    if received > crate::store::today() {
        return Err(DsrError::Invalid(
            "invalid_date",
            "received_at lies in the future".into(),
        ));
    }
    let details = check_details(policy, kind, &new.details)?;
    let id = new_id()?;
    // Also finds what an erasure kept for retention, which look-up and registration no
    // longer reach: the person may still ask about it.
    let person = vault.find_for_dsr(&insz).await?;
    let sealed = match (&details, person) {
        (Some(d), Some(pid)) => match vault.participant(&pid).await? {
            Some(p) => Some(vault.seal_for(
                &p,
                &format!("{DETAILS_LABEL}/{id}"),
                &serde_json::to_vec(d).expect("json"),
            )?),
            None => None,
        },
        _ => None,
    };
    let now = crate::store::now();
    let received_at = received.format(DATE).expect("date");
    let due = add_months(received, 1).format(DATE).expect("date");
    let db = vault.store();
    store::dsr::insert(
        db,
        store::dsr::NewRow {
            id: &id,
            kind: kind.as_str(),
            insz_hash: &vault.index().insz_lookup_hash(&insz)[..],
            participant: person.as_ref(),
            received_at: &received_at,
            due: &due,
            details_sealed: sealed,
            now: &now,
        },
    )
    .await?;
    record_step(db, &id, "received", kind.as_str()).await?;
    Ok((get(db, &id).await?, person))
}

/// A `dsr_requests` row (see [`store::dsr::Row`]).
pub(super) type Row = store::dsr::Row;

/// The request's row; `NotFound` when there is none.
pub(super) async fn row(db: &Store, id: &str) -> Result<Row, DsrError> {
    store::dsr::row(db, id).await?.ok_or(DsrError::NotFound)
}

/// The request as shown, with its deadline judged against today.
fn to_request(r: Row, history: Vec<Step>) -> Request {
    let (
        id,
        kind,
        participant,
        received_at,
        due,
        extended_due,
        extension_reason,
        state,
        outcome,
        receipt,
    ) = r;
    let state = State::parse(&state);
    let deadline = extended_due.as_deref().unwrap_or(&due);
    let overdue =
        !state.is_final() && parse_date(deadline).is_some_and(|d| d < crate::store::today());
    Request {
        id,
        kind: Kind::parse(&kind).unwrap_or(Kind::Access),
        state,
        received_at,
        due,
        extended_due,
        extension_reason,
        overdue,
        person_known: participant.is_some(),
        outcome,
        history,
        receipt: receipt.and_then(|r| serde_json::from_str(&r).ok()),
    }
}

/// One request with its history.
pub async fn get(db: &Store, id: &str) -> Result<Request, DsrError> {
    let r = row(db, id).await?;
    let steps = store::dsr::history(db, id).await?;
    Ok(to_request(
        r,
        steps
            .into_iter()
            .map(|(time, step, detail)| Step { time, step, detail })
            .collect(),
    ))
}

/// All requests: overdue first, then by deadline.
pub async fn list(db: &Store) -> Result<Vec<Request>, DsrError> {
    let rows = store::dsr::rows(db).await?;
    let mut all: Vec<Request> = rows
        .into_iter()
        .map(|r| to_request(r, Vec::new()))
        .collect();
    all.sort_by(|a, b| {
        let da = a.extended_due.as_ref().unwrap_or(&a.due);
        let db = b.extended_due.as_ref().unwrap_or(&b.due);
        (!a.overdue, a.state.is_final(), da).cmp(&(!b.overdue, b.state.is_final(), db))
    });
    Ok(all)
}

/// Moves the request to `state`, keeping the earlier outcome when `outcome` is `None`.
pub(super) async fn set_state(
    db: &Store,
    id: &str,
    state: State,
    outcome: Option<&str>,
) -> Result<(), DbError> {
    store::dsr::set_state(db, id, state.as_str(), outcome).await
}

/// The DPO verified the requester's identity.
pub async fn verify(db: &Store, id: &str) -> Result<Request, DsrError> {
    let r = get(db, id).await?;
    if r.state != State::Received {
        return Err(DsrError::Conflict(format!(
            "the request is {}, not received",
            r.state.as_str()
        )));
    }
    set_state(db, id, State::Verified, None).await?;
    record_step(
        db,
        id,
        "verified",
        "identity of the requester verified by the DPO",
    )
    .await?;
    get(db, id).await
}

/// Extends the deadline by up to two months (Art. 12(3)), with a reason.
pub async fn extend(db: &Store, id: &str, months: u8, reason: &str) -> Result<Request, DsrError> {
    if !(1..=2).contains(&months) || reason.trim().is_empty() {
        return Err(DsrError::Invalid(
            "invalid_extension",
            "an extension is 1 or 2 months and needs a reason".into(),
        ));
    }
    let r = get(db, id).await?;
    if r.state.is_final() {
        return Err(DsrError::Conflict("the request is finished".into()));
    }
    let received = parse_date(&r.received_at).ok_or(DsrError::NotFound)?;
    let until = add_months(received, 1 + u32::from(months))
        .format(DATE)
        .expect("date");
    store::dsr::set_extension(db, id, &until, reason).await?;
    record_step(
        db,
        id,
        &format!("extended_{months}"),
        &format!("deadline extended to {until}"),
    )
    .await?;
    get(db, id).await
}

/// Refuses a request with a reason.
pub async fn refuse(db: &Store, id: &str, reason: &str) -> Result<Request, DsrError> {
    let r = get(db, id).await?;
    if r.state.is_final() {
        return Err(DsrError::Conflict("the request is finished".into()));
    }
    set_state(db, id, State::Refused, Some(reason)).await?;
    record_step(db, id, "refused", reason).await?;
    get(db, id).await
}

/// The participant a request is about, if still held.
pub async fn participant_of(vault: &Vault, id: &str) -> Result<Option<Participant>, DsrError> {
    let r = row(vault.store(), id).await?;
    match r.2.as_deref().and_then(ParticipantId::from_slice) {
        Some(pid) => Ok(vault.participant(&pid).await?),
        None => Ok(None),
    }
}

/// The person's earlier records that completed erasures replaced, with each erasure's receipt
/// payload: named by the erasure requests about the same national number.
pub(super) async fn former_records(
    vault: &Vault,
    request_id: &str,
) -> Result<Vec<(ParticipantId, Value)>, DsrError> {
    let rows = store::dsr::former_erasures(vault.store(), request_id).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, receipt)| {
            let payload = receipt
                .and_then(|r| serde_json::from_str::<Value>(&r).ok())
                .and_then(|r| {
                    r["payload"]
                        .as_str()
                        .and_then(|p| serde_json::from_str(p).ok())
                })
                .unwrap_or(Value::Null);
            Some((ParticipantId::from_slice(&id)?, payload))
        })
        .collect())
}

/// The participant a request names, if any; `None` also when there is no such request (the
/// caller's own look-up answers that).
pub async fn person(db: &Store, id: &str) -> Result<Option<ParticipantId>, DbError> {
    store::dsr::person(db, id).await
}

/// The kind-specific details of a request, opened with the participant's key; `None` when it
/// has none, or an erasure removed them.
pub(super) async fn details(
    vault: &Vault,
    p: &Participant,
    id: &str,
) -> Result<Option<Value>, DsrError> {
    let sealed = store::dsr::details_sealed(vault.store(), id).await?;
    Ok(match sealed {
        Some(sealed) => {
            serde_json::from_slice(&vault.open_for(p, &format!("{DETAILS_LABEL}/{id}"), &sealed)?)
                .ok()
        }
        None => None,
    })
}

/// Stores the signed erasure receipt.
pub(super) async fn set_receipt(db: &Store, id: &str, receipt: &Value) -> Result<(), DbError> {
    store::dsr::set_receipt(db, id, &receipt.to_string()).await
}
