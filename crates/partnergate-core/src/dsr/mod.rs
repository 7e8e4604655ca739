//! Data-subject requests (GDPR Art. 15-21): deadlines, a state machine, and resumable
//! execution in recorded steps.
//!
//! A request is `received`, then `verified` by the DPO (the requester's identity), then
//! `in_progress` while it runs, and ends `completed` or `refused` with a reason. Every step of
//! an execution is recorded once; running it again skips what is done, so a crash or restart
//! resumes where it stopped and a second run does no harm.
//!
//! Here: the kinds, states, errors and the public surface. `request` holds the state machine
//! (its rows are kept by `store::dsr`), `execute` one step function per kind, `export` the
//! access/portability bundle.

mod execute;
mod export;
mod request;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Date, Month};

use crate::vault::VaultError;

pub use execute::{Executed, ReceiptSigner, execute, retention_until, verify_receipt};
pub use export::{export_bundle, render_html};
pub use request::{create, extend, get, list, participant_of, person, refuse, verify};

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

impl From<crate::store::DbError> for DsrError {
    fn from(e: crate::store::DbError) -> Self {
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

/// Dates as stored and shown: YYYY-MM-DD.
const DATE: &[time::format_description::BorrowedFormatItem<'_>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, DATE).ok()
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
}
