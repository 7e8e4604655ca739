//! Execution: one step function per kind. Each step is recorded once and skipped when done,
//! so a run resumes where an earlier one stopped; erasure's plan, shred and receipt steps
//! follow the plan recorded first.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use time::Date;

use super::request::{self, get, record_step};
use super::{DATE, DsrError, Kind, Request, State, add_months, parse_date};
use crate::policy::{Policy, Retention, RetentionStart};
use crate::store::{self, DbError, Store};
use crate::vault::crypto::ParticipantId;
use crate::vault::{Participant, Vault, WriteError};

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
async fn recipients(vault: &Vault, id: &ParticipantId) -> Result<Vec<String>, DbError> {
    let db = vault.store();
    let mut out: BTreeSet<String> = store::sync::clients_shown(db, id, true)
        .await?
        .into_iter()
        .collect();
    out.extend(store::dsr::involved_partners(db, id).await?);
    Ok(out.into_iter().collect())
}

/// What a step function decides: the request's final state and its outcome.
type Outcome = (State, String);

/// The steps of one run: those recorded before it started, and those this call ran.
struct Run<'a> {
    db: &'a Store,
    id: &'a str,
    done: BTreeMap<String, String>,
    ran: Vec<String>,
}

impl Run<'_> {
    /// Whether step `name` is still to do; if so, it counts as run by this call. A step done
    /// before (an interrupted or repeated run) is skipped.
    fn start(&mut self, name: &str) -> bool {
        !self.done.contains_key(name) && !self.ran.iter().any(|r| r == name) && {
            self.ran.push(name.to_string());
            true
        }
    }

    /// Records step `name` with its detail (categories, partners; never personal data).
    async fn record(&self, name: &str, detail: &str) -> Result<(), DbError> {
        record_step(self.db, self.id, name, detail).await?;
        Ok(())
    }

    /// Records a step that has nothing to do but be recorded, unless done before.
    async fn note(&mut self, name: &str, detail: &str) -> Result<(), DbError> {
        if self.start(name) {
            self.record(name, detail).await?;
        }
        Ok(())
    }
}

/// Runs (or resumes) a verified request.
pub async fn execute(
    policy: &Policy,
    vault: &Vault,
    signer: &dyn ReceiptSigner,
    id: &str,
) -> Result<Executed, DsrError> {
    let db = vault.store();
    let r = request::row(db, id).await?;
    let participant_id = r.2.as_deref().and_then(ParticipantId::from_slice);
    match State::parse(&r.7) {
        State::Verified | State::InProgress => {}
        State::Received => {
            return Err(DsrError::Conflict(
                "verify the requester's identity first (POST /v1/dsr/{id}/verify)".into(),
            ));
        }
        State::Completed | State::Refused => {
            return Ok(Executed {
                request: get(db, id).await?,
                participant: participant_id,
                steps_run: Vec::new(),
                finished_now: false,
            });
        }
    }
    let kind = Kind::parse(&r.1).ok_or(DsrError::NotFound)?;
    request::set_state(db, id, State::InProgress, None).await?;
    let mut run = Run {
        db,
        id,
        done: request::done_steps(db, id).await?,
        ran: Vec::new(),
    };
    let p = match participant_id {
        Some(pid) => vault.participant(&pid).await?,
        None => None,
    };
    let (final_state, outcome) = match (&p, participant_id) {
        (None, None) => {
            const NOTHING: &str = "no data about this person is held";
            run.note("nothing_held", NOTHING).await?;
            (State::Completed, NOTHING.into())
        }
        // An erasure interrupted after the shred still owes its receipt.
        (None, Some(pid)) if kind == Kind::Erasure => {
            erasure(policy, vault, signer, &mut run, pid).await?
        }
        (None, Some(_)) => (
            State::Completed,
            "the person's data was erased earlier".into(),
        ),
        (Some(p), Some(pid)) => {
            let details = request::details(vault, p, id).await?;
            let details = details.as_ref();
            match kind {
                Kind::Access | Kind::Portability => access(&mut run).await?,
                Kind::Rectification => rectification(vault, &mut run, p, details).await?,
                Kind::Erasure => erasure(policy, vault, signer, &mut run, pid).await?,
                Kind::Restriction => restriction(vault, &mut run, p, details).await?,
                Kind::Objection => objection(vault, &mut run, p, details).await?,
            }
        }
        (Some(_), None) => unreachable!("a loaded participant has an id"),
    };
    request::set_state(db, id, final_state, Some(&outcome)).await?;
    Ok(Executed {
        request: get(db, id).await?,
        participant: participant_id,
        steps_run: run.ran,
        finished_now: true,
    })
}

/// One entry of a request's kind-specific details (see `NewRequest::details`).
fn detail<'a>(details: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    details.and_then(|d| d.get(name))
}

/// Art. 15 and 20: the export is made when it is downloaded, so the run only marks it ready.
async fn access(run: &mut Run<'_>) -> Result<Outcome, DsrError> {
    run.note("export_ready", "the export can be downloaded")
        .await?;
    Ok((
        State::Completed,
        "export ready: GET /v1/dsr/{id}/export".into(),
    ))
}

/// Art. 16: applies the corrected values, then passes them on to every recipient (Art. 19).
async fn rectification(
    vault: &Vault,
    run: &mut Run<'_>,
    p: &Participant,
    details: Option<&Value>,
) -> Result<Outcome, DsrError> {
    let fields: BTreeMap<String, Value> = detail(details, "fields")
        .and_then(|f| serde_json::from_value(f.clone()).ok())
        .unwrap_or_default();
    if run.start("apply") {
        let current = vault.participant(&p.id).await?.ok_or(DsrError::NotFound)?;
        // A corrected national number moves the look-up with it.
        let new_insz = fields
            .get(crate::vault::insz::INSZ_FIELD)
            .and_then(Value::as_str)
            .and_then(|s| crate::vault::insz::Insz::parse(s).ok());
        let fields = normalize_insz(fields, new_insz.as_ref());
        match vault
            // The request's own audit records say what was executed (see the API's execute).
            .update(
                &current,
                current.version,
                &fields,
                new_insz.as_ref(),
                Vec::new(),
            )
            .await
        {
            Ok(_) => {}
            Err(WriteError::Vault(e)) => return Err(e.into()),
            Err(WriteError::InszTaken) => {
                return Err(DsrError::Conflict(
                    "the corrected national number belongs to another participant; nothing was changed"
                        .into(),
                ));
            }
            Err(_) => {
                return Err(DsrError::Conflict(
                    "the record changed during the rectification; execute again".into(),
                ));
            }
        }
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        run.record("apply", &format!("corrected: {}", names.join(", ")))
            .await?;
    }
    if run.start("notify") {
        let to = recipients(vault, &p.id).await?;
        let detail = format!("passed on through the sync feed to: {}", to.join(", "));
        run.record("notify", &detail).await?;
    }
    Ok((
        State::Completed,
        "rectified and passed on to every recipient (Art. 19)".into(),
    ))
}

/// Art. 17: plan, shred, receipt (see [`erasure_finish`]).
async fn erasure(
    policy: &Policy,
    vault: &Vault,
    signer: &dyn ReceiptSigner,
    run: &mut Run<'_>,
    pid: ParticipantId,
) -> Result<Outcome, DsrError> {
    let outcome = erasure_finish(policy, vault, signer, run, pid).await?;
    Ok((State::Completed, outcome))
}

/// Art. 18: restricts processing to storage, or lifts the restriction.
async fn restriction(
    vault: &Vault,
    run: &mut Run<'_>,
    p: &Participant,
    details: Option<&Value>,
) -> Result<Outcome, DsrError> {
    let lift = detail(details, "lift")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let kept = store::dsr::kept_lookups(run.db, &p.id).await?;
    if lift && kept > 0 {
        // Lifted, what an erasure kept would reach feeds of client-level roles: it is stored,
        // not processed, until its retention ends.
        const KEPT: &str = "what an erasure kept for retention stays restricted to storage";
        run.note("refused", KEPT).await?;
        return Ok((State::Refused, KEPT.into()));
    }
    if run.start("restrict") {
        vault
            .set_flag(&p.id, crate::vault::Flag::Restricted, !lift)
            .await?;
        let to = recipients(vault, &p.id).await?;
        let what = if lift {
            "restriction lifted"
        } else {
            "processing restricted to storage; partners receive removals"
        };
        run.record("restrict", &format!("{what}; partners: {}", to.join(", ")))
            .await?;
    }
    let outcome = if lift {
        "restriction lifted"
    } else {
        "processing restricted"
    };
    Ok((State::Completed, outcome.into()))
}

/// Art. 21: ends processing based on public task or legitimate interest, unless the DPO
/// recorded compelling legitimate grounds.
async fn objection(
    vault: &Vault,
    run: &mut Run<'_>,
    p: &Participant,
    details: Option<&Value>,
) -> Result<Outcome, DsrError> {
    // The grounds themselves stay sealed with the request; the step does not repeat them.
    let grounds = detail(details, "compelling_grounds")
        .and_then(Value::as_str)
        .is_some();
    if grounds {
        run.note("grounds", "the DPO recorded compelling legitimate grounds")
            .await?;
        return Ok((
            State::Refused,
            "compelling legitimate grounds recorded by the DPO (Art. 21(1))".into(),
        ));
    }
    const ENDED: &str = "processing based on public task or legitimate interest ended";
    if run.start("object") {
        vault
            .set_flag(&p.id, crate::vault::Flag::Objection, true)
            .await?;
        run.record("object", ENDED).await?;
    }
    Ok((State::Completed, ENDED.into()))
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
    let held = store::dsr::held_fields(vault.store(), pid).await?;
    let mut by_category: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for field in held {
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
    run: &mut Run<'_>,
    pid: ParticipantId,
) -> Result<String, DsrError> {
    let (db, id) = (run.db, run.id);
    // Read again rather than taken from `run`: a replan below forgets the plan here only.
    let mut done = request::done_steps(db, id).await?;
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
                run.start("plan");
                run.record("plan", &plan.to_string()).await?;
                plan
            }
        };
        if done.contains_key("shred") {
            break plan;
        }
        let keep = kept_fields(policy, &plan);
        match vault.erase(&pid, &keep, plan["version"].as_i64()).await {
            Ok(()) | Err(WriteError::NotFound) => {
                run.start("shred");
                let what = if keep.is_empty() {
                    "data key destroyed and every row deleted"
                } else {
                    "data key destroyed and every row deleted; the retained fields were re-sealed apart, reachable only by a data-subject request"
                };
                run.record("shred", what).await?;
                break plan;
            }
            Err(WriteError::Stale(_)) if replans < 3 => {
                replans += 1;
                request::forget_plan(db, id).await?;
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
        notified.extend(store::sync::clients_shown(db, &pid, false).await?);
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
        request::set_receipt(db, id, &receipt).await?;
        run.start("receipt");
        run.record("receipt", "signed erasure receipt issued")
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_hold_ends_months_after_the_programme_or_the_trajectory_and_says_when_it_cannot_know() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
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
