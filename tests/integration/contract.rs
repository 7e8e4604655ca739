//! Regressions found by the OpenAPI contract test (tests/contract): what the document says is
//! what the gateway does.

use hyper::Method;
use serde_json::json;

use crate::fixtures::{as_, insz, showcase};
use crate::harness::Home;

#[tokio::test]
async fn a_bad_query_string_gets_a_json_error_not_plain_text() {
    let home = Home::new();
    let gw = home.start();
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    for path in ["/v1/changes?limit=many", "/v1/changes?unknown=1"] {
        let r = job.get(path).await.unwrap();
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json()["error"], "invalid_query", "{path}: {:?}", r.body);
    }
    let dpo = as_(&gw.client("dpo.stad-gent"), "audit");
    let r = dpo.get("/v1/audit/export?from=-1").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].clone()),
        (400, json!("invalid_query"))
    );
}

#[tokio::test]
async fn if_match_takes_only_the_documented_forms_of_a_version() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 31).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let path = format!("/v1/participants/{}", case.pids["jobandco"]);
    let v = job.get(&path).await.unwrap().json()["version"]
        .as_i64()
        .unwrap();
    let body = json!({"fields": {"trajectory.status": "active"}});
    for bad in [
        format!("+{v}"),
        format!("\"\"{v}\"\""),
        format!("{v}\""),
        "-1".into(),
        "1".repeat(19),
    ] {
        let r = job
            .send(Method::PATCH, &path, &[("if-match", &bad)], Some(&body))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"], "invalid_if_match", "{bad}");
    }
    let r = job
        .send(
            Method::PATCH,
            &path,
            &[("if-match", &format!("W/\"{v}\""))],
            Some(&body),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn a_data_subject_request_refuses_details_its_kind_does_not_take() {
    let home = Home::new();
    let gw = home.start();
    let dpo = as_(&gw.client("dpo.stad-gent"), "dsr_handling");
    let number = insz(41);
    let new = |kind: &str, details| json!({"kind": kind, "insz": number, "received_at": "2026-01-05", "details": details});
    for (kind, details) in [
        ("access", json!({"fields": {}})),
        ("erasure", json!("please")),
        ("restriction", json!({"lift": "yes"})),
        ("objection", json!({"compelling_grounds": 3})),
        ("objection", json!({"lift": true})),
    ] {
        let r = dpo
            .post("/v1/dsr", &new(kind, details.clone()))
            .await
            .unwrap();
        assert_eq!(r.status, 422, "{kind} {details}");
        assert_eq!(r.json()["error"], "invalid_details", "{kind} {details}");
    }
    for (kind, details) in [
        ("access", json!(null)),
        ("restriction", json!({"lift": true})),
        ("objection", json!({"compelling_grounds": "documented"})),
    ] {
        let r = dpo
            .post("/v1/dsr", &new(kind, details.clone()))
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{kind} {details}: {:?}", r.body);
    }
}

#[tokio::test]
async fn the_served_document_types_fields_from_the_agreement_and_names_mutual_tls() {
    let home = Home::new();
    let gw = home.start();
    let r = gw.client("crm.vdab").get("/v1/openapi.json").await.unwrap();
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(
        doc["components"]["securitySchemes"]["mutualTLS"]["type"],
        "mutualTLS"
    );
    let fields = &doc["components"]["schemas"]["Fields"]["properties"];
    assert_eq!(fields["identity.birth_date"]["format"], "date");
    assert_eq!(fields["identity.insz"]["format"], "insz");
    let export = &doc["paths"]["/v1/audit/export"]["get"]["responses"]["200"]["content"];
    assert!(export.get("application/x-ndjson").is_some());
    let dsr = &doc["paths"]["/v1/dsr/{id}/export"]["get"]["responses"]["200"]["content"];
    assert!(dsr.get("text/html").is_some());
}

#[tokio::test]
async fn a_dsr_extension_counts_whole_numbers_written_with_a_fraction_as_integers() {
    let home = Home::new();
    let gw = home.start();
    let dpo = as_(&gw.client("dpo.stad-gent"), "dsr_handling");
    let new = json!({"kind": "access", "insz": insz(42), "received_at": "2026-01-05"});
    let r = dpo.post("/v1/dsr", &new).await.unwrap();
    let id = r.json()["id"].as_str().unwrap().to_string();
    let path = format!("/v1/dsr/{id}/extend");
    // JSON Schema's "integer" includes 2.0; a fraction or a negative number is still refused.
    for bad in [json!(1.5), json!(-1), json!(256), json!("2")] {
        let r = dpo
            .post(&path, &json!({"months": bad, "reason": "complex"}))
            .await
            .unwrap();
        assert_eq!(r.status, 422, "{bad}: {:?}", r.body);
        assert_eq!(r.json()["error"], "invalid_body", "{bad}");
    }
    let r = dpo
        .post(&path, &json!({"months": 2.0, "reason": "complex"}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn the_report_period_is_documented_as_two_required_dates() {
    let home = Home::new();
    let gw = home.start();
    let r = gw.client("crm.vdab").get("/v1/openapi.json").await.unwrap();
    let params = r.json()["paths"]["/v1/reports/esf"]["get"]["parameters"].clone();
    for name in ["from", "to"] {
        let p = params
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} documented"));
        assert_eq!(p["required"], true, "{name}");
        assert_eq!(p["schema"]["format"], "date", "{name}");
    }
    let esf = as_(&gw.client("esf.jobandco"), "esf_reporting");
    let r = esf.get("/v1/reports/esf?from=2026-01-01").await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_period");
}

#[tokio::test]
async fn query_parameters_are_documented_in_the_query_and_refused_out_of_range() {
    let home = Home::new();
    let gw = home.start();
    let r = gw.client("crm.vdab").get("/v1/openapi.json").await.unwrap();
    let doc = r.json();
    for (path, name) in [
        ("/v1/changes", "limit"),
        ("/v1/audit", "limit"),
        ("/v1/audit/export", "to"),
        ("/v1/dsr/{id}/export", "format"),
        ("/v1/reports/esf", "format"),
    ] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let p = params.iter().find(|p| p["name"] == name).unwrap();
        assert_eq!(p["in"], "query", "{path} {name}");
    }
    let dpo = as_(&gw.client("dpo.stad-gent"), "audit");
    for path in [
        "/v1/audit?limit=0",
        "/v1/audit?limit=1001",
        "/v1/audit/export?to=9223372036854775808",
    ] {
        let r = dpo.get(path).await.unwrap();
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json()["error"], "invalid_query", "{path}");
    }
    let esf = as_(&gw.client("esf.jobandco"), "esf_reporting");
    let r = esf.get("/v1/reports/esf?unknown=1").await.unwrap();
    assert_eq!(r.json()["error"], "invalid_query");
}
