//! The DPO report's retention section: what the schedule purged when, in counts, from the
//! `retention.purge` records (one per participant and purge).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::audit::{Action, AuditRecord};
use crate::html::escape;

/// Per day (UTC): participants purged, field values named, keys shredded; per category:
/// participants purged.
pub(super) fn section(records: &[AuditRecord]) -> String {
    let mut days: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let mut categories: BTreeMap<&str, u64> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.action == Action::RetentionPurge.as_str())
    {
        let day = r.time.get(..10).unwrap_or("unknown");
        let e = days.entry(day).or_default();
        e.0 += 1;
        e.1 += r.fields.len() as u64;
        if r.reason.as_deref().is_some_and(|x| x.contains("shredded")) {
            e.2 += 1;
        }
        let mut cats: Vec<&str> = r
            .fields
            .iter()
            .map(|f| f.split_once('.').map(|(c, _)| c).unwrap_or(f))
            .collect();
        cats.dedup();
        for c in cats {
            *categories.entry(c).or_default() += 1;
        }
    }
    let mut out =
        String::from("<section id=\"retention\">\n<h2>Retention: what was purged when</h2>\n");
    out.push_str("<p class=\"note\">Purges by the agreement's retention schedule (<code>retention.purge</code> records, one per participant and purge). Counts only; the log names the fields, never their values.</p>\n");
    if days.is_empty() {
        out.push_str("<p class=\"none\">Nothing was purged in this period.</p>\n</section>\n");
        return out;
    }
    out.push_str("<table>\n<thead><tr><th>Day (UTC)</th><th class=\"num\">Participants</th><th class=\"num\">Fields</th><th class=\"num\">Keys shredded</th></tr></thead>\n<tbody>\n");
    for (day, (p, f, s)) in &days {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{p}</td><td class=\"num\">{f}</td><td class=\"num\">{s}</td></tr>",
            escape(day)
        );
    }
    out.push_str("</tbody>\n</table>\n<table>\n<thead><tr><th>Category</th><th class=\"num\">Participants purged</th></tr></thead>\n<tbody>\n");
    for (c, n) in &categories {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{n}</td></tr>",
            escape(c)
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    out
}
