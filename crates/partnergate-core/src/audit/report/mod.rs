//! The Data Protection Officer's access report: `partnergate audit report --out report.html`.
//!
//! [`render`] turns the audit records and the result of their verification into one
//! self-contained HTML5 page (inline CSS and SVG, no script, nothing fetched), readable on screen
//! and on paper: the verification result, accesses per partner and purpose with a chart over
//! time, refusals, and unusual patterns with the rule that found them.
//!
//! Rendering is one pass over the records building aggregates, then the page. Participant
//! pseudonyms are only ever counted, never printed; everything taken from a record is escaped.

mod clock;
mod html;
mod retention;
mod rules;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::action::Action;
use super::record::{AuditRecord, Outcome};
use super::verify::VerifyReport;
use clock::{Clock, DAY};
use rules::{Burst, Lookups, Night};

pub use clock::brussels_offset;
pub use rules::{
    BURST_REFUSALS, BURST_WINDOW_SECONDS, LOOKUP_BURST, LOOKUP_WINDOW_SECONDS,
    MANY_PARTICIPANTS_PER_DAY, NIGHT_END_HOUR, NIGHT_START_HOUR, NOT_INVOLVED_PARTICIPANTS,
    RATE_LIMITED, SELF_ASSIGN, SELF_ESCALATION, WIDENS_OWN_READING,
};

/// How many of the latest refusals the report lists.
pub const LATEST_REFUSALS: usize = 50;

/// Everything the report is made of.
pub struct ReportInput<'a> {
    /// The records covered, in chain order.
    pub records: &'a [AuditRecord],
    /// The result of verifying the chain these records come from.
    pub verification: &'a VerifyReport,
    /// Partner id → display name; ids without a name are shown as they are.
    pub partner_names: &'a BTreeMap<String, String>,
    /// When the report was made, as it should be printed.
    pub generated_at: &'a str,
    /// The partnership's name.
    pub partnership: &'a str,
}

/// Renders the report as one self-contained HTML5 document.
pub fn render(input: &ReportInput<'_>) -> String {
    html::page(input, &Aggregates::build(input.records))
}

/// Strings to small ids.
#[derive(Default)]
struct Interner<'a> {
    ids: HashMap<&'a str, u32>,
    names: Vec<&'a str>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, s: &'a str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 distinct names");
        self.ids.insert(s, id);
        self.names.push(s);
        id
    }
}

/// Who acted: the partner and its staff id, or the client when no acting user was given.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Actor<'a> {
    partner: u32,
    user: Option<&'a str>,
    client: &'a str,
}

/// All aggregates, built in one pass.
#[derive(Default)]
struct Aggregates<'a> {
    total: u64,
    granted: u64,
    refused: u64,
    untimed: u64,
    first: Option<i64>,
    last: Option<i64>,
    partners: Interner<'a>,
    purposes: Interner<'a>,
    participants: Interner<'a>,
    actors: HashMap<Actor<'a>, u32>,
    actor_list: Vec<Actor<'a>>,
    clients: HashSet<&'a str>,
    records_by_partner: HashMap<u32, u64>,
    granted_cells: HashMap<(u32, u32), u64>,
    granted_daily: HashMap<(i64, u32), u64>,
    refused_by_reason: HashMap<&'a str, u64>,
    refused_by_partner_reason: HashMap<(u32, &'a str), u64>,
    latest_refusals: VecDeque<(&'a AuditRecord, Option<i64>)>,
    read_day: HashSet<(u32, i64, u32)>,
    read_day_count: HashMap<(u32, i64), usize>,
    read_any: HashSet<(u32, u32)>,
    not_involved: HashSet<(u32, u32)>,
    night: HashMap<u32, Night>,
    bursts: HashMap<&'a str, Burst<'a>>,
    lookups: HashMap<&'a str, Lookups>,
    own_consents: Vec<(&'a AuditRecord, Option<i64>)>,
    self_assignments: Vec<(&'a AuditRecord, Option<i64>)>,
}

const NO_REASON: &str = "(no reason given)";
const NO_PURPOSE: &str = "(no purpose)";

impl<'a> Aggregates<'a> {
    fn build(records: &'a [AuditRecord]) -> Self {
        let mut a = Aggregates::default();
        let mut clock = Clock::new();
        for r in records {
            let times = clock.times(&r.time);
            // Text no version of the gateway writes is counted, but matches no rule.
            let action = Action::parse(&r.action);
            a.add(r, action, times.map(|t| t.1));
            a.watch(r, action, times);
        }
        a
    }

    fn actor(&mut self, actor: Actor<'a>) -> u32 {
        if let Some(&id) = self.actors.get(&actor) {
            return id;
        }
        let id = u32::try_from(self.actor_list.len()).expect("fewer than 2^32 actors");
        self.actors.insert(actor, id);
        self.actor_list.push(actor);
        id
    }

    fn add(&mut self, r: &'a AuditRecord, action: Option<Action>, local: Option<i64>) {
        self.total += 1;
        match local {
            Some(t) => {
                self.first = Some(self.first.map_or(t, |f| f.min(t)));
                self.last = Some(self.last.map_or(t, |l| l.max(t)));
            }
            None => self.untimed += 1,
        }
        let partner = self.partners.id(r.partner.as_deref().unwrap_or(""));
        self.clients.insert(&r.client);
        *self.records_by_partner.entry(partner).or_default() += 1;
        let day = local.map(|t| t.div_euclid(DAY));
        match r.decision {
            Outcome::Granted => {
                self.granted += 1;
                let purpose = self.purposes.id(r.purpose.as_deref().unwrap_or(NO_PURPOSE));
                *self.granted_cells.entry((partner, purpose)).or_default() += 1;
                if let Some(day) = day {
                    *self.granted_daily.entry((day, partner)).or_default() += 1;
                }
            }
            Outcome::Refused => {
                self.refused += 1;
                let reason = r.reason.as_deref().unwrap_or(NO_REASON);
                *self.refused_by_reason.entry(reason).or_default() += 1;
                *self
                    .refused_by_partner_reason
                    .entry((partner, reason))
                    .or_default() += 1;
                if self.latest_refusals.len() == LATEST_REFUSALS {
                    self.latest_refusals.pop_front();
                }
                self.latest_refusals.push_back((r, local));
                if let Some(t) = local {
                    self.burst(r, partner, reason, t);
                }
            }
        }
        self.track_read(r, action, partner, local);
    }
}
