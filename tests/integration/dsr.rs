//! Data-subject requests end to end over mTLS, including two partners' feeds.

use hyper::Method;
use partnergate_client::GatewayClient;
use serde_json::{Value, json};

use crate::fixtures::{self, as_, db, dsr_execute, dsr_request, showcase};
use crate::harness::{Gateway, Home};

fn dpo(gw: &Gateway) -> GatewayClient {
    as_(&gw.client("dpo.stad-gent"), "dsr_handling")
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// The first day of this month and of the next.
fn this_month_and_next() -> (time::Date, time::Date) {
    let first = today().replace_day(1).unwrap();
    let next = match first.month() {
        time::Month::December => first.replace_year(first.year() + 1).unwrap(),
        _ => first,
    };
    (first, next.replace_month(first.month().next()).unwrap())
}

async fn feed(gw: &Gateway, client: &str) -> Vec<Value> {
    let c = as_(&gw.client(client), "trajectory_guidance");
    c.get("/v1/changes?limit=1000").await.unwrap().json()["changes"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn only_the_dpo_handles_requests_and_deadlines_are_tracked() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 61).await;
    let r = as_(&gw.client("crm.ocmw-gent"), "dsr_handling")
        .post(
            "/v1/dsr",
            &json!({"kind": "access", "insz": case.insz, "received_at": "2026-11-01"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    // Received on the first of this month: due on the first of the next (one month), not
    // yet overdue whatever day the test runs.
    let (received, due) = this_month_and_next();
    let r = dpo(&gw)
        .post(
            "/v1/dsr",
            &json!({"kind": "access", "insz": case.insz, "received_at": received.to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["state"], "received");
    assert_eq!(r.json()["due"], due.to_string());
    let fresh = r.json()["id"].as_str().unwrap().to_string();
    // Executing before the requester's identity is verified is refused.
    assert_eq!(
        dpo(&gw)
            .post(&format!("/v1/dsr/{fresh}/execute"), &json!({}))
            .await
            .unwrap()
            .status,
        409
    );
    // A request received two months ago is overdue and listed first...
    let old = (today() - time::Duration::days(62)).to_string();
    let r = dpo(&gw)
        .post(
            "/v1/dsr",
            &json!({"kind": "erasure", "insz": case.insz, "received_at": old}),
        )
        .await
        .unwrap();
    let late = r.json()["id"].as_str().unwrap().to_string();
    let list = dpo(&gw).get("/v1/dsr").await.unwrap().json();
    assert_eq!(list["requests"][0]["id"], late.as_str());
    assert_eq!(list["requests"][0]["overdue"], true);
    assert_eq!(list["requests"][1]["overdue"], false);
    // ...until it is extended (with a reason) within the three months the law allows.
    let r = dpo(&gw)
        .post(
            &format!("/v1/dsr/{late}/extend"),
            &json!({"months": 2, "reason": "complex: five partners involved"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["overdue"], false);
    assert_eq!(
        dpo(&gw)
            .post(
                &format!("/v1/dsr/{late}/extend"),
                &json!({"months": 3, "reason": "x"})
            )
            .await
            .unwrap()
            .status,
        422
    );
    // Bad input is a 4xx, never echoing the number.
    let r = dpo(&gw)
        .post(
            "/v1/dsr",
            &json!({"kind": "access", "insz": "12345678901", "received_at": "2026-11-01"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    assert!(!String::from_utf8_lossy(&r.body).contains("12345678901"));
    let r = dpo(&gw)
        .post(
            "/v1/dsr",
            &json!({"kind": "forget-me", "insz": case.insz, "received_at": "2026-11-01"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422);
}

#[tokio::test]
async fn an_access_export_holds_exactly_the_persons_data_and_who_saw_it() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 62).await;
    let other = showcase_other(&gw).await;
    for (client, partner) in [
        ("crm.vdab", "vdab"),
        ("crm.caw-oost-vlaanderen", "caw-oost-vlaanderen"),
    ] {
        let r = as_(&gw.client(client), "trajectory_guidance")
            .get(&format!("/v1/participants/{}", case.pids[partner]))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let id = dsr_request(&gw, "access", &case.insz, None).await;
    assert_eq!(dsr_execute(&gw, &id).await["state"], "completed");
    let r = dpo(&gw).get(&format!("/v1/dsr/{id}/export")).await.unwrap();
    assert_eq!(r.status, 200);
    let bundle = r.json();
    let text = bundle.to_string();
    assert_eq!(bundle["data"]["identity"]["given_name"], fixtures::GIVEN);
    assert_eq!(bundle["data"]["health"]["addiction"], fixtures::ADDICTION);
    assert_eq!(bundle["notes"][0]["text"], fixtures::NOTE);
    assert!(
        !text.contains(&other),
        "another person's data is not in the export"
    );
    assert!(
        !text.contains("staff-42"),
        "partner staff ids are not disclosed"
    );
    let orgs: Vec<&str> = bundle["involvements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["organisation"].as_str().unwrap())
        .collect();
    assert!(
        orgs.contains(&"Job & Co vzw") && orgs.contains(&"CAW Oost-Vlaanderen"),
        "{orgs:?}"
    );
    // The disclosure history matches the audit log's granted reads of this person, one to one.
    let audit = as_(&gw.client("dpo.stad-gent"), "audit")
        .get(&format!(
            "/v1/audit?insz={}&decision=granted&limit=1000",
            case.insz
        ))
        .await
        .unwrap()
        .json();
    let reads = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "participant.read")
        .count();
    let seen = bundle["disclosures"].as_array().unwrap();
    assert_eq!(seen.iter().filter(|d| d["what"] == "viewed").count(), reads);
    assert!(
        seen.iter()
            .any(|d| d["organisation"].as_str().unwrap().starts_with("VDAB")
                && d["what"] == "viewed")
    );
    let caw = seen
        .iter()
        .find(|d| d["organisation"] == "CAW Oost-Vlaanderen" && d["what"] == "viewed")
        .unwrap();
    assert!(
        caw["categories"]
            .as_array()
            .unwrap()
            .contains(&json!("life"))
    );
    assert!(
        !caw["categories"]
            .as_array()
            .unwrap()
            .contains(&json!("health")),
        "CAW had no consent then"
    );
    // The page for the participant.
    let r = dpo(&gw)
        .get(&format!("/v1/dsr/{id}/export?format=html"))
        .await
        .unwrap();
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8_lossy(&r.body);
    assert!(html.contains(fixtures::GIVEN) && html.contains("Who looked at your file"));
}

async fn showcase_other(gw: &Gateway) -> String {
    let r = as_(&gw.client("crm.vdab"), "trajectory_guidance")
        .post("/v1/participants", &json!({"fields": {"identity.insz": fixtures::insz(69), "identity.given_name": "Ondinebeta"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    "Ondinebeta".into()
}

#[tokio::test]
async fn a_rectification_reaches_every_partner_that_received_the_old_value() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 63).await;
    let job_first = feed(&gw, "crm.jobandco").await;
    let vdab_first = feed(&gw, "crm.vdab").await;
    assert_eq!((job_first.len(), vdab_first.len()), (1, 1));
    let id = dsr_request(
        &gw,
        "rectification",
        &case.insz,
        Some(json!({"fields": {"identity.family_name": "Verbeterd"}})),
    )
    .await;
    let done = dsr_execute(&gw, &id).await;
    assert_eq!(done["state"], "completed");
    let history = done["history"].as_array().unwrap();
    let notify = history.iter().find(|s| s["step"] == "notify").unwrap()["detail"]
        .as_str()
        .unwrap();
    assert!(
        notify.contains("crm.jobandco") && notify.contains("crm.vdab"),
        "{notify}"
    );
    assert!(!notify.contains("Verbeterd"));
    for client in ["crm.jobandco", "crm.vdab"] {
        let c = as_(&gw.client(client), "trajectory_guidance");
        let first = c.get("/v1/changes?limit=1000").await.unwrap().json();
        let changes = first["changes"].as_array().unwrap();
        assert_eq!(
            changes[0]["fields"]["identity.family_name"], "Verbeterd",
            "{client}"
        );
    }
    // Executing again does nothing more.
    let again = dsr_execute(&gw, &id).await;
    assert_eq!(again["history"].as_array().unwrap().len(), history.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_interrupted_by_a_crash_completes_on_retry_and_leaves_nothing_decryptable() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 64).await;
    // No ESF evidence on file, so retention keeps nothing (see the next test for that case).
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let jc = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let v = jc.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();
    let clear = json!({"fields": {"esf.labour_status_entry": null, "esf.education_level": null}});
    assert_eq!(
        jc.send(
            Method::PATCH,
            &path,
            &[("if-match", &v.to_string())],
            Some(&clear)
        )
        .await
        .unwrap()
        .status,
        200
    );
    // Both partners hold the person in their CRM.
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let vdab = as_(&gw.client("crm.vdab"), "trajectory_guidance");
    let job_cursor = job.get("/v1/changes").await.unwrap().json()["next"]
        .as_str()
        .unwrap()
        .to_string();
    let vdab_cursor = vdab.get("/v1/changes").await.unwrap().json()["next"]
        .as_str()
        .unwrap()
        .to_string();
    let mut conn = db(&home).await;
    let (wrapped,): (Vec<u8>,) = sqlx::query_as("SELECT wrapped_dek FROM participants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (sealed,): (Vec<u8>,) =
        sqlx::query_as("SELECT sealed FROM field_values WHERE field = 'health.addiction'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let id = dsr_request(&gw, "erasure", &case.insz, None).await;
    // The receipt step fails (the store refuses it), then the server dies.
    fixtures::refuse(
        &mut conn,
        "no_receipt",
        "BEFORE UPDATE OF receipt ON dsr_requests",
    )
    .await;
    let r = dpo(&gw)
        .post(&format!("/v1/dsr/{id}/execute"), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    gw.kill9();
    fixtures::allow(&mut conn, "no_receipt", "dsr_requests").await;
    drop(conn);
    let gw = home.start();
    let r = dpo(&gw).get(&format!("/v1/dsr/{id}")).await.unwrap().json();
    assert_eq!(r["state"], "in_progress");
    let done = dsr_execute(&gw, &id).await;
    assert_eq!(done["state"], "completed", "{done}");
    let steps: Vec<&str> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps.iter().filter(|s| **s == "shred").count(),
        1,
        "{steps:?}"
    );
    assert!(steps.contains(&"receipt"));

    // The receipt verifies with the public key a DPO holds, and says what happened.
    let key = partnergate::audit::load_public_key(&home.certs().join("audit-signing.pub")).unwrap();
    assert!(partnergate::dsr::verify_receipt(&done["receipt"], &key));
    let payload: Value =
        serde_json::from_str(done["receipt"]["payload"].as_str().unwrap()).unwrap();
    assert!(
        payload["categories_erased"]
            .as_array()
            .unwrap()
            .contains(&json!("health"))
    );
    let notified = payload["partners_notified"].to_string();
    assert!(
        notified.contains("crm.jobandco") && notified.contains("crm.vdab"),
        "{notified}"
    );
    let mut forged = done["receipt"].clone();
    forged["payload"] = json!(
        done["receipt"]["payload"]
            .as_str()
            .unwrap()
            .replace("health", "x")
    );
    assert!(!partnergate::dsr::verify_receipt(&forged, &key));

    // Nothing of the person can be decrypted: no key, no ciphertext, no row, anywhere in the files.
    gw.stop();
    for (f, bytes) in fixtures::database_contents(&home) {
        assert!(!fixtures::contains(&bytes, &wrapped), "wrapped key in {f}");
        assert!(!fixtures::contains(&bytes, &sealed), "ciphertext in {f}");
    }
    let mut conn = db(&home).await;
    for table in [
        "participants",
        "field_values",
        "notes",
        "involvements",
        "consents",
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let gw = home.start();
    // Both partners' feeds carry the removal; the look-up finds nobody.
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let changes = job
        .get(&format!("/v1/changes?since={job_cursor}"))
        .await
        .unwrap()
        .json();
    assert_eq!(
        changes["changes"],
        json!([{"op": "remove", "pid": case.pids["jobandco"], "reason": "erased"}])
    );
    let vdab = as_(&gw.client("crm.vdab"), "trajectory_guidance");
    let changes = vdab
        .get(&format!("/v1/changes?since={vdab_cursor}"))
        .await
        .unwrap()
        .json();
    assert_eq!(changes["changes"][0]["reason"], "erased");
    let r = as_(&gw.client("crm.vdab"), "duplicate_check")
        .post("/v1/lookup", &json!({"insz": case.insz}))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    // The audit log keeps only pseudonymous records, ends with the erasure, and still verifies.
    let a = as_(&gw.client("dpo.stad-gent"), "audit");
    assert_eq!(a.get("/v1/audit/verify").await.unwrap().json()["ok"], true);
    let export =
        String::from_utf8_lossy(&a.get("/v1/audit/export").await.unwrap().body).to_string();
    assert!(export.contains("\"action\":\"participant.erased\""));
    for s in fixtures::secrets(&case.insz) {
        assert!(!export.contains(&s));
    }
}

/// The value an earlier rectification request carried (sealed in its details).
const CORRECTED: &str = "Rechtgezet-Zeewaeter";
/// The showcase's ESF evidence, which retention keeps through an erasure.
const ESF_FIELDS: [&str; 2] = ["esf.education_level", "esf.labour_status_entry"];
/// 120 months after the agreement's programme_end (2029-12-31).
const ESF_UNTIL: &str = "2039-12-31";

/// A showcase case with everything an erasure must remove besides fields: a consent, an ended
/// role, a stored idempotent reply bound to the person, and an earlier request whose details
/// are sealed. Returns the internal id.
async fn full_case(gw: &Gateway, home: &Home, case: &fixtures::Case) -> Vec<u8> {
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let r = job
        .post(
            &format!("{path}/consents"),
            &json!({"scope": "health_sharing"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let r = job
        .send(
            Method::DELETE,
            &format!("{path}/involvements"),
            &[],
            Some(&json!({"partner": "caw-oost-vlaanderen", "role": "brugfiguur", "reason": "no_longer_needed"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let r = job
        .send(
            Method::POST,
            &format!("{path}/notes"),
            &[("idempotency-key", "note-before-erasure")],
            Some(&json!({"text": fixtures::NOTE})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let rect = dsr_request(
        gw,
        "rectification",
        &case.insz,
        Some(json!({"fields": {"identity.family_name": CORRECTED}})),
    )
    .await;
    assert_eq!(dsr_execute(gw, &rect).await["state"], "completed");
    let mut conn = db(home).await;
    let (id,): (Vec<u8>,) = sqlx::query_as("SELECT id FROM participants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // Everything the erasure must remove is really there, so the checks after it can fail.
    let (ended, consents, bound, details): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM involvements WHERE ended_at IS NOT NULL),
                (SELECT count(*) FROM consents),
                (SELECT count(*) FROM idempotency WHERE participant_id IS NOT NULL),
                (SELECT count(*) FROM dsr_requests WHERE details_sealed IS NOT NULL)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(ended >= 1 && consents >= 1 && bound >= 1 && details >= 1);
    id
}

fn receipt_payload(done: &Value) -> Value {
    serde_json::from_str(done["receipt"]["payload"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn an_erasure_with_esf_retention_deletes_everything_but_the_esf_fields() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 67).await;
    let old_id = full_case(&gw, &home, &case).await;
    let mut conn = db(&home).await;
    let (wrapped,): (Vec<u8>,) = sqlx::query_as("SELECT wrapped_dek FROM participants")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let sealed: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT field, sealed FROM field_values")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let id = dsr_request(&gw, "erasure", &case.insz, None).await;
    assert_eq!(dsr_execute(&gw, &id).await["state"], "completed");

    let mut conn = db(&home).await;
    let fields: Vec<(String,)> = sqlx::query_as("SELECT field FROM field_values ORDER BY field")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let fields: Vec<&str> = fields.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(fields, ESF_FIELDS);
    for (what, sql) in [
        ("notes", "SELECT count(*) FROM notes"),
        (
            "involvements, ended or not",
            "SELECT count(*) FROM involvements",
        ),
        ("consents", "SELECT count(*) FROM consents"),
        (
            "stored replies about the person",
            "SELECT count(*) FROM idempotency WHERE participant_id IS NOT NULL",
        ),
        (
            "details of earlier requests",
            "SELECT count(*) FROM dsr_requests WHERE details_sealed IS NOT NULL",
        ),
        (
            "anything under the erased record's id",
            "SELECT (SELECT count(*) FROM participants WHERE id = $1) + (SELECT count(*) FROM field_values WHERE participant_id = $1)",
        ),
    ] {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&old_id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "{what}");
    }
    // What is kept is a new, restricted record that only the erased-lookup table leads to.
    let kept: Vec<(Vec<u8>, i64, i64)> = sqlx::query_as(
        "SELECT p.id, CAST(CASE WHEN p.restricted THEN 1 ELSE 0 END AS BIGINT),
                CAST(CASE WHEN p.insz_hash = e.insz_hash THEN 1 ELSE 0 END AS BIGINT)
         FROM participants p JOIN erased_lookup e ON e.participant_id = p.id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(kept.len(), 1);
    let (kept_id, restricted, findable) = &kept[0];
    assert_ne!(kept_id, &old_id);
    assert_eq!(*restricted, 1);
    assert_eq!(*findable, 0, "the kept record's own insz_hash is random");
    drop(conn);

    // No key, no ciphertext of the erased record (the kept fields were re-sealed), and no
    // seeded value anywhere in the files or the server log.
    let log = gw.logs();
    gw.stop();
    let mut secrets = fixtures::secrets(&case.insz);
    secrets.push(CORRECTED.into());
    for (f, bytes) in fixtures::database_contents(&home) {
        let has = |needle: &[u8]| fixtures::contains(&bytes, needle);
        assert!(!has(&wrapped), "the erased record's key is in {f}");
        for (field, ct) in &sealed {
            assert!(
                !has(ct),
                "ciphertext of {field} under the old key is in {f}"
            );
        }
        for s in &secrets {
            assert!(!has(s.as_bytes()), "a seeded value is in {f}");
        }
    }
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "a seeded value is in the log");
    }
}

#[tokio::test]
async fn after_an_erasure_look_up_finds_nobody_feeds_say_erased_and_the_number_registers_anew() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 68).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let vdab = as_(&gw.client("crm.vdab"), "trajectory_guidance");
    let mut cursors = Vec::new();
    for c in [&job, &vdab] {
        let page = c.get("/v1/changes").await.unwrap().json();
        assert_eq!(page["changes"][0]["op"], "upsert");
        cursors.push(page["next"].as_str().unwrap().to_string());
    }
    let id = dsr_request(&gw, "erasure", &case.insz, None).await;
    let done = dsr_execute(&gw, &id).await;
    assert!(
        !receipt_payload(&done)["categories_kept"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Every partner system that held the person is told it was erased, not merely restricted.
    for ((c, cursor), partner) in [&job, &vdab]
        .into_iter()
        .zip(&cursors)
        .zip(["jobandco", "vdab"])
    {
        let page = c
            .get(&format!("/v1/changes?since={cursor}"))
            .await
            .unwrap()
            .json();
        assert_eq!(
            page["changes"],
            json!([{"op": "remove", "pid": case.pids[partner], "reason": "erased"}]),
            "{partner}"
        );
    }
    assert_eq!(
        job.get(&format!("/v1/participants/{}", case.pids["jobandco"]))
            .await
            .unwrap()
            .status,
        404
    );
    let lookup = as_(&gw.client("crm.vdab"), "duplicate_check");
    let r = lookup
        .post("/v1/lookup", &json!({"insz": case.insz}))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    // The same national number now starts a new participant, unlinked to what was kept.
    let ocmw = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    let r = ocmw
        .post(
            "/v1/participants",
            &json!({"fields": {"identity.insz": case.insz, "identity.given_name": "Opnieuw"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["existing"], false);
    assert_ne!(r.json()["pid"], case.pids["ocmw-gent"].as_str());
    let mut conn = db(&home).await;
    let (participants, kept): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM participants), (SELECT count(*) FROM erased_lookup)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((participants, kept), (2, 1));
}

#[tokio::test]
async fn the_erasure_receipt_names_what_was_erased_and_what_was_kept_with_reason_and_end_date() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 70).await;
    let id = dsr_request(&gw, "erasure", &case.insz, None).await;
    let done = dsr_execute(&gw, &id).await;
    assert_eq!(done["state"], "completed");
    let payload = receipt_payload(&done);
    let mut erased: Vec<&str> = payload["categories_erased"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    erased.sort();
    assert_eq!(
        erased,
        [
            "consents",
            "contact",
            "health",
            "identity",
            "involvements",
            "life",
            "measure",
            "notes",
            "trajectory"
        ]
    );
    let also: Vec<&str> = payload["also_erased"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["item"].as_str().unwrap())
        .collect();
    for item in [
        "role_history",
        "idempotency_replies",
        "request_details",
        "data_key",
    ] {
        assert!(also.contains(&item), "{item}: {also:?}");
    }
    let kept = payload["categories_kept"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["category"], "esf");
    assert_eq!(kept[0]["fields"], json!(ESF_FIELDS));
    assert_eq!(kept[0]["after"], "programme_end");
    assert_eq!(kept[0]["until"], ESF_UNTIL);
    assert!(kept[0]["reason"].as_str().unwrap().contains("ESF+"));
    // Everything else that stays is named too, each with a reason and an end date or why not.
    let records = payload["records_kept"].as_array().unwrap();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["record"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "national_number_hash",
            "request_records",
            "audit_log",
            "feed_markers"
        ]
    );
    assert_eq!(records[0]["until"], ESF_UNTIL);
    for r in records {
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        assert!(
            r["until"].is_string() || r["until_unknown"].as_str().is_some_and(|s| !s.is_empty()),
            "{r}"
        );
    }
    let notified = payload["partners_notified"].to_string();
    assert!(
        notified.contains("jobandco") && notified.contains("vdab"),
        "{notified}"
    );
    // It verifies with the DPO's public key; a receipt with a later end date does not.
    let key = partnergate::audit::load_public_key(&home.certs().join("audit-signing.pub")).unwrap();
    assert!(partnergate::dsr::verify_receipt(&done["receipt"], &key));
    let mut forged = done["receipt"].clone();
    forged["payload"] = json!(
        done["receipt"]["payload"]
            .as_str()
            .unwrap()
            .replace(ESF_UNTIL, "2049-12-31")
    );
    assert_ne!(forged, done["receipt"]);
    assert!(!partnergate::dsr::verify_receipt(&forged, &key));
    // Executing again changes nothing, the receipt included.
    let again = dsr_execute(&gw, &id).await;
    assert_eq!(again["receipt"], done["receipt"]);
    assert_eq!(again["history"], done["history"]);
}

#[tokio::test]
async fn an_access_request_after_an_erasure_shows_only_the_kept_fields_and_who_saw_the_file() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 71).await;
    full_case(&gw, &home, &case).await;
    let r = as_(&gw.client("crm.vdab"), "trajectory_guidance")
        .get(&format!("/v1/participants/{}", case.pids["vdab"]))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let erasure = dsr_request(&gw, "erasure", &case.insz, None).await;
    dsr_execute(&gw, &erasure).await;
    let id = dsr_request(&gw, "access", &case.insz, None).await;
    assert_eq!(dsr_execute(&gw, &id).await["state"], "completed");
    let bundle = dpo(&gw)
        .get(&format!("/v1/dsr/{id}/export"))
        .await
        .unwrap()
        .json();
    assert_eq!(bundle["held"], true);
    assert_eq!(bundle["request"]["person_known"], true);
    assert_eq!(
        bundle["data"],
        json!({"esf": {"education_level": "isced_0_2", "labour_status_entry": "long_term_unemployed"}})
    );
    for part in ["notes", "involvements", "consents"] {
        assert_eq!(bundle[part], json!([]), "{part}");
    }
    assert_eq!(bundle["retention"][0]["category"], "esf");
    assert_eq!(bundle["retention"][0]["until"], ESF_UNTIL);
    // The audit log is not erased: the person still learns who received their data.
    let seen = bundle["disclosures"].as_array().unwrap();
    assert!(
        seen.iter()
            .any(|d| d["organisation"].as_str().unwrap().starts_with("VDAB")
                && d["what"] == "viewed"),
        "{seen:?}"
    );
    let text = bundle.to_string();
    let mut secrets = fixtures::secrets(&case.insz);
    secrets.push(CORRECTED.into());
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "an erased value is in the export"
        );
    }
    let html = String::from_utf8_lossy(
        &dpo(&gw)
            .get(&format!("/v1/dsr/{id}/export?format=html"))
            .await
            .unwrap()
            .body,
    )
    .to_string();
    assert!(html.contains("Kept after your erasure request") && html.contains(ESF_UNTIL));
}

#[tokio::test]
async fn what_an_erasure_kept_stays_restricted_when_a_lift_is_asked() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 73).await;
    let erasure = dsr_request(&gw, "erasure", &case.insz, None).await;
    dsr_execute(&gw, &erasure).await;
    let lift = dsr_request(&gw, "restriction", &case.insz, Some(json!({"lift": true}))).await;
    let done = dsr_execute(&gw, &lift).await;
    assert_eq!(done["state"], "refused", "{done}");
    let mut conn = db(&home).await;
    let (restricted,): (i64,) = sqlx::query_as(
        "SELECT CAST(CASE WHEN p.restricted THEN 1 ELSE 0 END AS BIGINT)
         FROM participants p JOIN erased_lookup e ON e.participant_id = p.id",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(restricted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_written_while_an_erasure_was_interrupted_is_planned_again_and_named_in_the_receipt()
 {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 72).await;
    let id = dsr_request(&gw, "erasure", &case.insz, None).await;
    // The shred fails after the plan was recorded...
    let mut conn = db(&home).await;
    fixtures::refuse(&mut conn, "no_shred", "BEFORE DELETE ON notes").await;
    let r = dpo(&gw)
        .post(&format!("/v1/dsr/{id}/execute"), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    fixtures::allow(&mut conn, "no_shred", "notes").await;
    drop(conn);
    let r = dpo(&gw).get(&format!("/v1/dsr/{id}")).await.unwrap().json();
    assert!(r["history"].to_string().contains("\"plan\""), "{r}");
    // ...and meanwhile the coach records the ESF exit status, evidence retention keeps.
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let v = job.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();
    let r = job
        .send(
            Method::PATCH,
            &path,
            &[("if-match", &v.to_string())],
            Some(&json!({"fields": {"esf.exit_status": "employed"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let done = dsr_execute(&gw, &id).await;
    assert_eq!(done["state"], "completed");
    let plans = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "plan")
        .count();
    assert_eq!(plans, 1);
    let payload = receipt_payload(&done);
    let named = payload["categories_kept"][0]["fields"].clone();
    assert_eq!(
        named,
        json!([
            "esf.education_level",
            "esf.exit_status",
            "esf.labour_status_entry"
        ])
    );
    let mut conn = db(&home).await;
    let fields: Vec<(String,)> = sqlx::query_as("SELECT field FROM field_values ORDER BY field")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let fields: Vec<String> = fields.into_iter().map(|f| f.0).collect();
    assert_eq!(json!(fields), named, "kept exactly what the receipt names");
}

#[tokio::test]
async fn restriction_hides_the_person_from_partners_until_it_is_lifted() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 65).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let cursor = job.get("/v1/changes").await.unwrap().json()["next"]
        .as_str()
        .unwrap()
        .to_string();
    let id = dsr_request(&gw, "restriction", &case.insz, None).await;
    assert_eq!(dsr_execute(&gw, &id).await["state"], "completed");
    assert_eq!(job.get(&path).await.unwrap().status, 404);
    let page = job
        .get(&format!("/v1/changes?since={cursor}"))
        .await
        .unwrap()
        .json();
    assert_eq!(page["changes"][0]["reason"], "restricted");
    let cursor = page["next"].as_str().unwrap().to_string();
    // Writes are refused too: storage only.
    let r = job
        .send(
            Method::PATCH,
            &path,
            &[("if-match", "2")],
            Some(&json!({"fields": {"trajectory.status": "paused"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let lift = dsr_request(&gw, "restriction", &case.insz, Some(json!({"lift": true}))).await;
    assert_eq!(
        dsr_execute(&gw, &lift).await["outcome"],
        "restriction lifted"
    );
    assert_eq!(job.get(&path).await.unwrap().status, 200);
    let page = job
        .get(&format!("/v1/changes?since={cursor}"))
        .await
        .unwrap()
        .json();
    assert_eq!(page["changes"][0]["op"], "upsert");
}

#[tokio::test]
async fn an_objection_stops_public_task_processing_unless_the_dpo_records_compelling_grounds() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 66).await;
    let ocmw = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let grounds = dsr_request(
        &gw,
        "objection",
        &case.insz,
        Some(json!({"compelling_grounds": "ongoing child-protection measure"})),
    )
    .await;
    let r = dsr_execute(&gw, &grounds).await;
    assert_eq!(r["state"], "refused");
    assert_eq!(
        ocmw.get(&format!("/v1/participants/{}", case.pids["ocmw-gent"]))
            .await
            .unwrap()
            .status,
        200
    );
    let id = dsr_request(&gw, "objection", &case.insz, None).await;
    assert_eq!(dsr_execute(&gw, &id).await["state"], "completed");
    // OCMW processes on public task: stopped. The NGO coach works on consent: continues.
    assert_eq!(
        ocmw.get(&format!("/v1/participants/{}", case.pids["ocmw-gent"]))
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        job.get(&format!("/v1/participants/{}", case.pids["jobandco"]))
            .await
            .unwrap()
            .status,
        200
    );
}
