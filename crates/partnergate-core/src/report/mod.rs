//! The ESF+ report: the common indicators of Regulation (EU) 2021/1057 (Annex I) per gender,
//! the result indicators, and each partner's inflow and outflow, as aggregates only.
//!
//! The gateway is the one party that can count without anyone seeing names: [`collect`] opens
//! the few fields the indicators need inside the gateway, [`build`] counts them into tables
//! and hides small cells ([`suppress`]), and [`render`] writes the same tables, with the same
//! cells hidden, as JSON, CSV and HTML. A hidden cell is published as [`MARKER`].
//!
//! Who is counted: *entrants* are participants whose `esf.entry_date` falls in the period
//! (output indicators), *leavers* those whose `esf.exit_date` does (result indicators). Age at
//! entry is computed from `identity.birth_date` at the entry date; it is never stored.

pub mod collect;
pub mod render;
pub mod suppress;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::Date;

use crate::policy::Agreement;
use suppress::Sum;

/// What a suppressed cell shows in every format ("c": confidential, as in Eurostat tables).
pub const MARKER: &str = "c";

/// The longest period one report may cover (the whole programme and then some).
pub const MAX_PERIOD_DAYS: i64 = 366 * 12;

/// The gender columns of every table: `identity.gender` values, then the unrecorded ones.
pub const GENDERS: [(&str, &str); 4] = [
    ("female", "women"),
    ("male", "men"),
    ("x", "non-binary"),
    ("not_recorded", "not recorded"),
];

/// One participant as the report sees them: only what the indicators need.
#[derive(Debug, Clone, Default)]
pub struct Person {
    /// `identity.gender`.
    pub gender: Option<String>,
    /// `identity.birth_date`.
    pub birth_date: Option<Date>,
    /// The `esf.*` and `esf_special.*` fields.
    pub fields: BTreeMap<String, Value>,
    /// Partners ever involved in the case.
    pub partners: Vec<String>,
}

impl Person {
    fn date(&self, field: &str) -> Option<Date> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        Date::parse(self.fields.get(field)?.as_str()?, fmt).ok()
    }

    fn text(&self, field: &str) -> Option<&str> {
        self.fields.get(field)?.as_str()
    }

    fn yes_no(&self, field: &str) -> &'static str {
        match self.fields.get(field).and_then(Value::as_bool) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "not_recorded",
        }
    }

    fn gender_column(&self) -> usize {
        GENDERS
            .iter()
            .position(|(g, _)| Some(*g) == self.gender.as_deref())
            .unwrap_or(GENDERS.len() - 1)
    }

    /// Age in whole years at the entry date.
    fn age_at_entry(&self) -> Option<i32> {
        let (birth, entry) = (self.birth_date?, self.date("esf.entry_date")?);
        let mut age = entry.year() - birth.year();
        if (entry.month() as u8, entry.day()) < (birth.month() as u8, birth.day()) {
            age -= 1;
        }
        Some(age)
    }
}

/// A published count, or the marker of a suppressed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// The count.
    Count(u64),
    /// Suppressed: [`MARKER`].
    Suppressed(&'static str),
}

impl Cell {
    /// The cell as text (a number or the marker).
    pub fn text(&self) -> String {
        match self {
            Cell::Count(n) => n.to_string(),
            Cell::Suppressed(m) => (*m).to_string(),
        }
    }
}

/// One row of a table: its cells per gender column, then the total.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Stable id, e.g. `long_term_unemployed`; `total` for the table's total row.
    pub id: String,
    /// Human label.
    pub label: String,
    /// One cell per [`GENDERS`] column, then the row total.
    pub cells: Vec<Cell>,
}

/// One indicator table: its rows partition the table's population, the last row is the
/// population per gender (the same in every table of that population).
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// Stable id, e.g. `labour_status_entry`.
    pub id: String,
    /// Human title.
    pub title: String,
    /// `entrants` (output indicators) or `leavers` (result indicators).
    pub population: &'static str,
    /// Whether the table holds GDPR Art. 9 data (suppressed below `min_cell_special`).
    pub special: bool,
    /// The rows, the total row last.
    pub rows: Vec<Row>,
}

/// One partner's inflow and outflow.
#[derive(Debug, Clone, Serialize)]
pub struct PartnerFlow {
    /// Partner id.
    pub partner: String,
    /// Partner name.
    pub name: String,
    /// Entrants in the period whose case the partner was involved in.
    pub inflow: Cell,
    /// Leavers in the period whose case the partner was involved in.
    pub outflow: Cell,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The partnership.
    pub partnership: String,
    /// First day of the period.
    pub from: Date,
    /// Last day of the period (inclusive).
    pub to: Date,
    /// When it was computed.
    pub generated_at: String,
    /// Cells below this are suppressed.
    pub min_cell: u32,
    /// Cells of Art. 9 tables below this are suppressed.
    pub min_cell_special: u32,
    /// What a suppressed cell shows.
    pub marker: &'static str,
    /// The column ids of every table: genders, then `total`.
    pub columns: Vec<String>,
    /// Indicator tables.
    pub tables: Vec<Table>,
    /// Inflow and outflow per partner. A participant counts for every partner involved, so
    /// these do not add up to the totals; each cell is suppressed on its own.
    pub partners: Vec<PartnerFlow>,
}

/// Why a period was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// Not a `YYYY-MM-DD` date.
    #[error("{0} must be a date YYYY-MM-DD")]
    BadDate(&'static str),
    /// `to` before `from`, or longer than [`MAX_PERIOD_DAYS`].
    #[error("the period must run forward and cover at most {MAX_PERIOD_DAYS} days")]
    BadRange,
}

/// Parses and checks a report period.
pub fn period(from: &str, to: &str) -> Result<(Date, Date), PeriodError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let f = Date::parse(from, fmt).map_err(|_| PeriodError::BadDate("from"))?;
    let t = Date::parse(to, fmt).map_err(|_| PeriodError::BadDate("to"))?;
    let days = (t - f).whole_days();
    if !(0..=MAX_PERIOD_DAYS).contains(&days) {
        return Err(PeriodError::BadRange);
    }
    Ok((f, t))
}

/// A table's definition: rows as (id, label) and how a person maps to a row.
struct Def {
    id: &'static str,
    title: &'static str,
    leavers: bool,
    special: bool,
    rows: &'static [(&'static str, &'static str)],
    row_of: fn(&Person) -> &str,
}

const YES_NO: &[(&str, &str)] = &[
    ("yes", "yes"),
    ("no", "no"),
    ("not_recorded", "not recorded"),
];
const YES_NO_DECLINED: &[(&str, &str)] = &[
    ("yes", "yes"),
    ("no", "no"),
    ("declined", "declined to answer"),
    ("not_recorded", "not recorded"),
];

fn value_or_unrecorded<'a>(p: &'a Person, field: &str, rows: &[(&str, &str)]) -> &'a str {
    match p.text(field) {
        Some(v) if rows.iter().any(|(id, _)| *id == v) => v,
        _ => "not_recorded",
    }
}

const DEFS: &[Def] = &[
    Def {
        id: "labour_status_entry",
        title: "Labour-market status at entry (unemployed including long-term unemployed = the first two rows)",
        leavers: false,
        special: false,
        rows: &[
            ("unemployed", "unemployed (not long-term)"),
            ("long_term_unemployed", "long-term unemployed"),
            ("inactive", "inactive"),
            ("employed", "employed, including self-employed"),
            ("not_recorded", "not recorded"),
        ],
        row_of: |p| {
            value_or_unrecorded(
                p,
                "esf.labour_status_entry",
                &[
                    ("unemployed", ""),
                    ("long_term_unemployed", ""),
                    ("inactive", ""),
                    ("employed", ""),
                ],
            )
        },
    },
    Def {
        id: "age_at_entry",
        title: "Age at entry",
        leavers: false,
        special: false,
        rows: &[
            ("below_18", "below 18"),
            ("18_29", "18 to 29"),
            ("30_54", "30 to 54"),
            ("55_plus", "55 and over"),
            ("not_recorded", "not recorded"),
        ],
        row_of: |p| match p.age_at_entry() {
            Some(a) if a < 18 => "below_18",
            Some(a) if a <= 29 => "18_29",
            Some(a) if a <= 54 => "30_54",
            Some(_) => "55_plus",
            None => "not_recorded",
        },
    },
    Def {
        id: "education_level",
        title: "Education at entry (ISCED)",
        leavers: false,
        special: false,
        rows: &[
            ("isced_0_2", "ISCED 0-2"),
            ("isced_3_4", "ISCED 3-4"),
            ("isced_5_8", "ISCED 5-8"),
            ("not_recorded", "not recorded"),
        ],
        row_of: |p| {
            value_or_unrecorded(
                p,
                "esf.education_level",
                &[("isced_0_2", ""), ("isced_3_4", ""), ("isced_5_8", "")],
            )
        },
    },
    Def {
        id: "third_country_national",
        title: "Third-country nationals",
        leavers: false,
        special: false,
        rows: YES_NO,
        row_of: |p| p.yes_no("esf.third_country_national"),
    },
    Def {
        id: "foreign_background",
        title: "Participants with a foreign background",
        leavers: false,
        special: false,
        rows: YES_NO,
        row_of: |p| p.yes_no("esf.foreign_background"),
    },
    Def {
        id: "homeless_or_housing_exclusion",
        title: "Homeless or affected by housing exclusion",
        leavers: false,
        special: false,
        rows: YES_NO,
        row_of: |p| p.yes_no("esf.homeless_or_housing_exclusion"),
    },
    Def {
        id: "disability",
        title: "Participants with disabilities (GDPR Art. 9)",
        leavers: false,
        special: true,
        rows: YES_NO_DECLINED,
        row_of: |p| value_or_unrecorded(p, "esf_special.disability", YES_NO_DECLINED),
    },
    Def {
        id: "minority",
        title: "Participants from minorities (GDPR Art. 9)",
        leavers: false,
        special: true,
        rows: YES_NO_DECLINED,
        row_of: |p| value_or_unrecorded(p, "esf_special.minority", YES_NO_DECLINED),
    },
    Def {
        id: "exit_status",
        title: "Situation upon leaving",
        leavers: true,
        special: false,
        rows: &[
            ("job_searching", "job searching"),
            ("in_education", "in education or training"),
            ("qualification_gained", "gained a qualification"),
            ("employed", "in employment, including self-employment"),
            ("none", "none of these"),
            ("not_recorded", "not recorded"),
        ],
        row_of: |p| {
            value_or_unrecorded(
                p,
                "esf.exit_status",
                &[
                    ("job_searching", ""),
                    ("in_education", ""),
                    ("qualification_gained", ""),
                    ("employed", ""),
                    ("none", ""),
                ],
            )
        },
    },
    Def {
        id: "qualification_gained",
        title: "Gained a qualification upon leaving (with any exit status)",
        leavers: true,
        special: false,
        rows: &[("yes", "yes"), ("no", "no")],
        row_of: |p| {
            let q = p
                .fields
                .get("esf.qualification_gained")
                .and_then(Value::as_bool)
                == Some(true)
                || p.text("esf.exit_status") == Some("qualification_gained");
            if q { "yes" } else { "no" }
        },
    },
    Def {
        id: "employed_6_months",
        title: "In employment, including self-employment, six months after leaving",
        leavers: true,
        special: false,
        rows: YES_NO,
        row_of: |p| p.yes_no("esf.employed_6_months"),
    },
];

/// Counts `people` into the report for `from..=to`, with small cells suppressed as the
/// agreement says.
pub fn build(
    agreement: &Agreement,
    people: &[Person],
    from: Date,
    to: Date,
    generated_at: String,
) -> Report {
    let rules = agreement.reports;
    let in_period = |d: Option<Date>| d.is_some_and(|d| from <= d && d <= to);
    let entrants: Vec<&Person> = people
        .iter()
        .filter(|p| in_period(p.date("esf.entry_date")))
        .collect();
    let leavers: Vec<&Person> = people
        .iter()
        .filter(|p| in_period(p.date("esf.exit_date")))
        .collect();
    let cols = GENDERS.len() + 1;

    // Variables: each table's non-total rows, then one shared total row per population.
    let mut values: Vec<u64> = Vec::new();
    let mut thresholds: Vec<u64> = Vec::new();
    let mut sums: Vec<Sum> = Vec::new();
    let new_row = |values: &mut Vec<u64>, thresholds: &mut Vec<u64>, k: u64| {
        let start = values.len();
        values.extend(std::iter::repeat_n(0, cols));
        thresholds.extend(std::iter::repeat_n(k, cols));
        start
    };
    let k = u64::from(rules.min_cell);
    let k9 = u64::from(rules.min_cell_special);
    let mut totals = [0usize; 2];
    for (slot, people) in [(0, &entrants), (1, &leavers)] {
        let t = new_row(&mut values, &mut thresholds, k);
        for p in people.iter() {
            values[t + p.gender_column()] += 1;
            values[t + cols - 1] += 1;
        }
        sums.push(Sum {
            parts: (t..t + cols - 1).collect(),
            total: t + cols - 1,
        });
        totals[slot] = t;
    }
    let mut layout: Vec<Vec<usize>> = Vec::new();
    for def in DEFS {
        let (population, total) = if def.leavers {
            (&leavers, totals[1])
        } else {
            (&entrants, totals[0])
        };
        let starts: Vec<usize> = def
            .rows
            .iter()
            .map(|_| {
                new_row(
                    &mut values,
                    &mut thresholds,
                    if def.special { k9 } else { k },
                )
            })
            .collect();
        for p in population.iter() {
            let id = (def.row_of)(p);
            if let Some(r) = def.rows.iter().position(|(rid, _)| *rid == id) {
                values[starts[r] + p.gender_column()] += 1;
                values[starts[r] + cols - 1] += 1;
            }
        }
        for &s in &starts {
            sums.push(Sum {
                parts: (s..s + cols - 1).collect(),
                total: s + cols - 1,
            });
        }
        for c in 0..cols {
            sums.push(Sum {
                parts: starts.iter().map(|s| s + c).collect(),
                total: total + c,
            });
        }
        layout.push(starts);
    }
    let hidden = suppress::suppress(&values, &thresholds, &sums);
    let cell = |v: usize| {
        if hidden[v] {
            Cell::Suppressed(MARKER)
        } else {
            Cell::Count(values[v])
        }
    };
    let row = |id: &str, label: &str, start: usize| Row {
        id: id.to_string(),
        label: label.to_string(),
        cells: (start..start + cols).map(cell).collect(),
    };
    let tables = DEFS
        .iter()
        .zip(&layout)
        .map(|(def, starts)| {
            let total = if def.leavers { totals[1] } else { totals[0] };
            let mut rows: Vec<Row> = def
                .rows
                .iter()
                .zip(starts)
                .map(|((id, label), &s)| row(id, label, s))
                .collect();
            rows.push(row(
                "total",
                if def.leavers {
                    "all leavers"
                } else {
                    "all entrants"
                },
                total,
            ));
            Table {
                id: def.id.to_string(),
                title: def.title.to_string(),
                population: if def.leavers { "leavers" } else { "entrants" },
                special: def.special,
                rows,
            }
        })
        .collect();

    // Per partner: independent counts (people overlap across partners), primary suppression.
    let flow = |people: &[&Person], partner: &str| {
        let n = people
            .iter()
            .filter(|p| p.partners.iter().any(|q| q == partner))
            .count() as u64;
        if n > 0 && n < k {
            Cell::Suppressed(MARKER)
        } else {
            Cell::Count(n)
        }
    };
    let partners = agreement
        .partners
        .iter()
        .map(|p| PartnerFlow {
            partner: p.id.value.clone(),
            name: p.name.clone(),
            inflow: flow(&entrants, &p.id),
            outflow: flow(&leavers, &p.id),
        })
        .collect();

    Report {
        partnership: agreement.meta.name.clone(),
        from,
        to,
        generated_at,
        min_cell: rules.min_cell,
        min_cell_special: rules.min_cell_special,
        marker: MARKER,
        columns: GENDERS
            .iter()
            .map(|(g, _)| g.to_string())
            .chain(["total".to_string()])
            .collect(),
        tables,
        partners,
    }
}

#[cfg(test)]
mod tests;
