//! CRM sync: two reference clients stay in step; crash-safe resume; a partner's exit.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

use crate::fixtures::{self, as_, showcase};
use crate::harness::{Gateway, Home, bin, http_get};
use partnergate_client::GatewayClient;

async fn mirror(path: &Path) -> BTreeMap<String, (i64, Value)> {
    let mut c = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT pid, version, fields FROM mirror")
            .fetch_all(&mut c)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(p, v, f)| (p, (v, serde_json::from_str(&f).unwrap())))
        .collect()
}

/// Rows in a mirror that may still be being created by the client (0 until it has a table).
async fn mirror_rows(path: &Path) -> i64 {
    let Ok(mut c) = SqliteConnection::connect(&format!("sqlite://{}", path.display())).await else {
        return 0;
    };
    sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM mirror")
        .fetch_one(&mut c)
        .await
        .map(|r| r.0)
        .unwrap_or(0)
}

async fn sync(home: &Home, gw: &crate::harness::Gateway, client: &str, db: &Path) {
    let (home_path, client, db) = (
        home.path().to_path_buf(),
        client.to_string(),
        db.to_path_buf(),
    );
    let base = gw.base();
    let certs = home.certs();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        let c = |f: &str| certs.join(f).to_str().unwrap().to_string();
        crate::harness::run(
            &home_path,
            &[
                "crm-sync",
                "--url",
                &base,
                "--cert",
                &c(&format!("clients/{client}.pem")),
                "--key",
                &c(&format!("clients/{client}.key")),
                "--ca",
                &c("ca.pem"),
                "--db",
                db.to_str().unwrap(),
                "--limit",
                "7",
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mirrors_stay_in_step_through_rectification_role_change_and_consent_withdrawal() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 51).await;
    let dir = tempfile::tempdir().unwrap();
    let (m_job, m_vdab, m_caw, m_intro) = (
        dir.path().join("job.db"),
        dir.path().join("vdab.db"),
        dir.path().join("caw.db"),
        dir.path().join("intro.db"),
    );
    sync(&home, &gw, "crm.jobandco", &m_job).await;
    sync(&home, &gw, "crm.vdab", &m_vdab).await;
    let job = mirror(&m_job).await;
    let vdab = mirror(&m_vdab).await;
    assert_eq!(job.len(), 1);
    assert_eq!(
        job[&case.pids["jobandco"]].1["health.addiction"],
        fixtures::ADDICTION
    );
    assert!(
        vdab[&case.pids["vdab"]].1.get("health.addiction").is_none(),
        "vdab never gets health"
    );
    assert!(!m_intro.exists() || mirror(&m_intro).await.is_empty());

    // A rectification by jobandco reaches VDAB's mirror.
    let jc = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let v = jc.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();
    let r = jc
        .send(
            Method::PATCH,
            &path,
            &[("if-match", &v.to_string())],
            Some(&json!({"fields": {"identity.family_name": "Rechtgezet"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    sync(&home, &gw, "crm.vdab", &m_vdab).await;
    assert_eq!(
        mirror(&m_vdab).await[&case.pids["vdab"]].1["identity.family_name"],
        "Rechtgezet"
    );

    // The trajectgezel changes from jobandco to intro: gone from one mirror, whole in the other.
    let oc = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    let handover = format!("/v1/participants/{}/handover", case.pids["ocmw-gent"]);
    let r = oc
        .post(
            &handover,
            &json!({"role": "trajectgezel", "from": "jobandco", "to": "intro"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    sync(&home, &gw, "crm.jobandco", &m_job).await;
    assert!(
        mirror(&m_job).await.is_empty(),
        "the old coach's mirror lost the participant"
    );
    sync(&home, &gw, "crm.intro", &m_intro).await;
    let intro = mirror(&m_intro).await;
    assert_eq!(intro.len(), 1);
    let (_, fields) = intro.values().next().unwrap();
    assert_eq!(fields["identity.family_name"], "Rechtgezet");
    assert_eq!(fields["health.addiction"], fixtures::ADDICTION);

    // Consent withdrawal: the brugfiguur's mirror loses health on its next sync.
    let ic = as_(&gw.client("crm.intro"), "trajectory_guidance");
    let intro_pid = intro.keys().next().unwrap().clone();
    let consents = format!("/v1/participants/{intro_pid}/consents");
    assert_eq!(
        ic.post(&consents, &json!({"scope": "health_sharing"}))
            .await
            .unwrap()
            .status,
        201
    );
    sync(&home, &gw, "crm.caw-oost-vlaanderen", &m_caw).await;
    assert!(
        mirror(&m_caw).await[&case.pids["caw-oost-vlaanderen"]]
            .1
            .get("health.addiction")
            .is_some()
    );
    assert_eq!(
        ic.send(
            Method::DELETE,
            &consents,
            &[],
            Some(&json!({"scope": "health_sharing"}))
        )
        .await
        .unwrap()
        .status,
        204
    );
    sync(&home, &gw, "crm.caw-oost-vlaanderen", &m_caw).await;
    assert!(
        mirror(&m_caw).await[&case.pids["caw-oost-vlaanderen"]]
            .1
            .get("health.addiction")
            .is_none()
    );

    // Every disclosure on a page was audited.
    let export = as_(&gw.client("dpo.stad-gent"), "audit")
        .get("/v1/audit/export")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&export.body).to_string();
    assert!(text.matches("\"action\":\"sync.disclose\"").count() >= 6);
    assert!(text.matches("\"action\":\"sync.remove\"").count() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_full_sync_resumes_to_exactly_the_partners_view() {
    let (home, _) = Home::with_demo(3000);
    let gw = home.start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let certs = home.certs();
    let c = |f: &str| certs.join(f).to_str().unwrap().to_string();
    let mut child = std::process::Command::new(bin())
        .args([
            "--home",
            home.path().to_str().unwrap(),
            "crm-sync",
            "--url",
            &gw.base(),
            "--cert",
            &c("clients/crm.ocmw-gent.pem"),
            "--key",
            &c("clients/crm.ocmw-gent.key"),
            "--ca",
            &c("ca.pem"),
            "--db",
            db.to_str().unwrap(),
            "--limit",
            "25",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has applied some pages but long before the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if db.exists() && mirror_rows(&db).await > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the client made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = mirror(&db).await.len();
    sync(&home, &gw, "crm.ocmw-gent", &db).await;
    let resumed = mirror(&db).await;
    let fresh_db = dir.path().join("fresh.db");
    sync(&home, &gw, "crm.ocmw-gent", &fresh_db).await;
    let fresh = mirror(&fresh_db).await;
    assert!(
        partial < fresh.len(),
        "killed mid-sync ({partial} of {})",
        fresh.len()
    );
    assert!(
        fresh.len() > 1000,
        "ocmw-gent sees a large caseload: {}",
        fresh.len()
    );
    assert_eq!(
        resumed, fresh,
        "the resumed mirror equals a fresh full sync, field by field"
    );
    // And both equal what the API shows for a sample of participants.
    let api = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    for (pid, (version, fields)) in resumed.iter().step_by(97) {
        let r = api
            .get(&format!("/v1/participants/{pid}"))
            .await
            .unwrap()
            .json();
        assert_eq!(&r["fields"], fields);
        assert_eq!(r["version"].as_i64().unwrap(), *version);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_leaves_receives_removals_and_is_then_refused() {
    let policies = tempfile::tempdir().unwrap();
    for f in ["agreement.toml", "model.conf", "policy.csv"] {
        std::fs::copy(crate::harness::policies().join(f), policies.path().join(f)).unwrap();
    }
    let home = Home::with_policies(policies.path());
    let gw = home.start();
    let case = showcase(&gw, 52).await;
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("job.db");
    sync(&home, &gw, "crm.jobandco", &m).await;
    assert_eq!(mirror(&m).await.len(), 1);
    gw.stop();

    // The board accepts jobandco's exit as of today; the agreement is recompiled.
    let text = std::fs::read_to_string(policies.path().join("agreement.toml")).unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let marker = "id = \"jobandco\"";
    let start = text.find(marker).unwrap();
    let status_at = start + text[start..].find("status = \"active\"").unwrap();
    let since_end = status_at + text[status_at..].find('\n').unwrap() + 1;
    let since_line_end = since_end + text[since_end..].find('\n').unwrap();
    let edited = format!(
        "{}status = \"exited\"\nsince = {today}{}",
        &text[..status_at],
        &text[since_line_end..]
    );
    std::fs::write(policies.path().join("agreement.toml"), edited).unwrap();
    let (ok, out) = home.run(&["policy", "compile"]);
    assert!(ok, "{out}");
    let gw = home.start();

    // Its clients are refused everywhere but the final sync...
    let r = as_(&gw.client("crm.jobandco"), "trajectory_guidance")
        .get(&format!("/v1/participants/{}", case.pids["jobandco"]))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].as_str()),
        (403, Some("membership_ended"))
    );
    // ...which removes everything from its mirror and then is refused too.
    let (home_path, base, certs, mp) = (
        home.path().to_path_buf(),
        gw.base(),
        home.certs(),
        m.clone(),
    );
    let (ok, out) = tokio::task::spawn_blocking(move || {
        let c = |f: &str| certs.join(f).to_str().unwrap().to_string();
        crate::harness::run(
            &home_path,
            &[
                "crm-sync",
                "--url",
                &base,
                "--cert",
                &c("clients/crm.jobandco.pem"),
                "--key",
                &c("clients/crm.jobandco.key"),
                "--ca",
                &c("ca.pem"),
                "--db",
                mp.to_str().unwrap(),
            ],
        )
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(out.contains("membership_ended"), "{out}");
    assert!(
        mirror(&m).await.is_empty(),
        "the leaving partner's mirror was emptied"
    );
    // Other partners are unaffected.
    let r = as_(&gw.client("crm.vdab"), "trajectory_guidance")
        .get(&format!("/v1/participants/{}", case.pids["vdab"]))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn forged_cursors_and_replayed_posts_are_handled() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 53).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let page = job.get("/v1/changes").await.unwrap().json();
    let next = page["next"].as_str().unwrap().to_string();
    // Another client's cursor, or an edited one, is refused with a hint to resync.
    let r = as_(&gw.client("crm.vdab"), "trajectory_guidance")
        .get(&format!("/v1/changes?since={next}"))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let forged = format!("0{}", &next[next.find('.').unwrap()..]);
    assert_eq!(
        job.get(&format!("/v1/changes?since={forged}"))
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        job.get(&format!("/v1/changes?since={next}"))
            .await
            .unwrap()
            .json()["changes"],
        json!([])
    );
    // Idempotency-Key: a retried note is stored once; the same key for another body is refused.
    let notes = format!("/v1/participants/{}/notes", case.pids["jobandco"]);
    let send = |text: &str| {
        let (job, notes, body) = (job.clone(), notes.clone(), json!({"text": text}));
        async move {
            job.send(
                Method::POST,
                &notes,
                &[("idempotency-key", "note-7")],
                Some(&body),
            )
            .await
            .unwrap()
        }
    };
    let a = send("Eerste gesprek").await;
    let b = send("Eerste gesprek").await;
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (201, 201));
    assert_eq!(a.json()["id"], b.json()["id"]);
    assert_eq!(b.headers["idempotent-replayed"], "true");
    assert_eq!(send("Ander gesprek").await.status, 422);
    let list = job.get(&notes).await.unwrap().json();
    assert_eq!(
        list["notes"].as_array().unwrap().len(),
        2,
        "the fixture's note and one new note"
    );
}

/// Commits the audit writer has made so far, from the gateway's metrics.
fn audit_commits(gw: &Gateway) -> u64 {
    let (_, metrics) = http_get(gw.health, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("partnergate_audit_commit_seconds_count "))
        .map_or(0, |n| n.trim().parse::<f64>().unwrap() as u64)
}

#[tokio::test]
async fn an_up_to_date_clients_empty_polls_commit_nothing() {
    let home = Home::new();
    let gw = home.start();
    showcase(&gw, 54).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let before_page = audit_commits(&gw);
    let page = job.get("/v1/changes").await.unwrap().json();
    assert!(!page["changes"].as_array().unwrap().is_empty());
    let after_page = audit_commits(&gw);
    assert!(after_page > before_page, "a page with changes is committed");
    let next = page["next"].as_str().unwrap();
    for _ in 0..5 {
        let r = job.get(&format!("/v1/changes?since={next}")).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["changes"], json!([]));
    }
    assert_eq!(
        audit_commits(&gw),
        after_page,
        "an empty page writes nothing, so polling costs no fsync"
    );
}

/// Every change of the feed, paged `limit` at a time from the start.
async fn whole_feed(api: &GatewayClient, limit: usize) -> Vec<Value> {
    let (mut changes, mut since) = (Vec::new(), String::new());
    loop {
        let path = match since.as_str() {
            "" => format!("/v1/changes?limit={limit}"),
            cursor => format!("/v1/changes?limit={limit}&since={cursor}"),
        };
        let page = api.get(&path).await.unwrap().json();
        let batch = page["changes"].as_array().unwrap().clone();
        if batch.is_empty() {
            return changes;
        }
        changes.extend(batch);
        since = page["next"].as_str().unwrap().to_string();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_any_size_give_the_whole_feed_and_only_the_last_page_is_empty() {
    let (home, _) = Home::with_demo(200);
    let gw = home.start();
    let api = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    let whole = whole_feed(&api, 1000).await;
    assert!(whole.len() > 10, "ocmw-gent sees part of the caseload");
    assert!(
        whole.len() < 200,
        "and not all of it: some changes are not its own"
    );
    assert!(
        whole
            .iter()
            .all(|c| c["op"] == "upsert" && c["fields"].is_object())
    );
    // Small pages meet runs of changes the client may not see (they must not come back as an
    // empty page, which means "up to date"), and read their participants in one half.
    for limit in [1, 2, 3] {
        assert_eq!(whole_feed(&api, limit).await, whole, "pages of {limit}");
    }
}
