//! The participant API over mTLS: who sees what, writes, validation, pseudonyms.

use hyper::Method;
use serde_json::json;

use crate::fixtures::{self, as_, field_names, showcase};
use crate::harness::{Home, http_get};

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

const IDENTITY: [&str; 5] = [
    "identity.birth_date",
    "identity.family_name",
    "identity.gender",
    "identity.given_name",
    "identity.insz",
];
const CONTACT: [&str; 3] = ["contact.address", "contact.email", "contact.phone"];
const ESF: [&str; 2] = ["esf.education_level", "esf.labour_status_entry"];

#[tokio::test]
async fn each_role_sees_exactly_the_fields_its_grants_allow() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 11).await;
    let read = |client: &'static str, partner: &'static str, purpose: &'static str| {
        let c = as_(&gw.client(client), purpose);
        let path = format!("/v1/participants/{}", case.pids[partner]);
        async move {
            let r = c.get(&path).await.unwrap();
            (r.status.as_u16(), r.json())
        }
    };
    let all = |parts: &[&[&str]]| sorted(&parts.concat());

    // trajectgezel: everything that was stored.
    let (s, v) = read("crm.jobandco", "jobandco", "trajectory_guidance").await;
    assert_eq!(s, 200);
    assert_eq!(
        field_names(&v),
        all(&[
            &IDENTITY,
            &CONTACT,
            &ESF,
            &[
                "trajectory.status",
                "health.addiction",
                "life.income_debt",
                "measure.empowerment"
            ]
        ])
    );
    assert_eq!(v["fields"]["identity.given_name"], fixtures::GIVEN);
    assert_eq!(v["fields"]["health.addiction"], fixtures::ADDICTION);

    // dossierbeheerder (+ toeleider): status and progress, no health, no life, no notes.
    let (_, v) = read("crm.ocmw-gent", "ocmw-gent", "trajectory_guidance").await;
    assert_eq!(
        field_names(&v),
        all(&[
            &IDENTITY,
            &CONTACT,
            &ESF,
            &["trajectory.status", "measure.empowerment"]
        ])
    );

    // spoc_vdab: identity, contact, esf, trajectory; never life, health, justice, notes.
    let (_, v) = read("crm.vdab", "vdab", "trajectory_guidance").await;
    assert_eq!(
        field_names(&v),
        all(&[&IDENTITY, &CONTACT, &ESF, &["trajectory.status"]])
    );

    // brugfiguur without consent: life but no health.
    let (_, v) = read(
        "crm.caw-oost-vlaanderen",
        "caw-oost-vlaanderen",
        "trajectory_guidance",
    )
    .await;
    assert_eq!(
        field_names(&v),
        all(&[
            &IDENTITY,
            &CONTACT,
            &["trajectory.status", "life.income_debt"]
        ])
    );

    // With consent for health_sharing, the brugfiguur sees health on the next request.
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let consents = format!("/v1/participants/{}/consents", case.pids["jobandco"]);
    assert_eq!(
        job.post(&consents, &json!({"scope": "health_sharing"}))
            .await
            .unwrap()
            .status,
        201
    );
    let (_, v) = read(
        "crm.caw-oost-vlaanderen",
        "caw-oost-vlaanderen",
        "trajectory_guidance",
    )
    .await;
    assert_eq!(
        field_names(&v),
        all(&[
            &IDENTITY,
            &CONTACT,
            &["trajectory.status", "life.income_debt", "health.addiction"]
        ])
    );

    // Withdrawal takes effect on the next request.
    let r = job
        .send(
            Method::DELETE,
            &consents,
            &[],
            Some(&json!({"scope": "health_sharing"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let (_, v) = read(
        "crm.caw-oost-vlaanderen",
        "caw-oost-vlaanderen",
        "trajectory_guidance",
    )
    .await;
    assert!(!field_names(&v).contains(&"health.addiction".to_string()));

    // administrator (client-level): only ESF fields, only for esf_reporting.
    let (s, v) = read("esf.jobandco", "jobandco", "esf_reporting").await;
    assert_eq!(s, 200);
    assert_eq!(field_names(&v), sorted(&ESF));
    let (s, _) = read("esf.jobandco", "jobandco", "trajectory_guidance").await;
    assert_eq!(s, 404);

    // case_discussion narrows the trajectgezel's view.
    let (_, v) = read("crm.jobandco", "jobandco", "case_discussion").await;
    assert_eq!(
        field_names(&v),
        sorted(&[
            "trajectory.status",
            "life.income_debt",
            "measure.empowerment"
        ])
    );

    // A partner with no role in the case does not see it exist.
    let intro = as_(&gw.client("crm.intro"), "duplicate_check");
    let intro_pid = intro
        .post("/v1/lookup", &json!({"insz": case.insz}))
        .await
        .unwrap()
        .json()["pid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = as_(&gw.client("crm.intro"), "trajectory_guidance")
        .get(&format!("/v1/participants/{intro_pid}"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
}

#[tokio::test]
async fn pids_differ_per_partner_and_a_foreign_pid_is_unknown() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 12).await;
    let pids: std::collections::HashSet<&String> = case.pids.values().collect();
    assert_eq!(pids.len(), case.pids.len(), "every partner has its own pid");
    // VDAB using jobandco's pid: unknown, 404, whatever VDAB's own standing.
    let vdab = as_(&gw.client("crm.vdab"), "trajectory_guidance");
    let r = vdab
        .get(&format!("/v1/participants/{}", case.pids["jobandco"]))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = vdab
        .get(&format!("/v1/participants/{}", case.pids["vdab"]))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // Malformed pids are 404 too, never 500.
    for bad in ["x", "ZZZZ", &"a".repeat(300)] {
        assert_eq!(
            vdab.get(&format!("/v1/participants/{bad}"))
                .await
                .unwrap()
                .status,
            404
        );
    }
}

#[tokio::test]
async fn registering_a_known_insz_returns_the_callers_pid_without_a_duplicate() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 13).await;
    let vdab = as_(&gw.client("crm.vdab"), "trajectory_guidance");
    let r = vdab
        .post(
            "/v1/participants",
            &json!({"fields": {"identity.insz": case.insz, "identity.given_name": "Other"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["existing"], true);
    assert_eq!(r.json()["pid"], case.pids["vdab"].as_str());
    // The stored name is unchanged: nothing was written.
    let v = as_(&gw.client("crm.jobandco"), "trajectory_guidance")
        .get(&format!("/v1/participants/{}", case.pids["jobandco"]))
        .await
        .unwrap()
        .json();
    assert_eq!(v["fields"]["identity.given_name"], fixtures::GIVEN);
}

#[tokio::test]
async fn writes_need_if_match_are_all_or_nothing_and_stale_versions_get_412() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 14).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let vdab = as_(&gw.client("crm.vdab"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let vpath = format!("/v1/participants/{}", case.pids["vdab"]);
    let v = job.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();
    let body = json!({"fields": {"trajectory.status": "active"}});
    let r = job
        .send(Method::PATCH, &path, &[], Some(&body))
        .await
        .unwrap();
    assert_eq!(r.status, 428);
    let r = job
        .send(
            Method::PATCH,
            &path,
            &[("if-match", &(v - 1).to_string())],
            Some(&body),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["error"], "stale_version");
    // spoc_vdab may write trajectory but not life: the whole write is refused.
    let mixed = json!({"fields": {"trajectory.status": "paused", "life.housing": "x"}});
    let r = vdab
        .send(
            Method::PATCH,
            &vpath,
            &[("if-match", &v.to_string())],
            Some(&mixed),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "field_not_writable");
    let after = job.get(&path).await.unwrap().json();
    assert_eq!(after["version"].as_i64().unwrap(), v, "nothing written");
    assert_eq!(after["fields"]["trajectory.status"], "intake");
    // A correct write bumps the version; null clears a field.
    let r = job
        .send(
            Method::PATCH,
            &path,
            &[("if-match", &format!("\"{v}\""))],
            Some(&json!({"fields": {"trajectory.status": "active", "life.income_debt": null}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["version"].as_i64().unwrap(), v + 1);
    let after = job.get(&path).await.unwrap().json();
    assert_eq!(after["fields"]["trajectory.status"], "active");
    assert!(after["fields"].get("life.income_debt").is_none());
}

#[tokio::test]
async fn notes_are_for_the_roles_granted_the_notes_category() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 15).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let r = job
        .get(&format!("/v1/participants/{}/notes", case.pids["jobandco"]))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let notes = r.json()["notes"].as_array().unwrap().clone();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["text"], fixtures::NOTE);
    assert_eq!(notes[0]["author_partner"], "jobandco");
    let ocmw = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    let r = ocmw
        .get(&format!(
            "/v1/participants/{}/notes",
            case.pids["ocmw-gent"]
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = ocmw
        .post(
            &format!("/v1/participants/{}/notes", case.pids["ocmw-gent"]),
            &json!({"text": "x"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_json_error_never_a_500() {
    let home = Home::new();
    let gw = home.start();
    let ocmw = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance");
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (
            json!({"fields": {"identity.insz": "12345"}}),
            422,
            "invalid_value",
        ),
        (
            json!({"fields": {"identity.insz": "90060211100"}}),
            422,
            "invalid_insz",
        ),
        (
            json!({"fields": {"identity.given_name": "A"}}),
            422,
            "missing_insz",
        ),
        (
            json!({"fields": {"identity.insz": fixtures::insz(16), "esf.education_level": "phd"}}),
            422,
            "invalid_value",
        ),
        (
            json!({"fields": {"identity.insz": fixtures::insz(16), "identity.birth_date": "1990-02-30"}}),
            422,
            "invalid_value",
        ),
        (
            json!({"fields": {"identity.insz": fixtures::insz(16), "nope.field": 1}}),
            422,
            "unknown_field",
        ),
        (
            json!({"fields": {"identity.insz": fixtures::insz(16), "health.addiction": "x"}}),
            403,
            "field_not_writable",
        ),
        (json!({"fields": {}, "extra": 1}), 422, "invalid_body"),
        (json!([1, 2]), 422, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let r = ocmw.post("/v1/participants", &body).await.unwrap();
        assert_eq!(r.status.as_u16(), status, "{body} -> {:?}", r.body);
        assert_eq!(r.json()["error"], code, "{body}");
        // The message never echoes the value sent.
        assert!(!String::from_utf8_lossy(&r.body).contains("phd"));
    }
    let send = |ctype: Option<&'static str>, body: Vec<u8>| {
        let c = gw.client("crm.ocmw-gent");
        async move {
            let mut h = vec![
                ("x-purpose", "trajectory_guidance"),
                ("x-acting-user", "u1"),
            ];
            if let Some(t) = ctype {
                h.push(("content-type", t));
            }
            c.send_raw(Method::POST, "/v1/participants", &h, body)
                .await
                .unwrap()
        }
    };
    let r = send(Some("application/json"), b"{not json".to_vec()).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].as_str()),
        (400, Some("invalid_json"))
    );
    let r = send(Some("text/plain"), b"{}".to_vec()).await;
    assert_eq!(r.status, 415);
    let big = format!(
        "{{\"fields\": {{\"identity.given_name\": \"{}\"}}}}",
        "a".repeat(2 * 1024 * 1024)
    );
    // The server answers 413 as soon as the limit is passed and stops reading, so the client may
    // still be writing when the connection closes: either outcome is a refusal of the body.
    let h = [
        ("x-purpose", "trajectory_guidance"),
        ("x-acting-user", "u1"),
        ("content-type", "application/json"),
    ];
    match gw
        .client("crm.ocmw-gent")
        .send_raw(Method::POST, "/v1/participants", &h, big.into_bytes())
        .await
    {
        Ok(r) => assert_eq!(r.status, 413),
        Err(e) => assert!(e.to_string().contains("BodyWrite"), "{e}"),
    }
    // Missing and unknown purpose or actor.
    let c = gw.client("crm.ocmw-gent");
    let r = c
        .send(
            Method::GET,
            "/v1/participants/00",
            &[("x-acting-user", "u1")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].as_str()),
        (400, Some("missing_purpose"))
    );
    let r = c
        .send(
            Method::GET,
            "/v1/participants/00",
            &[("x-acting-user", "u1"), ("x-purpose", "marketing")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].as_str()),
        (400, Some("unknown_purpose"))
    );
    let r = c
        .send(
            Method::GET,
            "/v1/participants/00",
            &[("x-purpose", "trajectory_guidance")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].as_str()),
        (400, Some("missing_acting_user"))
    );
    let r = c.get("/v1/nowhere").await.unwrap();
    assert_eq!(r.status, 404);
    assert!(!gw.logs().contains("panicked"));
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let home = Home::new();
    let gw = home.start();
    let r = gw.client("crm.vdab").get("/v1/openapi.json").await.unwrap();
    assert_eq!(r.status, 200);
    let doc = r.json();
    for path in [
        "/v1/me",
        "/v1/participants",
        "/v1/lookup",
        "/v1/participants/{pid}",
        "/v1/participants/{pid}/involvements",
        "/v1/participants/{pid}/consents",
        "/v1/participants/{pid}/notes",
        "/v1/audit",
        "/v1/audit/verify",
        "/v1/audit/export",
    ] {
        assert!(doc["paths"].get(path).is_some(), "missing {path}");
    }
}

#[tokio::test]
async fn no_personal_data_reaches_the_database_file_the_logs_or_the_metrics() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 17).await;
    // Exercise reads, refusals and errors too.
    for (client, partner) in [
        ("crm.jobandco", "jobandco"),
        ("crm.vdab", "vdab"),
        ("crm.caw-oost-vlaanderen", "caw-oost-vlaanderen"),
    ] {
        let r = as_(&gw.client(client), "trajectory_guidance")
            .get(&format!("/v1/participants/{}", case.pids[partner]))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let _ = as_(&gw.client("crm.vdab"), "trajectory_guidance").post("/v1/participants", &json!({"fields": {"identity.insz": case.insz, "identity.given_name": fixtures::GIVEN, "life.housing": fixtures::DEBT}})).await.unwrap();
    let (_, metrics) = http_get(gw.health, "/metrics");
    let logs_before_stop = gw.logs();
    gw.stop();
    let secrets = fixtures::secrets(&case.insz);
    let mut haystacks = vec![
        ("metrics".to_string(), metrics.into_bytes()),
        ("log".to_string(), logs_before_stop.into_bytes()),
    ];
    let database = fixtures::database_contents(&home);
    assert!(database[0].1.len() > 10_000, "the database was read");
    haystacks.extend(database);
    for (name, bytes) in &haystacks {
        for s in &secrets {
            let needle = s.as_bytes();
            assert!(!fixtures::contains(bytes, needle), "{s:?} found in {name}");
        }
        // Also the INSZ with its usual punctuation, and the e-mail's local part alone.
        assert!(!bytes.windows(11).any(|w| w == case.insz.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_registers_valid_rows_through_the_api_and_names_rejects_by_line_only() {
    let home = Home::new();
    let gw = home.start();
    let csv = home.path().join("old-project.csv");
    let (a, b, c) = (fixtures::insz(41), fixtures::insz(42), fixtures::insz(43));
    std::fs::write(
        &csv,
        format!(
            "identity.insz,identity.given_name,identity.family_name,esf.homeless_or_housing_exclusion,trajectory.status\n\
             {a},Zeewaeterine,Eerste,nee,intake\n\
             {b},Zeewaeterine,Tweede,ja,active\n\
             90060211100,Zeewaeterine,Foutief,nee,intake\n\
             {c},Zeewaeterine,Derde,misschien,intake\n\
             {a},Zeewaeterine,Dubbel,nee,intake\n\
             {c},Zeewaeterine,Derde,,referred\n"
        ),
    )
    .unwrap();
    let home_path = home.path().to_path_buf();
    let (base, file) = (gw.base(), csv.to_str().unwrap().to_string());
    let (ok, out) = tokio::task::spawn_blocking(move || {
        crate::harness::run(
            &home_path,
            &["import", "--client", "crm.ocmw-gent", "--url", &base, &file],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("3 registered, 1 already known, 2 rejected"),
        "{out}"
    );
    let rejects = std::fs::read_to_string(home.path().join("old-project.csv.rejects.csv")).unwrap();
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines[0], "line,error,message");
    assert!(lines[1].starts_with("4,invalid_insz,"), "{rejects}");
    assert!(lines[2].starts_with("5,invalid_value,"), "{rejects}");
    assert!(
        !rejects.contains("Zeewaeterine")
            && !rejects.contains("90060211100")
            && !rejects.contains("misschien")
    );
    // The imported rows are real participants the importing partner can read.
    let r = as_(&gw.client("crm.ocmw-gent"), "duplicate_check")
        .post("/v1/lookup", &json!({"insz": b}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let pid = r.json()["pid"].as_str().unwrap().to_string();
    let v = as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance")
        .get(&format!("/v1/participants/{pid}"))
        .await
        .unwrap()
        .json();
    assert_eq!(v["fields"]["identity.family_name"], "Tweede");
    assert_eq!(v["fields"]["trajectory.status"], "active");
}

/// The client, headers, body and URL of one printed `curl` line.
fn parse_curl(line: &str) -> (String, Vec<(String, String)>, Option<String>, String) {
    let client = line
        .split("/clients/")
        .nth(1)
        .unwrap()
        .split(".pem")
        .next()
        .unwrap()
        .to_string();
    let headers = line
        .split("-H '")
        .skip(1)
        .filter_map(|h| {
            h.split('\'')
                .next()?
                .split_once(": ")
                .map(|(k, v)| (k.to_lowercase(), v.to_string()))
        })
        .collect();
    let body = line
        .split("-d '")
        .nth(1)
        .map(|b| b.split('\'').next().unwrap().to_string());
    let url = line
        .split_whitespace()
        .last()
        .unwrap()
        .trim_matches('\'')
        .to_string();
    (client, headers, body, url)
}

#[tokio::test]
async fn the_curl_commands_the_demo_prints_work_and_show_four_different_views() {
    let (home, out) = Home::with_demo(20);
    let gw = home.start();
    let curls: Vec<&str> = out.lines().filter(|l| l.starts_with("curl ")).collect();
    assert!(curls.len() >= 8, "{out}");
    let mut views = std::collections::HashMap::new();
    for line in curls {
        let (client, headers, body, url) = parse_curl(line);
        let path = url.replace("https://localhost:8443", "");
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let c = gw.client(&client);
        let r = match body {
            Some(b) => c
                .send_raw(Method::POST, &path, &h, b.into_bytes())
                .await
                .unwrap(),
            None => c.send(Method::GET, &path, &h, None).await.unwrap(),
        };
        assert_eq!(
            r.status,
            200,
            "{line}\n{}",
            String::from_utf8_lossy(&r.body)
        );
        if path.starts_with("/v1/participants/") {
            views.insert(client, field_names(&r.json()));
        }
    }
    let has = |client: &str, field: &str| views[client].iter().any(|f| f == field);
    assert!(
        has("crm.jobandco", "health.addiction")
            && has("crm.caw-oost-vlaanderen", "health.addiction")
    );
    assert!(!has("crm.ocmw-gent", "health.addiction") && !has("crm.vdab", "health.addiction"));
    assert!(
        !has("crm.vdab", "life.income_debt") && has("crm.caw-oost-vlaanderen", "life.income_debt")
    );
    let distinct: std::collections::HashSet<&Vec<String>> = views.values().collect();
    assert_eq!(distinct.len(), 4, "four different views");
}
