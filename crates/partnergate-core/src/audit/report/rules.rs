//! The detection rules of the report's "unusual patterns": what each one watches for while
//! the records stream past, and which actors or clients it flags in the end. The thresholds are
//! public so that the API can write the markers these rules read and tests can sit on the edges.

use std::collections::{HashMap, HashSet, VecDeque};

use super::clock::DAY;
use super::{Actor, Aggregates, AuditRecord};
use crate::audit::action::Action;
use crate::audit::record::Outcome;

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

/// Whether a local time falls in the night of rule (b).
pub(super) fn is_night(local: i64) -> bool {
    let hour = local.rem_euclid(DAY) / 3600;
    !(NIGHT_END_HOUR..NIGHT_START_HOUR).contains(&hour)
}

/// The code of a reason: what comes before any `;` marker or ` (…)` detail.
pub(super) fn reason_code(reason: &str) -> &str {
    reason.split([';', ' ']).next().unwrap_or("")
}

/// Whether a reason carries `marker` as one of its `;`-separated qualifiers after the first.
fn has_marker(reason: &str, marker: &str) -> bool {
    reason.split(';').skip(1).any(|m| m.trim() == marker)
}

/// Rule (a), per acting user.
#[derive(Default)]
pub(super) struct ManyReads {
    pub(super) max_day: usize,
    pub(super) max_day_at: i64,
    pub(super) days_over: u32,
    pub(super) not_involved: usize,
    pub(super) total_distinct: usize,
}

/// Rule (b), per acting user.
pub(super) struct Night {
    pub(super) reads: u64,
    pub(super) refused: u64,
    pub(super) participants: HashSet<u32>,
    pub(super) nights: HashSet<i64>,
    pub(super) first: i64,
    pub(super) last: i64,
}

/// Rule (c), per client: refusals in a sliding window.
#[derive(Default)]
pub(super) struct Burst<'a> {
    pub(super) partner: u32,
    pub(super) window: VecDeque<(i64, &'a str)>,
    pub(super) in_burst: bool,
    pub(super) bursts: u32,
    pub(super) largest: usize,
    pub(super) in_bursts: u64,
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) reasons: HashMap<&'a str, u64>,
}

/// Look-ups by one client: bursts in a sliding window, and refusals past the rate limit.
#[derive(Default)]
pub(super) struct Lookups {
    pub(super) partner: u32,
    pub(super) total: u64,
    /// (UTC, local) times of the look-ups inside the current window.
    pub(super) window: VecDeque<(i64, i64)>,
    pub(super) in_burst: bool,
    pub(super) bursts: u32,
    pub(super) largest: usize,
    pub(super) first: Option<i64>,
    pub(super) last: i64,
    pub(super) rate_limited: u64,
}

impl<'a> Aggregates<'a> {
    /// The rules on reads (many participants, night reads) and `not_involved` refusals:
    /// who read which participant on which day, and at night.
    pub(super) fn track_read(
        &mut self,
        r: &'a AuditRecord,
        action: Option<Action>,
        partner: u32,
        local: Option<i64>,
    ) {
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
        let Some(t) = local else {
            return;
        };
        let day = t.div_euclid(DAY);
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

    /// Rule (a): acting users over the daily-reads or the `not_involved` threshold, worst first.
    pub(super) fn flag_many_reads(&self) -> Vec<(u32, ManyReads)> {
        let mut stats: HashMap<u32, ManyReads> = HashMap::new();
        for (&(actor, day), &n) in &self.read_day_count {
            let s = stats.entry(actor).or_default();
            if n > s.max_day || (n == s.max_day && day < s.max_day_at) {
                s.max_day = n;
                s.max_day_at = day;
            }
            s.days_over += u32::from(n >= MANY_PARTICIPANTS_PER_DAY);
        }
        for &(actor, _) in &self.not_involved {
            stats.entry(actor).or_default().not_involved += 1;
        }
        for &(actor, _) in &self.read_any {
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
        flagged
    }

    /// Rule (b): every acting user with a night read, most night reads first.
    pub(super) fn flag_night_reads(&self) -> Vec<(u32, &Night)> {
        let mut flagged: Vec<(u32, &Night)> = self.night.iter().map(|(&k, v)| (k, v)).collect();
        flagged.sort_by(|x, y| y.1.reads.cmp(&x.1.reads).then(x.0.cmp(&y.0)));
        flagged
    }

    /// Rule (c): clients with at least one burst of refusals, largest burst first.
    pub(super) fn flag_refusal_bursts(&self) -> Vec<(&'a str, &Burst<'a>)> {
        let mut flagged: Vec<(&'a str, &Burst<'a>)> = self
            .bursts
            .iter()
            .filter(|(_, b)| b.bursts > 0)
            .map(|(&c, b)| (c, b))
            .collect();
        flagged.sort_by(|x, y| y.1.largest.cmp(&x.1.largest).then(x.0.cmp(y.0)));
        flagged
    }

    /// Rule (d): clients with a burst of look-ups or a rate-limit refusal, worst first.
    pub(super) fn flag_lookup_bursts(&self) -> Vec<(&'a str, &Lookups)> {
        let mut flagged: Vec<(&'a str, &Lookups)> = self
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
        flagged
    }

    /// The rules on look-ups, self-widening consents and self-assignments.
    pub(super) fn watch(
        &mut self,
        r: &'a AuditRecord,
        action: Option<Action>,
        times: Option<(i64, i64)>,
    ) {
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

    pub(super) fn burst(&mut self, r: &'a AuditRecord, partner: u32, reason: &'a str, t: i64) {
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
