//! Data-subject requests (GDPR Art. 15-21): deadlines, a state machine, and resumable
//! execution in recorded steps.
//!
//! A request is `received`, then `verified` by the DPO (the requester's identity), then
//! `in_progress` while it runs, and ends `completed` or `refused` with a reason. Every step of
//! an execution is recorded once; running it again skips what is done, so a crash or restart
//! resumes where it stopped and a second run does no harm.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::SqlitePool;
use time::{Date, Month};

use crate::audit::Action;
use crate::policy::{Policy, Retention, RetentionStart};
use crate::vault::crypto::ParticipantId;
use crate::vault::{Participant, Vault, VaultError, WriteError};

/// What the data subject asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Art. 15: a copy of the data and who received it.
    Access,
    /// Art. 20: the data in a machine-readable form.
    Portability,
    /// Art. 16: correct data (passed on to every recipient, Art. 19).
    Rectification,
    /// Art. 17: erase (passed on to every recipient, Art. 19).
    Erasure,
    /// Art. 18: restrict processing to storage, or lift a restriction.
    Restriction,
    /// Art. 21: object to processing based on public task or legitimate interest.
    Objection,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Portability => "portability",
            Kind::Rectification => "rectification",
            Kind::Erasure => "erasure",
            Kind::Restriction => "restriction",
            Kind::Objection => "objection",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Logged, identity not yet verified.
    Received,
    /// The DPO verified the requester's identity.
    Verified,
    /// Execution started (and may be resumed).
    InProgress,
    /// Done.
    Completed,
    /// Refused, with a reason.
    Refused,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Verified => "verified",
            State::InProgress => "in_progress",
            State::Completed => "completed",
            State::Refused => "refused",
        }
    }
    fn parse(s: &str) -> State {
        serde_json::from_value(Value::String(s.to_string())).unwrap_or(State::Received)
    }
    /// Whether the request is finished.
    pub fn is_final(self) -> bool {
        matches!(self, State::Completed | State::Refused)
    }
}

/// Why a request operation was refused (all map to 4xx answers).
#[derive(Debug, thiserror::Error)]
pub enum DsrError {
    /// Bad input, with a message that names no personal data.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// No such request.
    #[error("no such request")]
    NotFound,
    /// The request is in the wrong state for this operation.
    #[error("{0}")]
    Conflict(String),
    /// Storage or keys failed.
    #[error("{0}")]
    Vault(#[from] VaultError),
}

impl From<sqlx::Error> for DsrError {
    fn from(e: sqlx::Error) -> Self {
        DsrError::Vault(e.into())
    }
}

/// Adds calendar months, clamping the day (31 January + 1 month = 28/29 February).
pub fn add_months(date: Date, months: u32) -> Date {
    let total = date.month() as u32 - 1 + months;
    let year = date.year() + (total / 12) as i32;
    let month = Month::try_from((total % 12 + 1) as u8).expect("1..=12");
    let mut day = date.day();
    loop {
        if let Ok(d) = Date::from_calendar_date(year, month, day) {
            return d;
        }
        day -= 1;
    }
}

/// The request as shown to the DPO.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Request {
    /// Request id.
    pub id: String,
    /// Kind.
    pub kind: Kind,
    /// State.
    pub state: State,
    /// Date of receipt.
    pub received_at: String,
    /// Legal deadline (one month after receipt).
    pub due: String,
    /// Extended deadline, if extended.
    pub extended_due: Option<String>,
    /// Why it was extended.
    pub extension_reason: Option<String>,
    /// True when the (extended) deadline has passed and the request is not finished.
    pub overdue: bool,
    /// Whether the person is known to the gateway.
    pub person_known: bool,
    /// Result or refusal reason.
    pub outcome: Option<String>,
    /// Steps so far.
    pub history: Vec<Step>,
    /// The signed erasure receipt, for erasures.
    #[schema(value_type = Option<Object>)]
    pub receipt: Option<Value>,
}

/// One recorded step.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Step {
    /// When.
    pub time: String,
    /// What.
    pub step: String,
    /// Detail (categories, partners; never personal data).
    pub detail: String,
}

/// A new request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// Kind.
    pub kind: String,
    /// The person's national number.
    pub insz: String,
    /// Date of receipt, YYYY-MM-DD.
    pub received_at: String,
    /// Kind-specific details: rectification `{"fields": {...}}`; restriction `{"lift": true}`
    /// to lift one; objection `{"compelling_grounds": "..."}` when the DPO records them.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

const DATE: &[time::format_description::BorrowedFormatItem<'_>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, DATE).ok()
}

fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

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
    if received > today() {
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
    sqlx::query(
        "INSERT INTO dsr_requests (id, kind, insz_hash, participant_id, received_at, due, state, details_sealed, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, 'received', ?, ?, ?)",
    )
    .bind(&id)
    .bind(kind.as_str())
    .bind(&vault.index().insz_lookup_hash(&insz)[..])
    .bind(person.map(|p| p.as_bytes().to_vec()))
    .bind(received.format(DATE).expect("date"))
    .bind(add_months(received, 1).format(DATE).expect("date"))
    .bind(sealed)
    .bind(&now)
    .bind(&now)
    .execute(vault.pool())
    .await?;
    record_step(vault.pool(), &id, "received", kind.as_str()).await?;
    Ok((get(vault.pool(), &id).await?, person))
}

/// Stores a corrected national number in its normalized form (11 digits).
fn normalize_insz(
    mut fields: BTreeMap<String, Value>,
    insz: Option<&crate::vault::insz::Insz>,
) -> BTreeMap<String, Value> {
    if let Some(i) = insz {
        fields.insert(
            crate::vault::insz::INSZ_FIELD.into(),
            Value::String(i.as_str().into()),
        );
    }
    fields
}

async fn record_step(
    pool: &SqlitePool,
    id: &str,
    step: &str,
    detail: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("INSERT INTO dsr_steps (request_id, time, step, detail) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
        .bind(id)
        .bind(crate::store::now())
        .bind(step)
        .bind(detail)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(n > 0)
}

async fn done_steps(pool: &SqlitePool, id: &str) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT step, detail FROM dsr_steps WHERE request_id = ?")
            .bind(id)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

type Row = (
    String,
    String,
    Option<Vec<u8>>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

async fn row(pool: &SqlitePool, id: &str) -> Result<Row, DsrError> {
    sqlx::query_as(
        "SELECT id, kind, participant_id, received_at, due, extended_due, extension_reason, state, outcome, receipt FROM dsr_requests WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(DsrError::NotFound)
}

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
    let overdue = !state.is_final() && parse_date(deadline).is_some_and(|d| d < today());
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
pub async fn get(pool: &SqlitePool, id: &str) -> Result<Request, DsrError> {
    let r = row(pool, id).await?;
    let steps: Vec<(String, String, String)> =
        sqlx::query_as("SELECT time, step, detail FROM dsr_steps WHERE request_id = ? ORDER BY id")
            .bind(id)
            .fetch_all(pool)
            .await?;
    Ok(to_request(
        r,
        steps
            .into_iter()
            .map(|(time, step, detail)| Step { time, step, detail })
            .collect(),
    ))
}

/// All requests: overdue first, then by deadline.
pub async fn list(pool: &SqlitePool) -> Result<Vec<Request>, DsrError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, kind, participant_id, received_at, due, extended_due, extension_reason, state, outcome, receipt FROM dsr_requests",
    )
    .fetch_all(pool)
    .await?;
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

async fn set_state(
    pool: &SqlitePool,
    id: &str,
    state: State,
    outcome: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dsr_requests SET state = ?, outcome = coalesce(?, outcome), updated_at = ? WHERE id = ?")
        .bind(state.as_str())
        .bind(outcome)
        .bind(crate::store::now())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The DPO verified the requester's identity.
pub async fn verify(pool: &SqlitePool, id: &str) -> Result<Request, DsrError> {
    let r = get(pool, id).await?;
    if r.state != State::Received {
        return Err(DsrError::Conflict(format!(
            "the request is {}, not received",
            r.state.as_str()
        )));
    }
    set_state(pool, id, State::Verified, None).await?;
    record_step(
        pool,
        id,
        "verified",
        "identity of the requester verified by the DPO",
    )
    .await?;
    get(pool, id).await
}

/// Extends the deadline by up to two months (Art. 12(3)), with a reason.
pub async fn extend(
    pool: &SqlitePool,
    id: &str,
    months: u8,
    reason: &str,
) -> Result<Request, DsrError> {
    if !(1..=2).contains(&months) || reason.trim().is_empty() {
        return Err(DsrError::Invalid(
            "invalid_extension",
            "an extension is 1 or 2 months and needs a reason".into(),
        ));
    }
    let r = get(pool, id).await?;
    if r.state.is_final() {
        return Err(DsrError::Conflict("the request is finished".into()));
    }
    let received = parse_date(&r.received_at).ok_or(DsrError::NotFound)?;
    let until = add_months(received, 1 + u32::from(months))
        .format(DATE)
        .expect("date");
    sqlx::query("UPDATE dsr_requests SET extended_due = ?, extension_reason = ?, updated_at = ? WHERE id = ?")
        .bind(&until)
        .bind(reason)
        .bind(crate::store::now())
        .bind(id)
        .execute(pool)
        .await?;
    record_step(
        pool,
        id,
        &format!("extended_{months}"),
        &format!("deadline extended to {until}"),
    )
    .await?;
    get(pool, id).await
}

/// Refuses a request with a reason.
pub async fn refuse(pool: &SqlitePool, id: &str, reason: &str) -> Result<Request, DsrError> {
    let r = get(pool, id).await?;
    if r.state.is_final() {
        return Err(DsrError::Conflict("the request is finished".into()));
    }
    set_state(pool, id, State::Refused, Some(reason)).await?;
    record_step(pool, id, "refused", reason).await?;
    get(pool, id).await
}

/// What an execution did, for the audit log and the receipt.
pub struct Executed {
    /// The request after execution.
    pub request: Request,
    /// The participant concerned (before erasure, for the audit pseudonym).
    pub participant: Option<ParticipantId>,
    /// Steps run in this call.
    pub steps_run: Vec<String>,
    /// The request reached its final state in this call.
    pub finished_now: bool,
}

/// Signs erasure receipts.
pub trait ReceiptSigner: Send + Sync {
    /// Signs `message`, returning the signature bytes.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

impl ReceiptSigner for ring::signature::Ed25519KeyPair {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        ring::signature::Ed25519KeyPair::sign(self, message)
            .as_ref()
            .to_vec()
    }
}

/// The clients that were shown this participant by their feed, and the partners involved.
async fn recipients(vault: &Vault, id: &ParticipantId) -> Result<Vec<String>, sqlx::Error> {
    let mut out: BTreeSet<String> = sqlx::query_as::<_, (String,)>(
        "SELECT client FROM sync_state WHERE participant_id = ? AND visible = 1",
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(vault.pool())
    .await?
    .into_iter()
    .map(|r| r.0)
    .collect();
    let partners: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT partner FROM involvements WHERE participant_id = ? AND ended_at IS NULL",
    )
    .bind(&id.as_bytes()[..])
    .fetch_all(vault.pool())
    .await?;
    out.extend(partners.into_iter().map(|p| p.0));
    Ok(out.into_iter().collect())
}

/// Runs (or resumes) a verified request.
pub async fn execute(
    policy: &Policy,
    vault: &Vault,
    signer: &dyn ReceiptSigner,
    id: &str,
) -> Result<Executed, DsrError> {
    let pool = vault.pool();
    let r = row(pool, id).await?;
    let state = State::parse(&r.7);
    match state {
        State::Verified | State::InProgress => {}
        State::Received => {
            return Err(DsrError::Conflict(
                "verify the requester's identity first (POST /v1/dsr/{id}/verify)".into(),
            ));
        }
        State::Completed | State::Refused => {
            return Ok(Executed {
                request: get(pool, id).await?,
                participant: r.2.as_deref().and_then(ParticipantId::from_slice),
                steps_run: Vec::new(),
                finished_now: false,
            });
        }
    }
    let kind = Kind::parse(&r.1).ok_or(DsrError::NotFound)?;
    let participant_id = r.2.as_deref().and_then(ParticipantId::from_slice);
    set_state(pool, id, State::InProgress, None).await?;
    let done = done_steps(pool, id).await?;
    let mut ran = Vec::new();
    let mut step = |name: &str| {
        !done.contains_key(name) && !ran.contains(&name.to_string()) && {
            ran.push(name.to_string());
            true
        }
    };
    let p = match participant_id {
        Some(pid) => vault.participant(&pid).await?,
        None => None,
    };
    let (final_state, outcome): (State, String) = match (&p, participant_id) {
        (None, None) => {
            if step("nothing_held") {
                record_step(
                    pool,
                    id,
                    "nothing_held",
                    "no data about this person is held",
                )
                .await?;
            }
            (State::Completed, "no data about this person is held".into())
        }
        (None, Some(_)) if kind == Kind::Erasure => (
            State::Completed,
            erasure_finish(policy, vault, signer, id, participant_id, &mut step).await?,
        ),
        (None, Some(_)) => (
            State::Completed,
            "the person's data was erased earlier".into(),
        ),
        (Some(p), Some(_)) => {
            let details: Option<Value> = match sqlx::query_as::<_, (Option<Vec<u8>>,)>(
                "SELECT details_sealed FROM dsr_requests WHERE id = ?",
            )
            .bind(id)
            .fetch_one(pool)
            .await?
            .0
            {
                Some(sealed) => serde_json::from_slice(&vault.open_for(
                    p,
                    &format!("{DETAILS_LABEL}/{id}"),
                    &sealed,
                )?)
                .ok(),
                None => None,
            };
            match kind {
                Kind::Access | Kind::Portability => {
                    if step("export_ready") {
                        record_step(pool, id, "export_ready", "the export can be downloaded")
                            .await?;
                    }
                    (
                        State::Completed,
                        "export ready: GET /v1/dsr/{id}/export".into(),
                    )
                }
                Kind::Rectification => {
                    let fields: BTreeMap<String, Value> = details
                        .as_ref()
                        .and_then(|d| d.get("fields"))
                        .and_then(|f| serde_json::from_value(f.clone()).ok())
                        .unwrap_or_default();
                    if step("apply") {
                        let current = vault.participant(&p.id).await?.ok_or(DsrError::NotFound)?;
                        // A corrected national number moves the look-up with it.
                        let new_insz = fields
                            .get(crate::vault::insz::INSZ_FIELD)
                            .and_then(Value::as_str)
                            .and_then(|s| crate::vault::insz::Insz::parse(s).ok());
                        let fields = normalize_insz(fields, new_insz.as_ref());
                        match vault
                            .update(&current, current.version, &fields, new_insz.as_ref())
                            .await
                        {
                            Ok(_) => {}
                            Err(crate::vault::WriteError::Vault(e)) => return Err(e.into()),
                            Err(crate::vault::WriteError::InszTaken) => {
                                return Err(DsrError::Conflict(
                                    "the corrected national number belongs to another participant; nothing was changed"
                                        .into(),
                                ));
                            }
                            Err(_) => {
                                return Err(DsrError::Conflict(
                                    "the record changed during the rectification; execute again"
                                        .into(),
                                ));
                            }
                        }
                        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
                        record_step(
                            pool,
                            id,
                            "apply",
                            &format!("corrected: {}", names.join(", ")),
                        )
                        .await?;
                    }
                    if step("notify") {
                        let to = recipients(vault, &p.id).await?;
                        record_step(
                            pool,
                            id,
                            "notify",
                            &format!("passed on through the sync feed to: {}", to.join(", ")),
                        )
                        .await?;
                    }
                    (
                        State::Completed,
                        "rectified and passed on to every recipient (Art. 19)".into(),
                    )
                }
                Kind::Erasure => (
                    State::Completed,
                    erasure_finish(policy, vault, signer, id, participant_id, &mut step).await?,
                ),
                Kind::Restriction => {
                    let lift = details
                        .as_ref()
                        .and_then(|d| d.get("lift"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let (kept,): (i64,) = sqlx::query_as(
                        "SELECT count(*) FROM erased_lookup WHERE participant_id = ?",
                    )
                    .bind(&p.id.as_bytes()[..])
                    .fetch_one(pool)
                    .await?;
                    if lift && kept > 0 {
                        // Lifted, what an erasure kept would reach feeds of client-level roles:
                        // it is stored, not processed, until its retention ends.
                        const KEPT: &str =
                            "what an erasure kept for retention stays restricted to storage";
                        if step("refused") {
                            record_step(pool, id, "refused", KEPT).await?;
                        }
                        (State::Refused, KEPT.into())
                    } else {
                        if step("restrict") {
                            vault
                                .set_flag(&p.id, crate::vault::Flag::Restricted, !lift)
                                .await?;
                            let to = recipients(vault, &p.id).await?;
                            let what = if lift {
                                "restriction lifted"
                            } else {
                                "processing restricted to storage; partners receive removals"
                            };
                            record_step(
                                pool,
                                id,
                                "restrict",
                                &format!("{what}; partners: {}", to.join(", ")),
                            )
                            .await?;
                        }
                        (
                            State::Completed,
                            if lift {
                                "restriction lifted".into()
                            } else {
                                "processing restricted".into()
                            },
                        )
                    }
                }
                Kind::Objection => {
                    if let Some(grounds) = details
                        .as_ref()
                        .and_then(|d| d.get("compelling_grounds"))
                        .and_then(Value::as_str)
                    {
                        if step("grounds") {
                            record_step(
                                pool,
                                id,
                                "grounds",
                                "the DPO recorded compelling legitimate grounds",
                            )
                            .await?;
                        }
                        let _ = grounds; // sealed with the request; not repeated in clear
                        (
                            State::Refused,
                            "compelling legitimate grounds recorded by the DPO (Art. 21(1))".into(),
                        )
                    } else {
                        if step("object") {
                            vault
                                .set_flag(&p.id, crate::vault::Flag::Objection, true)
                                .await?;
                            record_step(
                                pool,
                                id,
                                "object",
                                "processing based on public task or legitimate interest ended",
                            )
                            .await?;
                        }
                        (
                            State::Completed,
                            "processing based on public task or legitimate interest ended".into(),
                        )
                    }
                }
            }
        }
        (Some(_), None) => unreachable!("a loaded participant has an id"),
    };
    set_state(pool, id, final_state, Some(&outcome)).await?;
    Ok(Executed {
        request: get(pool, id).await?,
        participant: participant_id,
        steps_run: ran,
        finished_now: true,
    })
}

/// The field whose date starts `after = "trajectory_end"` retention periods.
const TRAJECTORY_END: &str = "trajectory.end_date";

/// The last day `rule` keeps its category: `months` after the programme's end, or after the
/// trajectory's end date when that is on file. The error says why the day cannot be known.
pub fn retention_until(
    rule: &Retention,
    programme_end: Date,
    trajectory_end: Option<Date>,
) -> Result<Date, &'static str> {
    match rule.after {
        RetentionStart::ProgrammeEnd => Ok(add_months(programme_end, rule.months)),
        RetentionStart::TrajectoryEnd => trajectory_end
            .map(|end| add_months(end, rule.months))
            .ok_or(
                "the period counts from the end of the trajectory, and no trajectory end date is \
                 on file: the DPO reviews this hold",
            ),
    }
}

/// Decides what an erasure deletes and what retention keeps (with reason and end date), before
/// anything is deleted. Recorded as the `plan` step, so a resumed run and the receipt follow
/// the same decision.
async fn erasure_plan(
    policy: &Policy,
    vault: &Vault,
    pid: &ParticipantId,
) -> Result<Value, DsrError> {
    // The version first: a field written after this makes the shred refuse this plan.
    let p = vault.participant(pid).await?;
    let held: Vec<(String,)> =
        sqlx::query_as("SELECT field FROM field_values WHERE participant_id = ? ORDER BY field")
            .bind(&pid.as_bytes()[..])
            .fetch_all(vault.pool())
            .await?;
    let mut by_category: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (field,) in held {
        if let Some((category, _)) = field.split_once('.') {
            by_category
                .entry(category.to_string())
                .or_default()
                .push(field);
        }
    }
    let agreement = policy.agreement();
    let hold = |c: &str| agreement.retention_of(c).filter(|r| r.blocks_erasure);
    // Decrypt the trajectory's end only when a hold counts from it.
    let needs_end = by_category
        .keys()
        .any(|c| hold(c).is_some_and(|r| r.after == RetentionStart::TrajectoryEnd));
    let trajectory_end = match (&p, needs_end) {
        (Some(p), true) => vault
            .read(p, |f| f == TRAJECTORY_END)
            .await?
            .get(TRAJECTORY_END)
            .and_then(Value::as_str)
            .and_then(parse_date),
        _ => None,
    };
    let mut kept = Vec::new();
    let mut erased = Vec::new();
    for (category, fields) in by_category {
        let Some(rule) = hold(&category) else {
            erased.push(category);
            continue;
        };
        let mut item = serde_json::json!({
            "category": category, "fields": fields, "reason": rule.reason,
            "after": rule.after, "months": rule.months,
        });
        match retention_until(rule, agreement.meta.programme_end, trajectory_end) {
            Ok(until) => item["until"] = Value::String(until.format(DATE).expect("date")),
            Err(why) => {
                item["until"] = Value::Null;
                item["until_unknown"] = Value::String(why.into());
            }
        }
        kept.push(item);
    }
    erased.extend(["notes", "consents", "involvements"].map(String::from));
    let partners = recipients(vault, pid).await?;
    Ok(serde_json::json!({
        "erased": erased, "kept": kept, "partners_notified": partners,
        "version": p.map(|p| p.version),
    }))
}

/// The field names a plan keeps. A plan recorded before plans named fields keeps its
/// categories' fields.
fn kept_fields(policy: &Policy, plan: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for item in plan["kept"].as_array().into_iter().flatten() {
        match item["fields"].as_array() {
            Some(fields) => out.extend(fields.iter().filter_map(Value::as_str).map(String::from)),
            None => {
                let category = item["category"].as_str().unwrap_or_default();
                out.extend(
                    policy
                        .all_fields()
                        .filter(|f| policy.category_name(f.category) == category)
                        .map(|f| f.name.to_string()),
                );
            }
        }
    }
    out
}

/// What an erasure deletes besides the categories, as the receipt lists it.
fn also_erased() -> Value {
    serde_json::json!([
        {"item": "role_history", "detail": "every role in the case, ended ones included"},
        {"item": "idempotency_replies", "detail": "stored answers to retried requests about the person"},
        {"item": "request_details", "detail": "details of earlier data-subject requests, such as corrected values"},
        {"item": "data_key", "detail": "the key that sealed the erased data is destroyed, so no copy of it can be decrypted"},
    ])
}

/// What an erasure keeps besides retained categories, with why and until when.
fn records_kept(plan: &Value) -> Value {
    let kept = plan["kept"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    if !kept.is_empty() {
        // The hash goes with the kept record: as long as the longest hold.
        let untils: Option<Vec<&str>> = kept.iter().map(|k| k["until"].as_str()).collect();
        let until = untils.and_then(|u| u.into_iter().max().map(String::from));
        let mut item = serde_json::json!({
            "record": "national_number_hash",
            "content": "a keyed hash of the national number, linked only to the kept categories",
            "reason": "only a data-subject request still reaches what is kept; look-up and registration do not",
            "until": until,
        });
        if until.is_none() {
            item["until_unknown"] = "as long as a kept category whose end date is not known".into();
        }
        out.push(item);
    }
    out.extend([
        serde_json::json!({
            "record": "request_records",
            "content": "this and earlier data-subject requests about the person: kind, dates, state, outcome, this receipt, a keyed hash of the national number and the erased record's random internal id; no request details",
            "reason": "proof that the requests were handled, and in time (GDPR Art. 5(2), 12(3))",
            "until": null,
            "until_unknown": "the agreement sets no retention period for request records",
        }),
        serde_json::json!({
            "record": "audit_log",
            "content": "pseudonymous access records: organisation, staff id, purpose, time and names of the fields disclosed; no values",
            "reason": "accountability (GDPR Art. 5(2)); the log is hash-chained, so no record can be taken out; a later access request still shows who saw the file",
            "until": null,
            "until_unknown": "the agreement sets no retention period for the audit log",
        }),
        serde_json::json!({
            "record": "feed_markers",
            "content": "the erased record's random id, and which partner systems were shown it; no content",
            "reason": "every partner system that received the data is told of the erasure through its feed (GDPR Art. 19)",
            "until": null,
            "until_unknown": "kept while a partner system may resume its feed from before the erasure",
        }),
    ]);
    Value::Array(out)
}

/// The erasure steps: plan (what retention keeps), shred, receipt. Each recorded once.
async fn erasure_finish(
    policy: &Policy,
    vault: &Vault,
    signer: &dyn ReceiptSigner,
    id: &str,
    participant: Option<ParticipantId>,
    step: &mut impl FnMut(&str) -> bool,
) -> Result<String, DsrError> {
    let pool = vault.pool();
    let pid = participant.ok_or(DsrError::NotFound)?;
    let mut done = done_steps(pool, id).await?;
    let mut replans = 0;
    // 1. Plan, 2. shred. A plan the record outgrew before the shred (a field written in
    // between, e.g. while an interrupted run waited) is made again, so that what is kept is
    // exactly what the plan, and so the receipt, names.
    let plan = loop {
        let plan: Value = match done.get("plan") {
            Some(d) => serde_json::from_str(d).map_err(|_| {
                // Never guess what to keep: fail closed.
                DsrError::Conflict("the recorded erasure plan is unreadable".into())
            })?,
            None => {
                let plan = erasure_plan(policy, vault, &pid).await?;
                step("plan");
                record_step(pool, id, "plan", &plan.to_string()).await?;
                plan
            }
        };
        if done.contains_key("shred") {
            break plan;
        }
        let keep = kept_fields(policy, &plan);
        match vault.erase(&pid, &keep, plan["version"].as_i64()).await {
            Ok(()) | Err(WriteError::NotFound) => {
                step("shred");
                let what = if keep.is_empty() {
                    "data key destroyed and every row deleted"
                } else {
                    "data key destroyed and every row deleted; the retained fields were re-sealed apart, reachable only by a data-subject request"
                };
                record_step(pool, id, "shred", what).await?;
                break plan;
            }
            Err(WriteError::Stale(_)) if replans < 3 => {
                replans += 1;
                sqlx::query("DELETE FROM dsr_steps WHERE request_id = ? AND step = 'plan'")
                    .bind(id)
                    .execute(pool)
                    .await?;
                done.remove("plan");
            }
            Err(WriteError::Stale(_)) => {
                return Err(DsrError::Conflict(
                    "the record kept changing while the erasure was planned; execute again".into(),
                ));
            }
            Err(WriteError::Vault(e)) => return Err(e.into()),
            // An erasure moves no national number; fail closed all the same.
            Err(WriteError::InszTaken) => {
                return Err(DsrError::Conflict(
                    "the record changed during the erasure; execute again".into(),
                ));
            }
        }
    };
    // 3. Receipt, signed with the audit key so a DPO can verify it offline.
    if !done.contains_key("receipt") {
        let mut notified: BTreeSet<String> = plan["partners_notified"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
        // Every client in the sync state gets the removal, also one shown the record after the
        // plan was made.
        let clients: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT client FROM sync_state WHERE participant_id = ?")
                .bind(&pid.as_bytes()[..])
                .fetch_all(pool)
                .await?;
        notified.extend(clients.into_iter().map(|c| c.0));
        let payload = serde_json::json!({
            "type": "partnergate-erasure-receipt/v1",
            "request": id,
            "time": crate::store::now(),
            "categories_erased": plan["erased"],
            "also_erased": also_erased(),
            "categories_kept": plan["kept"],
            "records_kept": records_kept(&plan),
            "partners_notified": notified,
        });
        let text = payload.to_string();
        let receipt = serde_json::json!({"payload": text, "signature": hex::encode(signer.sign(text.as_bytes()))});
        sqlx::query("UPDATE dsr_requests SET receipt = ? WHERE id = ?")
            .bind(receipt.to_string())
            .bind(id)
            .execute(pool)
            .await?;
        step("receipt");
        record_step(pool, id, "receipt", "signed erasure receipt issued").await?;
    }
    Ok(if plan["kept"].as_array().is_some_and(|k| !k.is_empty()) {
        "erased, except categories retention keeps (see receipt)".into()
    } else {
        "erased and passed on to every recipient (Art. 19)".into()
    })
}

/// Verifies an erasure receipt with the audit public key (32 raw bytes).
pub fn verify_receipt(receipt: &Value, public_key: &[u8]) -> bool {
    let (Some(payload), Some(sig)) = (receipt["payload"].as_str(), receipt["signature"].as_str())
    else {
        return false;
    };
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(payload.as_bytes(), &sig)
        .is_ok()
}

/// The participant a request is about, if still held.
pub async fn participant_of(vault: &Vault, id: &str) -> Result<Option<Participant>, DsrError> {
    let r = row(vault.pool(), id).await?;
    match r.2.as_deref().and_then(ParticipantId::from_slice) {
        Some(pid) => Ok(vault.participant(&pid).await?),
        None => Ok(None),
    }
}

/// Actions that disclose or change a person's data, shown in the "who looked at my file" view.
const DISCLOSING: &[(Action, &str)] = &[
    (Action::ParticipantRead, "viewed"),
    (Action::NotesRead, "read case notes"),
    (Action::SyncDisclose, "received in its own system"),
    (Action::ParticipantLookup, "checked whether a file exists"),
    (Action::ParticipantRegister, "registered"),
    (Action::ParticipantWrite, "updated"),
    (Action::NotesWrite, "wrote a case note"),
];

/// The access/portability bundle: every field, note, involvement and consent about the
/// person, decrypted, and the disclosure history from the audit log (organisations only, never
/// the staff member).
pub async fn export_bundle(policy: &Policy, vault: &Vault, id: &str) -> Result<Value, DsrError> {
    let request = get(vault.pool(), id).await?;
    if !matches!(request.kind, Kind::Access | Kind::Portability) {
        return Err(DsrError::Conflict(
            "only access and portability requests have an export".into(),
        ));
    }
    if request.state != State::Completed {
        return Err(DsrError::Conflict("execute the request first".into()));
    }
    let partner_name = |id: &str| {
        policy
            .agreement()
            .partner(id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let Some(p) = participant_of(vault, id).await? else {
        return Ok(
            serde_json::json!({"request": request, "generated_at": crate::store::now(), "held": false}),
        );
    };
    let fields = vault.read(&p, |_| true).await?;
    let mut data: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (name, value) in fields {
        if let Some((cat, field)) = name.split_once('.') {
            data.entry(cat.to_string())
                .or_default()
                .insert(field.to_string(), value);
        }
    }
    let notes: Vec<Value> = vault
        .notes(&p)
        .await?
        .into_iter()
        .map(|n| serde_json::json!({"written_by": partner_name(&n.author_partner), "at": n.created_at, "text": n.text}))
        .collect();
    let involvements: Vec<Value> = vault
        .involvement_history(&p.id)
        .await?
        .into_iter()
        .map(|i| serde_json::json!({"organisation": partner_name(&i.partner), "role": i.role, "from": i.started_at, "until": i.ended_at}))
        .collect();
    let consents: Vec<Value> = vault
        .consent_history(&p.id)
        .await?
        .into_iter()
        .map(|c| {
            let description = policy.agreement().scope(&c.scope).map(|s| s.description.clone()).unwrap_or_default();
            serde_json::json!({"scope": c.scope, "description": description, "recorded_by": partner_name(&c.recorded_by), "given": c.recorded_at, "withdrawn": c.withdrawn_at})
        })
        .collect();
    // The audit log outlives an erasure: the history of a record an erasure replaced by what
    // it kept still tells the person who received their data (Art. 15(1)(c), 19).
    let former = former_records(vault, id).await?;
    let mut pseudonyms = vec![vault.index().audit_pseudonym(&p.id)];
    pseudonyms.extend(former.iter().map(|(f, _)| vault.index().audit_pseudonym(f)));
    let mut disclosures = Vec::new();
    for audit_id in pseudonyms {
        let mut q = crate::audit::AuditQuery {
            participant: Some(audit_id),
            decision: Some("granted".into()),
            limit: Some(1000),
            ..Default::default()
        };
        loop {
            let page = crate::audit::search(vault.pool(), &q).await?;
            for r in &page {
                let (Some(partner), Some((_, what))) = (
                    &r.partner,
                    DISCLOSING.iter().find(|(a, _)| a.as_str() == r.action),
                ) else {
                    continue;
                };
                let categories: BTreeSet<&str> = r
                    .fields
                    .iter()
                    .filter_map(|f| f.split_once('.').map(|x| x.0))
                    .collect();
                disclosures.push(serde_json::json!({
                    "time": r.time, "organisation": partner_name(partner), "what": what,
                    "purpose": r.purpose, "categories": categories,
                }));
            }
            match page.last() {
                Some(last) if page.len() == 1000 => q.after = Some(last.seq),
                _ => break,
            }
        }
    }
    disclosures.sort_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
    // Why, and until when, an erasure kept some of the data (Art. 15(1)(d)).
    let retention: Vec<Value> = former
        .iter()
        .flat_map(|(_, receipt)| {
            receipt["categories_kept"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|k| {
            serde_json::json!({
                "category": k["category"], "reason": k["reason"],
                "until": k["until"], "until_unknown": k["until_unknown"],
            })
        })
        .collect();
    Ok(serde_json::json!({
        "request": request,
        "generated_at": crate::store::now(),
        "held": true,
        "controllers": policy.agreement().meta.name,
        "data": data,
        "notes": notes,
        "involvements": involvements,
        "consents": consents,
        "disclosures": disclosures,
        "retention": retention,
    }))
}

/// The person's earlier records that completed erasures replaced, with each erasure's receipt
/// payload: named by the erasure requests about the same national number.
async fn former_records(
    vault: &Vault,
    request_id: &str,
) -> Result<Vec<(ParticipantId, Value)>, DsrError> {
    let rows: Vec<(Vec<u8>, Option<String>)> = sqlx::query_as(
        "SELECT e.participant_id, e.receipt FROM dsr_requests r JOIN dsr_requests e ON e.insz_hash = r.insz_hash
         WHERE r.id = ? AND e.kind = 'erasure' AND e.state = 'completed' AND e.participant_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM participants p WHERE p.id = e.participant_id)
         ORDER BY e.updated_at",
    )
    .bind(request_id)
    .fetch_all(vault.pool())
    .await?;
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

use crate::audit::report::escape_html as esc;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Null => "—".into(),
        Value::Bool(true) => "ja / yes".into(),
        Value::Bool(false) => "nee / no".into(),
        Value::Array(a) => esc(&a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ")),
        other => esc(&other.to_string()),
    }
}

/// The bundle as a page to hand to the participant (Dutch with English, self-contained).
pub fn render_html(bundle: &Value) -> String {
    let mut h = String::from(
        "<!doctype html><html lang=\"nl\"><head><meta charset=\"utf-8\"><title>Uw gegevens / Your data</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}\
         h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:2px solid #2a6;padding-bottom:.2rem}\
         table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}\
         th{background:#f3f7f4}.en{color:#666;font-size:.9em}.muted{color:#666}</style></head><body>",
    );
    h.push_str("<h1>Uw gegevens bij het partnerschap <span class=\"en\">/ Your data held by the partnership</span></h1>");
    h.push_str(&format!(
        "<p>{} — aangemaakt op / generated on {}</p>",
        text(&bundle["controllers"]),
        text(&bundle["generated_at"])
    ));
    if bundle["held"] == Value::Bool(false) {
        h.push_str("<p>Wij bewaren geen gegevens over u. <span class=\"en\">We hold no data about you.</span></p></body></html>");
        return h;
    }
    h.push_str("<h2>Wat we over u bewaren <span class=\"en\">/ What we hold about you</span></h2>");
    for (cat, fields) in bundle["data"].as_object().into_iter().flatten() {
        h.push_str(&format!("<h3>{}</h3><table>", esc(cat)));
        for (name, v) in fields.as_object().into_iter().flatten() {
            h.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(name),
                text(v)
            ));
        }
        h.push_str("</table>");
    }
    let table = |h: &mut String, title: &str, rows: &Value, cols: &[(&str, &str)]| {
        h.push_str(&format!("<h2>{title}</h2>"));
        let rows = rows.as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            h.push_str("<p class=\"muted\">Geen / None</p>");
            return;
        }
        h.push_str("<table><tr>");
        for (_, label) in cols {
            h.push_str(&format!("<th>{label}</th>"));
        }
        h.push_str("</tr>");
        for r in rows {
            h.push_str("<tr>");
            for (key, _) in cols {
                h.push_str(&format!("<td>{}</td>", text(&r[*key])));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    };
    table(
        &mut h,
        "Wie begeleidt u <span class=\"en\">/ Who works with you</span>",
        &bundle["involvements"],
        &[
            ("organisation", "Organisatie / Organisation"),
            ("role", "Rol / Role"),
            ("from", "Van / From"),
            ("until", "Tot / Until"),
        ],
    );
    table(
        &mut h,
        "Uw toestemmingen <span class=\"en\">/ Your consents</span>",
        &bundle["consents"],
        &[
            ("description", "Waarvoor / For what"),
            ("recorded_by", "Genoteerd door / Recorded by"),
            ("given", "Gegeven / Given"),
            ("withdrawn", "Ingetrokken / Withdrawn"),
        ],
    );
    if bundle["retention"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
    {
        table(
            &mut h,
            "Bewaard na uw verzoek tot wissen <span class=\"en\">/ Kept after your erasure request</span>",
            &bundle["retention"],
            &[
                ("category", "Gegevens / Data"),
                ("reason", "Waarom / Why"),
                ("until", "Tot / Until"),
                ("until_unknown", "Geen datum omdat / No date because"),
            ],
        );
    }
    table(
        &mut h,
        "Notities <span class=\"en\">/ Case notes</span>",
        &bundle["notes"],
        &[
            ("at", "Datum / Date"),
            ("written_by", "Door / By"),
            ("text", "Tekst / Text"),
        ],
    );
    table(
        &mut h,
        "Wie heeft uw dossier gezien <span class=\"en\">/ Who looked at your file</span>",
        &bundle["disclosures"],
        &[
            ("time", "Wanneer / When"),
            ("organisation", "Organisatie / Organisation"),
            ("what", "Wat / What"),
            ("purpose", "Waarom / Purpose"),
            ("categories", "Welke gegevens / Which data"),
        ],
    );
    h.push_str("<p class=\"muted\">Vragen of klachten? Neem contact op met de functionaris voor gegevensbescherming (DPO) van het partnerschap, \
        of met de Gegevensbeschermingsautoriteit. <span class=\"en\">Questions or complaints? Contact the partnership's data-protection officer, or the Belgian Data Protection Authority.</span></p>");
    h.push_str("</body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn deadlines_are_calendar_months_clamped_to_the_month_end() {
        assert_eq!(add_months(date!(2026 - 11 - 01), 1), date!(2026 - 12 - 01));
        assert_eq!(add_months(date!(2026 - 01 - 31), 1), date!(2026 - 02 - 28));
        assert_eq!(add_months(date!(2028 - 01 - 31), 1), date!(2028 - 02 - 29));
        assert_eq!(add_months(date!(2026 - 12 - 15), 3), date!(2027 - 03 - 15));
        assert_eq!(
            add_months(date!(2029 - 12 - 31), 120),
            date!(2039 - 12 - 31)
        );
    }

    #[test]
    fn a_hold_ends_months_after_the_programme_or_the_trajectory_and_says_when_it_cannot_know() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let policy = Policy::load(&dir).unwrap();
        let a = policy.agreement();
        let end = a.meta.programme_end;
        let esf = a.retention_of("esf").unwrap();
        assert_eq!(esf.after, RetentionStart::ProgrammeEnd);
        assert_eq!(
            retention_until(esf, end, None),
            Ok(add_months(end, esf.months))
        );
        let health = a.retention_of("health").unwrap();
        assert_eq!(health.after, RetentionStart::TrajectoryEnd);
        assert_eq!(
            retention_until(health, end, Some(date!(2026 - 08 - 31))),
            Ok(add_months(date!(2026 - 08 - 31), health.months))
        );
        let why = retention_until(health, end, None).unwrap_err();
        assert!(why.contains("no trajectory end date"), "{why}");
    }
}
