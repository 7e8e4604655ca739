//! Request body validation as the gateway does it: the body must be a JSON object with a
//! `fields` object; every field name must be the agreement's and every value must fit its type.
//! Errors name the field, never the value.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use partnergate_core::policy::Policy;
use serde_json::{Map, Value};

/// A character that no error message of ours contains.
const MARK: char = '\u{2603}';

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::from_agreement_str(include_str!("../../policies/agreement.toml"))
            .expect("the shipped agreement is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let Some(Value::Object(fields)) = body.get("fields") else {
        return;
    };
    let policy = policy();
    for (name, value) in fields {
        let known = policy.field(name).is_some();
        match policy.validate_value(name, value) {
            Ok(()) => assert!(known, "an unknown field was accepted"),
            Err(e) => assert!(e.to_string().len() < 512, "the error is not bounded"),
        }
        // No value may be echoed. Mark a string value with a character no fixed message has
        // (the field name, which errors do name, may not carry it) and look for the mark.
        if let Value::String(s) = value
            && !name.contains(MARK)
            && let Err(e) = policy.validate_value(name, &Value::String(format!("{MARK}{s}")))
        {
            assert!(!e.to_string().contains(MARK), "the value is in the error");
        }
    }
});
