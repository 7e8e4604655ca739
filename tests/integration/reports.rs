//! ESF+ reports over the real gateway: who may fetch them, what they hide, and an attack that
//! tries to work out every hidden cell from the published totals.

use std::collections::HashMap;

use hyper::Method;
use serde_json::{Value, json};

use crate::fixtures::{self, as_};
use crate::harness::Home;

const PERIOD: &str = "/v1/reports/esf?from=2024-01-01&to=2030-12-31";

/// An exact rational, for the attacker's elimination (independent of the gateway's own).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Q(i128, i128);

impl Q {
    fn norm(n: i128, d: i128) -> Q {
        fn gcd(a: i128, b: i128) -> i128 {
            if b == 0 { a } else { gcd(b, a % b) }
        }
        let g = gcd(n.abs(), d.abs()).max(1) * d.signum();
        Q(n / g, d / g)
    }
    fn sub(self, o: Q) -> Q {
        Q::norm(self.0 * o.1 - o.0 * self.1, self.1 * o.1)
    }
    fn mul(self, o: Q) -> Q {
        Q::norm(self.0 * o.0, self.1 * o.1)
    }
    fn div(self, o: Q) -> Q {
        Q::norm(self.0 * o.1, self.1 * o.0)
    }
    fn zero(self) -> bool {
        self.0 == 0
    }
}

/// The attacker's view: every published sum of the report as (cells, total cell), where a
/// cell is a key; tables of the same population share their total row.
/// Published cells by key (`None` when hidden), and the sums as (parts, total).
type Published = (HashMap<String, Option<i64>>, Vec<(Vec<String>, String)>);

fn published_sums(report: &Value) -> Published {
    let mut cells = HashMap::new();
    let mut sums = Vec::new();
    let columns = report["columns"].as_array().unwrap().len();
    for t in report["tables"].as_array().unwrap() {
        let population = t["population"].as_str().unwrap();
        let rows = t["rows"].as_array().unwrap();
        let key = |r: &Value, c: usize| {
            if r["id"] == "total" {
                format!("{population}/total/{c}")
            } else {
                format!(
                    "{}/{}/{c}",
                    t["id"].as_str().unwrap(),
                    r["id"].as_str().unwrap()
                )
            }
        };
        for r in rows {
            for (c, v) in r["cells"].as_array().unwrap().iter().enumerate() {
                let value = match v {
                    Value::Number(n) => Some(n.as_i64().unwrap()),
                    Value::String(m) => {
                        assert_eq!(m, "c", "the marker");
                        None
                    }
                    other => panic!("unexpected cell {other}"),
                };
                let old = cells.insert(key(r, c), value);
                if let Some(old) = old {
                    assert_eq!(
                        old, value,
                        "a shared total must read the same in every table"
                    );
                }
            }
            sums.push((
                (0..columns - 1).map(|c| key(r, c)).collect(),
                key(r, columns - 1),
            ));
        }
        let inner: Vec<&Value> = rows.iter().filter(|r| r["id"] != "total").collect();
        let total = rows.iter().find(|r| r["id"] == "total").unwrap();
        for c in 0..columns {
            sums.push((inner.iter().map(|r| key(r, c)).collect(), key(total, c)));
        }
    }
    (cells, sums)
}

/// Solves the published sums for the hidden cells by exact elimination; returns every hidden
/// cell whose value the sums pin down, with that value.
fn recover(
    cells: &HashMap<String, Option<i64>>,
    sums: &[(Vec<String>, String)],
) -> Vec<(String, i128)> {
    let mut unknown: Vec<&String> = cells
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
    unknown.sort();
    let idx: HashMap<&String, usize> = unknown.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let n = unknown.len();
    // Each row: coefficients of the unknowns, then the constant (sum of parts - total = 0).
    let mut m: Vec<Vec<Q>> = Vec::new();
    for (parts, total) in sums {
        let mut row = vec![Q(0, 1); n + 1];
        let mut add = |k: &String, sign: i128| match cells[k] {
            None => {
                let i = idx[k];
                row[i] = Q::norm(row[i].0 + sign * row[i].1, row[i].1);
            }
            Some(v) => row[n] = Q::norm(row[n].0 + sign * v as i128 * row[n].1, row[n].1),
        };
        for p in parts {
            add(p, 1);
        }
        add(total, -1);
        m.push(row);
    }
    let mut pivots = Vec::new();
    let mut r = 0;
    for c in 0..n {
        let Some(p) = (r..m.len()).find(|&i| !m[i][c].zero()) else {
            continue;
        };
        m.swap(r, p);
        let piv = m[r][c];
        let pivot_row: Vec<Q> = m[r].iter().map(|q| q.div(piv)).collect();
        for (i, row) in m.iter_mut().enumerate() {
            if i == r {
                row.clone_from(&pivot_row);
            } else if !row[c].zero() {
                let f = row[c];
                for (q, p) in row.iter_mut().zip(&pivot_row) {
                    *q = q.sub(p.mul(f));
                }
            }
        }
        pivots.push((r, c));
        r += 1;
    }
    // A hidden cell is pinned down when its pivot row names no other hidden cell.
    pivots
        .iter()
        .filter(|&&(row, col)| (0..n).all(|j| j == col || m[row][j].zero()))
        .map(|&(row, col)| {
            let v = m[row][n];
            (unknown[col].clone(), -v.0 / v.1)
        })
        .collect()
}

async fn report(gw: &crate::harness::Gateway, client: &str, path: &str) -> (u16, Vec<u8>) {
    let r = as_(&gw.client(client), "esf_reporting")
        .get(path)
        .await
        .unwrap();
    (r.status.as_u16(), r.body.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_suppressed_cell_of_the_esf_report_can_be_recovered_from_the_published_totals() {
    let (home, _) = Home::with_demo(300);
    let gw = home.start();
    let (status, body) = report(&gw, "coord.stad-gent", PERIOD).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["marker"], "c");
    assert_eq!(json["min_cell"], 5);
    assert_eq!(json["min_cell_special"], 10);
    let (cells, sums) = published_sums(&json);
    let hidden = cells.values().filter(|v| v.is_none()).count();
    assert!(hidden > 0, "300 synthetic participants leave small cells");
    let total = cells["entrants/total/4"].expect("the number of entrants is published");
    assert!(total > 250, "{total}");
    // Nothing small is published: ordinary cells below 5 and Art. 9 cells below 10 are hidden.
    for t in json["tables"].as_array().unwrap() {
        let k = if t["special"] == true { 10 } else { 5 };
        for r in t["rows"].as_array().unwrap() {
            for c in r["cells"].as_array().unwrap() {
                if let Some(n) = c.as_i64() {
                    assert!(n == 0 || n >= k, "{} {} published {n}", t["id"], r["id"]);
                }
            }
        }
    }
    // The attack: every hidden cell stays unknown.
    let recovered = recover(&cells, &sums);
    assert_eq!(recovered, vec![], "hidden cells recovered from the margins");
    // The attack works: hide one published count of a fully published sum, and it is
    // recovered at once from that sum.
    let (parts, _) = sums
        .iter()
        .find(|(parts, total)| {
            cells[total].is_some()
                && parts.iter().all(|p| cells[p].is_some())
                && parts.iter().any(|p| cells[p].is_some_and(|v| v > 0))
        })
        .expect("a fully published sum");
    let target = parts
        .iter()
        .find(|p| cells[*p].is_some_and(|v| v > 0))
        .unwrap()
        .clone();
    let mut weakened = cells.clone();
    let truth = weakened.insert(target.clone(), None).unwrap().unwrap();
    let got = recover(&weakened, &sums);
    assert!(got.contains(&(target, truth as i128)), "{got:?}");

    // The same cells are hidden in the CSV and the HTML.
    let (_, csv) = report(&gw, "coord.stad-gent", &format!("{PERIOD}&format=csv")).await;
    let csv = String::from_utf8(csv).unwrap();
    let mut from_csv = 0;
    for line in csv
        .lines()
        .skip(1)
        .filter(|l| !l.contains(",partner_flow,"))
    {
        let f: Vec<&str> = line.split(',').collect();
        let table = json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == f[3])
            .unwrap();
        let row = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == f[4])
            .unwrap();
        let want: Vec<String> = row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| c.to_string())
            })
            .collect();
        assert_eq!(f[5..].join(","), want.join(","), "{line}");
        from_csv += f[5..].iter().filter(|c| **c == "c").count();
    }
    // Each table repeats its population's total row.
    assert_eq!(from_csv, hidden + shared_copies(&json));
    let (_, html) = report(&gw, "coord.stad-gent", &format!("{PERIOD}&format=html")).await;
    let html = String::from_utf8(html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
    let partner_hidden = json["partners"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| [&p["inflow"], &p["outflow"]])
        .filter(|c| *c == "c")
        .count();
    assert_eq!(
        html.matches("<td class=\"c\">c</td>").count(),
        hidden + shared_copies(&json) + partner_hidden
    );

    // Audited as an aggregate access: who, purpose, period, and no participant.
    let records = fixtures::audit_records(&gw).await;
    let reads: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "report.read")
        .collect();
    assert_eq!(reads.len(), 3, "{reads:?}");
    for r in reads {
        assert_eq!(r["client"], "coord.stad-gent");
        assert_eq!(r["purpose"], "esf_reporting");
        assert!(r["participant"].is_null(), "{r}");
        assert!(r.to_string().contains("2024-01-01..2030-12-31"), "{r}");
    }
}

/// Hidden cells of the shared total rows that the HTML shows again in every further table of
/// the same population (the attacker's map holds each once).
fn shared_copies(json: &Value) -> usize {
    let mut per_population: HashMap<&str, (usize, usize)> = HashMap::new();
    for t in json["tables"].as_array().unwrap() {
        let total = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "total")
            .unwrap();
        let hidden = total["cells"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| *c == "c")
            .count();
        let e = per_population
            .entry(t["population"].as_str().unwrap())
            .or_default();
        e.0 += 1;
        e.1 = hidden;
    }
    per_population
        .values()
        .map(|(tables, hidden)| (tables - 1) * hidden)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_need_reports_read_for_esf_reporting_and_a_valid_period() {
    let home = Home::new();
    let gw = home.start();
    for (client, purpose, want) in [
        ("crm.ocmw-gent", "esf_reporting", 403),
        ("dpo.stad-gent", "audit", 403),
        ("coord.stad-gent", "case_discussion", 403),
        ("coord.stad-gent", "esf_reporting", 200),
        ("esf.jobandco", "esf_reporting", 200),
    ] {
        let r = as_(&gw.client(client), purpose).get(PERIOD).await.unwrap();
        assert_eq!(r.status.as_u16(), want, "{client} {purpose}");
    }
    let coord = as_(&gw.client("coord.stad-gent"), "esf_reporting");
    for (query, code) in [
        ("from=2026-04-01&to=2026-03-31", "invalid_period"),
        ("from=2026-02-30&to=2026-03-31", "invalid_period"),
        ("to=2026-03-31", "invalid_period"),
        ("from=2026-01-01&to=2026-03-31&format=pdf", "invalid_format"),
    ] {
        let r = coord
            .get(&format!("/v1/reports/esf?{query}"))
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 400, "{query}");
        assert_eq!(r.json()["error"], code, "{query}");
    }
    // /v1/me says who may fetch the report.
    let me = as_(&gw.client("coord.stad-gent"), "esf_reporting")
        .get("/v1/me")
        .await
        .unwrap()
        .json();
    let reports: Vec<&Value> = me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["purpose"] == "esf_reporting")
        .flat_map(|p| p["roles"].as_array().unwrap())
        .flat_map(|r| r["reports"].as_array().unwrap())
        .collect();
    assert!(reports.contains(&&json!("/v1/reports/esf")), "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn art9_indicators_live_apart_and_declined_is_an_answer() {
    let home = Home::new();
    let gw = home.start();
    let case = fixtures::showcase(&gw, 61).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let version = job.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();
    let patch = |v: i64, fields: Value| {
        let job = job.clone();
        let path = path.clone();
        async move {
            job.send(
                Method::PATCH,
                &path,
                &[("if-match", &v.to_string())],
                Some(&json!({ "fields": fields })),
            )
            .await
            .unwrap()
        }
    };
    // The old yes/no shape is refused: the answer is yes, no or declined.
    let r = patch(version, json!({"esf_special.disability": true})).await;
    assert_eq!(r.status.as_u16(), 422);
    let r = patch(
        version,
        json!({"esf_special.disability": "declined", "esf_special.minority": "no"}),
    )
    .await;
    assert_eq!(
        r.status.as_u16(),
        200,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // The administrator reads them for ESF reporting; the case owner, who reads esf, does not.
    let admin = as_(&gw.client("esf.jobandco"), "esf_reporting")
        .get(&path)
        .await
        .unwrap()
        .json();
    assert_eq!(admin["fields"]["esf_special.disability"], "declined");
    let ocmw = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance")
        .get(&format!("/v1/participants/{}", case.pids["ocmw-gent"]))
        .await
        .unwrap()
        .json();
    assert!(
        ocmw["fields"].get("esf.labour_status_entry").is_some(),
        "{ocmw}"
    );
    assert!(
        ocmw["fields"].get("esf_special.disability").is_none(),
        "{ocmw}"
    );
    // A coordinator's report counts it without showing a cell of one.
    let r = as_(&gw.client("coord.stad-gent"), "esf_reporting")
        .get("/v1/reports/esf?from=2020-01-01&to=2030-12-31")
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 200);
    assert!(!String::from_utf8_lossy(&r.body).contains(fixtures::GIVEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_command_writes_three_formats_with_one_pattern() {
    let (home, _) = Home::with_demo(120);
    let dir = home.path().join("out");
    let (ok, out) = home.run(&[
        "report",
        "esf",
        "--from",
        "2024-01-01",
        "--to",
        "2030-12-31",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let stem = dir.join("esf-2024-01-01-2030-12-31");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(stem.with_extension("json")).unwrap())
            .unwrap();
    let csv = std::fs::read_to_string(stem.with_extension("csv")).unwrap();
    let html = std::fs::read_to_string(stem.with_extension("html")).unwrap();
    let hidden_json = json.to_string().matches("\"c\"").count() - 1; // minus the marker field
    let hidden_csv = csv
        .lines()
        .flat_map(|l| l.split(','))
        .filter(|c| *c == "c")
        .count();
    let hidden_html = html.matches("<td class=\"c\">c</td>").count();
    assert!(hidden_csv > 0);
    assert_eq!(hidden_json, hidden_csv);
    assert_eq!(hidden_csv, hidden_html);
    // Offline too, the access is in the audit log, and the chain still verifies.
    let gw = home.start();
    let records = fixtures::audit_records(&gw).await;
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "report.read" && r["client"] == "-")
    );
    let v = as_(&gw.client("dpo.stad-gent"), "audit")
        .get("/v1/audit/verify")
        .await
        .unwrap()
        .json();
    assert_eq!(v["ok"], true, "{v}");
}
