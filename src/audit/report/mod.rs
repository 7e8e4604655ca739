//! The Data Protection Officer's access report: `partnergate audit report --out report.html`.
//!
//! [`render`] turns the audit records and the result of their verification into one
//! self-contained HTML5 page (inline CSS and SVG, no script, nothing fetched), readable on screen
//! and on paper: the verification result, accesses per partner and purpose with a chart over
//! time, refusals, and unusual patterns with the rule that found them.
//!
//! Rendering is one pass over the records building aggregates, then the page. Participant
//! pseudonyms are only ever counted, never printed; everything taken from a record is escaped.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

use super::action::Action;
use super::record::{AuditRecord, Outcome};
use super::verify::VerifyReport;
use crate::html::{Shell, push_escaped};

/// An acting user who reads at least this many distinct participants on one (Brussels) day is
/// flagged.
pub const MANY_PARTICIPANTS_PER_DAY: usize = 20;
/// An acting user refused as `not_involved` for at least this many distinct participants is
/// flagged.
pub const NOT_INVOLVED_PARTICIPANTS: usize = 5;
/// Night starts at this hour, Europe/Brussels local time (inclusive).
pub const NIGHT_START_HOUR: i64 = 22;
/// Night ends at this hour, Europe/Brussels local time (exclusive).
pub const NIGHT_END_HOUR: i64 = 6;
/// A client with at least this many refused records within [`BURST_WINDOW_SECONDS`] is flagged.
pub const BURST_REFUSALS: usize = 10;
/// The sliding window for refusal bursts, in seconds.
pub const BURST_WINDOW_SECONDS: i64 = 300;
/// How many of the latest refusals the report lists.
pub const LATEST_REFUSALS: usize = 50;
/// A client with at least this many [`Action::ParticipantLookup`] records within
/// [`LOOKUP_WINDOW_SECONDS`] is flagged.
pub const LOOKUP_BURST: usize = 30;
/// The sliding window for look-up bursts, in seconds.
pub const LOOKUP_WINDOW_SECONDS: i64 = 600;
/// The refusal reason of a look-up past the per-client limit (429).
pub const RATE_LIMITED: &str = "rate_limited";
/// Marker in a granted [`Action::ConsentRecord`] reason: the consent widens what the recording partner
/// itself may read (`"<scope>;widens_own_reading"`).
pub const WIDENS_OWN_READING: &str = "widens_own_reading";
/// Marker in a granted [`Action::InvolvementStart`] reason: a partner gave a role to itself, as the
/// agreement allows (`"<partner>:<role>;self_assign"`).
pub const SELF_ASSIGN: &str = "self_assign";
/// The refusal reason of a self-assignment that would widen the caller's own reading.
pub const SELF_ESCALATION: &str = "self_escalation";

/// Rows shown per unusual-pattern table; the rest is counted.
const MAX_PATTERN_ROWS: usize = 100;
/// Partners drawn as their own series in the chart; the others are stacked as one.
const MAX_SERIES: usize = 8;
const PALETTE: [&str; MAX_SERIES] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
];
const OTHER_COLOUR: &str = "#bab0ac";
/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
const DAY: i64 = 86_400;

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

/// Escapes text for HTML; kept under this name for the callers that import it from here.
pub use crate::html::escape as escape_html;

/// The Europe/Brussels offset from UTC at instant `at`: +02:00 (CEST) from 01:00 UTC on the last
/// Sunday of March until 01:00 UTC on the last Sunday of October, +01:00 (CET) otherwise.
pub fn brussels_offset(at: OffsetDateTime) -> UtcOffset {
    let utc = at.to_offset(UtcOffset::UTC);
    let (start, end) = summer_time(utc.year());
    let hours = if (start..end).contains(&utc.unix_timestamp()) {
        2
    } else {
        1
    };
    UtcOffset::from_hms(hours, 0, 0).expect("a whole-hour offset is valid")
}

/// Unix times at which summer time starts and ends in `year` (EU rule: 01:00 UTC on the last
/// Sundays of March and October).
fn summer_time(year: i32) -> (i64, i64) {
    let last_sunday = |next_month: Month| {
        let first =
            Date::from_calendar_date(year, next_month, 1).expect("the first of a month exists");
        PrimitiveDateTime::new(
            first.prev_occurrence(Weekday::Sunday),
            Time::from_hms(1, 0, 0).expect("01:00"),
        )
        .assume_utc()
        .unix_timestamp()
    };
    (last_sunday(Month::April), last_sunday(Month::November))
}

/// Converts record times to Brussels local seconds, remembering one year's summer-time bounds.
struct Clock {
    year: i32,
    summer: (i64, i64),
}

impl Clock {
    fn new() -> Self {
        Self {
            year: 1970,
            summer: summer_time(1970),
        }
    }

    /// A record time as (UTC, local Brussels) seconds since the Unix epoch of each clock.
    /// Windows are measured in UTC, so the October change of clocks does not stretch them.
    fn times(&mut self, text: &str) -> Option<(i64, i64)> {
        let (year, utc) = parse_utc(text)?;
        if year != self.year {
            self.year = year;
            self.summer = summer_time(year);
        }
        let offset = if (self.summer.0..self.summer.1).contains(&utc) {
            2
        } else {
            1
        };
        Some((utc, utc + offset * 3600))
    }
}

/// Parses a record time to (UTC year, Unix seconds). The audit format
/// `YYYY-MM-DDTHH:MM:SS.mmmZ` is read directly; anything else goes through RFC 3339.
fn parse_utc(text: &str) -> Option<(i32, i64)> {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| -> Option<i64> {
        let mut n = 0i64;
        for &c in b.get(from..to)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    };
    let fast = || -> Option<(i32, i64)> {
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        if *b.last()? != b'Z' {
            return None;
        }
        let year = i32::try_from(digits(0, 4)?).ok()?;
        let month = Month::try_from(u8::try_from(digits(5, 7)?).ok()?).ok()?;
        let day = u8::try_from(digits(8, 10)?).ok()?;
        let (h, m, s) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
        if h > 23 || m > 59 || s > 60 {
            return None;
        }
        let date = Date::from_calendar_date(year, month, day).ok()?;
        let days = i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY;
        Some((year, days * DAY + h * 3600 + m * 60 + s))
    };
    fast().or_else(|| {
        let t = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        let t = t.to_offset(UtcOffset::UTC);
        Some((t.year(), t.unix_timestamp()))
    })
}

fn date_of_day(day: i64) -> Option<Date> {
    Date::from_julian_day(i32::try_from(day + UNIX_EPOCH_JULIAN_DAY).ok()?).ok()
}

fn fmt_day(day: i64) -> String {
    match date_of_day(day) {
        Some(d) => format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()),
        None => "?".into(),
    }
}

/// Local seconds → `YYYY-MM-DD HH:MM:SS`.
fn fmt_local(ts: i64) -> String {
    let secs = ts.rem_euclid(DAY);
    format!(
        "{} {:02}:{:02}:{:02}",
        fmt_day(ts.div_euclid(DAY)),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn is_night(local: i64) -> bool {
    let hour = local.rem_euclid(DAY) / 3600;
    !(NIGHT_END_HOUR..NIGHT_START_HOUR).contains(&hour)
}

/// The code of a reason: what comes before any `;` marker or ` (…)` detail.
fn reason_code(reason: &str) -> &str {
    reason.split([';', ' ']).next().unwrap_or("")
}

/// Whether a reason carries `marker` as one of its `;`-separated qualifiers after the first.
fn has_marker(reason: &str, marker: &str) -> bool {
    reason.split(';').skip(1).any(|m| m.trim() == marker)
}

/// Thousands with a comma.
fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
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

#[derive(Default)]
struct ManyReads {
    max_day: usize,
    max_day_at: i64,
    days_over: u32,
    not_involved: usize,
    total_distinct: usize,
}

struct Night {
    reads: u64,
    refused: u64,
    participants: HashSet<u32>,
    nights: HashSet<i64>,
    first: i64,
    last: i64,
}

#[derive(Default)]
struct Burst<'a> {
    partner: u32,
    window: VecDeque<(i64, &'a str)>,
    in_burst: bool,
    bursts: u32,
    largest: usize,
    in_bursts: u64,
    first: i64,
    last: i64,
    reasons: HashMap<&'a str, u64>,
}

/// Look-ups by one client: bursts in a sliding window, and refusals past the rate limit.
#[derive(Default)]
struct Lookups {
    partner: u32,
    total: u64,
    /// (UTC, local) times of the look-ups inside the current window.
    window: VecDeque<(i64, i64)>,
    in_burst: bool,
    bursts: u32,
    largest: usize,
    first: Option<i64>,
    last: i64,
    rate_limited: u64,
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
        let Some(pseudonym) = r.participant.as_deref() else {
            return;
        };
        // Reads are what the night and many-participants rules look at.
        let reading = action.is_some_and(Action::is_read);
        let not_involved =
            r.decision == Outcome::Refused && r.reason.as_deref() == Some("not_involved");
        if !reading && !not_involved {
            return;
        }
        let actor = self.actor(Actor {
            partner,
            user: r.acting_user.as_deref(),
            client: if r.acting_user.is_some() {
                ""
            } else {
                &r.client
            },
        });
        let participant = self.participants.id(pseudonym);
        if not_involved {
            self.not_involved.insert((actor, participant));
        }
        if !reading {
            return;
        }
        self.read_any.insert((actor, participant));
        let (Some(day), Some(t)) = (day, local) else {
            return;
        };
        if self.read_day.insert((actor, day, participant)) {
            *self.read_day_count.entry((actor, day)).or_default() += 1;
        }
        if is_night(t) {
            let n = self.night.entry(actor).or_insert_with(|| Night {
                reads: 0,
                refused: 0,
                participants: HashSet::new(),
                nights: HashSet::new(),
                first: t,
                last: t,
            });
            n.reads += 1;
            n.refused += u64::from(r.decision == Outcome::Refused);
            n.participants.insert(participant);
            // A night belongs to the day it started: 02:00 counts with the evening before.
            n.nights.insert((t - NIGHT_END_HOUR * 3600).div_euclid(DAY));
            n.first = n.first.min(t);
            n.last = n.last.max(t);
        }
    }

    /// The rules on look-ups, self-widening consents and self-assignments.
    fn watch(&mut self, r: &'a AuditRecord, action: Option<Action>, times: Option<(i64, i64)>) {
        let local = times.map(|t| t.1);
        let granted = r.decision == Outcome::Granted;
        let reason = r.reason.as_deref().unwrap_or("");
        let rate_limited = !granted && reason_code(reason) == RATE_LIMITED;
        let lookup = action == Some(Action::ParticipantLookup);
        if lookup || rate_limited {
            let partner = self.partners.id(r.partner.as_deref().unwrap_or(""));
            let l = self.lookups.entry(&r.client).or_default();
            l.partner = partner;
            l.rate_limited += u64::from(rate_limited);
            if lookup {
                l.total += 1;
                if let Some(t) = times {
                    l.add(t);
                }
            }
        }
        let own_consent = granted
            && action == Some(Action::ConsentRecord)
            && has_marker(reason, WIDENS_OWN_READING);
        if own_consent {
            self.own_consents.push((r, local));
        }
        let self_assign = (granted
            && action == Some(Action::InvolvementStart)
            && has_marker(reason, SELF_ASSIGN))
            || (!granted && reason_code(reason) == SELF_ESCALATION);
        if self_assign {
            self.self_assignments.push((r, local));
        }
    }

    fn burst(&mut self, r: &'a AuditRecord, partner: u32, reason: &'a str, t: i64) {
        let b = self.bursts.entry(&r.client).or_default();
        b.partner = partner;
        b.window.push_back((t, reason));
        while b
            .window
            .front()
            .is_some_and(|&(s, _)| s <= t - BURST_WINDOW_SECONDS)
        {
            b.window.pop_front();
        }
        if b.window.len() < BURST_REFUSALS {
            b.in_burst = false;
            return;
        }
        if b.in_burst {
            b.in_bursts += 1;
            *b.reasons.entry(reason).or_default() += 1;
        } else {
            b.in_burst = true;
            b.bursts += 1;
            let start = b.window.front().map_or(t, |w| w.0);
            if b.bursts == 1 {
                b.first = start;
            }
            b.last = start;
            b.in_bursts += b.window.len() as u64;
            for &(_, why) in &b.window {
                *b.reasons.entry(why).or_default() += 1;
            }
        }
        b.largest = b.largest.max(b.window.len());
    }
}

impl Lookups {
    /// Adds one look-up at (UTC, local) time `t`; records arrive in chain (time) order.
    fn add(&mut self, t: (i64, i64)) {
        self.window.push_back(t);
        while self
            .window
            .front()
            .is_some_and(|&(s, _)| s <= t.0 - LOOKUP_WINDOW_SECONDS)
        {
            self.window.pop_front();
        }
        if self.window.len() < LOOKUP_BURST {
            self.in_burst = false;
            return;
        }
        if !self.in_burst {
            self.in_burst = true;
            self.bursts += 1;
            let start = self.window.front().map_or(t.1, |w| w.1);
            self.first.get_or_insert(start);
            self.last = start;
        }
        self.largest = self.largest.max(self.window.len());
    }
}

/// Renders the report as one self-contained HTML5 document.
pub fn render(input: &ReportInput<'_>) -> String {
    let a = Aggregates::build(input.records);
    let mut page = Page {
        out: String::with_capacity(128 * 1024),
        names: input.partner_names,
        a: &a,
    };
    page.head(input);
    page.summary(input);
    page.verification(input.verification, a.total);
    page.accesses();
    page.refusals();
    page.unusual();
    page.footer();
    page.out
}

struct Page<'p, 'a> {
    out: String,
    names: &'p BTreeMap<String, String>,
    a: &'p Aggregates<'a>,
}

const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #1d2430; background: #fff; max-width: 1120px; margin: 24px auto; padding: 0 24px; }
header { border-bottom: 3px solid #1d2430; padding-bottom: 10px; margin-bottom: 16px; }
h1 { font-size: 26px; margin: 0; }
.subtitle { color: #5a6472; font-style: italic; margin: 2px 0 0; }
h2 { font-size: 19px; margin: 28px 0 6px; border-bottom: 1px solid #c9ced6; padding-bottom: 3px; }
h3 { font-size: 15px; margin: 18px 0 4px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.fact { flex: 1 1 130px; background: #f3f5f7; border-radius: 6px; padding: 8px 12px; }
.fact b { display: block; font-size: 12px; color: #5a6472; font-weight: 600; text-transform: uppercase; letter-spacing: .03em; }
.fact span { font-size: 16px; font-weight: 600; }
.fact.wide { flex: 2 1 auto; }
.fact.wide span { white-space: nowrap; }
.banner { padding: 14px 18px; border-radius: 8px; font-size: 20px; font-weight: 700; margin: 12px 0 4px; }
.banner small { display: block; font-size: 13px; font-weight: 400; margin-top: 4px; }
.ok { background: #e6f4ea; border: 2px solid #1e8e3e; color: #0d652d; }
.broken { background: #fce8e6; border: 2px solid #d93025; color: #a50e0e; }
.note { color: #5a6472; font-size: 13px; margin: 4px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border-bottom: 1px solid #dde1e6; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num, td.time, td.nowrap, .id { white-space: nowrap; }
td.hit { color: #a50e0e; font-weight: 700; }
table.wide { width: 100%; }
td.zero { color: #b0b6bf; }
tr.total td, tr.total th { font-weight: 700; border-top: 2px solid #9aa3ad; }
.id { color: #6b7480; font-size: 11px; margin-left: 4px; }
.pair { display: flex; flex-wrap: wrap; gap: 0 32px; }
.rule { background: #f7f8fa; border-left: 4px solid #8a94a3; padding: 8px 12px; margin: 6px 0 8px; }
.none { color: #1e8e3e; font-weight: 600; margin: 4px 0 12px; }
.found { color: #a50e0e; font-weight: 600; margin: 4px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; margin: 4px 0 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -1px; border-radius: 2px; }
svg { display: block; width: 100%; height: auto; }
footer { margin-top: 32px; border-top: 1px solid #c9ced6; padding-top: 10px; font-size: 13px; color: #3c4450; }
code { background: #f3f5f7; padding: 1px 4px; border-radius: 3px; font-size: 12.5px; }
@page { size: A4; margin: 14mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 11px; }
  h2 { break-after: avoid; }
  tr, .banner, .rule, svg { break-inside: avoid; }
  .banner, .fact, th, .legend i, .rule { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .scroll { overflow: visible; }
}
"#;

impl Page<'_, '_> {
    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn e(&mut self, s: &str) {
        push_escaped(&mut self.out, s);
    }

    /// A partner cell: its name with the id beside it.
    fn partner(&mut self, id: &str) {
        if id.is_empty() {
            self.w("<em>(no partner)</em>");
            return;
        }
        match self.names.get(id) {
            Some(name) if name != id => {
                self.e(name);
                self.w("<span class=\"id\">");
                self.e(id);
                self.w("</span>");
            }
            _ => self.e(id),
        }
    }

    fn partner_name(&self, id: &str) -> String {
        if id.is_empty() {
            return "(no partner)".into();
        }
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    fn actor(&mut self, actor: &Actor<'_>) {
        match actor.user {
            Some(u) => self.e(u),
            None => {
                self.w("<em>(no acting user)</em> client ");
                self.e(actor.client);
            }
        }
    }

    fn head(&mut self, input: &ReportInput<'_>) {
        Shell {
            lang: "en",
            title: &format!("Audit report – {}", input.partnership),
            css: STYLE,
        }
        .open(&mut self.out);
        self.w("<header>\n<h1>Access report: ");
        self.e(input.partnership);
        self.w("</h1>\n<p class=\"subtitle\" lang=\"nl\">Toegangsrapport van het auditlogboek voor de functionaris voor gegevensbescherming (DPO)</p>\n</header>\n");
    }

    fn summary(&mut self, input: &ReportInput<'_>) {
        let a = self.a;
        let period = match (a.first, a.last) {
            (Some(f), Some(l)) => format!("{} – {}", &fmt_local(f)[..16], &fmt_local(l)[..16]),
            _ => "no records".into(),
        };
        self.w("<section id=\"summary\">\n<div class=\"facts\">\n");
        let facts = [
            ("Generated", escape_html(input.generated_at)),
            ("Period covered", escape_html(&period)),
            ("Records", num(a.total)),
            (
                "Granted / refused",
                format!("{} / {}", num(a.granted), num(a.refused)),
            ),
            (
                "Partners / clients",
                format!("{} / {}", a.partners.names.len(), a.clients.len()),
            ),
        ];
        for (label, value) in facts {
            let class = if label == "Period covered" {
                "fact wide"
            } else {
                "fact"
            };
            let _ = writeln!(
                self.out,
                "<div class=\"{class}\"><b>{label}</b><span>{value}</span></div>"
            );
        }
        self.w("</div>\n<p class=\"note\">All times are Europe/Brussels local time (CET/CEST), converted from the log's UTC times.");
        if a.untimed > 0 {
            let _ = write!(
                self.out,
                " {} record(s) have an unreadable time and are left out of the time-based parts.",
                num(a.untimed)
            );
        }
        self.w("</p>\n</section>\n");
    }

    fn verification(&mut self, v: &VerifyReport, covered: u64) {
        self.w("<section id=\"verification\">\n<h2>Integrity of the log</h2>\n");
        if v.ok {
            let _ = write!(
                self.out,
                "<div class=\"banner ok\">&#10004; Chain verified: {} records, {} signed checkpoints",
                num(v.records),
                num(v.checkpoints)
            );
            self.w("<small>Every record's hash links to the one before it and every checkpoint signature is valid.</small></div>\n");
            if v.checkpoints == 0 {
                self.w("<p class=\"note\">There is no signed checkpoint yet, so the chain is not yet bound to a signature.</p>\n");
            }
            if v.unsigned_tail > 0 {
                let _ = writeln!(
                    self.out,
                    "<p class=\"note\" id=\"unsigned-tail\">Signed through sequence {}; the last {} record(s) after it verify but are not yet covered by a signed checkpoint. That is not a fault: the gateway signs every few seconds and when it stops. Until then, deleting them would leave no trace.</p>",
                    v.signed_through,
                    num(v.unsigned_tail)
                );
            }
        } else {
            self.w("<div class=\"banner broken\">&#10008; Chain BROKEN");
            if let Some(seq) = v.first_bad {
                let _ = write!(self.out, " at sequence {seq}");
            }
            self.w(": ");
            self.e(v.problem.as_deref().unwrap_or("unknown problem"));
            let _ = writeln!(
                self.out,
                "<small>{} records and {} checkpoints were examined. Records from that point on cannot be trusted; treat this as a possible incident.</small></div>",
                num(v.records),
                num(v.checkpoints)
            );
        }
        if v.records != covered {
            let _ = writeln!(
                self.out,
                "<p class=\"note\">The verification examined {} records; this report covers {}.</p>",
                num(v.records),
                num(covered)
            );
        }
        self.w("</section>\n");
    }

    fn accesses(&mut self) {
        let a = self.a;
        self.w("<section id=\"accesses\">\n<h2>Accesses per partner and purpose</h2>\n");
        self.w("<p class=\"note\">Granted records: one per participant per access (reads, writes, look-ups, …).</p>\n");
        if a.granted == 0 {
            self.w("<p class=\"none\">No granted accesses in this period.</p>\n</section>\n");
            return;
        }
        let mut purpose_totals = vec![0u64; a.purposes.names.len()];
        let mut partner_totals = vec![0u64; a.partners.names.len()];
        for (&(p, u), &n) in &a.granted_cells {
            purpose_totals[u as usize] += n;
            partner_totals[p as usize] += n;
        }
        let mut purposes: Vec<u32> = (0..a.purposes.names.len() as u32).collect();
        purposes.sort_by(|&x, &y| {
            purpose_totals[y as usize]
                .cmp(&purpose_totals[x as usize])
                .then_with(|| a.purposes.names[x as usize].cmp(a.purposes.names[y as usize]))
        });
        let mut partners: Vec<u32> = (0..a.partners.names.len() as u32)
            .filter(|&p| partner_totals[p as usize] > 0)
            .collect();
        partners.sort_by_key(|&p| {
            self.partner_name(a.partners.names[p as usize])
                .to_lowercase()
        });
        self.w("<div class=\"scroll\"><table id=\"partner-purpose\">\n<thead><tr><th>Partner</th>");
        for &u in &purposes {
            self.w("<th class=\"num\">");
            self.e(a.purposes.names[u as usize]);
            self.w("</th>");
        }
        self.w("<th class=\"num\">Total</th></tr></thead>\n<tbody>\n");
        for &p in &partners {
            let pid = a.partners.names[p as usize];
            self.w("<tr><th scope=\"row\">");
            self.partner(pid);
            self.w("</th>");
            for &u in &purposes {
                let n = a.granted_cells.get(&(p, u)).copied().unwrap_or(0);
                self.w("<td class=\"num");
                if n == 0 {
                    self.w(" zero");
                }
                self.w("\" data-partner=\"");
                self.e(pid);
                self.w("\" data-purpose=\"");
                self.e(a.purposes.names[u as usize]);
                let _ = write!(self.out, "\">{}</td>", num(n));
            }
            let _ = writeln!(
                self.out,
                "<td class=\"num\">{}</td></tr>",
                num(partner_totals[p as usize])
            );
        }
        self.w("<tr class=\"total\"><th scope=\"row\">Total</th>");
        for &u in &purposes {
            let _ = write!(
                self.out,
                "<td class=\"num\">{}</td>",
                num(purpose_totals[u as usize])
            );
        }
        let _ = writeln!(self.out, "<td class=\"num\">{}</td></tr>", num(a.granted));
        self.w("</tbody></table></div>\n");
        self.chart(&partner_totals);
        self.w("</section>\n");
    }

    fn chart(&mut self, partner_totals: &[u64]) {
        let a = self.a;
        if a.granted_daily.is_empty() {
            return;
        }
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for &(d, _) in a.granted_daily.keys() {
            lo = lo.min(d);
            hi = hi.max(d);
        }
        let span = hi - lo + 1;
        let (unit, bucket): (&str, fn(i64) -> i64) = if span <= 92 {
            ("day", |d| d)
        } else if span <= 92 * 7 {
            // Weeks start on Monday; 1970-01-01 was a Thursday.
            ("week (from Monday)", |d| d - (d + 3).rem_euclid(7))
        } else {
            ("month", |d| {
                date_of_day(d).map_or(0, |x| {
                    i64::from(x.year()) * 12 + i64::from(u8::from(x.month())) - 1
                })
            })
        };
        let monthly = unit == "month";
        let (first, last) = (bucket(lo), bucket(hi));
        let step = if unit.starts_with("week") { 7 } else { 1 };
        let keys: Vec<i64> = (first..=last).step_by(step).collect();
        let index: HashMap<i64, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();

        // The biggest partners get their own colour; the rest are stacked as one.
        let mut ranked: Vec<usize> = (0..partner_totals.len())
            .filter(|&p| partner_totals[p] > 0)
            .collect();
        ranked.sort_by(|&x, &y| partner_totals[y].cmp(&partner_totals[x]).then(x.cmp(&y)));
        let own = if ranked.len() > MAX_SERIES {
            MAX_SERIES - 1
        } else {
            ranked.len()
        };
        let mut series_of = vec![own; partner_totals.len()];
        for (s, &p) in ranked.iter().take(own).enumerate() {
            series_of[p] = s;
        }
        let series = own + usize::from(ranked.len() > own);
        let mut counts = vec![vec![0u64; series]; keys.len()];
        for (&(d, p), &n) in &a.granted_daily {
            counts[index[&bucket(d)]][series_of[p as usize]] += n;
        }
        let labels: Vec<String> = (0..series)
            .map(|s| {
                if s < own {
                    self.partner_name(a.partners.names[ranked[s]])
                } else {
                    "other partners".into()
                }
            })
            .collect();
        let colour = |s: usize| if s < own { PALETTE[s] } else { OTHER_COLOUR };
        let key_label = |k: i64| -> String {
            if monthly {
                format!("{:04}-{:02}", k.div_euclid(12), k.rem_euclid(12) + 1)
            } else {
                fmt_day(k)
            }
        };

        let max = counts
            .iter()
            .map(|c| c.iter().sum::<u64>())
            .max()
            .unwrap_or(0)
            .max(1);
        let tick = nice_step(max, 5);
        let top = max.div_ceil(tick) * tick;
        let (width, height) = (1080.0f64, 340.0f64);
        let (left, right, upper, lower) = (64.0, 12.0, 14.0, 58.0);
        let plot_w = width - left - right;
        let plot_h = height - upper - lower;
        let slot = plot_w / keys.len() as f64;
        let bar = if slot >= 4.0 { slot * 0.8 } else { slot };
        let y_of = |v: u64| upper + plot_h - v as f64 / top as f64 * plot_h;

        let _ = writeln!(self.out, "<h3>Granted accesses per {unit}, by partner</h3>");
        let _ = writeln!(
            self.out,
            "<svg id=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Granted accesses per {unit}, stacked by partner\" font-family=\"system-ui, sans-serif\" font-size=\"11\">"
        );
        // Grid and y axis.
        let mut v = 0;
        while v <= top {
            let y = y_of(v);
            let _ = writeln!(
                self.out,
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"1\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#444\">{}</text>",
                width - right,
                if v == 0 { "#555" } else { "#e3e6ea" },
                left - 6.0,
                y + 4.0,
                num(v)
            );
            v += tick;
        }
        let _ = writeln!(
            self.out,
            "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\" fill=\"#444\">granted records</text>",
            upper + plot_h / 2.0
        );
        // Bars.
        for (i, c) in counts.iter().enumerate() {
            let x = left + i as f64 * slot + (slot - bar) / 2.0;
            let mut base = 0u64;
            for (s, &n) in c.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let (y1, y0) = (y_of(base + n), y_of(base));
                let _ = write!(
                    self.out,
                    "<rect x=\"{x:.2}\" y=\"{y1:.2}\" width=\"{bar:.2}\" height=\"{:.2}\" fill=\"{}\"><title>",
                    y0 - y1,
                    colour(s)
                );
                let text = format!("{} · {}: {}", key_label(keys[i]), labels[s], num(n));
                self.e(&text);
                self.w("</title></rect>");
                base += n;
            }
            self.w("\n");
        }
        // X axis labels: about ten, evenly spaced.
        let every = keys.len().div_ceil(10).max(1);
        for (i, &k) in keys.iter().enumerate().step_by(every) {
            let x = left + (i as f64 + 0.5) * slot;
            let _ = writeln!(
                self.out,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#555\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
                upper + plot_h,
                upper + plot_h + 4.0,
                upper + plot_h + 17.0,
                key_label(k)
            );
        }
        let _ = writeln!(
            self.out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{} (Europe/Brussels)</text>\n</svg>",
            left + plot_w / 2.0,
            height - 10.0,
            if monthly {
                "month"
            } else if step == 7 {
                "week starting"
            } else {
                "day"
            }
        );
        self.w("<div class=\"legend\">");
        for (s, label) in labels.iter().enumerate() {
            let _ = write!(self.out, "<span><i style=\"background:{}\"></i>", colour(s));
            self.e(label);
            self.w("</span>");
        }
        self.w("</div>\n");
    }

    fn refusals(&mut self) {
        let a = self.a;
        self.w("<section id=\"refusals\">\n<h2>Refusals</h2>\n");
        if a.refused == 0 {
            self.w("<p class=\"none\">No refused requests in this period.</p>\n</section>\n");
            return;
        }
        let _ = writeln!(
            self.out,
            "<p class=\"note\">{} of {} records ({}) are refusals: requests the policy or the gateway did not allow.</p>",
            num(a.refused),
            num(a.total),
            pct(a.refused, a.total)
        );
        let mut reasons: Vec<(&str, u64)> =
            a.refused_by_reason.iter().map(|(&r, &n)| (r, n)).collect();
        reasons.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
        let mut by_partner: HashMap<u32, (u64, &str, u64)> = HashMap::new();
        for (&(p, reason), &n) in &a.refused_by_partner_reason {
            let e = by_partner.entry(p).or_insert((0, reason, 0));
            e.0 += n;
            if n > e.2 || (n == e.2 && reason < e.1) {
                e.1 = reason;
                e.2 = n;
            }
        }
        let mut partners: Vec<(u32, (u64, &str, u64))> = by_partner.into_iter().collect();
        partners.sort_by(|x, y| y.1.0.cmp(&x.1.0).then(x.0.cmp(&y.0)));

        self.w("<div class=\"pair\">\n<div><h3>By reason</h3><table id=\"refusals-by-reason\"><thead><tr><th>Reason</th><th class=\"num\">Refused</th><th class=\"num\">Share</th></tr></thead><tbody>\n");
        for (reason, n) in reasons {
            self.w("<tr><td>");
            self.e(reason);
            let _ = writeln!(
                self.out,
                "</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                num(n),
                pct(n, a.refused)
            );
        }
        self.w("</tbody></table></div>\n<div><h3>By partner</h3><table id=\"refusals-by-partner\"><thead><tr><th>Partner</th><th class=\"num\">Refused</th><th class=\"num\">Of its records</th><th>Most frequent reason</th></tr></thead><tbody>\n");
        for (p, (n, top, top_n)) in partners {
            let pid = a.partners.names[p as usize];
            let all = a.records_by_partner.get(&p).copied().unwrap_or(0);
            self.w("<tr><td>");
            self.partner(pid);
            let _ = write!(
                self.out,
                "</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>",
                num(n),
                pct(n, all)
            );
            self.e(top);
            let _ = writeln!(self.out, " ({})</td></tr>", num(top_n));
        }
        self.w("</tbody></table></div>\n</div>\n");

        let _ = writeln!(
            self.out,
            "<h3>Latest {} refusals</h3>\n<div class=\"scroll\"><table id=\"latest-refusals\"><thead><tr><th class=\"num\">Seq</th><th>Time</th><th>Client</th><th>Partner</th><th>Acting user</th><th>Purpose</th><th>Action</th><th>Reason</th></tr></thead><tbody>",
            a.latest_refusals.len()
        );
        for &(r, local) in a.latest_refusals.iter().rev() {
            let _ = write!(
                self.out,
                "<tr><td class=\"num\">{}</td><td class=\"time\">",
                r.seq
            );
            match local {
                Some(t) => self.w(&fmt_local(t)),
                None => self.e(&r.time),
            }
            self.w("</td><td class=\"nowrap\">");
            self.e(&r.client);
            self.w("</td><td>");
            self.partner(r.partner.as_deref().unwrap_or(""));
            self.w("</td><td class=\"nowrap\">");
            self.e(r.acting_user.as_deref().unwrap_or("–"));
            self.w("</td><td>");
            self.e(r.purpose.as_deref().unwrap_or("–"));
            self.w("</td><td class=\"nowrap\">");
            self.e(&r.action);
            self.w("</td><td>");
            self.e(r.reason.as_deref().unwrap_or("–"));
            self.w("</td></tr>\n");
        }
        self.w("</tbody></table></div>\n</section>\n");
    }

    fn unusual(&mut self) {
        self.w("<section id=\"unusual\">\n<h2>Unusual patterns</h2>\n");
        // The list comes from the actions themselves, so the page names what is counted.
        let reads: Vec<String> = Action::ALL
            .iter()
            .filter(|a| a.is_read())
            .map(|&a| match a {
                Action::SyncDisclose => {
                    format!("<code>{a}</code> (fields sent to a CRM by the feed)")
                }
                a => format!("<code>{a}</code>"),
            })
            .collect();
        let _ = writeln!(
            self.out,
            "<p class=\"note\">These rules point at what a DPO may want to look into; a match is not by itself a breach. Reads are {} records, granted or refused. Participants are counted by their audit pseudonym; no pseudonym is shown.</p>",
            reads.join(", ")
        );
        self.many_reads();
        self.night_reads();
        self.refusal_bursts();
        self.lookup_bursts();
        self.own_consents();
        self.self_assignments();
        self.w("</section>\n");
    }

    fn found(&mut self, rows: usize, what: &str) {
        let _ = writeln!(
            self.out,
            "<p class=\"found\">{} {what}{} found.</p>",
            num(rows as u64),
            if rows == 1 { "" } else { "s" }
        );
    }

    fn more(&mut self, rows: usize) {
        if rows > MAX_PATTERN_ROWS {
            let _ = writeln!(
                self.out,
                "<p class=\"note\">… and {} more, not shown.</p>",
                num((rows - MAX_PATTERN_ROWS) as u64)
            );
        }
    }

    fn many_reads(&mut self) {
        let a = self.a;
        let mut stats: HashMap<u32, ManyReads> = HashMap::new();
        for (&(actor, day), &n) in &a.read_day_count {
            let s = stats.entry(actor).or_default();
            if n > s.max_day || (n == s.max_day && day < s.max_day_at) {
                s.max_day = n;
                s.max_day_at = day;
            }
            s.days_over += u32::from(n >= MANY_PARTICIPANTS_PER_DAY);
        }
        for &(actor, _) in &a.not_involved {
            stats.entry(actor).or_default().not_involved += 1;
        }
        for &(actor, _) in &a.read_any {
            stats.entry(actor).or_default().total_distinct += 1;
        }
        let mut flagged: Vec<(u32, ManyReads)> = stats
            .into_iter()
            .filter(|(_, s)| {
                s.max_day >= MANY_PARTICIPANTS_PER_DAY
                    || s.not_involved >= NOT_INVOLVED_PARTICIPANTS
            })
            .collect();
        flagged.sort_by(|x, y| {
            (y.1.max_day.max(y.1.not_involved))
                .cmp(&x.1.max_day.max(x.1.not_involved))
                .then(x.0.cmp(&y.0))
        });
        self.w("<section id=\"unusual-many\">\n<h3>(a) One acting user reading many participants</h3>\n");
        let _ = writeln!(
            self.out,
            "<div class=\"rule\">Flagged when an acting user read at least <b>{MANY_PARTICIPANTS_PER_DAY} distinct participants on one day</b> (Brussels calendar day), or was refused as <code>not_involved</code> (no case role for the participant) for at least <b>{NOT_INVOLVED_PARTICIPANTS} distinct participants</b> in the period. A coach follows about 25 cases; browsing beyond one's own caseload is what this looks for.</div>"
        );
        if flagged.is_empty() {
            self.w("<p class=\"none\">None found.</p>\n</section>\n");
            return;
        }
        self.found(flagged.len(), "acting user");
        self.w("<div class=\"scroll\"><table class=\"wide\"><thead><tr><th>Acting user</th><th>Partner</th><th class=\"num\">Most participants read in one day</th><th>On</th><th class=\"num\">Days at or over the threshold</th><th class=\"num\">Participants refused as not_involved</th><th class=\"num\">Participants read in the period</th></tr></thead><tbody>\n");
        for (actor, s) in flagged.iter().take(MAX_PATTERN_ROWS) {
            let actor = a.actor_list[*actor as usize];
            self.w("<tr><td class=\"nowrap\">");
            self.actor(&actor);
            self.w("</td><td>");
            self.partner(a.partners.names[actor.partner as usize]);
            let hit = |yes: bool| if yes { "num hit" } else { "num" };
            let _ = writeln!(
                self.out,
                "</td><td class=\"{}\">{}</td><td class=\"time\">{}</td><td class=\"num\">{}</td><td class=\"{}\">{}</td><td class=\"num\">{}</td></tr>",
                hit(s.max_day >= MANY_PARTICIPANTS_PER_DAY),
                s.max_day,
                if s.max_day > 0 {
                    fmt_day(s.max_day_at)
                } else {
                    "–".into()
                },
                s.days_over,
                hit(s.not_involved >= NOT_INVOLVED_PARTICIPANTS),
                s.not_involved,
                s.total_distinct
            );
        }
        self.w("</tbody></table></div>\n");
        self.more(flagged.len());
        self.w("</section>\n");
    }

    fn night_reads(&mut self) {
        let a = self.a;
        let mut flagged: Vec<(u32, &Night)> = a.night.iter().map(|(&k, v)| (k, v)).collect();
        flagged.sort_by(|x, y| y.1.reads.cmp(&x.1.reads).then(x.0.cmp(&y.0)));
        self.w("<section id=\"unusual-night\">\n<h3>(b) Reads at night</h3>\n");
        let _ = writeln!(
            self.out,
            "<div class=\"rule\">Flagged: every acting user with at least one read between <b>{NIGHT_START_HOUR:02}:00 and {NIGHT_END_HOUR:02}:00 Europe/Brussels time</b> (UTC+1, and UTC+2 from 01:00 UTC on the last Sunday of March until 01:00 UTC on the last Sunday of October). Partners' staff work office hours; night reads may be legitimate (crisis shelter, on-call) but deserve a look.</div>"
        );
        if flagged.is_empty() {
            self.w("<p class=\"none\">None found.</p>\n</section>\n");
            return;
        }
        self.found(flagged.len(), "acting user");
        self.w("<div class=\"scroll\"><table class=\"wide\"><thead><tr><th>Acting user</th><th>Partner</th><th class=\"num\">Night reads</th><th class=\"num\">Of which refused</th><th class=\"num\">Participants</th><th class=\"num\">Nights</th><th>First</th><th>Last</th></tr></thead><tbody>\n");
        for (actor, n) in flagged.iter().take(MAX_PATTERN_ROWS) {
            let actor = a.actor_list[*actor as usize];
            self.w("<tr><td class=\"nowrap\">");
            self.actor(&actor);
            self.w("</td><td>");
            self.partner(a.partners.names[actor.partner as usize]);
            let _ = writeln!(
                self.out,
                "</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"time\">{}</td><td class=\"time\">{}</td></tr>",
                num(n.reads),
                num(n.refused),
                n.participants.len(),
                n.nights.len(),
                fmt_local(n.first),
                fmt_local(n.last)
            );
        }
        self.w("</tbody></table></div>\n");
        self.more(flagged.len());
        self.w("</section>\n");
    }

    fn refusal_bursts(&mut self) {
        let a = self.a;
        let mut flagged: Vec<(&str, &Burst<'_>)> = a
            .bursts
            .iter()
            .filter(|(_, b)| b.bursts > 0)
            .map(|(&c, b)| (c, b))
            .collect();
        flagged.sort_by(|x, y| y.1.largest.cmp(&x.1.largest).then(x.0.cmp(y.0)));
        self.w("<section id=\"unusual-bursts\">\n<h3>(c) Bursts of refused requests from one client</h3>\n");
        let _ = writeln!(
            self.out,
            "<div class=\"rule\">Flagged when one client (certificate) has at least <b>{BURST_REFUSALS} refused records within {} minutes</b>. Bursts suggest a misconfigured CRM, a script probing for participants, or a stolen certificate.</div>",
            BURST_WINDOW_SECONDS / 60
        );
        if flagged.is_empty() {
            self.w("<p class=\"none\">None found.</p>\n</section>\n");
            return;
        }
        self.found(flagged.len(), "client");
        let _ = writeln!(
            self.out,
            "<div class=\"scroll\"><table class=\"wide\"><thead><tr><th>Client</th><th>Partner</th><th class=\"num\">Bursts</th><th class=\"num\">Largest (refusals in {} min)</th><th class=\"num\">Refusals in bursts</th><th>First burst</th><th>Last burst</th><th>Most frequent reason</th></tr></thead><tbody>",
            BURST_WINDOW_SECONDS / 60
        );
        for (client, b) in flagged.iter().take(MAX_PATTERN_ROWS) {
            let top = b
                .reasons
                .iter()
                .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)));
            self.w("<tr><td class=\"nowrap\">");
            self.e(client);
            self.w("</td><td>");
            self.partner(a.partners.names[b.partner as usize]);
            let _ = write!(
                self.out,
                "</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"time\">{}</td><td class=\"time\">{}</td><td>",
                b.bursts,
                b.largest,
                num(b.in_bursts),
                fmt_local(b.first),
                fmt_local(b.last)
            );
            if let Some((reason, n)) = top {
                self.e(reason);
                let _ = write!(self.out, " ({})", num(*n));
            }
            self.w("</td></tr>\n");
        }
        self.w("</tbody></table></div>\n");
        self.more(flagged.len());
        self.w("</section>\n");
    }

    fn lookup_bursts(&mut self) {
        let a = self.a;
        let mut flagged: Vec<(&str, &Lookups)> = a
            .lookups
            .iter()
            .filter(|(_, l)| l.bursts > 0 || l.rate_limited > 0)
            .map(|(&c, l)| (c, l))
            .collect();
        flagged.sort_by(|x, y| {
            (y.1.largest, y.1.rate_limited)
                .cmp(&(x.1.largest, x.1.rate_limited))
                .then(x.0.cmp(y.0))
        });
        self.w(
            "<section id=\"unusual-lookups\">\n<h3>(d) Bursts of look-ups from one client</h3>\n",
        );
        let _ = writeln!(
            self.out,
            "<div class=\"rule\">Flagged when one client (certificate) makes at least <b>{LOOKUP_BURST} look-ups (<code>{}</code>, granted or refused) within {} minutes</b>, and every client refused as <code>{RATE_LIMITED}</code> (past its look-up limit, answered 429). A CRM checks for a duplicate once per registration; series of look-ups suggest someone trying national numbers to learn who is known to the partnership.</div>",
            Action::ParticipantLookup,
            LOOKUP_WINDOW_SECONDS / 60
        );
        if flagged.is_empty() {
            self.w("<p class=\"none\">None found.</p>\n</section>\n");
            return;
        }
        self.found(flagged.len(), "client");
        let _ = writeln!(
            self.out,
            "<div class=\"scroll\"><table class=\"wide\"><thead><tr><th>Client</th><th>Partner</th><th class=\"num\">Look-ups in the period</th><th class=\"num\">Bursts</th><th class=\"num\">Largest (look-ups in {} min)</th><th>First burst</th><th>Last burst</th><th class=\"num\">Refused as {RATE_LIMITED}</th></tr></thead><tbody>",
            LOOKUP_WINDOW_SECONDS / 60
        );
        for (client, l) in flagged.iter().take(MAX_PATTERN_ROWS) {
            self.w("<tr><td class=\"nowrap\">");
            self.e(client);
            self.w("</td><td>");
            self.partner(a.partners.names[l.partner as usize]);
            let when = |t: Option<i64>| t.map_or_else(|| "–".to_string(), fmt_local);
            let hit = |yes: bool| if yes { "num hit" } else { "num" };
            let _ = writeln!(
                self.out,
                "</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"{}\">{}</td><td class=\"time\">{}</td><td class=\"time\">{}</td><td class=\"{}\">{}</td></tr>",
                num(l.total),
                l.bursts,
                hit(l.bursts > 0),
                l.largest,
                when(l.first),
                when(l.first.map(|_| l.last)),
                hit(l.rate_limited > 0),
                num(l.rate_limited)
            );
        }
        self.w("</tbody></table></div>\n");
        self.more(flagged.len());
        self.w("</section>\n");
    }

    /// The first cells of a listed record: sequence, local time, client, partner, acting user.
    fn record_cells(&mut self, r: &AuditRecord, local: Option<i64>) {
        let _ = write!(
            self.out,
            "<tr><td class=\"num\">{}</td><td class=\"time\">",
            r.seq
        );
        match local {
            Some(t) => self.w(&fmt_local(t)),
            None => self.e(&r.time),
        }
        self.w("</td><td class=\"nowrap\">");
        self.e(&r.client);
        self.w("</td><td>");
        self.partner(r.partner.as_deref().unwrap_or(""));
        self.w("</td><td class=\"nowrap\">");
        self.e(r.acting_user.as_deref().unwrap_or("–"));
        self.w("</td>");
    }

    fn own_consents(&mut self) {
        let a = self.a;
        self.w("<section id=\"unusual-consents\">\n<h3>(e) Consents that widen the recorder's own reading</h3>\n");
        let _ = writeln!(
            self.out,
            "<div class=\"rule\">Listed: every granted consent (<code>{}</code>) marked <code>{WIDENS_OWN_READING}</code>: the partner that recorded the participant's consent is itself one that the consent lets read more. The agreement allows it, but the partner decided on its own access; check that the signed consent is on file. The sequence number finds the record in the log.</div>",
            Action::ConsentRecord
        );
        if a.own_consents.is_empty() {
            self.w("<p class=\"none\">None found.</p>\n</section>\n");
            return;
        }
        self.found(a.own_consents.len(), "consent");
        self.w("<div class=\"scroll\"><table class=\"wide\"><thead><tr><th class=\"num\">Seq</th><th>Time</th><th>Client</th><th>Partner</th><th>Acting user</th><th>Consent scope</th></tr></thead><tbody>\n");
        for &(r, local) in a.own_consents.iter().take(MAX_PATTERN_ROWS) {
            self.record_cells(r, local);
            self.w("<td>");
            self.e(reason_code(r.reason.as_deref().unwrap_or("")));
            self.w("</td></tr>\n");
        }
        self.w("</tbody></table></div>\n");
        self.more(a.own_consents.len());
        self.w("</section>\n");
    }

    fn self_assignments(&mut self) {
        let a = self.a;
        self.w("<section id=\"unusual-self-assign\">\n<h3>(f) Partners giving themselves a role</h3>\n");
        let _ = writeln!(
            self.out,
            "<div class=\"rule\">Listed: every granted role start (<code>{}</code>) marked <code>{SELF_ASSIGN}</code>, where a partner gave its own organisation a role in a case, as the agreement allows; and every request refused as <code>{SELF_ESCALATION}</code>, where a partner tried to give itself a role that would widen its own reading. Refused attempts are the stronger signal.</div>",
            Action::InvolvementStart
        );
        if a.self_assignments.is_empty() {
            self.w("<p class=\"none\">None found.</p>\n</section>\n");
            return;
        }
        self.found(a.self_assignments.len(), "self-assignment");
        self.w("<div class=\"scroll\"><table class=\"wide\"><thead><tr><th class=\"num\">Seq</th><th>Time</th><th>Client</th><th>Partner</th><th>Acting user</th><th>Role (partner:role)</th><th>Decision</th></tr></thead><tbody>\n");
        for &(r, local) in a.self_assignments.iter().take(MAX_PATTERN_ROWS) {
            self.record_cells(r, local);
            self.w("<td class=\"nowrap\">");
            match r.decision {
                Outcome::Granted => {
                    self.e(reason_code(r.reason.as_deref().unwrap_or("")));
                    self.w("</td><td>granted (allowed self-assignment)");
                }
                Outcome::Refused => {
                    self.w("–</td><td class=\"hit\">refused: ");
                    self.e(SELF_ESCALATION);
                }
            }
            self.w("</td></tr>\n");
        }
        self.w("</tbody></table></div>\n");
        self.more(a.self_assignments.len());
        self.w("</section>\n");
    }

    fn footer(&mut self) {
        self.w("<footer>\n<h2>Verifying an export yourself</h2>\n");
        self.w("<p>Export the log (<code>partnergate audit export</code>) and check it offline, on any machine, with only the export and the partnership's public checkpoint key:</p>\n");
        self.w("<p><code>partnergate audit verify FILE --public-key certs/audit-signing.pub</code></p>\n");
        self.w("<p>It recomputes every record's SHA-256 chain link and checks every Ed25519 checkpoint signature; any change, removal or insertion of a record, and an export cut short (its signed header declares where it ends), is reported with its sequence number.</p>\n");
        self.w("<p><b>The log holds pseudonyms only.</b> Participants appear in it as internal audit pseudonyms, never as names or national register numbers, and it records field names, never field values. This report counts pseudonyms and shows none.</p>\n");
        self.w("</footer>\n");
        Shell::close(&mut self.out);
    }
}

/// A round step (1, 2 or 5 × 10ⁿ) giving about `ticks` ticks up to `max`.
fn nice_step(max: u64, ticks: u64) -> u64 {
    let raw = max.div_ceil(ticks).max(1);
    let mut magnitude = 1u64;
    while magnitude * 10 <= raw {
        magnitude *= 10;
    }
    // Steps in tenths of the magnitude: 1, 2, 2.5 (from 10 up), 5, 10.
    [10, 20, 25, 50, 100]
        .into_iter()
        .filter(|&m| magnitude >= 10 || m != 25)
        .map(|m| m * magnitude / 10)
        .find(|&s| s >= raw)
        .unwrap_or(10 * magnitude)
}
