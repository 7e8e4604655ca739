//! Completes the document utoipa derives from the handlers with what holds for every
//! operation alike, read off the document itself, and with what the loaded agreement says.
//!
//! - Every operation answers 403 (certificate not of the agreement, membership ended,
//!   certificate revoked) and 503 (audit log or store unavailable, revocation list expired).
//! - One that takes `X-Purpose` answers 400 for a missing or unknown purpose or acting user;
//!   one that takes a query, `If-Match` or `Idempotency-Key` answers 400 for a bad one.
//! - One with a body answers 400 (not JSON), 413 (too large), 415 (not
//!   `application/json`) and 422 (wrong shape).
//! - One with a path parameter answers 404.
//!
//! A status the handler documents itself keeps its own description.

use serde_json::{Map, Value, json};

use super::agreement::{self, FieldsUse};
use crate::policy::Policy;

const ERROR_REF: &str = "#/components/schemas/ErrorBody";

/// Adds the security scheme, the agreement's schemas and every generic status.
pub fn complete(doc: &mut Value, policy: &Policy) {
    security(doc);
    openapi_path(doc);
    schemas(doc, policy);
    // Two bodies share a Rust type with another operation but take other values.
    body(doc, "/v1/participants", "post", "Registration");
    body(
        doc,
        "/v1/participants/{pid}/involvements",
        "post",
        "InvolvementStart",
    );
    let purposes = agreement::purposes(policy);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            operation(op, &purposes);
        }
    }
}

/// `mutualTLS` (OpenAPI 3.1): every operation needs a client certificate of the partnership.
fn security(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "mutualTLS": {
            "type": "mutualTLS",
            "description": "A client certificate signed by the partnership CA, not revoked. Its subject CN names a client of the joint-controller agreement (e.g. `crm.ocmw-gent`), which gives the partner and the roles it may use.",
        }
    });
    doc["security"] = json!([{"mutualTLS": []}]);
}

/// The document describes itself too: it is a route like any other.
fn openapi_path(doc: &mut Value) {
    doc["paths"]["/v1/openapi.json"] = json!({
        "get": {
            "tags": ["identity"],
            "summary": "This OpenAPI document, with the loaded agreement's fields, purposes, partners, roles and scopes.",
            "operationId": "openapi",
            "responses": {
                "200": {
                    "description": "the OpenAPI 3.1 document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
            },
        }
    });
}

/// The schemas the agreement decides, put into the components utoipa derived.
fn schemas(doc: &mut Value, policy: &Policy) {
    let schemas = &mut doc["components"]["schemas"];
    schemas["Fields"] = agreement::fields(policy, FieldsUse::Out);
    schemas["FieldsWrite"] = agreement::fields(policy, FieldsUse::Write);
    schemas["FieldsRegister"] = agreement::fields(policy, FieldsUse::Register);
    schemas["FieldsCorrect"] = agreement::fields(policy, FieldsUse::Correct);
    set_fields(&mut schemas["RecordIn"], "FieldsWrite");
    set_fields(&mut schemas["RecordOut"], "Fields");
    set_fields(&mut schemas["Change"], "Fields");
    schemas["Registration"] = json!({
        "type": "object",
        "description": "A registration: the national number and any fields the toeleider may write.",
        "properties": {"fields": {"$ref": "#/components/schemas/FieldsRegister"}},
        "required": ["fields"],
        "additionalProperties": false,
    });

    let partners = agreement::partners(policy);
    let roles = agreement::case_roles(policy);
    let enumerate = |s: &mut Value, prop: &str, values: &[String]| {
        if let Some(p) = s.pointer_mut(&format!("/properties/{prop}")) {
            p["enum"] = json!(values);
        }
    };
    enumerate(&mut schemas["InvolvementIn"], "partner", &partners);
    enumerate(&mut schemas["InvolvementIn"], "role", &roles);
    enumerate(&mut schemas["InvolvementEnd"], "partner", &partners);
    enumerate(&mut schemas["InvolvementEnd"], "role", &roles);
    enumerate(&mut schemas["HandoverIn"], "role", &roles);
    enumerate(&mut schemas["HandoverIn"], "from", &partners);
    enumerate(&mut schemas["HandoverIn"], "to", &partners);
    enumerate(
        &mut schemas["ConsentIn"],
        "scope",
        &agreement::scopes(policy),
    );
    schemas["InvolvementStart"] = agreement::involvement_start(policy);
    if let Some(t) = schemas.pointer_mut("/NoteIn/properties/text") {
        *t = agreement::non_blank_text();
    }
    if let Some(i) = schemas.pointer_mut("/LookupIn/properties/insz") {
        *i = agreement::insz_parsed();
    }
    schemas["NewRequest"] = new_request();
    if let Some(e) = schemas.pointer_mut("/Extension/properties") {
        e["months"] = json!({"type": "integer", "minimum": 1, "maximum": 2, "description": "1 or 2 months (Art. 12(3))"});
        e["reason"] = agreement::not_blank();
    }
}

/// Sets the JSON body schema of one operation to a component.
fn body(doc: &mut Value, path: &str, method: &str, schema: &str) {
    let pointer = format!(
        "/paths/{}/{method}/requestBody/content/application~1json/schema",
        path.replace('~', "~0").replace('/', "~1")
    );
    if let Some(s) = doc.pointer_mut(&pointer) {
        *s = json!({"$ref": format!("#/components/schemas/{schema}")});
    }
}

/// Points every free-form `fields` property inside `schema` at `target`.
fn set_fields(schema: &mut Value, target: &str) {
    match schema {
        Value::Object(map) => {
            if let Some(f) = map.get_mut("properties").and_then(|p| p.get_mut("fields")) {
                let description = f.get("description").cloned();
                *f = json!({"$ref": format!("#/components/schemas/{target}")});
                if let Some(d) = description {
                    f["description"] = d;
                }
            }
            for (k, v) in map.iter_mut() {
                if k != "properties" {
                    set_fields(v, target);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| set_fields(v, target)),
        _ => {}
    }
}

/// A data-subject request: the details each kind takes (see `crate::dsr::create`).
fn new_request() -> Value {
    let common = |kinds: &[&str], details: Value, details_required: bool| {
        let mut s = json!({
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": kinds},
                "insz": agreement::insz_parsed(),
                "details": details,
            },
            "required": ["kind", "insz", "received_at"],
            "additionalProperties": false,
        });
        let mut date = agreement::date();
        date["description"] = json!("date of receipt, YYYY-MM-DD; not after today");
        s["properties"]["received_at"] = date;
        if details_required {
            s["required"] = json!(["kind", "insz", "received_at", "details"]);
        }
        s
    };
    json!({
        "description": "A new data-subject request. Its deadline is one month from receipt.",
        "oneOf": [
            common(&["access", "portability", "erasure"], json!({"type": "null", "description": "these kinds take no details"}), false),
            common(&["rectification"], json!({
                "type": "object",
                "properties": {"fields": {"$ref": "#/components/schemas/FieldsCorrect"}},
                "required": ["fields"],
                "additionalProperties": false,
            }), true),
            common(&["restriction"], json!({
                "type": ["object", "null"],
                "properties": {"lift": {"type": "boolean", "description": "true lifts the restriction"}},
                "additionalProperties": false,
            }), false),
            common(&["objection"], json!({
                "type": ["object", "null"],
                "properties": {"compelling_grounds": {"type": "string", "description": "compelling legitimate grounds the controller records (Art. 21(1))"}},
                "additionalProperties": false,
            }), false),
        ],
    })
}

/// Header parameters with the values the gateway takes.
fn header_schema(name: &str, purposes: &[String]) -> Option<Value> {
    let token = |what: &str| {
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": "^[\\x21-\\x7e]+$",
            "description": what,
        })
    };
    Some(match name.to_ascii_lowercase().as_str() {
        "x-purpose" => json!({
            "type": "string",
            "enum": purposes,
            "description": "a purpose of the joint-controller agreement",
        }),
        "x-acting-user" => token("your own staff id: 1 to 128 visible ASCII characters"),
        "idempotency-key" => token(
            "1 to 128 visible ASCII characters; a retry with the same key within 24 hours gets the first answer",
        ),
        "if-match" => json!({
            "type": "string",
            "pattern": "^(W/)?(\"[0-9]{1,18}\"|[0-9]{1,18})$",
            "description": "the record version you read, e.g. `\"3\"` or `3`",
        }),
        _ => return None,
    })
}

/// Query parameters whose values the handlers check beyond their type.
fn query_schema(name: &str) -> Option<Value> {
    Some(match name {
        "insz" => agreement::insz_parsed(),
        "decision" => json!({"type": "string", "enum": ["granted", "refused"]}),
        "format" => json!({"type": "string", "enum": ["json", "html"], "default": "json"}),
        _ => return None,
    })
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    })
}

fn with_retry_after(mut response: Value) -> Value {
    response["headers"] = json!({
        "Retry-After": {
            "description": "seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 1},
        }
    });
    response
}

fn operation(op: &mut Value, purposes: &[String]) {
    let params: Vec<(String, String)> = op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .map(|ps| {
            ps.iter_mut()
                .map(|p| {
                    let name = p["name"].as_str().unwrap_or_default().to_string();
                    let place = p["in"].as_str().unwrap_or_default().to_string();
                    let schema = match place.as_str() {
                        "header" => header_schema(&name, purposes),
                        // A parameter whose handler states its own pattern (the report's
                        // `format` also takes csv) keeps it.
                        "query" if p.pointer("/schema/pattern").is_none() => query_schema(&name),
                        _ => None,
                    };
                    if let Some(schema) = schema {
                        p["schema"] = schema;
                    }
                    // An absent query parameter is the default; there is no `null` to send.
                    if place == "query"
                        && let Some(types) =
                            p.pointer_mut("/schema/type").and_then(Value::as_array_mut)
                    {
                        types.retain(|t| t != "null");
                        if types.len() == 1 {
                            let only = types[0].clone();
                            p["schema"]["type"] = only;
                        }
                    }
                    (name, place)
                })
                .collect()
        })
        .unwrap_or_default();
    let has = |place: &str| params.iter().any(|(_, p)| p == place);
    let header = |n: &str| {
        params
            .iter()
            .any(|(name, p)| p == "header" && name.eq_ignore_ascii_case(n))
    };
    let body = op.get("requestBody").is_some();

    let mut bad_request = Vec::new();
    if header("X-Purpose") {
        bad_request.push(
            "`missing_purpose`, `unknown_purpose`, `missing_acting_user` or `invalid_acting_user`",
        );
    }
    if has("query") {
        bad_request
            .push("`invalid_query` (or an operation-specific code) for a bad query parameter");
    }
    if header("If-Match") {
        bad_request.push("`invalid_if_match`");
    }
    if header("Idempotency-Key") {
        bad_request.push("`invalid_idempotency_key`");
    }
    if body {
        bad_request.push("`invalid_json`: the body is not JSON");
    }
    let mut generic: Map<String, Value> = Map::new();
    if !bad_request.is_empty() {
        generic.insert("400".into(), error(&bad_request.join("; ")));
    }
    generic.insert(
        "403".into(),
        error("`unknown_client`, `membership_ended`, `certificate_revoked`, or a refusal by the agreement"),
    );
    if has("path") {
        generic.insert(
            "404".into(),
            error("`not_found`: no such resource, or not visible to you (the same answer)"),
        );
    }
    if body {
        generic.insert("413".into(), error("`body_too_large`: over 1 MiB"));
        generic.insert(
            "415".into(),
            error("`unsupported_media_type`: send Content-Type: application/json"),
        );
        generic.insert(
            "422".into(),
            error("`invalid_body` (wrong shape or types), or an operation-specific code"),
        );
    }
    generic.insert(
        "503".into(),
        with_retry_after(error(
            "`audit_unavailable`, `storage_unavailable` or `revocation_list_expired`: nothing was disclosed or written; try again",
        )),
    );
    let responses = &mut op["responses"];
    for (status, response) in generic {
        match responses.get_mut(&status) {
            None => responses[status.as_str()] = response,
            // A handler's own description stays; an empty one gets the generic text.
            Some(own) => {
                if own["description"].as_str().is_none_or(str::is_empty) {
                    own["description"] = response["description"].clone();
                }
                if own.get("content").is_none() {
                    own["content"] = response["content"].clone();
                }
            }
        }
    }
    if let Some(r) = responses.get_mut("429") {
        *r = with_retry_after(r.clone());
    }
    // Every response needs a description in OpenAPI; utoipa leaves it empty when none is given.
    if let Some(map) = responses.as_object_mut() {
        for (status, r) in map.iter_mut() {
            if r["description"].as_str().is_none_or(str::is_empty) {
                r["description"] = json!(default_description(status));
            }
        }
    }
}

fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "created",
        "204" => "done; no body",
        "404" => "`not_found`",
        "409" => "conflict with the current state",
        "412" => "`stale_version`: the record changed; read it again",
        "428" => "`missing_if_match`",
        _ => "see the error code",
    }
}
