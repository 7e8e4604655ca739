use serde_json::json;
use time::macros::date;

use super::*;

fn agreement() -> Agreement {
    Agreement::from_str(include_str!("../../../../policies/agreement.toml")).unwrap()
}

fn person(gender: &str, birth: Date, entry: &str, disability: &str) -> Person {
    let mut fields = BTreeMap::new();
    fields.insert("esf.entry_date".into(), json!(entry));
    fields.insert(
        "esf.labour_status_entry".into(),
        json!("long_term_unemployed"),
    );
    fields.insert("esf_special.disability".into(), json!(disability));
    Person {
        gender: Some(gender.into()),
        birth_date: Some(birth),
        fields,
        partners: vec!["ocmw-gent".into()],
    }
}

fn table<'a>(r: &'a Report, id: &str) -> &'a Table {
    r.tables.iter().find(|t| t.id == id).unwrap()
}

fn row<'a>(t: &'a Table, id: &str) -> &'a Row {
    t.rows.iter().find(|r| r.id == id).unwrap()
}

#[test]
fn age_is_computed_at_the_entry_date() {
    let p = person("female", date!(2000 - 06 - 15), "2018-06-14", "no");
    assert_eq!(p.age_at_entry(), Some(17));
    let p = person("female", date!(2000 - 06 - 15), "2018-06-15", "no");
    assert_eq!(p.age_at_entry(), Some(18));
}

#[test]
fn only_entrants_of_the_period_count_and_small_cells_are_marked() {
    let mut people: Vec<Person> = (0..40)
        .map(|i| {
            let g = if i % 2 == 0 { "female" } else { "male" };
            person(g, date!(1990 - 01 - 01), "2026-02-01", "no")
        })
        .collect();
    // Three non-binary entrants: below 5, suppressed everywhere they show.
    for _ in 0..3 {
        people.push(person("x", date!(1990 - 01 - 01), "2026-02-01", "no"));
    }
    // Out of the period.
    people.push(person("female", date!(1990 - 01 - 01), "2025-12-31", "yes"));
    let r = build(
        &agreement(),
        &people,
        date!(2026 - 01 - 01),
        date!(2026 - 03 - 31),
        "now".into(),
    );
    let t = table(&r, "labour_status_entry");
    let total = row(t, "total");
    assert_eq!(total.cells[4], Cell::Count(43));
    assert_eq!(total.cells[2], Cell::Suppressed(MARKER));
    // The non-binary count would follow from the total minus women and men: one more hidden.
    let hidden = total
        .cells
        .iter()
        .filter(|c| matches!(c, Cell::Suppressed(_)))
        .count();
    assert!(hidden >= 2, "{total:?}");
    assert_eq!(r.marker, "c");
}

#[test]
fn art9_tables_use_the_higher_threshold() {
    let mut people: Vec<Person> = (0..60)
        .map(|_| person("female", date!(1990 - 01 - 01), "2026-02-01", "no"))
        .collect();
    for _ in 0..7 {
        people.push(person("female", date!(1990 - 01 - 01), "2026-02-01", "yes"));
        people.push(person(
            "female",
            date!(1990 - 01 - 01),
            "2026-02-01",
            "declined",
        ));
    }
    let r = build(
        &agreement(),
        &people,
        date!(2026 - 01 - 01),
        date!(2026 - 03 - 31),
        "now".into(),
    );
    let t = table(&r, "disability");
    assert!(t.special);
    // 7 is at least 5 but below 10: hidden in the Art. 9 table.
    assert_eq!(row(t, "yes").cells[0], Cell::Suppressed(MARKER));
    assert_eq!(row(t, "declined").cells[0], Cell::Suppressed(MARKER));
    // 7 long-term unemployed would be published in an ordinary table.
    assert_eq!(row(t, "no").cells[0], Cell::Count(60));
}

#[test]
fn every_format_shows_the_same_cells() {
    let people: Vec<Person> = (0..23)
        .map(|i| {
            let g = ["female", "male", "x"][i % 3];
            person(g, date!(1970 - 01 - 01), "2026-02-01", ["yes", "no"][i % 2])
        })
        .collect();
    let r = build(
        &agreement(),
        &people,
        date!(2026 - 01 - 01),
        date!(2026 - 03 - 31),
        "now".into(),
    );
    let json: serde_json::Value = serde_json::from_str(&render::json(&r)).unwrap();
    let csv = render::csv(&r);
    let html = render::html(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], render::CSV_HEADER);
    let mut i = 1;
    for (t, jt) in r.tables.iter().zip(json["tables"].as_array().unwrap()) {
        for (row, jr) in t.rows.iter().zip(jt["rows"].as_array().unwrap()) {
            let cells: Vec<String> = row.cells.iter().map(Cell::text).collect();
            let from_json: Vec<String> = jr["cells"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| match c {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            assert_eq!(cells, from_json);
            assert!(lines[i].ends_with(&cells.join(",")), "{}", lines[i]);
            i += 1;
        }
    }
    let hidden = r
        .tables
        .iter()
        .flat_map(|t| &t.rows)
        .flat_map(|r| &r.cells)
        .filter(|c| matches!(c, Cell::Suppressed(_)))
        .count();
    assert!(hidden > 0);
    assert_eq!(
        html.matches("<td class=\"c\">c</td>").count(),
        hidden + partner_hidden(&r)
    );
}

fn partner_hidden(r: &Report) -> usize {
    r.partners
        .iter()
        .flat_map(|p| [&p.inflow, &p.outflow])
        .filter(|c| matches!(c, Cell::Suppressed(_)))
        .count()
}

#[test]
fn a_period_runs_forward_between_real_dates() {
    assert!(period("2026-01-01", "2026-03-31").is_ok());
    assert_eq!(
        period("2026-13-01", "2026-03-31"),
        Err(PeriodError::BadDate("from"))
    );
    assert_eq!(
        period("2026-04-01", "2026-03-31"),
        Err(PeriodError::BadRange)
    );
    assert_eq!(
        period("2000-01-01", "2030-01-01"),
        Err(PeriodError::BadRange)
    );
}

#[test]
fn the_art30_register_names_the_reports_and_the_art9_basis() {
    let files = crate::policy::register_files(&agreement());
    let register = &files
        .iter()
        .find(|f| f.name == "register.md")
        .unwrap()
        .contents;
    assert!(register.contains("GET /v1/reports/esf"), "reports missing");
    assert!(register.contains("cells below 5 participants (below 10 for Art. 9 indicators)"));
    assert!(register.contains("esf\\_special (special category (GDPR Art. 9)): GDPR Art. 9(2)(g)"));
}
