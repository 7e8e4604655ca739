//! A partner that wants more: self-assignment, a second coach, national-number corrections,
//! look-ups, replays and consents. Each test checks the refusal, its audit record, and that
//! nothing changed.

use std::collections::BTreeSet;

use hyper::Method;
use partnergate_client::GatewayClient;
use serde_json::{Value, json};

use crate::fixtures::{
    self, as_, audit_records, db, dsr_execute, dsr_request, field_names, insz, showcase,
};
use crate::harness::{Gateway, Home};

fn guide(gw: &Gateway, client: &str) -> GatewayClient {
    as_(&gw.client(client), "trajectory_guidance")
}

fn lookup_as(gw: &Gateway, client: &str) -> GatewayClient {
    as_(&gw.client(client), "duplicate_check")
}

/// The records since `from` with this action and decision.
fn records<'a>(all: &'a [Value], action: &str, decision: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|r| r["action"] == action && r["decision"] == decision)
        .collect()
}

fn error_code(r: &partnergate_client::Response) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

async fn fields(c: &GatewayClient, pid: &str) -> (u16, Vec<String>) {
    let r = c.get(&format!("/v1/participants/{pid}")).await.unwrap();
    (r.status.as_u16(), field_names(&r.json()))
}

#[tokio::test]
async fn a_partner_cannot_make_itself_trajectgezel_and_read_more() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 101).await;
    let ocmw = guide(&gw, "crm.ocmw-gent");
    let pid = &case.pids["ocmw-gent"];
    let before = fields(&ocmw, pid).await;
    assert!(!before.1.contains(&"health.addiction".to_string()));
    let r = ocmw
        .post(
            &format!("/v1/participants/{pid}/involvements"),
            &json!({"partner": "ocmw-gent", "role": "trajectgezel"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (403, "self_escalation".into())
    );
    assert_eq!(fields(&ocmw, pid).await, before, "the view did not widen");
    let notes = ocmw
        .get(&format!("/v1/participants/{pid}/notes"))
        .await
        .unwrap();
    assert_eq!(notes.status, 403);

    // A partner that only referred cannot make itself coach either.
    let jes = guide(&gw, "crm.jes");
    let r = jes
        .post(
            "/v1/participants",
            &json!({"fields": {"identity.insz": insz(102), "trajectory.status": "referred"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let jes_pid = r.json()["pid"].as_str().unwrap().to_string();
    let r = jes
        .post(
            &format!("/v1/participants/{jes_pid}/involvements"),
            &json!({"partner": "jes", "role": "trajectgezel"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (403, "self_escalation".into())
    );

    let all = audit_records(&gw).await;
    let refused = records(&all, "involvement.start", "refused");
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|r| r["reason"] == "self_escalation"));
    // The named self-assignment (an OCMW referrer becoming dossierbeheerder) is marked.
    let granted = records(&all, "involvement.start", "granted");
    assert!(
        granted
            .iter()
            .any(|r| r["reason"] == "ocmw-gent:dossierbeheerder;self_assign")
    );
    assert!(
        granted
            .iter()
            .any(|r| r["reason"] == "jobandco:trajectgezel"),
        "assigning another partner is not marked"
    );
}

/// The views a partner has of one participant, per purpose it may state.
async fn views(gw: &Gateway, client: &str, pid: &str) -> Vec<(String, u16, BTreeSet<String>)> {
    let mut out = Vec::new();
    for purpose in ["trajectory_guidance", "case_discussion"] {
        let c = as_(&gw.client(client), purpose);
        let r = c.get(&format!("/v1/participants/{pid}")).await.unwrap();
        let notes = c
            .get(&format!("/v1/participants/{pid}/notes"))
            .await
            .unwrap();
        let mut names: BTreeSet<String> = field_names(&r.json()).into_iter().collect();
        if notes.status == 200 {
            names.insert("notes".into());
        }
        out.push((purpose.to_string(), r.status.as_u16(), names));
    }
    out
}

fn widened(
    before: &[(String, u16, BTreeSet<String>)],
    after: &[(String, u16, BTreeSet<String>)],
) -> bool {
    before
        .iter()
        .zip(after)
        .any(|(b, a)| !a.2.is_subset(&b.2) || (b.1 != 200 && a.1 == 200))
}

/// A participant referred by `cn`, with every category filled and every consent recorded by
/// a coach of another partner, who then leaves the case: the case has no trajectgezel.
async fn filled_case(gw: &Gateway, cn: &str, partner: &str, serial: u16) -> Option<String> {
    let me = guide(gw, cn);
    let number = insz(serial);
    let r = me
        .post(
            "/v1/participants",
            &json!({"fields": {"identity.insz": number, "identity.given_name": "Scan",
                "contact.phone": "+32 9 000 00 00", "esf.education_level": "isced_3_4",
                "trajectory.status": "intake"}}),
        )
        .await
        .unwrap();
    if r.status == 403 {
        // A partner in its notice period takes no new cases: nothing to scan.
        assert_eq!(error_code(&r), "no_new_cases", "{cn}");
        return None;
    }
    assert_eq!(r.status, 201, "{cn}: {}", String::from_utf8_lossy(&r.body));
    let pid = r.json()["pid"].as_str().unwrap().to_string();
    let coach = if partner == "jobandco" {
        "intro"
    } else {
        "jobandco"
    };
    let r = me
        .post(
            &format!("/v1/participants/{pid}/involvements"),
            &json!({"partner": coach, "role": "trajectgezel"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{cn}: {}", String::from_utf8_lossy(&r.body));
    let cc = guide(gw, &format!("crm.{coach}"));
    let cpid = lookup_as(gw, &format!("crm.{coach}"))
        .post("/v1/lookup", &json!({"insz": number}))
        .await
        .unwrap()
        .json()["pid"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/participants/{cpid}");
    let r = cc
        .send(
            Method::PATCH,
            &path,
            &[("if-match", "1")],
            Some(
                &json!({"fields": {"health.addiction": "scan", "life.housing": "scan",
                "justice.referral_by_justice": true, "measure.empowerment": 50}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        cc.post(&format!("{path}/notes"), &json!({"text": "scan"}))
            .await
            .unwrap()
            .status,
        201
    );
    for scope in [
        "health_sharing",
        "caw_professional_secrecy",
        "group_case_discussion",
    ] {
        let r = cc
            .post(&format!("{path}/consents"), &json!({"scope": scope}))
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{scope}");
    }
    let r = cc
        .send(
            Method::DELETE,
            &format!("{path}/involvements"),
            &[],
            Some(&json!({"partner": coach, "role": "trajectgezel"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    Some(pid)
}

#[tokio::test]
async fn no_self_assignment_in_the_shipped_agreement_widens_a_view_unless_it_is_named() {
    let home = Home::new();
    let gw = home.start();
    let agreement: toml::Value = toml::from_str(
        &std::fs::read_to_string(crate::harness::policies().join("agreement.toml")).unwrap(),
    )
    .unwrap();
    let case_roles: Vec<String> = agreement["role"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["level"].as_str() == Some("case"))
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut serial = 300;
    let mut allowed_widenings = Vec::new();
    let mut attempts = 0;
    for client in agreement["client"].as_array().unwrap() {
        let cn = client["cn"].as_str().unwrap();
        let partner = client["partner"].as_str().unwrap();
        let roles: Vec<String> = client["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .filter(|r| case_roles.contains(r))
            .collect();
        if !roles.contains(&"toeleider".to_string()) {
            continue;
        }
        // Every order of self-assignments: each path is tried on a fresh, filled case.
        let mut paths: Vec<Vec<String>> = vec![Vec::new()];
        let mut seen: BTreeSet<Vec<String>> = BTreeSet::new();
        while let Some(path) = paths.pop() {
            for role in roles
                .iter()
                .filter(|r| *r != "toeleider" && !path.contains(r))
            {
                let mut next = path.clone();
                next.push(role.clone());
                let mut key = next.clone();
                key.sort();
                if !seen.insert(key) {
                    continue;
                }
                serial += 1;
                let Some(pid) = filled_case(&gw, cn, partner, serial).await else {
                    break;
                };
                let me = guide(&gw, cn);
                let assign = |role: &String| {
                    let me = me.clone();
                    let path = format!("/v1/participants/{pid}/involvements");
                    let body = json!({"partner": partner, "role": role});
                    async move { me.post(&path, &body).await.unwrap() }
                };
                for earlier in &path {
                    assert_eq!(
                        assign(earlier).await.status,
                        201,
                        "{cn}: replaying {path:?}"
                    );
                }
                let before = views(&gw, cn, &pid).await;
                let r = assign(role).await;
                attempts += 1;
                let held = format!(
                    "toeleider{}",
                    path.iter().map(|r| format!("+{r}")).collect::<String>()
                );
                match r.status.as_u16() {
                    201 => {
                        if widened(&before, &views(&gw, cn, &pid).await) {
                            allowed_widenings.push(format!("{held}->{role}"));
                        }
                        paths.push(next);
                    }
                    403 => {
                        assert!(
                            ["self_escalation", "not_allowed"].contains(&error_code(&r).as_str()),
                            "{cn} {role}: {}",
                            error_code(&r)
                        );
                        assert_eq!(
                            views(&gw, cn, &pid).await,
                            before,
                            "{cn} {role}: refused, unchanged"
                        );
                    }
                    other => panic!("{cn} {held}->{role}: unexpected {other}"),
                }
            }
        }
    }
    assert!(attempts > 20, "the scan tried {attempts} self-assignments");
    allowed_widenings.sort();
    allowed_widenings.dedup();
    // Only the agreement's named self-assignment (a referring OCMW or VDAB takes the case).
    assert_eq!(
        allowed_widenings,
        vec!["toeleider->dossierbeheerder".to_string()]
    );
}

#[tokio::test]
async fn a_case_has_one_trajectgezel_and_a_handover_changes_it_in_one_audited_step() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 111).await;
    let ocmw = guide(&gw, "crm.ocmw-gent");
    let pid = &case.pids["ocmw-gent"];
    let inv = format!("/v1/participants/{pid}/involvements");
    let r = ocmw
        .post(&inv, &json!({"partner": "intro", "role": "trajectgezel"}))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (409, "role_taken".into())
    );
    let intro_pid = lookup_as(&gw, "crm.intro")
        .post("/v1/lookup", &json!({"insz": case.insz}))
        .await
        .unwrap()
        .json()["pid"]
        .as_str()
        .unwrap()
        .to_string();
    let intro = guide(&gw, "crm.intro");
    assert_eq!(fields(&intro, &intro_pid).await.0, 404, "intro got nothing");

    let handover = format!("/v1/participants/{pid}/handover");
    // Handing over from a partner that does not hold the role changes nothing.
    let r = ocmw
        .post(
            &handover,
            &json!({"role": "trajectgezel", "from": "jes", "to": "intro"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (409, "not_current_holder".into())
    );
    // Handing it to oneself is a self-escalation.
    let r = ocmw
        .post(
            &handover,
            &json!({"role": "trajectgezel", "from": "jobandco", "to": "ocmw-gent"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (403, "self_escalation".into())
    );
    assert_eq!(
        fields(&guide(&gw, "crm.jobandco"), &case.pids["jobandco"])
            .await
            .0,
        200
    );

    let r = ocmw
        .post(
            &handover,
            &json!({"role": "trajectgezel", "from": "jobandco", "to": "intro"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        fields(&guide(&gw, "crm.jobandco"), &case.pids["jobandco"])
            .await
            .0,
        404
    );
    let (s, f) = fields(&intro, &intro_pid).await;
    assert_eq!(s, 200);
    assert!(f.contains(&"health.addiction".to_string()));

    let all = audit_records(&gw).await;
    let end = records(&all, "involvement.end", "granted");
    let start = records(&all, "involvement.start", "granted");
    let ended = end
        .iter()
        .find(|r| r["reason"] == "jobandco:trajectgezel;reason=handover")
        .expect("the end of the old coach's role is audited");
    let started = start
        .iter()
        .find(|r| r["reason"] == "intro:trajectgezel;handover")
        .expect("the start of the new coach's role is audited");
    assert_eq!(ended["request_id"], started["request_id"], "one request");
    let refused: Vec<_> = records(&all, "involvement.handover", "refused")
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refused, vec!["not_current_holder", "self_escalation"]);
    // The case still has exactly one active trajectgezel, in the database too.
    let mut conn = db(&home).await;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM involvements WHERE role = 'trajectgezel' AND ended_at IS NULL",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn ending_another_partners_role_needs_a_reason_code_that_is_audited() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 121).await;
    let job = guide(&gw, "crm.jobandco");
    let inv = format!("/v1/participants/{}/involvements", case.pids["jobandco"]);
    let r = job
        .send(
            Method::DELETE,
            &inv,
            &[],
            Some(&json!({"partner": "vdab", "role": "spoc_vdab"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (422, "reason_required".into())
    );
    assert_eq!(
        fields(&guide(&gw, "crm.vdab"), &case.pids["vdab"]).await.0,
        200
    );
    // Free text is not a reason: only the codes are accepted.
    let r = job
        .send(
            Method::DELETE,
            &inv,
            &[],
            Some(&json!({"partner": "vdab", "role": "spoc_vdab", "reason": "An was rude"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    let r = job
        .send(
            Method::DELETE,
            &inv,
            &[],
            Some(&json!({"partner": "vdab", "role": "spoc_vdab", "reason": "no_longer_needed"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        fields(&guide(&gw, "crm.vdab"), &case.pids["vdab"]).await.0,
        404
    );
    let all = audit_records(&gw).await;
    assert!(
        records(&all, "involvement.end", "granted")
            .iter()
            .any(|r| r["reason"] == "vdab:spoc_vdab;reason=no_longer_needed")
    );
    assert!(
        records(&all, "involvement.end", "refused")
            .iter()
            .any(|r| r["reason"] == "reason_required")
    );
    assert!(!all.iter().any(|r| r.to_string().contains("rude")));
    let mut conn = db(&home).await;
    let (reason,): (Option<String>,) =
        sqlx::query_as("SELECT end_reason FROM involvements WHERE partner = 'vdab'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("no_longer_needed"));
}

/// After a correction the old number finds nobody and the new one finds the same person (VDAB's
/// pid `pid`).
async fn look_up_moved(gw: &Gateway, old: &str, new: &str, pid: &str) {
    let vdab = lookup_as(gw, "crm.vdab");
    let r = vdab
        .post("/v1/lookup", &json!({"insz": old}))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = vdab
        .post("/v1/lookup", &json!({"insz": new}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["pid"], pid);
}

#[tokio::test]
async fn correcting_the_national_number_moves_the_look_up_and_a_taken_one_is_refused() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 131).await;
    let other = insz(132);
    let job = guide(&gw, "crm.jobandco");
    assert_eq!(
        job.post(
            "/v1/participants",
            &json!({"fields": {"identity.insz": other}})
        )
        .await
        .unwrap()
        .status,
        201
    );
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let version = job.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();

    // A number another participant holds: 409, nothing written.
    let r = job
        .send(
            Method::PATCH,
            &path,
            &[("if-match", &version.to_string())],
            Some(&json!({"fields": {"identity.insz": other, "identity.given_name": "Niet"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (409, "insz_taken".into())
    );
    let now = job.get(&path).await.unwrap().json();
    assert_eq!(now["version"].as_i64().unwrap(), version);
    assert_eq!(now["fields"]["identity.given_name"], fixtures::GIVEN);

    // The correction: the old number finds nobody, the new one finds the same person.
    let corrected = insz(133);
    let r = job
        .send(
            Method::PATCH,
            &path,
            &[("if-match", &version.to_string())],
            Some(&json!({"fields": {"identity.insz": corrected}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    look_up_moved(&gw, &case.insz, &corrected, &case.pids["vdab"]).await;
    // Registering under the corrected number is no duplicate.
    let r = guide(&gw, "crm.vdab")
        .post(
            "/v1/participants",
            &json!({"fields": {"identity.insz": corrected}}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["existing"].clone()),
        (200, json!(true))
    );

    // A data-subject request under the corrected number reaches this person's file.
    let dpo = as_(&gw.client("dpo.stad-gent"), "dsr_handling");
    let id = dsr_request(&gw, "access", &corrected, None).await;
    dsr_execute(&gw, &id).await;
    let bundle = dpo
        .get(&format!("/v1/dsr/{id}/export"))
        .await
        .unwrap()
        .json();
    assert_eq!(bundle["data"]["identity"]["given_name"], fixtures::GIVEN);
    assert_eq!(bundle["data"]["identity"]["insz"], corrected.as_str());
    // Under the old number, a request finds nobody's data.
    let id = dsr_request(&gw, "access", &case.insz, None).await;
    dsr_execute(&gw, &id).await;
    let bundle = dpo.get(&format!("/v1/dsr/{id}/export")).await.unwrap();
    assert!(!String::from_utf8_lossy(&bundle.body).contains(fixtures::GIVEN));
}

#[tokio::test]
async fn look_ups_give_no_pid_for_restricted_or_objecting_participants() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 141).await;
    let run = |kind: &'static str, details: Option<Value>| {
        let (gw, insz) = (&gw, case.insz.clone());
        async move {
            let id = dsr_request(gw, kind, &insz, details).await;
            dsr_execute(gw, &id).await;
        }
    };
    let look = |client: &'static str| {
        let c = lookup_as(&gw, client);
        let body = json!({"insz": case.insz});
        async move { c.post("/v1/lookup", &body).await.unwrap() }
    };
    assert_eq!(look("crm.intro").await.status, 200);

    run("restriction", None).await;
    let r = look("crm.intro").await;
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (403, "participant_restricted".into())
    );
    assert!(r.json().get("pid").is_none());
    run("restriction", Some(json!({"lift": true}))).await;
    assert_eq!(look("crm.intro").await.status, 200);

    run("objection", None).await;
    for client in ["crm.intro", "crm.ocmw-gent"] {
        let r = look(client).await;
        assert_eq!(
            (r.status.as_u16(), error_code(&r)),
            (403, "participant_objected".into()),
            "{client}"
        );
    }
    let all = audit_records(&gw).await;
    let refused: Vec<&str> = records(&all, "participant.lookup", "refused")
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        vec![
            "participant_restricted",
            "participant_objected",
            "participant_objected"
        ]
    );
    assert!(
        records(&all, "participant.lookup", "refused")
            .iter()
            .all(|r| r["participant"].as_str().is_some_and(|p| p.len() == 32))
    );
}

#[tokio::test]
async fn look_ups_past_the_client_limit_get_429_with_retry_after_and_are_audited() {
    let home = Home::new();
    let gw = home.start_with_env(&[
        ("PARTNERGATE_LOOKUP_BURST", "3"),
        ("PARTNERGATE_LOOKUP_PER_MINUTE", "2"),
    ]);
    let vdab = lookup_as(&gw, "crm.vdab");
    for serial in 0..3 {
        let r = vdab
            .post("/v1/lookup", &json!({"insz": insz(150 + serial)}))
            .await
            .unwrap();
        assert_eq!(r.status, 404);
    }
    let r = vdab
        .post("/v1/lookup", &json!({"insz": insz(160)}))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (429, "rate_limited".into())
    );
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    // Another client has its own budget.
    let r = lookup_as(&gw, "crm.intro")
        .post("/v1/lookup", &json!({"insz": insz(161)}))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let all = audit_records(&gw).await;
    let limited = records(&all, "participant.lookup", "refused");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0]["reason"], "rate_limited");
    assert_eq!(limited[0]["client"], "crm.vdab");
}

#[tokio::test]
async fn idempotent_replays_are_audited_and_concurrent_retries_do_the_work_once() {
    let home = Home::new();
    let gw = home.start();
    let job = guide(&gw, "crm.jobandco");
    let body =
        json!({"fields": {"identity.insz": insz(171), "identity.given_name": fixtures::GIVEN}});
    let key = [("idempotency-key", "reg-171")];
    let first = job
        .send(Method::POST, "/v1/participants", &key, Some(&body))
        .await
        .unwrap();
    assert_eq!(first.status, 201);
    let again = job
        .send(Method::POST, "/v1/participants", &key, Some(&body))
        .await
        .unwrap();
    assert_eq!(again.status, 201);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.json(), first.json());

    // Eight retries at once of one note by the coach: one note.
    let case = showcase(&gw, 170).await;
    let notes = format!("/v1/participants/{}/notes", case.pids["jobandco"]);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = job.clone();
            let notes = notes.clone();
            tokio::spawn(async move {
                c.send(
                    Method::POST,
                    &notes,
                    &[("idempotency-key", "note-1")],
                    Some(&json!({"text": fixtures::NOTE})),
                )
                .await
                .unwrap()
                .status
                .as_u16()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let listed = job.get(&notes).await.unwrap().json();
    // The showcase wrote one note itself.
    assert_eq!(listed["notes"].as_array().unwrap().len(), 2);

    let all = audit_records(&gw).await;
    let registered = records(&all, "participant.register", "granted");
    let replays: Vec<&&Value> = registered
        .iter()
        .filter(|r| r["reason"] == "idempotent_replay")
        .collect();
    assert_eq!(replays.len(), 1);
    let written = records(&all, "participant.register", "granted")
        .into_iter()
        .find(|r| r["reason"].is_null())
        .unwrap();
    assert_eq!(replays[0]["participant"], written["participant"]);
    let note_records = records(&all, "notes.write", "granted");
    assert_eq!(
        note_records.len(),
        1 + 8,
        "the showcase's note, one write and seven audited replays"
    );
    assert_eq!(
        note_records
            .iter()
            .filter(|r| r["reason"] == "idempotent_replay")
            .count(),
        7
    );

    // The stored hash is keyed: another installation stores a different hash for the same
    // request, and neither is the bare SHA-256 of the body.
    let home2 = Home::new();
    let gw2 = home2.start();
    let r = guide(&gw2, "crm.jobandco")
        .send(Method::POST, "/v1/participants", &key, Some(&body))
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    async fn hash(h: &Home) -> Vec<u8> {
        {
            let mut c = db(h).await;
            let (hash,): (Vec<u8>,) =
                sqlx::query_as("SELECT request_hash FROM idempotency WHERE key = 'reg-171'")
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
            hash
        }
    }
    let (h1, h2) = (hash(&home).await, hash(&home2).await);
    assert_ne!(h1, h2);
    let bare = ring::digest::digest(
        &ring::digest::SHA256,
        &serde_json::to_vec(&body["fields"]).unwrap(),
    );
    assert_ne!(h1, bare.as_ref());

    // After 24 hours a key is forgotten: the same key then starts a new request.
    let mut conn = db(&home).await;
    sqlx::query(
        "UPDATE idempotency SET created_at = '2000-01-01T00:00:00.000Z' WHERE key = 'reg-171'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let other = json!({"fields": {"identity.insz": insz(172)}});
    let r = job
        .send(Method::POST, "/v1/participants", &key, Some(&other))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "an expired key is not a reused key");
    assert!(r.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn refusals_after_identification_are_audited_without_what_the_caller_typed() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 181).await;
    let job = guide(&gw, "crm.jobandco");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let attempts: Vec<(u16, partnergate_client::Response)> = vec![
        (
            422,
            job.post(
                "/v1/participants",
                &json!({"fields": {"identity.insz": "12345678901"}}),
            )
            .await
            .unwrap(),
        ),
        (
            422,
            lookup_as(&gw, "crm.jobandco")
                .post("/v1/lookup", &json!({"insz": "99999999999"}))
                .await
                .unwrap(),
        ),
        (
            400,
            job.send(
                Method::PATCH,
                &path,
                &[("if-match", "three")],
                Some(&json!({"fields": {}})),
            )
            .await
            .unwrap(),
        ),
        (
            428,
            job.send(Method::PATCH, &path, &[], Some(&json!({"fields": {}})))
                .await
                .unwrap(),
        ),
        (
            422,
            job.send(
                Method::PATCH,
                &path,
                &[("if-match", "2")],
                Some(&json!({"fields": {"identity.zeewaeter_secret": "x"}})),
            )
            .await
            .unwrap(),
        ),
        (
            422,
            job.post(
                &format!("{path}/consents"),
                &json!({"scope": "zeewaeter_scope"}),
            )
            .await
            .unwrap(),
        ),
        (
            422,
            job.post(
                &format!("{path}/involvements"),
                &json!({"partner": "vdab", "role": "zeewaeter_role"}),
            )
            .await
            .unwrap(),
        ),
        (
            400,
            job.send_raw(
                Method::POST,
                &format!("{path}/notes"),
                &[("content-type", "application/json")],
                b"{not json".to_vec(),
            )
            .await
            .unwrap(),
        ),
    ];
    let dpo_search = as_(&gw.client("dpo.stad-gent"), "audit")
        .get("/v1/audit?insz=12345678902")
        .await
        .unwrap();
    assert_eq!(dpo_search.status, 422);
    for (status, r) in &attempts {
        assert_eq!(
            r.status.as_u16(),
            *status,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let all = audit_records(&gw).await;
    let reasons: Vec<String> = all
        .iter()
        .filter(|r| r["decision"] == "refused")
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    for expected in [
        "invalid_insz",
        "invalid_if_match",
        "missing_if_match",
        "unknown_field",
        "unknown_scope",
        "unknown_role",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected} not in {reasons:?}"
        );
    }
    // Registration, look-up and the DPO's search.
    assert_eq!(reasons.iter().filter(|r| *r == "invalid_insz").count(), 3);
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("invalid_json (POST /v1/participants/{pid}/notes)"))
    );
    let text = serde_json::to_string(&all).unwrap();
    assert!(
        !text.contains("zeewaeter"),
        "nothing the caller typed is recorded"
    );
    assert!(
        !text.contains("12345678901")
            && !text.contains("99999999999")
            && !text.contains("12345678902")
    );
}

#[tokio::test]
async fn a_consent_that_unlocks_the_recorders_own_reading_is_refused_or_flagged() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 191).await;
    let caw = guide(&gw, "crm.caw-oost-vlaanderen");
    let caw_pid = &case.pids["caw-oost-vlaanderen"];
    let before = fields(&caw, caw_pid).await;
    let r = caw
        .post(
            &format!("/v1/participants/{caw_pid}/consents"),
            &json!({"scope": "health_sharing"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r)),
        (403, "independent_recorder_required".into())
    );
    assert_eq!(
        fields(&caw, caw_pid).await,
        before,
        "no health for the brugfiguur"
    );

    let job = guide(&gw, "crm.jobandco");
    let consents = format!("/v1/participants/{}/consents", case.pids["jobandco"]);
    for scope in ["health_sharing", "group_case_discussion"] {
        assert_eq!(
            job.post(&consents, &json!({"scope": scope}))
                .await
                .unwrap()
                .status,
            201
        );
    }
    let (_, after) = fields(&caw, caw_pid).await;
    assert!(
        after.contains(&"health.addiction".to_string()),
        "recorded by the coach, it applies"
    );

    let all = audit_records(&gw).await;
    let reasons: Vec<&str> = records(&all, "consent.record", "granted")
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    // The coach already reads health for guidance, but not in a group case discussion.
    assert_eq!(
        reasons,
        vec!["health_sharing", "group_case_discussion;widens_own_reading"]
    );
    let refused = records(&all, "consent.record", "refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["reason"], "independent_recorder_required");
}

#[tokio::test]
async fn a_rectification_of_the_national_number_moves_the_look_up_too() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 201).await;
    let corrected = insz(202);
    let details = json!({"fields": {"identity.insz": corrected}});
    let id = dsr_request(&gw, "rectification", &case.insz, Some(details)).await;
    dsr_execute(&gw, &id).await;
    look_up_moved(&gw, &case.insz, &corrected, &case.pids["vdab"]).await;
}
