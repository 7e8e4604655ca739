//! Field value validation. Error messages name the field and the expected type, never the
//! value: values are personal data and errors end up in responses and logs.

use serde_json::Value;

use super::agreement::FieldType;

/// Maximum length of a text field, in characters.
pub const TEXT_MAX_CHARS: usize = 4000;
/// Maximum length of a phone field, in characters.
pub const PHONE_MAX_CHARS: usize = 20;
/// Maximum length of an e-mail field, in characters.
pub const EMAIL_MAX_CHARS: usize = 254;

/// A field value that does not fit the agreement. Never carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The field is not declared in the agreement.
    #[error("unknown field `{field}`")]
    UnknownField {
        /// The field name as given by the caller.
        field: String,
    },
    /// The value does not have the field's type.
    #[error("field `{field}` expects {expected}")]
    Invalid {
        /// Full field name `category.name`.
        field: String,
        /// What the field expects (type description, no value).
        expected: String,
    },
}

/// Validates `value` against `ty`; `null` (clear the field) is always valid.
pub(crate) fn validate(field: &str, ty: &FieldType, value: &Value) -> Result<(), FieldError> {
    if value.is_null() {
        return Ok(());
    }
    let ok = match ty {
        FieldType::Text => value.as_str().is_some_and(valid_text),
        FieldType::Date => value.as_str().is_some_and(valid_date),
        FieldType::Enum { values } => value
            .as_str()
            .is_some_and(|s| values.iter().any(|v| v == s)),
        FieldType::Bool => value.is_boolean(),
        FieldType::Integer { min, max } => value.as_i64().is_some_and(|n| n >= *min && n <= *max),
        FieldType::Insz => value.as_str().is_some_and(valid_insz_shape),
        FieldType::Phone => value.as_str().is_some_and(valid_phone),
        FieldType::Email => value.as_str().is_some_and(valid_email),
    };
    if ok {
        Ok(())
    } else {
        Err(FieldError::Invalid {
            field: field.to_string(),
            expected: ty.expected(),
        })
    }
}

fn valid_text(s: &str) -> bool {
    s.chars().count() <= TEXT_MAX_CHARS
        && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    // Strict shape first: time's parser would also take signs and wider years.
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    match (num(0..4), num(5..7), num(8..10)) {
        (Some(y), Some(m), Some(d)) => time::Month::try_from(m as u8)
            .ok()
            .and_then(|m| time::Date::from_calendar_date(y as i32, m, d as u8).ok())
            .is_some(),
        _ => false,
    }
}

/// Shape only (11 digits, optional `.`/`-`/space separators); the vault checks mod 97.
fn valid_insz_shape(s: &str) -> bool {
    s.len() <= 20
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == ' ')
        && s.chars().filter(|c| c.is_ascii_digit()).count() == 11
}

fn valid_phone(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= PHONE_MAX_CHARS
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '+')
        && s.chars().any(|c| c.is_ascii_digit())
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.chars().count() <= EMAIL_MAX_CHARS
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_must_be_real_calendar_days_in_strict_form() {
        assert!(valid_date("2024-02-29"));
        assert!(!valid_date("2023-02-29"));
        assert!(!valid_date("2024-13-01"));
        assert!(!valid_date("+2024-01-01"));
        assert!(!valid_date("2024-1-01"));
        assert!(!valid_date("20240101"));
    }

    #[test]
    fn text_rejects_control_chars_but_keeps_newline_and_tab() {
        assert!(valid_text("line one\nline\ttwo"));
        assert!(!valid_text("bell\u{7}"));
        assert!(!valid_text("cr\r"));
        assert!(valid_text(&"é".repeat(4000)));
        assert!(!valid_text(&"a".repeat(4001)));
    }

    #[test]
    fn phone_email_and_insz_shapes() {
        assert!(valid_phone("+32 9 123 45 67"));
        assert!(!valid_phone("09-123"));
        assert!(!valid_phone("+"));
        assert!(!valid_phone(&"1".repeat(21)));
        assert!(valid_email("an@example.be"));
        assert!(!valid_email("an@@example.be"));
        assert!(!valid_email("a@b@c"));
        assert!(!valid_email("@example.be"));
        assert!(!valid_email("an example@x.be"));
        assert!(valid_insz_shape("85.07.30-033.28"));
        assert!(valid_insz_shape("85073003328"));
        assert!(!valid_insz_shape("8507300332"));
        assert!(!valid_insz_shape("85073003328x"));
    }

    #[test]
    fn integer_bounds_and_types() {
        let ty = FieldType::Integer { min: 1, max: 10 };
        assert!(validate("measure.let_go_scale", &ty, &json!(1)).is_ok());
        assert!(validate("measure.let_go_scale", &ty, &json!(10)).is_ok());
        assert!(validate("measure.let_go_scale", &ty, &json!(11)).is_err());
        assert!(validate("measure.let_go_scale", &ty, &json!(5.5)).is_err());
        assert!(validate("measure.let_go_scale", &ty, &json!("5")).is_err());
        assert!(validate("measure.let_go_scale", &ty, &Value::Null).is_ok());
    }
}
