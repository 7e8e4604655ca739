//! A known participant, registered and involved through the API itself.

use std::collections::HashMap;

use partnergate::vault::insz::Insz;
use partnergate_client::GatewayClient;
use serde_json::{Value, json};

use crate::harness::Gateway;

/// Distinctive values that must never appear outside the vault.
pub const GIVEN: &str = "Annelies";
pub const FAMILY: &str = "Vandenbroucke-Zeewaeter";
pub const PHONE: &str = "+32 470 99 88 71";
pub const EMAIL: &str = "annelies.zeewaeter@example.be";
pub const ADDRESS: &str = "Zeewaeterstraat 7, 9000 Gent";
pub const ADDICTION: &str = "Gokverslaving sinds 2019, opvolging De Zeewaeterkliniek";
pub const DEBT: &str = "Zeewaeter-schuldbemiddeling lopende";
pub const NOTE: &str = "Zeewaeter vertelde over de deurwaarder";

pub fn insz(serial: u16) -> String {
    let d = time::Date::from_calendar_date(1990, time::Month::June, 2).unwrap();
    Insz::synthetic(d, serial).as_str().to_string()
}

/// Every seeded secret, for grep tests.
pub fn secrets(insz: &str) -> Vec<String> {
    [
        GIVEN, FAMILY, PHONE, EMAIL, ADDRESS, ADDICTION, DEBT, NOTE, insz,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn as_(c: &GatewayClient, purpose: &str) -> GatewayClient {
    c.acting(purpose, "staff-42")
}

pub fn field_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["fields"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A case: OCMW registers (toeleider), becomes dossierbeheerder, assigns jobandco as
/// trajectgezel; jobandco adds health and life data, a note, and assigns VDAB (spoc_vdab) and
/// CAW (brugfiguur). Returns each partner's pid.
pub struct Case {
    pub insz: String,
    pub pids: HashMap<&'static str, String>,
}

pub async fn showcase(gw: &Gateway, serial: u16) -> Case {
    let insz = insz(serial);
    let ocmw = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    let res = ocmw
        .post(
            "/v1/participants",
            &json!({"fields": {
                "identity.insz": insz, "identity.given_name": GIVEN, "identity.family_name": FAMILY,
                "identity.birth_date": "1990-06-02", "identity.gender": "female",
                "contact.phone": PHONE, "contact.email": EMAIL, "contact.address": ADDRESS,
                "esf.labour_status_entry": "long_term_unemployed", "esf.education_level": "isced_0_2",
                "trajectory.status": "intake"
            }}),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["existing"], false);
    let ocmw_pid = res.json()["pid"].as_str().unwrap().to_string();
    let assign = |c: &GatewayClient, pid: &str, partner: &str, role: &str| {
        let c = c.clone();
        let path = format!("/v1/participants/{pid}/involvements");
        let body = json!({"partner": partner, "role": role});
        async move {
            let r = c.post(&path, &body).await.unwrap();
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        }
    };
    assign(&ocmw, &ocmw_pid, "ocmw-gent", "dossierbeheerder").await;
    assign(&ocmw, &ocmw_pid, "jobandco", "trajectgezel").await;
    let jobandco = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let look = as_(&gw.client("crm.jobandco"), "duplicate_check")
        .post("/v1/lookup", &json!({"insz": insz}))
        .await
        .unwrap();
    assert_eq!(look.status, 200);
    let job_pid = look.json()["pid"].as_str().unwrap().to_string();
    let path = format!("/v1/participants/{job_pid}");
    let version = jobandco.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();
    let res = jobandco
        .send(
            hyper::Method::PATCH,
            &path,
            &[("if-match", &version.to_string())],
            Some(&json!({"fields": {"health.addiction": ADDICTION, "life.income_debt": DEBT, "measure.empowerment": 40}})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let res = jobandco
        .post(&format!("{path}/notes"), &json!({"text": NOTE}))
        .await
        .unwrap();
    assert_eq!(res.status, 201);
    assign(&jobandco, &job_pid, "vdab", "spoc_vdab").await;
    assign(&jobandco, &job_pid, "caw-oost-vlaanderen", "brugfiguur").await;
    let mut pids = HashMap::new();
    pids.insert("ocmw-gent", ocmw_pid);
    pids.insert("jobandco", job_pid);
    for (partner, client) in [
        ("vdab", "crm.vdab"),
        ("caw-oost-vlaanderen", "crm.caw-oost-vlaanderen"),
    ] {
        let r = as_(&gw.client(client), "duplicate_check")
            .post("/v1/lookup", &json!({"insz": insz}))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        pids.insert(partner, r.json()["pid"].as_str().unwrap().to_string());
    }
    Case { insz, pids }
}

/// The DPO's live verification of the chain.
pub async fn verify(gw: &Gateway) -> Value {
    let r = as_(&gw.client("dpo.stad-gent"), "audit")
        .get("/v1/audit/verify")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    r.json()
}

/// Runs `partnergate audit verify FILE` with the installation's public key, as a DPO does
/// offline; returns (success, what it printed).
pub fn verify_offline(home: &crate::harness::Home, file: &std::path::Path) -> (bool, String) {
    let key = home.certs().join("audit-signing.pub");
    home.run(&[
        "audit",
        "verify",
        file.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ])
}

/// Every audit record so far, as the DPO exports them.
pub async fn audit_records(gw: &Gateway) -> Vec<Value> {
    let r = as_(&gw.client("dpo.stad-gent"), "audit")
        .get("/v1/audit/export")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    String::from_utf8_lossy(&r.body)
        .lines()
        .filter(|l| l.starts_with("{\"v\":"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A connection to the installation's database (its SQLite file, or its PostgreSQL database),
/// for checks and tampering behind the API. Test SQL uses `$1` placeholders, which both accept.
pub async fn db(home: &crate::harness::Home) -> sqlx::AnyConnection {
    use sqlx::Connection;
    static DRIVERS: std::sync::Once = std::sync::Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    let url = home.database_url().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            home.path().join("data/partnergate.db").display()
        )
    });
    sqlx::AnyConnection::connect(&url).await.unwrap()
}

/// Makes the database refuse a write: a trigger named `name` firing `when` (for example
/// `BEFORE INSERT ON audit_records`) aborts the statement, as a failing disk would.
pub async fn refuse(conn: &mut sqlx::AnyConnection, name: &str, when: &str) {
    let statements = if crate::harness::on_postgres() {
        vec![
            "CREATE OR REPLACE FUNCTION refuse_write() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                .to_string(),
            format!("CREATE TRIGGER {name} {when} FOR EACH ROW EXECUTE FUNCTION refuse_write()"),
        ]
    } else {
        vec![format!(
            "CREATE TRIGGER {name} {when} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )]
    };
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

/// Drops the trigger [`refuse`] made on `table`.
pub async fn allow(conn: &mut sqlx::AnyConnection, name: &str, table: &str) {
    let sql = if crate::harness::on_postgres() {
        format!("DROP TRIGGER {name} ON {table}")
    } else {
        format!("DROP TRIGGER {name}")
    };
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .unwrap();
}

/// Everything the database holds, as bytes to grep, main part first: the SQLite file and its
/// write-ahead log (deleted content included), or a `pg_dump` of the PostgreSQL database (live
/// rows; what PostgreSQL keeps of deleted rows is covered by key rotation, see the README).
pub fn database_contents(home: &crate::harness::Home) -> Vec<(String, Vec<u8>)> {
    if let Some(url) = home.database_url() {
        let pg_dump = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(Result::ok).map(|e| e.path()).max())
            .map(|v| v.join("bin/pg_dump"))
            .unwrap_or_else(|| "pg_dump".into());
        let out = std::process::Command::new(pg_dump)
            .args(["--data-only", "--inserts", &url])
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return vec![("pg_dump".into(), out.stdout)];
    }
    ["partnergate.db", "partnergate.db-wal", "partnergate.db-shm"]
        .iter()
        .filter_map(|f| {
            let bytes = std::fs::read(home.path().join("data").join(f)).ok()?;
            Some((f.to_string(), bytes))
        })
        .collect()
}

/// Files a data-subject request as the DPO and marks the requester verified; returns its id.
pub async fn dsr_request(gw: &Gateway, kind: &str, insz: &str, details: Option<Value>) -> String {
    let dpo = as_(&gw.client("dpo.stad-gent"), "dsr_handling");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let mut body = serde_json::json!({"kind": kind, "insz": insz, "received_at": today});
    if let Some(d) = details {
        body["details"] = d;
    }
    let r = dpo.post("/v1/dsr", &body).await.unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = dpo
        .post(&format!("/v1/dsr/{id}/verify"), &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    id
}

/// Executes a data-subject request as the DPO; the request as it stands afterwards.
pub async fn dsr_execute(gw: &Gateway, id: &str) -> Value {
    let r = as_(&gw.client("dpo.stad-gent"), "dsr_handling")
        .post(&format!("/v1/dsr/{id}/execute"), &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// PATCHes `fields` onto the record at `path` at the version it has now (read first).
pub async fn patch_current(
    c: &GatewayClient,
    path: &str,
    fields: Value,
) -> partnergate_client::Response {
    let version = c.get(path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap()
        .to_string();
    let body = json!({ "fields": fields });
    c.send(
        hyper::Method::PATCH,
        path,
        &[("if-match", &version)],
        Some(&body),
    )
    .await
    .unwrap()
}

/// Whether `haystack` holds `needle` as raw bytes or as hex (how `pg_dump` writes a BYTEA).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let hex = hex::encode(needle);
    [needle, hex.as_bytes()]
        .iter()
        .any(|n| haystack.windows(n.len()).any(|w| w == *n))
}
