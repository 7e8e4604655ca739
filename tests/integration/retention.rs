//! Retention over the real binary: the purge happens on its day and not before, the feeds tell
//! every recipient `retention_expired`, the key goes when nothing remains, and `serve` purges
//! by itself. Time moves with PARTNERGATE_CLOCK (read once at start), never by sleeping.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fixtures::{self, as_, db};
use crate::harness::{Gateway, Home, bin};

/// Runs `partnergate --home HOME args...` with the clock started at `clock`.
fn run_at(home: &Home, clock: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .arg("--home")
        .arg(home.path())
        .args(args)
        .env("PARTNERGATE_CLOCK", clock)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Pages through a client's feed from `since`; returns the changes and the new cursor.
async fn feed(gw: &Gateway, client: &str, since: Option<&str>) -> (Vec<Value>, String) {
    let c = as_(&gw.client(client), "trajectory_guidance");
    let mut changes = Vec::new();
    let mut cursor = since.map(str::to_string);
    loop {
        let path = match &cursor {
            Some(s) => format!("/v1/changes?since={s}"),
            None => "/v1/changes".to_string(),
        };
        let page = c.get(&path).await.unwrap();
        assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
        let page = page.json();
        let batch = page["changes"].as_array().unwrap().clone();
        let next = page["next"].as_str().unwrap().to_string();
        let done = batch.is_empty() || cursor.as_deref() == Some(next.as_str());
        changes.extend(batch);
        cursor = Some(next);
        if done {
            return (changes, cursor.unwrap());
        }
    }
}

async fn count(home: &Home, sql: &'static str) -> i64 {
    let mut conn = db(home).await;
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_comes_on_its_day_not_before_and_every_feed_says_retention_expired() {
    let home = Home::new();
    let gw = home.start();
    let case = fixtures::showcase(&gw, 71).await;
    // The case closes on 2030-01-10: health (6 months) is due on 2030-07-10.
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let closed = json!({"trajectory.status": "closed", "trajectory.end_date": "2030-01-10"});
    let r = fixtures::patch_current(&job, &path, closed).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (_, job_cursor) = feed(&gw, "crm.jobandco", None).await;
    let (_, vdab_cursor) = feed(&gw, "crm.vdab", None).await;
    gw.stop();

    // The dry run counts, and names nobody.
    let (ok, plan) = run_at(&home, "2030-07-09", &["retention", "plan"]);
    assert!(ok, "{plan}");
    let health = plan.lines().find(|l| l.starts_with("health ")).unwrap();
    assert!(
        health.contains("due now:     0") && health.contains("2030-07: 1"),
        "{plan}"
    );
    for secret in fixtures::secrets(&case.insz) {
        assert!(!plan.contains(&secret), "{plan}");
    }
    assert!(!plan.contains("2030-01-10"), "{plan}");
    assert!(plan.contains("warning: PARTNERGATE_CLOCK is set"), "{plan}");

    // The day before: nothing.
    let (ok, out) = run_at(&home, "2030-07-09T23:59:00Z", &["retention", "run"]);
    assert!(ok, "{out}");
    assert!(out.contains("0 participants purged"), "{out}");
    let health_rows = "SELECT count(*) FROM field_values WHERE field LIKE 'health.%'";
    assert_eq!(count(&home, health_rows).await, 1);
    // On the day: health goes, the rest stays.
    let (ok, out) = run_at(&home, "2030-07-10T00:01:00Z", &["retention", "run"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("1 participants purged") && out.contains("health: 1"),
        "{out}"
    );
    assert!(out.contains("0 keys shredded"), "{out}");
    assert_eq!(count(&home, health_rows).await, 0);
    assert!(count(&home, "SELECT count(*) FROM field_values").await > 5);

    // Every recipient hears why: the coach's copy loses the field, VDAB's is refreshed too.
    let gw = home.start_with_env(&[("PARTNERGATE_CLOCK", "2030-07-11")]);
    let (changes, job_cursor) = feed(&gw, "crm.jobandco", Some(&job_cursor)).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["op"], "upsert");
    assert_eq!(changes[0]["reason"], "retention_expired");
    assert!(changes[0]["fields"].get("health.addiction").is_none());
    assert!(changes[0]["fields"].get("identity.given_name").is_some());
    let (changes, vdab_cursor) = feed(&gw, "crm.vdab", Some(&vdab_cursor)).await;
    assert_eq!(changes[0]["reason"], "retention_expired", "{changes:?}");
    gw.stop();

    // When the ESF evidence expires (120 months after the programme), nothing remains: the
    // key is shredded as an erasure does it, and the feeds remove the participant.
    let (ok, out) = run_at(&home, "2040-01-01", &["retention", "run"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("1 participants purged") && out.contains("1 keys shredded"),
        "{out}"
    );
    assert_eq!(count(&home, "SELECT count(*) FROM participants").await, 0);
    assert_eq!(count(&home, "SELECT count(*) FROM field_values").await, 0);
    assert_eq!(count(&home, "SELECT count(*) FROM notes").await, 0);
    let gw = home.start_with_env(&[("PARTNERGATE_CLOCK", "2040-01-02")]);
    for (client, cursor) in [("crm.jobandco", job_cursor), ("crm.vdab", vdab_cursor)] {
        let (changes, _) = feed(&gw, client, Some(&cursor)).await;
        assert_eq!(changes.len(), 1, "{client}: {changes:?}");
        assert_eq!(changes[0]["op"], "remove");
        assert_eq!(changes[0]["reason"], "retention_expired");
    }

    // One audit record per participant and purge, naming fields, never values; chain intact.
    let records = fixtures::audit_records(&gw).await;
    let purges: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "retention.purge")
        .collect();
    assert_eq!(purges.len(), 2, "{purges:?}");
    assert!(purges.iter().all(|r| r["participant"].is_string()));
    assert_eq!(purges[0]["fields"], json!(["health.addiction"]));
    let text = serde_json::to_string(&purges).unwrap();
    for secret in fixtures::secrets(&case.insz) {
        assert!(!text.contains(&secret));
    }
    let v = fixtures::verify(&gw).await;
    assert_eq!(v["ok"], true, "{v}");
    gw.stop();

    // The DPO's report counts what was purged when.
    let out_file = home.path().join("dpo.html");
    let (ok, out) = run_at(
        &home,
        "2040-01-03",
        &["audit", "report", "--out", out_file.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let html = std::fs::read_to_string(out_file).unwrap();
    assert!(html.contains("Retention"), "no retention section");
    assert!(html.contains("2030-07-10") && html.contains("2040-01-01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_purges_by_itself_at_the_configured_hour() {
    let home = Home::new();
    let gw = home.start();
    let case = fixtures::showcase(&gw, 72).await;
    gw.stop();
    // ESF evidence is due on 2039-12-31; the gateway wakes at 03:00 UTC by its own clock.
    // A few seconds before the hour, so that a slow start cannot pass it unseen.
    let gw = home.start_with_env(&[("PARTNERGATE_CLOCK", "2040-01-01T02:59:52Z")]);
    let purged = "SELECT count(*) FROM retention_purges";
    assert_eq!(count(&home, purged).await, 0, "not before the hour");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&home, purged).await == 0 {
        assert!(Instant::now() < deadline, "no purge; log:\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(
            &home,
            "SELECT count(*) FROM field_values WHERE field LIKE 'esf.%'"
        )
        .await,
        0
    );
    // The rest of the running case stays; the coach still reads it.
    let r = as_(&gw.client("crm.jobandco"), "trajectory_guidance")
        .get(&format!("/v1/participants/{}", case.pids["jobandco"]))
        .await
        .unwrap()
        .json();
    assert_eq!(r["fields"]["identity.given_name"], fixtures::GIVEN);
    assert!(r["fields"].get("esf.education_level").is_none());
    assert!(gw.logs().contains("retention purge"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_audit_records_leave_only_into_a_verified_archive_and_the_chain_still_verifies() {
    let home = Home::new();
    let gw = home.start();
    fixtures::showcase(&gw, 73).await;
    let before = fixtures::audit_records(&gw).await.len();
    gw.stop();

    // Not yet ten years old: nothing goes.
    let archive = home.path().join("archive");
    let arg = archive.to_str().unwrap();
    let (ok, out) = home.run(&["audit", "prune", "--archive", arg]);
    assert!(ok, "{out}");
    assert!(out.contains("nothing to prune"), "{out}");
    // An archive that cannot be written: nothing goes either.
    let blocked = home.path().join("blocked");
    std::fs::write(&blocked, "a file, not a folder").unwrap();
    let later = "2037-01-01";
    let (ok, out) = run_at(
        &home,
        later,
        &["audit", "prune", "--archive", blocked.to_str().unwrap()],
    );
    assert!(!ok, "{out}");
    let live = "SELECT count(*) FROM audit_records";
    assert_eq!(count(&home, live).await as usize, before);

    // Eleven years on: archived, verified, pruned.
    let (ok, out) = run_at(&home, later, &["audit", "prune", "--archive", arg]);
    assert!(ok, "{out}");
    assert!(out.contains("(verified)"), "{out}");
    assert_eq!(
        count(&home, live).await,
        1,
        "only the pruning's own record is live"
    );
    let file = std::fs::read_dir(&archive)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let (ok, out) = fixtures::verify_offline(&home, &file);
    assert!(ok, "{out}");

    // The live chain starts at its signed anchor: verify and export still say ok.
    let gw = home.start_with_env(&[("PARTNERGATE_CLOCK", "2037-01-02")]);
    let v = fixtures::verify(&gw).await;
    assert_eq!(v["ok"], true, "{v}");
    let records = fixtures::audit_records(&gw).await;
    assert!(records.iter().any(|r| r["action"] == "audit.prune"));
    assert!(
        records
            .iter()
            .all(|r| r["action"] != "participant.register")
    );
    let r = as_(&gw.client("dpo.stad-gent"), "audit")
        .get("/v1/audit/export")
        .await
        .unwrap();
    let export = home.path().join("live.jsonl");
    std::fs::write(&export, &r.body).unwrap();
    gw.stop();
    let (ok, out) = fixtures::verify_offline(&home, &export);
    assert!(ok, "{out}");
}
