//! The document against the router and the agreement.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::document;
use crate::policy::{FieldType, Policy};

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

fn policy() -> Policy {
    Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).expect("agreement loads")
}

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` in the API's source files.
/// Paths not under `/v1` are mounted in the `/v1` router (see `api::router`).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("src/api is readable") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source is readable");
            found.extend(routes_in(&text));
        }
    }
    found
}

fn routes_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(".route(") {
        let call = &rest[at + ".route(".len()..];
        rest = call;
        let Some(path) = call
            .trim_start()
            .strip_prefix('"')
            .and_then(|p| p.split_once('"'))
            .map(|(p, _)| p)
        else {
            continue;
        };
        // The call's arguments, up to its closing parenthesis.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(call.len(), |(i, _)| i);
        let args = &call[..end];
        let full = if path.starts_with("/v1") {
            path.to_string()
        } else {
            format!("/v1{path}")
        };
        for method in METHODS {
            let needle = format!("{method}(");
            let mut from = 0;
            while let Some(i) = args[from..].find(&needle) {
                let start = from + i;
                let before = args[..start].chars().next_back();
                if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                    out.push((method.to_uppercase(), full.clone()));
                }
                from = start + needle.len();
            }
        }
    }
    out
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_route_parser_reads_chained_methods_and_nested_calls() {
    let src = r#"Router::new()
        .route("/a/{id}", get(x::read).patch(x::update))
        .route("/b", post(handler(1, f(2))))
        .route("/v1/c", axum::routing::delete(z))"#;
    let got: BTreeSet<_> = routes_in(src).into_iter().collect();
    let want: BTreeSet<_> = [
        ("GET", "/v1/a/{id}"),
        ("PATCH", "/v1/a/{id}"),
        ("POST", "/v1/b"),
        ("DELETE", "/v1/c"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn every_route_of_the_router_is_in_the_document_and_nothing_else() {
    let routes = routes_in_source();
    assert!(routes.len() > 20, "the parser found the routes: {routes:?}");
    let documented = operations(&document(&policy()));
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes with no operation in the OpenAPI document (add #[utoipa::path] and list the handler in ApiDoc): {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

#[test]
fn the_document_is_openapi_3_1_with_the_mutual_tls_scheme() {
    let doc = document(&policy());
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["mutualTLS"]["type"],
        "mutualTLS"
    );
    assert_eq!(doc["security"][0]["mutualTLS"], serde_json::json!([]));
}

#[test]
fn every_operation_documents_the_statuses_its_extractors_can_answer() {
    let doc = document(&policy());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let r = &op["responses"];
            let name = format!("{method} {path}");
            for status in ["403", "503"] {
                assert_eq!(
                    r[status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{name} documents {status} with the error body"
                );
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let takes = |place: &str| params.iter().any(|p| p["in"] == place);
            if takes("path") {
                assert!(r.get("404").is_some(), "{name} documents 404");
            }
            if takes("query") || takes("header") {
                assert!(r.get("400").is_some(), "{name} documents 400");
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(r.get(status).is_some(), "{name} documents {status}");
                }
            }
            for (status, resp) in r.as_object().unwrap() {
                assert!(
                    resp["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{name} {status} has a description"
                );
            }
        }
    }
}

#[test]
fn x_purpose_lists_exactly_the_purposes_of_the_agreement() {
    let policy = policy();
    let doc = document(&policy);
    let purposes: Vec<Value> = policy
        .agreement()
        .purposes
        .iter()
        .map(|p| Value::String(p.id.to_string()))
        .collect();
    let mut seen = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == "X-Purpose" {
                    assert_eq!(p["schema"]["enum"].as_array().unwrap(), &purposes);
                    assert_eq!(p["required"], true);
                    seen += 1;
                }
            }
        }
    }
    assert!(
        seen > 20,
        "X-Purpose is on the operations about personal data"
    );
}

#[test]
fn fields_has_one_typed_property_per_agreement_field_and_no_other() {
    let policy = policy();
    let doc = document(&policy);
    let fields = &doc["components"]["schemas"]["Fields"];
    assert_eq!(fields["additionalProperties"], false);
    let props = fields["properties"].as_object().unwrap();
    assert_eq!(props.len(), policy.all_fields().count());
    for f in policy.all_fields() {
        let p = &props[f.name];
        match f.ty {
            FieldType::Enum { values } => assert_eq!(p["enum"], serde_json::json!(values)),
            FieldType::Integer { min, max } => {
                assert_eq!(p["type"], "integer");
                assert_eq!(p["minimum"], *min);
                assert_eq!(p["maximum"], *max);
            }
            FieldType::Bool => assert_eq!(p["type"], "boolean"),
            FieldType::Date => assert_eq!(p["format"], "date"),
            FieldType::Insz => assert_eq!(p["format"], super::INSZ_FORMAT),
            FieldType::Text | FieldType::Phone | FieldType::Email => {
                assert_eq!(p["type"], "string");
                assert!(p["maxLength"].is_u64() && p["pattern"].is_string());
            }
        }
    }
    let register = &doc["components"]["schemas"]["FieldsRegister"];
    assert_eq!(register["required"], serde_json::json!(["identity.insz"]));
    let body = &doc["paths"]["/v1/participants"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    assert_eq!(body, "#/components/schemas/Registration");
    let record = &doc["components"]["schemas"]["RecordOut"]["properties"]["fields"]["$ref"];
    assert_eq!(record, "#/components/schemas/Fields");
}

/// The patterns say what the validators do: a value matches exactly when it is accepted.
#[test]
fn field_patterns_agree_with_the_validators() {
    let policy = policy();
    let doc = document(&policy);
    let props = &doc["components"]["schemas"]["Fields"]["properties"];
    let samples = [
        "",
        " ",
        "a",
        "An",
        "line\nbreak\ttab",
        "bell\u{7}",
        "cr\r",
        "nel\u{85}",
        "+32 9 123 45 67",
        "+",
        "09-123",
        "an@example.be",
        "a@b@c",
        "@x.be",
        "an example@x.be",
        "nbsp\u{a0}@x.be",
        "85.07.30-033.28",
        "85073003328",
        "8507300332",
        "2024-02-29",
    ];
    for f in policy.all_fields() {
        let Some(pattern) = props[f.name]["pattern"].as_str() else {
            continue;
        };
        let max = props[f.name]["maxLength"].as_u64().unwrap_or(u64::MAX) as usize;
        let min = props[f.name]["minLength"].as_u64().unwrap_or(0) as usize;
        let re = regex::Regex::new(pattern).expect("pattern compiles");
        for s in samples {
            let n = s.chars().count();
            let by_schema = re.is_match(s) && n <= max && n >= min;
            let by_code = policy
                .validate_value(f.name, &Value::String(s.into()))
                .is_ok();
            // Dates and national numbers are checked beyond their shape (calendar, mod 97).
            if matches!(f.ty, FieldType::Date | FieldType::Insz) && by_schema && !by_code {
                continue;
            }
            assert_eq!(
                by_schema, by_code,
                "{} on {s:?} (pattern {pattern})",
                f.name
            );
        }
    }
}
