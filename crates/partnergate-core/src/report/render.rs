//! The report in its three formats. All three are written from the same [`Report`], so a
//! suppressed cell is suppressed, and shows [`super::MARKER`], in every one of them.

use std::fmt::Write;

use super::{Cell, GENDERS, Report};
use crate::html::{Shell, escape};

/// JSON (pretty-printed).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report serialises")
}

/// The CSV header: the period, where the line belongs, then one column per gender and the total.
pub const CSV_HEADER: &str =
    "period_from,period_to,section,indicator,category,women,men,non_binary,not_recorded,total";

/// CSV for upload: one line per indicator category with its counts per gender, then one line
/// per partner and direction (`inflow`/`outflow`) with only the total. Ids only, no free text,
/// so no quoting is needed.
pub fn csv(report: &Report) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let (from, to) = (report.from, report.to);
    for t in &report.tables {
        for r in &t.rows {
            let cells: Vec<String> = r.cells.iter().map(Cell::text).collect();
            let _ = writeln!(
                out,
                "{from},{to},{},{},{},{}",
                t.population,
                t.id,
                r.id,
                cells.join(",")
            );
        }
    }
    for p in &report.partners {
        for (dir, c) in [("inflow", &p.inflow), ("outflow", &p.outflow)] {
            let _ = writeln!(
                out,
                "{from},{to},partner_flow,{},{dir},,,,,{}",
                p.partner,
                c.text()
            );
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.total td { font-weight: 600; background: #f4f4f4; }
td.c { color: #a33; font-style: italic; }
.note { color: #555; font-size: .9rem; }
svg text { font-size: 11px; font-family: system-ui, sans-serif; }
@media print { h2 { page-break-after: avoid; } }
"#;

/// A self-contained HTML page: per table the counts and a bar chart of the totals (a
/// suppressed total is drawn as an empty, marked bar), then the partners' flows.
pub fn html(report: &Report) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>ESF+ report: {}</h1>\n<p>Period {} to {} (inclusive). Generated {}.</p>\n",
        escape(&report.partnership),
        report.from,
        report.to,
        escape(&report.generated_at)
    );
    let _ = writeln!(
        b,
        "<p class=\"note\">Counts of participants, never names. Cells below {} participants \
         (below {} for GDPR Art. 9 indicators) are suppressed and shown as <b>{}</b>, together \
         with enough other cells that none can be worked out from the totals. Entrants: ESF \
         entry date in the period; leavers: exit date in the period. Age is computed at entry.</p>",
        report.min_cell,
        report.min_cell_special,
        escape(report.marker)
    );
    for t in &report.tables {
        let _ = write!(
            b,
            "<h2>{}</h2>\n<p class=\"note\">{}{}</p>\n<table>\n<tr><th></th>",
            escape(&t.title),
            escape(t.population),
            if t.special {
                format!(
                    ", special category: cells below {} suppressed",
                    report.min_cell_special
                )
            } else {
                String::new()
            }
        );
        for (_, label) in GENDERS {
            let _ = write!(b, "<th>{}</th>", escape(label));
        }
        b.push_str("<th>total</th></tr>\n");
        for r in &t.rows {
            let class = if r.id == "total" {
                " class=\"total\""
            } else {
                ""
            };
            let _ = write!(b, "<tr{class}><td>{}</td>", escape(&r.label));
            for c in &r.cells {
                cell_td(&mut b, c);
            }
            b.push_str("</tr>\n");
        }
        b.push_str("</table>\n");
        let bars: Vec<(&str, &Cell)> = t
            .rows
            .iter()
            .filter(|r| r.id != "total")
            .map(|r| (r.label.as_str(), r.cells.last().expect("a total column")))
            .collect();
        chart(&mut b, &bars, report.marker);
    }
    b.push_str("<h2>Inflow and outflow per partner</h2>\n<p class=\"note\">A participant counts for every partner involved in the case, so these do not add up to the totals above.</p>\n<table>\n<tr><th>partner</th><th>inflow</th><th>outflow</th></tr>\n");
    for p in &report.partners {
        let _ = write!(b, "<tr><td>{}</td>", escape(&p.name));
        for c in [&p.inflow, &p.outflow] {
            cell_td(&mut b, c);
        }
        b.push_str("</tr>\n");
    }
    b.push_str("</table>\n");
    let bars: Vec<(&str, &Cell)> = report
        .partners
        .iter()
        .map(|p| (p.name.as_str(), &p.inflow))
        .collect();
    chart(&mut b, &bars, report.marker);
    let title = format!("ESF+ report {} to {}", report.from, report.to);
    Shell {
        lang: "en",
        title: &title,
        css: STYLE,
    }
    .page(&b)
}

/// A horizontal SVG bar chart; suppressed values get no bar, only the marker.
fn chart(out: &mut String, bars: &[(&str, &Cell)], marker: &str) {
    let max = bars
        .iter()
        .filter_map(|(_, c)| match c {
            Cell::Count(n) => Some(*n),
            Cell::Suppressed(_) => None,
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let (label_w, bar_w, row_h) = (260u64, 380u64, 18u64);
    let height = row_h * bars.len() as u64 + 4;
    let _ = writeln!(
        out,
        "<svg role=\"img\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">",
        label_w + bar_w + 60,
        label_w + bar_w + 60
    );
    for (i, (label, cell)) in bars.iter().enumerate() {
        let y = i as u64 * row_h + 2;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 6,
            y + 12,
            escape(label)
        );
        match cell {
            Cell::Count(n) => {
                let w = bar_w * n / max;
                let _ = writeln!(
                    out,
                    "<rect x=\"{label_w}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"#3a6ea5\"/><text x=\"{}\" y=\"{}\">{n}</text>",
                    row_h - 4,
                    label_w + w + 4,
                    y + 12
                );
            }
            Cell::Suppressed(_) => {
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\" fill=\"#a33\">{}</text>",
                    label_w + 4,
                    y + 12,
                    escape(marker)
                );
            }
        }
    }
    out.push_str("</svg>\n");
}

/// One table cell: the count, or the suppression marker.
fn cell_td(b: &mut String, c: &Cell) {
    let _ = match c {
        Cell::Count(n) => write!(b, "<td>{n}</td>"),
        Cell::Suppressed(m) => write!(b, "<td class=\"c\">{}</td>", escape(m)),
    };
}
