//! Several gateway instances on one PostgreSQL database (issue 15). They share one installation
//! (configuration, keys, certificates), as instances behind a TCP load balancer do, and run as
//! separate processes. On the SQLite suite these tests say so and pass: SQLite serves one process.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fixtures::{as_, audit_records, insz, showcase, verify};
use crate::harness::{Gateway, Home, on_postgres};

/// A distinct valid national number for each `n`, past the 998 serials of one birth date.
fn insz_n(n: u32) -> String {
    let day = time::Date::from_calendar_date(1950, time::Month::January, 1).unwrap()
        + time::Duration::days(i64::from(n / 998));
    partnergate::vault::insz::Insz::synthetic(day, (n % 998 + 1) as u16)
        .as_str()
        .to_string()
}

fn skip_on_sqlite(test: &str) -> bool {
    if !on_postgres() {
        eprintln!("{test}: runs on PostgreSQL only (tests/postgres/with-cluster.sh)");
    }
    !on_postgres()
}

/// Registers the national numbers of `serials` through `gw`; returns (serial, status, pid, existing).
async fn register(gw: &Gateway, serials: Vec<u16>) -> Vec<(u16, u16, String, bool)> {
    let ocmw = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    let mut out = Vec::new();
    for serial in serials {
        let r = ocmw
            .post(
                "/v1/participants",
                &json!({"fields": {"identity.insz": insz(serial), "trajectory.status": "intake"}}),
            )
            .await
            .unwrap();
        let body = r.json();
        out.push((
            serial,
            r.status.as_u16(),
            body["pid"].as_str().unwrap_or_default().to_string(),
            body["existing"] == true,
        ));
    }
    out
}

#[tokio::test]
async fn two_instances_register_each_person_once_and_keep_one_verifiable_chain() {
    if skip_on_sqlite("two_instances") {
        return;
    }
    let home = Home::new();
    let (a, b) = (home.start(), home.start());
    // Overlapping lists, sent at the same time through both instances.
    let (left, right) = tokio::join!(
        register(&a, (1..=60).collect()),
        register(&b, (31..=90).rev().collect()),
    );
    let mut by_serial: HashMap<u16, Vec<(String, bool)>> = HashMap::new();
    for (serial, status, pid, existing) in left.into_iter().chain(right) {
        assert!(status == 201 || status == 200, "serial {serial}: {status}");
        by_serial.entry(serial).or_default().push((pid, existing));
    }
    assert_eq!(by_serial.len(), 90);
    for (serial, answers) in &by_serial {
        let created = answers.iter().filter(|(_, existing)| !existing).count();
        assert_eq!(created, 1, "serial {serial} was created {created} times");
        let pids: HashSet<&String> = answers.iter().map(|(p, _)| p).collect();
        assert_eq!(pids.len(), 1, "serial {serial}: one participant, one pid");
    }
    // Both instances see every one of them: a look-up through the other one finds the same pid.
    let look = as_(&b.client("crm.ocmw-gent"), "duplicate_check");
    for serial in [1, 45, 90] {
        let r = look
            .post("/v1/lookup", &json!({"insz": insz(serial)}))
            .await
            .unwrap();
        assert_eq!(r.json()["pid"], by_serial[&serial][0].0.as_str());
    }
    for gw in [&a, &b] {
        let v = verify(gw).await;
        assert_eq!(v["ok"], true, "{v}");
    }
    // Each answered registration (new or existing) has its granted audit record, in one chain.
    let writes = audit_records(&a)
        .await
        .into_iter()
        .filter(|r| r["action"] == "participant.register" && r["decision"] == "granted")
        .count();
    assert_eq!(writes, 120, "one record per registration answered");
}

#[tokio::test]
async fn if_match_conflicts_are_detected_across_instances() {
    if skip_on_sqlite("if_match") {
        return;
    }
    let home = Home::new();
    let (a, b) = (home.start(), home.start());
    let case = showcase(&a, 7).await;
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let on_a = as_(&a.client("crm.jobandco"), "trajectory_guidance");
    let on_b = as_(&b.client("crm.jobandco"), "trajectory_guidance");
    let version = on_b.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();
    let patch = |c: &partnergate_client::GatewayClient, v: i64, steps: &str| {
        let (c, path, body) = (
            c.clone(),
            path.clone(),
            json!({"fields": {"trajectory.next_steps": steps}}),
        );
        async move {
            c.send(
                hyper::Method::PATCH,
                &path,
                &[("if-match", &v.to_string())],
                Some(&body),
            )
            .await
            .unwrap()
        }
    };
    // Both read the same version; the first write wins wherever it lands.
    let first = patch(&on_a, version, "gesprek met VDAB").await;
    assert_eq!(first.status, 200);
    let second = patch(&on_b, version, "iets anders").await;
    assert_eq!(second.status, 412, "a stale If-Match on the other instance");
    // B reads A's write at once, and can write on top of it.
    let now = on_b.get(&path).await.unwrap().json();
    assert_eq!(now["version"], version + 1);
    assert_eq!(now["fields"]["trajectory.next_steps"], "gesprek met VDAB");
    assert_eq!(patch(&on_b, version + 1, "verder").await.status, 200);
    assert_eq!(verify(&b).await["ok"], true);
}

#[tokio::test]
async fn killing_one_instance_under_load_loses_nothing_acknowledged_and_the_other_serves_on() {
    if skip_on_sqlite("kill_one_instance") {
        return;
    }
    let home = Home::new();
    let (a, b) = (home.start(), home.start());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    // Four workers per instance, each registering its own national numbers.
    for (w, gw) in [&a, &a, &a, &a, &b, &b, &b, &b].into_iter().enumerate() {
        let c = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut serial = w as u32 * 10_000;
            while !stop.load(Ordering::Relaxed) && serial < (w as u32 + 1) * 10_000 {
                serial += 1;
                let body = json!({"fields": {"identity.insz": insz_n(serial), "trajectory.status": "intake"}});
                match c.post("/v1/participants", &body).await {
                    Ok(r) if r.status == 201 => acknowledged.push((
                        serial,
                        r.headers["x-request-id"].to_str().unwrap().to_string(),
                    )),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill9();
    // The survivor goes on answering while A is gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    assert!(acknowledged.len() > 20, "load ran: {}", acknowledged.len());
    let after = register(&b, vec![998]).await;
    assert_eq!(after[0].1, 201, "the other instance still registers");
    // Every acknowledged registration exists (registering it again finds it; look-ups are
    // rate-limited) and has its audit record; the chain verifies.
    let ocmw = as_(&b.client("crm.ocmw-gent"), "trajectory_guidance");
    for (serial, _) in &acknowledged {
        let body = json!({"fields": {"identity.insz": insz_n(*serial)}});
        let r = ocmw.post("/v1/participants", &body).await.unwrap();
        assert_eq!(
            r.json()["existing"],
            true,
            "acknowledged serial {serial} is lost"
        );
    }
    let ids: HashSet<String> = audit_records(&b)
        .await
        .into_iter()
        .map(|r| r["request_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let missing = acknowledged
        .iter()
        .filter(|(_, id)| !ids.contains(id))
        .count();
    assert_eq!(missing, 0, "acknowledged requests without an audit record");
    let v = verify(&b).await;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test]
async fn a_key_rotation_reaches_every_instance_within_seconds() {
    if skip_on_sqlite("key_rotation") {
        return;
    }
    let home = Home::new();
    let (a, b) = (home.start(), home.start());
    let case = showcase(&a, 8).await;
    let (ok, out) = home.run(&["keys", "rotate"]);
    assert!(ok, "{out}");
    // Rows are now wrapped under the new key version; both instances must read them.
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    for gw in [&a, &b] {
        let r = as_(&gw.client("crm.jobandco"), "trajectory_guidance")
            .get(&path)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            r.json()["fields"]["identity.given_name"],
            crate::fixtures::GIVEN
        );
    }
}

#[tokio::test]
async fn a_revocation_reaches_every_instance_within_seconds_also_on_open_connections() {
    if skip_on_sqlite("revocation") {
        return;
    }
    let home = Home::new();
    let (a, b) = (home.start(), home.start());
    // One kept-alive connection per instance, opened before the revocation.
    let (on_a, on_b) = (a.client("crm.vdab"), b.client("crm.vdab"));
    for c in [&on_a, &on_b] {
        assert_eq!(c.get("/v1/me").await.unwrap().status, 200);
    }
    let (ok, out) = home.run(&["certs", "revoke", "--client", "crm.vdab"]);
    assert!(ok, "{out}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut refused = [false, false];
    while refused != [true, true] {
        for (i, c) in [&on_a, &on_b].into_iter().enumerate() {
            refused[i] |= c.get("/v1/me").await.map_or(true, |r| r.status == 403);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted after 10 s: {refused:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Other partners are unaffected on both.
    for gw in [&a, &b] {
        assert_eq!(
            gw.client("crm.ocmw-gent")
                .get("/v1/me")
                .await
                .unwrap()
                .status,
            200
        );
    }
}

#[tokio::test]
async fn idempotency_keys_and_sync_cursors_continue_through_the_other_instance() {
    if skip_on_sqlite("idempotency_and_cursors") {
        return;
    }
    let home = Home::new();
    let (a, b) = (home.start(), home.start());
    let case = showcase(&a, 9).await;
    // A retry that the balancer sends to the other instance replays the first answer.
    let body = json!({"fields": {"identity.insz": insz(10), "trajectory.status": "intake"}});
    let key = [("idempotency-key", "reg-10")];
    let post = |gw: &Gateway| {
        let c = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
        let body = body.clone();
        async move {
            c.send(hyper::Method::POST, "/v1/participants", &key, Some(&body))
                .await
                .unwrap()
        }
    };
    let first = post(&a).await;
    assert_eq!(first.status, 201);
    let again = post(&b).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.json(), first.json());
    // A feed paged on one instance continues on the other, and sees a change made on the first.
    let on_a = as_(&a.client("crm.jobandco"), "trajectory_guidance");
    let on_b = as_(&b.client("crm.jobandco"), "trajectory_guidance");
    let page = on_a.get("/v1/changes").await.unwrap().json();
    let next = page["next"].as_str().unwrap().to_string();
    let quiet = on_b
        .get(&format!("/v1/changes?since={next}"))
        .await
        .unwrap();
    assert_eq!(
        quiet.status,
        200,
        "{}",
        String::from_utf8_lossy(&quiet.body)
    );
    assert_eq!(quiet.json()["changes"].as_array().map(Vec::len), Some(0));
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let version = on_a.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();
    let r = on_a
        .send(
            hyper::Method::PATCH,
            &path,
            &[("if-match", &version.to_string())],
            Some(&json!({"fields": {"trajectory.next_steps": "sollicitatie"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let page = on_b
        .get(&format!("/v1/changes?since={next}"))
        .await
        .unwrap()
        .json();
    let changed: Vec<&Value> = page["changes"].as_array().unwrap().iter().collect();
    assert_eq!(changed.len(), 1, "{page}");
    assert_eq!(changed[0]["pid"], case.pids["jobandco"].as_str());
}

/// Reads are never served from memory: each one asks the database, so a change committed
/// through one instance governs the very next read on the other (issue 14's invalidation rule).
#[tokio::test]
async fn a_withdrawn_consent_or_ended_involvement_on_one_instance_binds_the_other_at_once() {
    if skip_on_sqlite("withdrawal_across_instances") {
        return;
    }
    let home = Home::new();
    let (a, b) = (home.start(), home.start());
    let case = showcase(&a, 11).await;
    let job_on_a = as_(&a.client("crm.jobandco"), "trajectory_guidance");
    let caw_on_b = as_(&b.client("crm.caw-oost-vlaanderen"), "trajectory_guidance");
    let vdab_on_b = as_(&b.client("crm.vdab"), "trajectory_guidance");
    let caw_path = format!("/v1/participants/{}", case.pids["caw-oost-vlaanderen"]);
    let vdab_path = format!("/v1/participants/{}", case.pids["vdab"]);
    let sees_health = |body: Value| body["fields"].get("health.addiction").is_some();

    let consents = format!("/v1/participants/{}/consents", case.pids["jobandco"]);
    let scope = json!({"scope": "health_sharing"});
    assert_eq!(job_on_a.post(&consents, &scope).await.unwrap().status, 201);
    assert!(sees_health(caw_on_b.get(&caw_path).await.unwrap().json()));
    let r = job_on_a
        .send(hyper::Method::DELETE, &consents, &[], Some(&scope))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let after = caw_on_b.get(&caw_path).await.unwrap();
    assert_eq!(after.status, 200);
    assert!(!sees_health(after.json()), "B served a withdrawn consent");

    assert_eq!(vdab_on_b.get(&vdab_path).await.unwrap().status, 200);
    let end = json!({"partner": "vdab", "role": "spoc_vdab", "reason": "no_longer_needed"});
    let involvements = format!("/v1/participants/{}/involvements", case.pids["jobandco"]);
    let r = job_on_a
        .send(hyper::Method::DELETE, &involvements, &[], Some(&end))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        vdab_on_b.get(&vdab_path).await.unwrap().status,
        404,
        "B served an ended involvement"
    );
}
