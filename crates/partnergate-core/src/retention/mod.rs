//! Retention that purges by itself: the agreement's `[[retention]]` rules applied per
//! category and participant.
//!
//! A category's fields are due on `start + months`, where the start is the participant's
//! `trajectory.end_date` (`after = "trajectory_end"`; no end date yet, nothing is due) or the
//! programme's end (`after = "programme_end"`). On and after that day they are purged: the
//! sealed values are deleted (the database overwrites deleted pages), one audit record per
//! participant names the fields, the feeds tell every recipient `retention_expired`, and when
//! nothing of a participant remains the key is shredded as an erasure does it.
//!
//! [`plan`] is the dry run (counts only); [`run`] purges. Both take the day to judge by, so
//! tests need no clock; the gateway passes [`crate::clock::today`].

pub mod daily;

use std::collections::{BTreeMap, HashMap};

use time::Date;

use crate::audit::{Action, AuditError, AuditLog, Requester};
use crate::dsr::add_months;
use crate::policy::{Agreement, RetentionStart};
use crate::store::retention as sql;
use crate::vault::crypto::ParticipantId;
use crate::vault::{Vault, VaultError, WriteError};
pub use daily::RetentionConfig;

/// The field that starts `trajectory_end` periods.
pub const TRAJECTORY_END: &str = "trajectory.end_date";

/// What one participant holds, as retention sees it: field names (values stay sealed) and
/// the trajectory's end date.
#[derive(Debug, Clone)]
pub struct Holding {
    /// The participant.
    pub id: ParticipantId,
    /// Names of the stored fields (`notes.text` when there are case notes).
    pub fields: Vec<String>,
    /// `trajectory.end_date`, when set.
    pub trajectory_end: Option<Date>,
}

/// The day a category's fields are due for a participant whose trajectory ended on
/// `trajectory_end`; `None` when nothing is due yet (no rule, or no end date).
pub fn due(agreement: &Agreement, category: &str, trajectory_end: Option<Date>) -> Option<Date> {
    let rule = agreement.retention_of(category)?;
    let start = match rule.after {
        RetentionStart::TrajectoryEnd => trajectory_end?,
        RetentionStart::ProgrammeEnd => agreement.meta.programme_end,
    };
    Some(add_months(start, rule.months))
}

fn category_of(field: &str) -> &str {
    field.split_once('.').map(|(c, _)| c).unwrap_or(field)
}

/// The fields of `holding` that are due on `today`.
pub fn expired_fields(agreement: &Agreement, holding: &Holding, today: Date) -> Vec<String> {
    holding
        .fields
        .iter()
        .filter(|f| {
            due(agreement, category_of(f), holding.trajectory_end).is_some_and(|d| d <= today)
        })
        .cloned()
        .collect()
}

/// One category's line of the dry run: participant counts only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CategoryPlan {
    /// Category id.
    pub category: String,
    /// The rule in words.
    pub rule: String,
    /// Participants whose fields of this category are due now (a run would purge them).
    pub due_now: usize,
    /// Participants due later, per month (`YYYY-MM`).
    pub later: BTreeMap<String, usize>,
    /// Participants holding the category with no date yet (trajectory still running).
    pub no_date_yet: usize,
}

/// The dry run: per category, how many participants' fields are due now and when the others
/// will be. No personal data: counts and months.
pub fn plan(agreement: &Agreement, holdings: &[Holding], today: Date) -> Vec<CategoryPlan> {
    let mut out: Vec<CategoryPlan> = agreement
        .categories
        .iter()
        .map(|c| CategoryPlan {
            category: c.id.value.clone(),
            rule: agreement
                .retention_of(&c.id)
                .map(|r| r.describe(&agreement.meta))
                .unwrap_or_else(|| "no rule".into()),
            due_now: 0,
            later: BTreeMap::new(),
            no_date_yet: 0,
        })
        .collect();
    for h in holdings {
        let mut held: Vec<&str> = h.fields.iter().map(|f| category_of(f)).collect();
        held.sort_unstable();
        held.dedup();
        for c in held {
            let Some(line) = out.iter_mut().find(|p| p.category == c) else {
                continue;
            };
            match due(agreement, c, h.trajectory_end) {
                Some(d) if d <= today => line.due_now += 1,
                Some(d) => {
                    *line
                        .later
                        .entry(format!("{}-{:02}", d.year(), d.month() as u8))
                        .or_default() += 1
                }
                None => line.no_date_yet += 1,
            }
        }
    }
    out
}

/// Reads every participant's holding: field names, and the trajectory end date (the one value
/// decrypted).
pub async fn holdings(vault: &Vault) -> Result<Vec<Holding>, VaultError> {
    let mut by_id: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for (id, field) in sql::stored_fields(vault.store()).await? {
        by_id.entry(id).or_default().push(field);
    }
    let mut out = Vec::new();
    for (raw, fields) in by_id {
        let Some(id) = ParticipantId::from_slice(&raw) else {
            continue;
        };
        let Some(p) = vault.participant(&id).await? else {
            continue;
        };
        let trajectory_end = if fields.iter().any(|f| f == TRAJECTORY_END) {
            vault
                .read(&p, |f| f == TRAJECTORY_END)
                .await?
                .get(TRAJECTORY_END)
                .and_then(|v| v.as_str())
                .and_then(|s| {
                    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
                })
        } else {
            None
        };
        out.push(Holding {
            id,
            fields,
            trajectory_end,
        });
    }
    Ok(out)
}

/// What a run did, in counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    /// The day judged by.
    pub day: String,
    /// Participants with fields purged.
    pub participants: usize,
    /// Field values deleted.
    pub fields: u64,
    /// Participants of whom nothing remained, whose key was shredded.
    pub shredded: usize,
    /// Participants purged per category.
    pub per_category: BTreeMap<String, usize>,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The vault failed.
    #[error("{0}")]
    Vault(#[from] VaultError),
    /// The audit log could not make a record durable: nothing more is purged.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
}

impl From<WriteError> for RunError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Vault(v) => RunError::Vault(v),
            // A purge checks no version and writes no national number: these cannot occur.
            _ => RunError::Vault(VaultError::Db(crate::store::DbError::Protocol(
                "unexpected outcome of a retention purge".into(),
            ))),
        }
    }
}

/// Purges everything due on `today`. Each participant's audit record (action
/// `retention.purge`, the fields by name, no values) is durable before its fields go, so a
/// purge never happens unrecorded; a crash in between leaves a record and the fields, and the
/// next run purges them.
pub async fn run(
    agreement: &Agreement,
    vault: &Vault,
    audit: &AuditLog,
    today: Date,
) -> Result<RunSummary, RunError> {
    let mut summary = RunSummary {
        day: today.to_string(),
        ..RunSummary::default()
    };
    let request_id = format!("retention-{today}-{}", crate::store::now());
    for h in holdings(vault).await? {
        let fields = expired_fields(agreement, &h, today);
        if fields.is_empty() {
            continue;
        }
        let whole = fields.len() == h.fields.len();
        let event = Requester {
            request_id: request_id.clone(),
            client: "-".into(),
            partner: None,
            acting_user: Some("retention".into()),
            purpose: None,
        }
        .event(Action::RetentionPurge)
        .participant(Some(vault.index().audit_pseudonym(&h.id)))
        .fields(fields.clone())
        .granted_with(if whole {
            "retention_expired; nothing remains: key shredded"
        } else {
            "retention_expired"
        });
        audit.append(vec![event]).await?;
        let purged = match vault.purge_fields(&h.id, &fields).await {
            Ok(p) => p,
            // Erased meanwhile: nothing left to purge.
            Err(WriteError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        summary.participants += 1;
        summary.fields += purged.fields;
        summary.shredded += usize::from(purged.shredded);
        let mut cats: Vec<&str> = fields.iter().map(|f| category_of(f)).collect();
        cats.dedup();
        for c in cats {
            *summary.per_category.entry(c.to_string()).or_default() += 1;
        }
    }
    // Deleted values are overwritten in the database file; fold the log in so they leave it too.
    vault.store().checkpoint().await.map_err(VaultError::Db)?;
    Ok(summary)
}

/// For the feed: which of `ids` were last changed by a retention purge, by change sequence.
pub async fn purge_seqs(
    vault: &Vault,
    ids: &[ParticipantId],
) -> Result<HashMap<ParticipantId, i64>, VaultError> {
    let raw: Vec<Vec<u8>> = ids.iter().map(|i| i.as_bytes().to_vec()).collect();
    Ok(sql::purge_seqs(vault.store(), &raw)
        .await?
        .into_iter()
        .filter_map(|(id, seq)| ParticipantId::from_slice(&id).map(|i| (i, seq)))
        .collect())
}

#[cfg(test)]
mod tests;
