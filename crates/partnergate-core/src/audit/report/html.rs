//! Writes the report page from the aggregates: the summary, the integrity banner, the accesses
//! table and chart, the refusals, and one section per detection rule with the rule in words.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::clock::{date_of_day, fmt_day, fmt_local};
use super::rules::{
    BURST_REFUSALS, BURST_WINDOW_SECONDS, LOOKUP_BURST, LOOKUP_WINDOW_SECONDS,
    MANY_PARTICIPANTS_PER_DAY, NIGHT_END_HOUR, NIGHT_START_HOUR, NOT_INVOLVED_PARTICIPANTS,
    RATE_LIMITED, SELF_ASSIGN, SELF_ESCALATION, WIDENS_OWN_READING, reason_code,
};
use super::{Aggregates, ReportInput};
use crate::audit::action::Action;
use crate::audit::record::{AuditRecord, Outcome};
use crate::audit::verify::VerifyReport;
use crate::html::{Shell, escape, push_escaped};

/// Rows shown per unusual-pattern table; the rest is counted.
const MAX_PATTERN_ROWS: usize = 100;
/// Partners drawn as their own series in the chart; the others are stacked as one.
const MAX_SERIES: usize = 8;
const PALETTE: [&str; MAX_SERIES] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
];
const OTHER_COLOUR: &str = "#bab0ac";

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

/// A share as a percentage with one decimal, `–` when there is no whole.
fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// Renders the page from the aggregates of [`super::render`].
pub(super) fn page(input: &ReportInput<'_>, a: &Aggregates<'_>) -> String {
    let mut page = Page {
        out: String::with_capacity(128 * 1024),
        names: input.partner_names,
        a,
    };
    page.head(input);
    page.summary(input);
    page.verification(input.verification, a.total);
    page.accesses();
    page.refusals();
    page.unusual();
    page.out.push_str(&super::retention::section(input.records));
    page.footer();
    page.out
}

/// The page being written, with what it is written from.
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

    /// The first cells of an acting user's row: the user (or client), then the partner.
    fn actor_cells(&mut self, id: u32) {
        let a = self.a;
        let actor = a.actor_list[id as usize];
        self.w("<tr><td class=\"nowrap\">");
        match actor.user {
            Some(u) => self.e(u),
            None => {
                self.w("<em>(no acting user)</em> client ");
                self.e(actor.client);
            }
        }
        self.w("</td><td>");
        self.partner(a.partners.names[actor.partner as usize]);
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
            ("Generated", escape(input.generated_at)),
            ("Period covered", escape(&period)),
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
            self.record_cells(r, local);
            self.w("<td>");
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

    /// Opens the section of one detection rule: its heading and the rule in words, then either
    /// "None found." (closing the section; returns false) or how many `what`s were found and the
    /// head of their table.
    fn rule_open(
        &mut self,
        id: &str,
        heading: &str,
        rule: &str,
        (rows, what): (usize, &str),
        columns: &str,
    ) -> bool {
        let _ = writeln!(
            self.out,
            "<section id=\"{id}\">\n<h3>{heading}</h3>\n<div class=\"rule\">{rule}</div>"
        );
        if rows == 0 {
            self.w("<p class=\"none\">None found.</p>\n</section>\n");
            return false;
        }
        let _ = writeln!(
            self.out,
            "<p class=\"found\">{} {what}{} found.</p>",
            num(rows as u64),
            if rows == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            self.out,
            "<div class=\"scroll\"><table class=\"wide\"><thead><tr>{columns}</tr></thead><tbody>"
        );
        true
    }

    /// Closes a rule's table and section; past [`MAX_PATTERN_ROWS`] says how many rows are not shown.
    fn rule_close(&mut self, rows: usize) {
        self.w("</tbody></table></div>\n");
        if rows > MAX_PATTERN_ROWS {
            let _ = writeln!(
                self.out,
                "<p class=\"note\">… and {} more, not shown.</p>",
                num((rows - MAX_PATTERN_ROWS) as u64)
            );
        }
        self.w("</section>\n");
    }

    fn many_reads(&mut self) {
        let a = self.a;
        let flagged = a.flag_many_reads();
        if !self.rule_open(
            "unusual-many",
            "(a) One acting user reading many participants",
            &format!("Flagged when an acting user read at least <b>{MANY_PARTICIPANTS_PER_DAY} distinct participants on one day</b> (Brussels calendar day), or was refused as <code>not_involved</code> (no case role for the participant) for at least <b>{NOT_INVOLVED_PARTICIPANTS} distinct participants</b> in the period. A coach follows about 25 cases; browsing beyond one's own caseload is what this looks for."),
            (flagged.len(), "acting user"),
            "<th>Acting user</th><th>Partner</th><th class=\"num\">Most participants read in one day</th><th>On</th><th class=\"num\">Days at or over the threshold</th><th class=\"num\">Participants refused as not_involved</th><th class=\"num\">Participants read in the period</th>",
        ) {
            return;
        }
        for (actor, s) in flagged.iter().take(MAX_PATTERN_ROWS) {
            self.actor_cells(*actor);
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
        self.rule_close(flagged.len());
    }

    fn night_reads(&mut self) {
        let a = self.a;
        let flagged = a.flag_night_reads();
        if !self.rule_open(
            "unusual-night",
            "(b) Reads at night",
            &format!("Flagged: every acting user with at least one read between <b>{NIGHT_START_HOUR:02}:00 and {NIGHT_END_HOUR:02}:00 Europe/Brussels time</b> (UTC+1, and UTC+2 from 01:00 UTC on the last Sunday of March until 01:00 UTC on the last Sunday of October). Partners' staff work office hours; night reads may be legitimate (crisis shelter, on-call) but deserve a look."),
            (flagged.len(), "acting user"),
            "<th>Acting user</th><th>Partner</th><th class=\"num\">Night reads</th><th class=\"num\">Of which refused</th><th class=\"num\">Participants</th><th class=\"num\">Nights</th><th>First</th><th>Last</th>",
        ) {
            return;
        }
        for (actor, n) in flagged.iter().take(MAX_PATTERN_ROWS) {
            self.actor_cells(*actor);
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
        self.rule_close(flagged.len());
    }

    fn refusal_bursts(&mut self) {
        let a = self.a;
        let flagged = a.flag_refusal_bursts();
        if !self.rule_open(
            "unusual-bursts",
            "(c) Bursts of refused requests from one client",
            &format!(
                "Flagged when one client (certificate) has at least <b>{BURST_REFUSALS} refused records within {} minutes</b>. Bursts suggest a misconfigured CRM, a script probing for participants, or a stolen certificate.",
            BURST_WINDOW_SECONDS / 60
            ),
            (flagged.len(), "client"),
            &format!(
                "<th>Client</th><th>Partner</th><th class=\"num\">Bursts</th><th class=\"num\">Largest (refusals in {} min)</th><th class=\"num\">Refusals in bursts</th><th>First burst</th><th>Last burst</th><th>Most frequent reason</th>",
            BURST_WINDOW_SECONDS / 60
            ),
        ) {
            return;
        }
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
        self.rule_close(flagged.len());
    }

    fn lookup_bursts(&mut self) {
        let a = self.a;
        let flagged = a.flag_lookup_bursts();
        if !self.rule_open(
            "unusual-lookups",
            "(d) Bursts of look-ups from one client",
            &format!(
                "Flagged when one client (certificate) makes at least <b>{LOOKUP_BURST} look-ups (<code>{}</code>, granted or refused) within {} minutes</b>, and every client refused as <code>{RATE_LIMITED}</code> (past its look-up limit, answered 429). A CRM checks for a duplicate once per registration; series of look-ups suggest someone trying national numbers to learn who is known to the partnership.",
            Action::ParticipantLookup,
            LOOKUP_WINDOW_SECONDS / 60
            ),
            (flagged.len(), "client"),
            &format!(
                "<th>Client</th><th>Partner</th><th class=\"num\">Look-ups in the period</th><th class=\"num\">Bursts</th><th class=\"num\">Largest (look-ups in {} min)</th><th>First burst</th><th>Last burst</th><th class=\"num\">Refused as {RATE_LIMITED}</th>",
            LOOKUP_WINDOW_SECONDS / 60
            ),
        ) {
            return;
        }
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
        self.rule_close(flagged.len());
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
        if !self.rule_open(
            "unusual-consents",
            "(e) Consents that widen the recorder's own reading",
            &format!(
                "Listed: every granted consent (<code>{}</code>) marked <code>{WIDENS_OWN_READING}</code>: the partner that recorded the participant's consent is itself one that the consent lets read more. The agreement allows it, but the partner decided on its own access; check that the signed consent is on file. The sequence number finds the record in the log.",
            Action::ConsentRecord
            ),
            (a.own_consents.len(), "consent"),
            "<th class=\"num\">Seq</th><th>Time</th><th>Client</th><th>Partner</th><th>Acting user</th><th>Consent scope</th>",
        ) {
            return;
        }
        for &(r, local) in a.own_consents.iter().take(MAX_PATTERN_ROWS) {
            self.record_cells(r, local);
            self.w("<td>");
            self.e(reason_code(r.reason.as_deref().unwrap_or("")));
            self.w("</td></tr>\n");
        }
        self.rule_close(a.own_consents.len());
    }

    fn self_assignments(&mut self) {
        let a = self.a;
        if !self.rule_open(
            "unusual-self-assign",
            "(f) Partners giving themselves a role",
            &format!(
                "Listed: every granted role start (<code>{}</code>) marked <code>{SELF_ASSIGN}</code>, where a partner gave its own organisation a role in a case, as the agreement allows; and every request refused as <code>{SELF_ESCALATION}</code>, where a partner tried to give itself a role that would widen its own reading. Refused attempts are the stronger signal.",
            Action::InvolvementStart
            ),
            (a.self_assignments.len(), "self-assignment"),
            "<th class=\"num\">Seq</th><th>Time</th><th>Client</th><th>Partner</th><th>Acting user</th><th>Role (partner:role)</th><th>Decision</th>",
        ) {
            return;
        }
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
        self.rule_close(a.self_assignments.len());
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
