//! The audit log: every access recorded, fail-closed, tamper-evident, verifiable offline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use partnergate_client::GatewayClient;
use serde_json::{Value, json};

use crate::fixtures::{self, as_, audit_records, db, showcase, verify};
use crate::harness::{Gateway, Home};

fn dpo(gw: &Gateway) -> GatewayClient {
    as_(&gw.client("dpo.stad-gent"), "audit")
}

fn count(records: &[Value], action: &str, decision: &str) -> usize {
    records
        .iter()
        .filter(|r| r["action"] == action && r["decision"] == decision)
        .count()
}

#[tokio::test]
async fn every_kind_of_access_writes_its_records_including_refusals() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 21).await;
    let intro_pid = as_(&gw.client("crm.intro"), "duplicate_check")
        .post("/v1/lookup", &json!({"insz": case.insz}))
        .await
        .unwrap()
        .json()["pid"]
        .as_str()
        .unwrap()
        .to_string();
    let before = audit_records(&gw).await;
    // showcase: 1 registration, 4 involvement starts, 1 write, 1 note, 3 + 1 look-ups, 1 read.
    assert_eq!(count(&before, "participant.register", "granted"), 1);
    assert_eq!(count(&before, "involvement.start", "granted"), 4);
    assert_eq!(count(&before, "participant.write", "granted"), 1);
    assert_eq!(count(&before, "notes.write", "granted"), 1);
    assert_eq!(count(&before, "participant.lookup", "granted"), 4);

    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let jpath = format!("/v1/participants/{}", case.pids["jobandco"]);
    job.get(&jpath).await.unwrap();
    job.get(&format!("{jpath}/notes")).await.unwrap();
    job.post(
        &format!("{jpath}/consents"),
        &json!({"scope": "health_sharing"}),
    )
    .await
    .unwrap();
    // Refusals: not involved, wrong purpose header, no grant for notes, non-DPO reading the log.
    let intro = as_(&gw.client("crm.intro"), "trajectory_guidance");
    intro
        .get(&format!("/v1/participants/{intro_pid}"))
        .await
        .unwrap();
    gw.client("crm.vdab")
        .send(hyper::Method::GET, &jpath, &[("x-acting-user", "u")], None)
        .await
        .unwrap();
    as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance")
        .get(&format!(
            "/v1/participants/{}/notes",
            case.pids["ocmw-gent"]
        ))
        .await
        .unwrap();
    let r = as_(&gw.client("crm.vdab"), "audit")
        .get("/v1/audit/verify")
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    let after = audit_records(&gw).await;
    let new: Vec<Value> = after[before.len()..].to_vec();
    assert_eq!(count(&new, "participant.read", "granted"), 1);
    assert_eq!(count(&new, "notes.read", "granted"), 1);
    assert_eq!(count(&new, "consent.record", "granted"), 1);
    assert_eq!(count(&new, "participant.read", "refused"), 1);
    assert_eq!(count(&new, "request", "refused"), 1);
    assert_eq!(count(&new, "notes.read", "refused"), 1);
    assert_eq!(count(&new, "audit.verify", "refused"), 1);
    assert_eq!(
        count(&new, "audit.export", "granted"),
        1,
        "the first export read is itself logged"
    );

    // A read record names the fields disclosed, never their values, and the purpose and actor.
    let read = new
        .iter()
        .find(|r| r["action"] == "participant.read" && r["decision"] == "granted")
        .unwrap();
    assert_eq!(read["partner"], "jobandco");
    assert_eq!(read["acting_user"], "staff-42");
    assert_eq!(read["purpose"], "trajectory_guidance");
    assert_eq!(read["roles"], json!(["trajectgezel"]));
    assert!(
        read["fields"]
            .as_array()
            .unwrap()
            .contains(&json!("health.addiction"))
    );
    assert_eq!(read["participant"].as_str().unwrap().len(), 32);
    let refused = new
        .iter()
        .find(|r| r["action"] == "participant.read" && r["decision"] == "refused")
        .unwrap();
    assert_eq!(refused["reason"], "not_involved");
    assert_eq!(
        refused["participant"], read["participant"],
        "one audit pseudonym per participant"
    );

    // The DPO finds this person's accesses by national number.
    let r = dpo(&gw)
        .get(&format!("/v1/audit?insz={}&limit=1000", case.insz))
        .await
        .unwrap();
    let recs = r.json()["records"].as_array().unwrap().clone();
    assert!(recs.len() >= 10);
    assert!(recs.iter().all(|x| x["participant"] == read["participant"]));
    // Breach question: what did VDAB's client access, and refused filters work.
    let r = dpo(&gw)
        .get("/v1/audit?client=crm.intro&decision=refused")
        .await
        .unwrap();
    assert_eq!(r.json()["records"].as_array().unwrap().len(), 1);
}

/// Writes `record` with the stored `hash` at `seq`, behind the gateway's back.
async fn put_record(conn: &mut sqlx::AnyConnection, seq: i64, record: &str, hash: &[u8]) {
    sqlx::query("UPDATE audit_records SET record = $1, hash = $2 WHERE seq = $3")
        .bind(record)
        .bind(hash)
        .bind(seq)
        .execute(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn tampering_with_the_live_log_is_found_at_the_first_bad_record() {
    let home = Home::new();
    let gw = home.start();
    showcase(&gw, 22).await;
    // Sign the head so the tail is covered by a checkpoint.
    audit_records(&gw).await;
    let ok = verify(&gw).await;
    assert_eq!(ok["ok"], true, "{ok}");
    let mut conn = db(&home).await;
    let (record5, hash5): (String, Vec<u8>) =
        sqlx::query_as("SELECT record, hash FROM audit_records WHERE seq = 5")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let (record6, hash6): (String, Vec<u8>) =
        sqlx::query_as("SELECT record, hash FROM audit_records WHERE seq = 6")
            .fetch_one(&mut conn)
            .await
            .unwrap();

    // One changed byte.
    let changed = record5.replacen("participant.", "participant,", 1);
    assert_ne!(changed, record5);
    put_record(&mut conn, 5, &changed, &hash5).await;
    assert_eq!(verify(&gw).await["first_bad"], 5);
    put_record(&mut conn, 5, &record5, &hash5).await;
    assert_eq!(verify(&gw).await["ok"], true);

    // Two records swapped.
    put_record(&mut conn, 5, &record6, &hash6).await;
    put_record(&mut conn, 6, &record5, &hash5).await;
    assert_eq!(verify(&gw).await["first_bad"], 5);
    put_record(&mut conn, 5, &record5, &hash5).await;
    put_record(&mut conn, 6, &record6, &hash6).await;
    assert_eq!(verify(&gw).await["ok"], true);

    // A stored hash cut short or lengthened by a byte: named at its own record, and the records
    // after it still line up with their hashes. The last round puts the right hash back.
    let long = [&hash5[..], &[0u8]].concat();
    for stored in [&hash5[..31], &long[..], &hash5[..]] {
        sqlx::query("UPDATE audit_records SET hash = $1 WHERE seq = 5")
            .bind(stored)
            .execute(&mut conn)
            .await
            .unwrap();
        let v = verify(&gw).await;
        if stored == &hash5[..] {
            assert_eq!(v["ok"], true, "{v}");
        } else {
            assert_eq!(v["first_bad"], 5, "{v}");
            assert_eq!(v["problem"], "stored hash does not match the record", "{v}");
        }
    }

    // A byte that is not UTF-8 (SQLite stores what it is given; PostgreSQL's text refuses it):
    // named at its record, like any other change, not a failed read of the whole chunk.
    if !crate::harness::on_postgres() {
        sqlx::query(
            "UPDATE audit_records
                SET record = replace(record, '\"action\":\"', '\"action\":\"' || CAST(x'ff' AS TEXT))
              WHERE seq = 5",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let v = verify(&gw).await;
        assert_eq!(v["first_bad"], 5, "{v}");
        assert_eq!(v["problem"], "record is not in canonical form", "{v}");
        put_record(&mut conn, 5, &record5, &hash5).await;
        assert_eq!(verify(&gw).await["ok"], true);
    }

    // One record deleted.
    sqlx::query("DELETE FROM audit_records WHERE seq = 5")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(verify(&gw).await["first_bad"], 5);
    sqlx::query("INSERT INTO audit_records (seq, record, hash) VALUES (5, $1, $2)")
        .bind(&record5)
        .bind(&hash5)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(verify(&gw).await["ok"], true);

    // The tail truncated (below a signed checkpoint).
    audit_records(&gw).await;
    let (last_cp,): (i64,) = sqlx::query_as("SELECT max(seq) FROM audit_checkpoints")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_records WHERE seq > $1")
        .bind(last_cp - 3)
        .execute(&mut conn)
        .await
        .unwrap();
    let v = verify(&gw).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad"], last_cp - 2, "{v}");
}

#[tokio::test]
async fn when_the_audit_store_refuses_writes_reads_answer_503_and_disclose_nothing() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 23).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let mut conn = db(&home).await;
    fixtures::refuse(&mut conn, "audit_down", "BEFORE INSERT ON audit_records").await;
    let r = job.get(&path).await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "audit_unavailable");
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        !body.contains(fixtures::GIVEN) && !body.contains(fixtures::ADDICTION),
        "{body}"
    );
    // Writes are refused too, and nothing is written.
    let r = job
        .send(
            hyper::Method::PATCH,
            &path,
            &[("if-match", "2")],
            Some(&json!({"fields": {"trajectory.status": "paused"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    // Refusals also need their record: an unknown purpose is 503 rather than an unlogged 400.
    let r = gw
        .client("crm.vdab")
        .send(
            hyper::Method::GET,
            &path,
            &[("x-acting-user", "u"), ("x-purpose", "x")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    fixtures::allow(&mut conn, "audit_down", "audit_records").await;
    let r = job.get(&path).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["fields"]["trajectory.status"],
        "intake",
        "the refused write did not happen"
    );
    assert_eq!(
        verify(&gw).await["ok"],
        true,
        "the chain survives a failed batch"
    );
}

/// A write the database refused answers 503 `storage_unavailable`; a read that shared its
/// batch is answered as usual.
fn refused_beside_an_unharmed_read(
    failed: Result<partnergate_client::Response, partnergate_client::ClientError>,
    read: Result<partnergate_client::Response, partnergate_client::ClientError>,
) {
    let failed = failed.unwrap();
    let body = String::from_utf8_lossy(&failed.body);
    assert_eq!(failed.status, 503, "{body}");
    assert_eq!(failed.json()["error"], "storage_unavailable");
    assert_eq!(
        read.unwrap().status,
        200,
        "a read batched with it is unharmed"
    );
}

#[tokio::test]
async fn a_write_that_fails_in_the_database_leaves_no_record_claiming_it() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 24).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let writes_before = count(&audit_records(&gw).await, "participant.write", "granted");
    // The vault write fails; the audit log itself is fine.
    let mut conn = db(&home).await;
    fixtures::refuse(&mut conn, "vault_down", "BEFORE UPDATE ON participants").await;
    let patch = |status: &'static str| {
        let (job, path) = (&job, &path);
        async move {
            let body = json!({"fields": {"trajectory.status": status}});
            let if_match = [("if-match", "2")];
            job.send(hyper::Method::PATCH, path, &if_match, Some(&body))
                .await
        }
    };
    let (failed, read) = tokio::join!(patch("paused"), job.get(&path));
    refused_beside_an_unharmed_read(failed, read);
    let records = audit_records(&gw).await;
    assert_eq!(
        count(&records, "participant.write", "granted"),
        writes_before,
        "the record of a write commits with the write: none for a write that did not happen"
    );
    fixtures::allow(&mut conn, "vault_down", "participants").await;
    let r = patch("active").await.unwrap();
    assert_eq!(
        r.status,
        200,
        "the version did not move: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["version"], 3);
    let records = audit_records(&gw).await;
    assert_eq!(
        count(&records, "participant.write", "granted"),
        writes_before + 1
    );
    assert_eq!(verify(&gw).await["ok"], true);
}

/// Rows in `table`, counted behind the API.
async fn rows(conn: &mut sqlx::AnyConnection, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_registration_that_fails_at_its_last_statement_writes_nothing_and_no_record() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 25).await;
    let ocmw = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let mut conn = db(&home).await;
    let tables = ["participants", "field_values", "involvements", "changes"];
    let mut before = Vec::new();
    for t in tables {
        before.push(rows(&mut conn, t).await);
    }
    let registered_before = count(&audit_records(&gw).await, "participant.register", "granted");
    // The change log is the last thing a registration writes.
    fixtures::refuse(&mut conn, "changes_down", "BEFORE INSERT ON changes").await;
    let new =
        json!({"fields": {"identity.insz": fixtures::insz(26), "identity.given_name": "Ward"}});
    let read = format!("/v1/participants/{}", case.pids["jobandco"]);
    let (failed, read) = tokio::join!(ocmw.post("/v1/participants", &new), job.get(&read));
    refused_beside_an_unharmed_read(failed, read);
    for (t, n) in tables.iter().zip(&before) {
        assert_eq!(
            rows(&mut conn, t).await,
            *n,
            "{t}: the registration left rows behind"
        );
    }
    assert_eq!(
        count(&audit_records(&gw).await, "participant.register", "granted"),
        registered_before,
        "no record of a registration that did not happen"
    );
    // The number was not left registered: the retry is a new registration, not a look-up hit.
    fixtures::allow(&mut conn, "changes_down", "changes").await;
    let r = ocmw.post("/v1/participants", &new).await.unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["existing"], false);
    assert_eq!(rows(&mut conn, "participants").await, before[0] + 1);
    assert_eq!(verify(&gw).await["ok"], true);
}

#[tokio::test]
async fn a_sync_page_whose_state_cannot_be_saved_is_not_sent_and_leaves_no_disclosure_record() {
    let home = Home::new();
    let gw = home.start();
    showcase(&gw, 27).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let disclosed_before = count(&audit_records(&gw).await, "sync.disclose", "granted");
    let mut conn = db(&home).await;
    fixtures::refuse(&mut conn, "state_down", "BEFORE INSERT ON sync_state").await;
    let failed = job.get("/v1/changes").await.unwrap();
    assert_eq!(
        failed.status,
        503,
        "{}",
        String::from_utf8_lossy(&failed.body)
    );
    assert!(failed.json().get("changes").is_none(), "no page was sent");
    assert_eq!(
        count(&audit_records(&gw).await, "sync.disclose", "granted"),
        disclosed_before,
        "the records of a page commit with the client's state: none for a page not sent"
    );
    assert_eq!(rows(&mut conn, "sync_state").await, 0);
    fixtures::allow(&mut conn, "state_down", "sync_state").await;
    let page = job.get("/v1/changes").await.unwrap();
    assert_eq!(page.status, 200);
    let sent = page.json()["changes"].as_array().unwrap().len();
    assert!(sent > 0);
    assert_eq!(
        count(&audit_records(&gw).await, "sync.disclose", "granted"),
        disclosed_before + sent
    );
    assert_eq!(rows(&mut conn, "sync_state").await, sent as i64);
    assert_eq!(verify(&gw).await["ok"], true);
}

#[tokio::test]
async fn a_crash_under_load_loses_no_answered_access_and_keeps_the_chain() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 24).await;
    let path = Arc::new(format!("/v1/participants/{}", case.pids["jobandco"]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
        let (path, stop) = (path.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c.get(&path).await {
                    Ok(r) if r.status == 200 => {
                        answered.push(r.headers["x-request-id"].to_str().unwrap().to_string())
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut answered = Vec::new();
    for t in tasks {
        answered.extend(t.await.unwrap());
    }
    assert!(
        answered.len() > 20,
        "the load produced answers: {}",
        answered.len()
    );
    let gw = home.start();
    let v = verify(&gw).await;
    assert_eq!(v["ok"], true, "{v}");
    let ids: HashMap<String, ()> = audit_records(&gw)
        .await
        .into_iter()
        .map(|r| (r["request_id"].as_str().unwrap().to_string(), ()))
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !ids.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} answered requests have no audit record",
        missing.len()
    );
}

#[tokio::test]
async fn an_export_verifies_offline_and_each_kind_of_tampering_is_found() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 25).await;
    let r = dpo(&gw).get("/v1/audit/export").await.unwrap();
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = home.certs().join("audit-signing.pub");
    let check = |name: &str, content: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, content).unwrap();
        crate::harness::run(
            dir.path(),
            &[
                "audit",
                "verify",
                f.to_str().unwrap(),
                "--public-key",
                key.to_str().unwrap(),
            ],
        )
    };
    let (ok, out) = check("good.jsonl", &text);
    assert!(ok, "{out}");
    assert!(out.contains("\"ok\":true"));
    let lines: Vec<&str> = text.lines().collect();
    let recs: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("{\"v\":"))
        .collect();
    let join = |v: Vec<&str>| v.join("\n") + "\n";
    let mut changed = lines.clone();
    let altered = lines[recs[3]].replacen("staff-42", "staff-43", 1);
    changed[recs[3]] = &altered;
    let mut deleted = lines.clone();
    deleted.remove(recs[3]);
    let mut inserted = lines.clone();
    inserted.insert(recs[3], lines[recs[2]]);
    let mut swapped = lines.clone();
    swapped.swap(recs[3], recs[4]);
    let cp = lines
        .iter()
        .position(|l| l.starts_with("{\"checkpoint\""))
        .unwrap();
    let forged_line = {
        let mut v: Value = serde_json::from_str(lines[cp]).unwrap();
        let sig = v["checkpoint"]["signature"].as_str().unwrap().to_string();
        let first = if sig.starts_with('0') { '1' } else { '0' };
        let flipped = format!("{first}{}", &sig[1..]);
        v["checkpoint"]["signature"] = json!(flipped);
        v.to_string()
    };
    let mut forged = lines.clone();
    forged[cp] = &forged_line;
    let mut truncated = lines.clone();
    truncated.remove(*recs.last().unwrap());
    for (name, content) in [
        ("changed", join(changed)),
        ("deleted", join(deleted)),
        ("inserted", join(inserted)),
        ("swapped", join(swapped)),
        ("forged", join(forged)),
        ("truncated", join(truncated)),
    ] {
        let (ok, out) = check(name, &content);
        assert!(!ok, "{name} was not detected: {out}");
        assert!(out.contains("verification failed"), "{name}: {out}");
    }
    // No personal data in the export.
    for s in fixtures::secrets(&case.insz) {
        assert!(!text.contains(&s), "{s} in export");
    }
}

#[tokio::test]
async fn a_dpo_can_export_verify_and_report_offline_from_the_command_line() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 26).await;
    let _ = as_(&gw.client("crm.intro"), "trajectory_guidance")
        .get(&format!("/v1/participants/{}", case.pids["jobandco"]))
        .await
        .unwrap();
    gw.stop();
    let out = home.path().join("audit.jsonl");
    let (ok, text) = home.run(&["audit", "export", "--out", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    let key = home.certs().join("audit-signing.pub");
    let (ok, text) = home.run(&[
        "audit",
        "verify",
        out.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let report = home.path().join("report.html");
    let (ok, text) = home.run(&["audit", "report", "--out", report.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("chain verified"), "{text}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("Job &amp; Co vzw") || html.contains("Job & Co"),
        "partner names appear"
    );
    for s in fixtures::secrets(&case.insz) {
        assert!(!html.contains(&s), "{s} in the report");
    }
}

/// Runs `partnergate audit verify` on `content` and returns (success, the JSON report it prints).
fn verify_file(home: &Home, name: &str, content: &str) -> (bool, Value) {
    let f = home.path().join(name);
    std::fs::write(&f, content).unwrap();
    let (ok, out) = fixtures::verify_offline(home, &f);
    let report = out
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| panic!("no JSON report in: {out}"));
    assert_eq!(report["ok"], ok, "exit status and report agree: {out}");
    (ok, report)
}

/// The sequence number a JSON line carries: a record's `seq`, or a checkpoint's.
fn line_seq(line: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(line).ok()?;
    v["seq"]
        .as_u64()
        .or_else(|| v["checkpoint"]["seq"].as_u64())
}

/// The export with every record and checkpoint after `keep` dropped.
fn cut_after(text: &str, keep: u64) -> Vec<String> {
    text.lines()
        .filter(|l| line_seq(l).is_none_or(|s| s <= keep))
        .map(str::to_string)
        .collect()
}

fn joined(lines: &[String]) -> String {
    lines.join("\n") + "\n"
}

/// An export whose log holds two signed checkpoints: the first export's and the second's.
/// Returns (the second export, the first checkpoint's sequence, the last record's sequence).
async fn export_with_two_checkpoints(gw: &Gateway, serial: u16) -> (String, u64, u64) {
    showcase(gw, serial).await;
    let first = dpo(gw).get("/v1/audit/export").await.unwrap();
    let first = String::from_utf8(first.body.to_vec()).unwrap();
    let earlier = first.lines().filter_map(line_seq).max().unwrap();
    showcase(gw, serial + 1).await;
    let r = dpo(gw).get("/v1/audit/export").await.unwrap();
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let checkpoints: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("{\"checkpoint\""))
        .filter_map(line_seq)
        .collect();
    assert!(
        checkpoints.contains(&earlier),
        "the earlier checkpoint is in the export: {checkpoints:?}"
    );
    let last = text
        .lines()
        .filter(|l| l.starts_with("{\"v\":"))
        .filter_map(line_seq)
        .max()
        .unwrap();
    assert!(last > earlier + 5, "records after the earlier checkpoint");
    (text, earlier, last)
}

fn edit_header(lines: &mut [String], edit: impl FnOnce(&mut Value)) {
    let mut header: Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(
        header.get("export").is_some(),
        "the header is the first line"
    );
    edit(&mut header["export"]);
    lines[0] = header.to_string();
}

#[tokio::test]
async fn an_intact_export_verifies_signed_to_its_declared_end() {
    let home = Home::new();
    let gw = home.start();
    let (text, _, last) = export_with_two_checkpoints(&gw, 30).await;
    let (ok, report) = verify_file(&home, "intact.jsonl", &text);
    assert!(ok, "{report}");
    assert_eq!(report["records"], last);
    assert_eq!(report["signed_through"], last);
    assert_eq!(report["unsigned_tail"], 0);
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["export"]["to_seq"], last);
    assert_eq!(header["export"]["format"], "partnergate-audit-export/v2");
}

#[tokio::test]
async fn an_export_cut_after_an_earlier_checkpoint_is_refused_at_the_first_missing_record() {
    let home = Home::new();
    let gw = home.start();
    let (text, earlier, _) = export_with_two_checkpoints(&gw, 32).await;
    let cut = cut_after(&text, earlier);
    assert!(cut.last().unwrap().starts_with("{\"checkpoint\""));
    let (ok, report) = verify_file(&home, "cut.jsonl", &joined(&cut));
    assert!(!ok, "{report}");
    assert_eq!(report["first_bad"], earlier + 1, "{report}");
    assert!(
        report["problem"].as_str().unwrap().contains("declares"),
        "{report}"
    );
}

#[tokio::test]
async fn a_cut_export_whose_header_is_edited_to_match_is_still_refused() {
    let home = Home::new();
    let gw = home.start();
    let (text, earlier, _) = export_with_two_checkpoints(&gw, 34).await;
    let cut = cut_after(&text, earlier);
    let earlier_hash = cut
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["checkpoint"]["seq"] == earlier)
        .unwrap()["checkpoint"]["hash"]
        .clone();

    // The declared end moved back to the cut, signature kept.
    let mut end_edited = cut.clone();
    edit_header(&mut end_edited, |h| h["to_seq"] = json!(earlier));
    // ... and the declared end hash too.
    let mut end_and_hash_edited = end_edited.clone();
    edit_header(&mut end_and_hash_edited, |h| h["to_hash"] = earlier_hash);
    // Downgraded to the unsigned format.
    let mut downgraded = end_and_hash_edited.clone();
    edit_header(&mut downgraded, |h| {
        h["format"] = json!("partnergate-audit-export/v1");
        h.as_object_mut().unwrap().remove("signature");
        h.as_object_mut().unwrap().remove("to_hash");
    });
    // The earlier checkpoint's signature pasted in as the header's.
    let mut checkpoint_signature = end_and_hash_edited.clone();
    let cp_sig = cut
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["checkpoint"]["seq"] == earlier)
        .unwrap()["checkpoint"]["signature"]
        .clone();
    edit_header(&mut checkpoint_signature, |h| h["signature"] = cp_sig);
    // The header removed altogether.
    let headless: Vec<String> = cut[1..].to_vec();
    // A second, edited header after the real one.
    let mut two_headers = cut.clone();
    two_headers.insert(1, end_and_hash_edited[0].clone());

    for (name, lines) in [
        ("end_edited", end_edited),
        ("end_and_hash_edited", end_and_hash_edited),
        ("downgraded", downgraded),
        ("checkpoint_signature", checkpoint_signature),
        ("headless", headless),
        ("two_headers", two_headers),
    ] {
        let (ok, report) = verify_file(&home, name, &joined(&lines));
        assert!(!ok, "{name} passed: {report}");
        assert_eq!(report["first_bad"], earlier + 1, "{name}: {report}");
    }
}

#[tokio::test]
async fn an_export_is_refused_when_its_end_does_not_match_the_signed_header() {
    let home = Home::new();
    let gw = home.start();
    let (text, earlier, last) = export_with_two_checkpoints(&gw, 36).await;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();

    // The final checkpoint dropped: the records are all there but the end is unsigned.
    let unsigned_end: Vec<String> = lines
        .iter()
        .filter(|l| !(l.starts_with("{\"checkpoint\"") && line_seq(l) == Some(last)))
        .cloned()
        .collect();
    let (ok, report) = verify_file(&home, "unsigned_end", &joined(&unsigned_end));
    assert!(!ok, "{report}");
    assert_eq!(report["first_bad"], last, "{report}");

    // An older export's records with a newer export's records appended past its signed end.
    let older = dpo(&gw)
        .get(&format!("/v1/audit/export?to={earlier}"))
        .await
        .unwrap();
    let older = String::from_utf8(older.body.to_vec()).unwrap();
    let older_header: Value = serde_json::from_str(older.lines().next().unwrap()).unwrap();
    assert_eq!(older_header["export"]["to_seq"], earlier);
    assert!(verify_file(&home, "older", &older).0);
    let mut extended: Vec<String> = older.lines().map(str::to_string).collect();
    extended.extend(
        lines
            .iter()
            .filter(|l| line_seq(l).is_some_and(|s| s > earlier))
            .cloned(),
    );
    let (ok, report) = verify_file(&home, "extended", &joined(&extended));
    assert!(!ok, "{report}");
    assert_eq!(report["first_bad"], earlier + 1, "{report}");

    // An export from the middle loses its anchor: the signed header's start no longer fits.
    let from = earlier + 1;
    let middle = dpo(&gw)
        .get(&format!("/v1/audit/export?from={from}"))
        .await
        .unwrap();
    let middle = String::from_utf8(middle.body.to_vec()).unwrap();
    assert!(verify_file(&home, "middle", &middle).0);
    let unanchored: Vec<String> = middle
        .lines()
        .filter(|l| !l.starts_with("{\"anchor\""))
        .map(str::to_string)
        .collect();
    let (ok, report) = verify_file(&home, "unanchored", &joined(&unanchored));
    assert!(!ok, "{report}");
}

/// A home whose server signs only on export, at shutdown and every 1000 records, so a test
/// sees an unsigned tail however slowly it runs.
fn home_with_slow_checkpoints() -> Home {
    let home = Home::new();
    let config = home.path().join("partnergate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[audit]\ncheckpoint_seconds = 86400\n");
    std::fs::write(&config, text).unwrap();
    home
}

#[tokio::test]
async fn live_verify_reports_unsigned_records_apart_from_a_deleted_tail() {
    let home = home_with_slow_checkpoints();
    let gw = home.start();
    let case = showcase(&gw, 38).await;
    // An export signs the head.
    audit_records(&gw).await;
    let mut conn = db(&home).await;
    let (signed,): (i64,) = sqlx::query_as("SELECT max(seq) FROM audit_checkpoints")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    for _ in 0..3 {
        job.get(&format!("/v1/participants/{}", case.pids["jobandco"]))
            .await
            .unwrap();
    }
    let v = verify(&gw).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["first_bad"], Value::Null, "{v}");
    assert_eq!(v["signed_through"], signed, "{v}");
    let records = v["records"].as_i64().unwrap();
    // Three reads and this verification's own record, none signed yet.
    assert_eq!(records, signed + 4, "{v}");
    assert_eq!(v["unsigned_tail"], records - signed, "{v}");

    // The newest row deleted: the writer chains the next record onto it, leaving a gap.
    sqlx::query("DELETE FROM audit_records WHERE seq = $1")
        .bind(records)
        .execute(&mut conn)
        .await
        .unwrap();
    let v = verify(&gw).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad"], records, "{v}");
}

#[tokio::test]
async fn the_report_command_prints_how_far_the_log_is_signed() {
    let home = home_with_slow_checkpoints();
    let gw = home.start();
    let case = showcase(&gw, 40).await;
    audit_records(&gw).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    for _ in 0..2 {
        job.get(&format!("/v1/participants/{}", case.pids["jobandco"]))
            .await
            .unwrap();
    }
    // A crash leaves the two reads unsigned.
    gw.kill9();
    let mut conn = db(&home).await;
    let (signed,): (i64,) = sqlx::query_as("SELECT max(seq) FROM audit_checkpoints")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let report = home.path().join("report.html");
    let (ok, text) = home.run(&["audit", "report", "--out", report.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "chain verified, signed through {signed}, 2 not yet signed"
        )),
        "{text}"
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("id=\"unsigned-tail\""),
        "the page says it too"
    );
}
