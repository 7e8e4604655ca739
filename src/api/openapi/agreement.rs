//! The parts of the OpenAPI document that come from the loaded agreement: one property per
//! field (with the same rules as [`crate::policy::Policy::validate_value`]), and the purposes,
//! partners, case roles and consent scopes a request may name.
//!
//! The patterns are the validators written as regular expressions (valid in ECMAScript and
//! Python), so a value the document allows is one the gateway accepts, and the other way round.

use serde_json::{Map, Value, json};

use crate::policy::{
    EMAIL_MAX_CHARS, FieldType, PHONE_MAX_CHARS, Policy, RoleLevel, TEXT_MAX_CHARS,
};
use crate::vault::insz::INSZ_FIELD;

/// Text allows every character but the controls other than tab (\x09) and newline (\x0a).
const TEXT_FORBIDDEN: &str = r"\x00-\x08\x0b-\x1f\x7f-\x9f";
/// Rust's `char::is_whitespace` (Unicode White_Space) plus the controls, as a class body.
const SPACE_OR_CONTROL: &str =
    r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The name of the custom `format` of a national number: 11 digits whose last two are the
/// mod-97 check of the first nine (with a `2` in front for births from 2000 on).
pub const INSZ_FORMAT: &str = "insz";

/// A free text of the agreement's kind (`notes.text`, `text` fields).
pub fn text() -> Value {
    json!({
        "type": "string",
        "maxLength": TEXT_MAX_CHARS,
        "pattern": format!("^[^{TEXT_FORBIDDEN}]*$"),
        "description": "at most 4000 characters; no control characters except tab and newline",
    })
}

/// A text that must contain something besides white space (a note).
pub fn non_blank_text() -> Value {
    json!({
        "type": "string",
        "maxLength": TEXT_MAX_CHARS,
        "pattern": format!("^[^{TEXT_FORBIDDEN}]*[^{SPACE_OR_CONTROL}][^{TEXT_FORBIDDEN}]*$"),
        "description": "at most 4000 characters, not only white space; no control characters except tab and newline",
    })
}

/// A string with at least one character that is not white space (Rust's `str::trim`).
pub fn not_blank() -> Value {
    json!({
        "type": "string",
        "pattern": r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
        "description": "not empty, not only white space",
    })
}

/// A national number as the API takes it: 11 digits, `.`, `-` and spaces allowed between.
pub fn insz() -> Value {
    json!({
        "type": "string",
        "format": INSZ_FORMAT,
        "maxLength": 20,
        "pattern": r"^[.\- ]*([0-9][.\- ]*){11}$",
        "description": "national register number (INSZ): 11 digits, optionally with `.`, `-` or spaces; the last two digits are the mod-97 check",
        "examples": ["85.07.30-033.28"],
    })
}

/// A national number where the API parses it directly (look-up, data-subject requests, audit
/// search): any number of `.`, `-`, spaces and tabs between the 11 digits.
pub fn insz_parsed() -> Value {
    let mut s = insz();
    s["pattern"] = json!(r"^[.\- \t]*([0-9][.\- \t]*){11}$");
    s.as_object_mut().map(|o| o.remove("maxLength"));
    s
}

/// A calendar date `YYYY-MM-DD`.
pub fn date() -> Value {
    json!({"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"})
}

/// The schema of one field's value.
pub fn field_value(ty: &FieldType) -> Value {
    match ty {
        FieldType::Text => text(),
        FieldType::Date => date(),
        FieldType::Enum { values } => json!({"type": "string", "enum": values}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Integer { min, max } => {
            json!({"type": "integer", "minimum": min, "maximum": max})
        }
        FieldType::Insz => insz(),
        FieldType::Phone => json!({
            "type": "string",
            "minLength": 1,
            "maxLength": PHONE_MAX_CHARS,
            "pattern": r"^[ +]*[0-9][0-9 +]*$",
            "description": "digits, spaces and +",
        }),
        FieldType::Email => json!({
            "type": "string",
            "maxLength": EMAIL_MAX_CHARS,
            "pattern": format!("^[^@{SPACE_OR_CONTROL}]+@[^@{SPACE_OR_CONTROL}]+$"),
            "description": "an e-mail address: one @, no white space",
        }),
    }
}

/// How a `fields` object is used: each use allows other values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FieldsUse {
    /// As answered: values only.
    Out,
    /// PATCH: `null` clears a field, except the national number.
    Write,
    /// Registration: like a write, and the national number is required.
    Register,
    /// A rectification: corrected values, never `null`, at least one.
    Correct,
}

/// The `fields` object: one property per field of the agreement, nothing else.
pub fn fields(policy: &Policy, used: FieldsUse) -> Value {
    let mut props = Map::new();
    for f in policy.all_fields() {
        let mut value = field_value(f.ty);
        if let Some(d) = describe(policy, f.name) {
            value["description"] = Value::String(d);
        }
        let nullable =
            matches!(used, FieldsUse::Write | FieldsUse::Register) && f.name != INSZ_FIELD;
        if nullable {
            value = json!({"oneOf": [value, {"type": "null", "description": "clears the field"}]});
        }
        props.insert(f.name.to_string(), value);
    }
    let mut schema = json!({
        "type": "object",
        "properties": props,
        "additionalProperties": false,
        "description": match used {
            FieldsUse::Out => "the fields this caller may see for this purpose; the others are absent",
            FieldsUse::Write => "field name → value; `null` clears a field; every field must be writable for your role and purpose",
            FieldsUse::Register => "field name → value; identity.insz is required; every field must be writable for the toeleider role and this purpose",
            FieldsUse::Correct => "field name → corrected value",
        },
    });
    match used {
        FieldsUse::Register => schema["required"] = json!([INSZ_FIELD]),
        FieldsUse::Correct => schema["minProperties"] = json!(1),
        FieldsUse::Out | FieldsUse::Write => {}
    }
    schema
}

/// A field's description from the agreement, with its category's class.
fn describe(policy: &Policy, name: &str) -> Option<String> {
    let (cat, field) = name.split_once('.')?;
    let category = policy
        .agreement()
        .categories
        .iter()
        .find(|c| *c.id == cat)?;
    let f = category.fields.iter().find(|f| *f.name == field)?;
    Some(
        f.description
            .clone()
            .unwrap_or_else(|| category.description.clone()),
    )
}

/// The purposes of the agreement (`X-Purpose`).
pub fn purposes(policy: &Policy) -> Vec<String> {
    let a = policy.agreement();
    a.purposes.iter().map(|p| p.id.to_string()).collect()
}

/// The partner ids of the agreement.
pub fn partners(policy: &Policy) -> Vec<String> {
    let a = policy.agreement();
    a.partners.iter().map(|p| p.id.to_string()).collect()
}

/// The case roles of the agreement (roles held through an involvement).
pub fn case_roles(policy: &Policy) -> Vec<String> {
    let a = policy.agreement();
    a.roles
        .iter()
        .filter(|r| r.level == RoleLevel::Case)
        .map(|r| r.id.to_string())
        .collect()
}

/// The consent scopes of the agreement.
pub fn scopes(policy: &Policy) -> Vec<String> {
    let a = policy.agreement();
    a.scopes.iter().map(|s| s.id.to_string()).collect()
}

/// Starting an involvement: one alternative per partner, with the case roles one of its
/// clients may use (any other pair is refused as `role_not_held`).
pub fn involvement_start(policy: &Policy) -> Value {
    let a = policy.agreement();
    let case = case_roles(policy);
    let alternatives: Vec<Value> = a
        .partners
        .iter()
        .filter_map(|p| {
            let mut roles: Vec<&str> = a
                .clients
                .iter()
                .filter(|c| *c.partner == *p.id)
                .flat_map(|c| c.roles.iter().map(|r| r.as_str()))
                .filter(|r| case.iter().any(|c| c == r))
                .collect();
            roles.sort_unstable();
            roles.dedup();
            (!roles.is_empty()).then(|| {
                json!({
                    "type": "object",
                    "properties": {
                        "partner": {"const": p.id.as_str()},
                        "role": {"type": "string", "enum": roles},
                    },
                    "required": ["partner", "role"],
                    "additionalProperties": false,
                })
            })
        })
        .collect();
    json!({
        "description": "a partner of the agreement and a case role one of its clients may use",
        "oneOf": alternatives,
    })
}
