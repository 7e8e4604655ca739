//! `check` refuses unsafe or inconsistent agreements and names the line to fix. Each fixture
//! under tests/fixtures/agreements/ is valid.toml with exactly one mistake.

use std::path::PathBuf;

use partnergate::policy::{Agreement, Finding, Policy, PolicyError, Severity, check};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/agreements")
        .join(format!("{name}.toml"))
}

fn errors_of(name: &str) -> Vec<Finding> {
    let agreement = Agreement::load(&fixture(name)).unwrap();
    check(&agreement)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect()
}

/// Asserts exactly one error, on `line`, with `code`, whose message contains every part.
fn assert_single_error(name: &str, line: usize, code: &str, parts: &[&str]) {
    let errors = errors_of(name);
    assert_eq!(errors.len(), 1, "{name}: {errors:#?}");
    let f = &errors[0];
    assert_eq!(f.line, line, "{name}: wrong line in {f}");
    assert_eq!(f.code, code, "{name}: {f}");
    for p in parts {
        assert!(
            f.message.contains(p),
            "{name}: `{p}` missing from: {}",
            f.message
        );
    }
    assert!(
        f.to_string()
            .starts_with(&format!("agreement.toml line {line}: error[{code}]")),
        "{f}"
    );
}

#[test]
fn the_base_fixture_is_safe_and_loads() {
    assert_eq!(check(&Agreement::load(&fixture("valid")).unwrap()), vec![]);
    let text = std::fs::read_to_string(fixture("valid")).unwrap();
    Policy::from_agreement_str(&text).unwrap();
}

#[test]
fn unknown_category_in_a_grant_is_refused() {
    assert_single_error(
        "unknown_category",
        98,
        "unknown-category",
        &["unknown category `adress`", "`read`"],
    );
}

#[test]
fn unknown_role_in_a_grant_is_refused() {
    assert_single_error(
        "unknown_role",
        96,
        "unknown-role",
        &["unknown role `coahc`"],
    );
}

#[test]
fn unknown_purpose_in_a_grant_is_refused() {
    assert_single_error(
        "unknown_purpose",
        91,
        "unknown-purpose",
        &["unknown purpose `guidanse`"],
    );
}

#[test]
fn art9_category_for_a_purpose_with_legitimate_interest_is_refused() {
    assert_single_error(
        "art9_without_basis",
        98,
        "special-category-basis",
        &[
            "Art. 9 category `health`",
            "role `coach`",
            "purpose `outreach`",
            "kind `ngo` is legitimate_interest",
        ],
    );
}

#[test]
fn art10_category_for_a_purpose_with_legitimate_interest_is_refused_on_its_own_line() {
    // The read list spans lines 98-101; the finding points at the `"justice",` line.
    assert_single_error(
        "art10_without_basis",
        100,
        "special-category-basis",
        &[
            "Art. 10 category `justice`",
            "role `coach`",
            "purpose `outreach`",
            "kind `ngo`",
        ],
    );
}

#[test]
fn write_without_matching_read_is_refused() {
    assert_single_error(
        "write_without_read",
        93,
        "write-without-read",
        &["role `coach` may write category `health` for purpose `guidance` but not read it"],
    );
}

#[test]
fn client_with_a_role_its_partner_kind_may_not_hold_is_refused() {
    assert_single_error(
        "role_not_allowed_for_kind",
        43,
        "role-not-allowed-for-kind",
        &[
            "client `crm.help` may not hold role `spoc`",
            "kind `ngo`",
            "`city`",
        ],
    );
}

#[test]
fn client_naming_an_unknown_partner_is_refused() {
    assert_single_error(
        "unknown_partner",
        42,
        "unknown-partner",
        &["client `crm.help` names unknown partner `helpp`"],
    );
}

#[test]
fn grant_conditioned_on_an_unknown_consent_scope_is_refused() {
    assert_single_error(
        "unknown_scope",
        103,
        "unknown-scope",
        &["unknown consent scope `health-sharing`"],
    );
}

#[test]
fn duplicate_consent_scope_id_is_refused_naming_both_lines() {
    assert_single_error(
        "duplicate_id",
        90,
        "duplicate-id",
        &[
            "duplicate consent scope `health_sharing`",
            "first declared on line 86",
        ],
    );
}

#[test]
fn policy_load_refuses_every_unsafe_fixture() {
    for name in [
        "unknown_category",
        "unknown_role",
        "unknown_purpose",
        "art9_without_basis",
        "art10_without_basis",
        "write_without_read",
        "role_not_allowed_for_kind",
        "unknown_partner",
        "unknown_scope",
        "duplicate_id",
    ] {
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        match Policy::from_agreement_str(&text) {
            Err(PolicyError::Unsafe(findings)) => assert!(!findings.is_empty()),
            other => panic!("{name}: expected Unsafe, got {other:?}"),
        }
    }
}

#[test]
fn a_consent_condition_makes_an_art9_grant_acceptable_under_legitimate_interest() {
    // valid.toml grants health for `outreach` (ngo: legitimate_interest) only under
    // consent = "health_sharing"; dropping the condition must produce the finding.
    let text = std::fs::read_to_string(fixture("valid"))
        .unwrap()
        .replace("consent = \"health_sharing\"\n", "");
    let errors: Vec<_> = check(&Agreement::from_str(&text).unwrap())
        .into_iter()
        .filter(|f| f.code == "special-category-basis")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[test]
fn structure_errors_name_the_line() {
    let text = std::fs::read_to_string(fixture("valid")).unwrap().replace(
        "status = \"active\"\nsince = 2024-01-01\n\n[[partner]]\nid = \"help\"",
        "status = \"notice\"\nsince = 2024-01-01\n\n[[partner]]\nid = \"help\"",
    );
    let err = Agreement::from_str(&text).unwrap_err();
    assert!(matches!(err, PolicyError::Parse { line: 25, .. }), "{err}");
    assert!(err.to_string().contains("needs a `until` date"), "{err}");

    let text = std::fs::read_to_string(fixture("valid"))
        .unwrap()
        .replace("months = 24", "months = 24\nkeep_forever = true");
    let err = Agreement::from_str(&text).unwrap_err();
    assert!(err.to_string().contains("keep_forever"), "{err}");
    assert!(
        matches!(err, PolicyError::Parse { line, .. } if line > 100),
        "{err}"
    );
}

#[test]
fn a_special_category_field_in_a_category_not_classed_as_such_is_refused() {
    assert_single_error(
        "special_field_in_ordinary_category",
        59,
        "special-category-class",
        &["`identity.disability`", "Art. 9", "art9"],
    );
}
