//! The committed casbin files must be a fresh compile of the committed agreement, so CI fails
//! when someone edits policies/agreement.toml and forgets `partnergate policy compile`.

use std::path::Path;

use partnergate::policy::{Agreement, Policy, PolicyError, check, compile};

fn policies_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
}

#[test]
fn committed_model_and_policy_equal_a_fresh_compile_of_the_agreement() {
    let agreement = Agreement::load(&policies_dir().join("agreement.toml")).unwrap();
    let fresh = compile(&agreement);
    let model = std::fs::read_to_string(policies_dir().join("model.conf")).unwrap();
    let policy = std::fs::read_to_string(policies_dir().join("policy.csv")).unwrap();
    assert_eq!(
        model, fresh.model_conf,
        "policies/model.conf is stale: run `partnergate policy compile`"
    );
    assert_eq!(
        policy, fresh.policy_csv,
        "policies/policy.csv is stale: run `partnergate policy compile`"
    );
}

#[test]
fn committed_agreement_passes_every_check_without_findings() {
    let agreement = Agreement::load(&policies_dir().join("agreement.toml")).unwrap();
    let findings = check(&agreement);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn committed_policies_load() {
    let policy = Policy::load(policies_dir()).unwrap();
    assert_eq!(policy.version().len(), 64);
    assert!(policy.compiled().model_conf.contains(&format!(
        "# agreement-sha256: {}",
        policy.agreement().sha256()
    )));
}

#[test]
fn load_refuses_compiled_files_out_of_date_with_the_agreement() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["agreement.toml", "model.conf", "policy.csv"] {
        std::fs::copy(policies_dir().join(f), dir.path().join(f)).unwrap();
    }
    // A harmless edit of the agreement (a comment) changes its hash: the model is stale.
    let mut text = std::fs::read_to_string(dir.path().join("agreement.toml")).unwrap();
    text.push_str("\n# edited\n");
    std::fs::write(dir.path().join("agreement.toml"), &text).unwrap();
    let err = Policy::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, PolicyError::OutOfDate { file: "model.conf" }),
        "{err}"
    );
    assert!(err.to_string().contains("run `partnergate policy compile`"));

    // A hand edit of policy.csv is refused too.
    partnergate::policy::compile_dir(dir.path()).unwrap();
    let mut csv = std::fs::read_to_string(dir.path().join("policy.csv")).unwrap();
    csv.push_str("p, spoc_vdab, trajectory_guidance, health, read, always\n");
    std::fs::write(dir.path().join("policy.csv"), csv).unwrap();
    let err = Policy::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, PolicyError::OutOfDate { file: "policy.csv" }),
        "{err}"
    );
}

#[test]
fn load_refuses_an_unsafe_agreement_even_with_matching_compiled_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(policies_dir().join("agreement.toml"))
        .unwrap()
        .replace(
            "read = [\"identity\", \"contact\", \"esf\", \"trajectory\"]\nwrite = [\"trajectory\"]",
            "read = [\"identity\", \"contact\", \"esf\", \"trajectory\", \"healthh\"]\nwrite = [\"trajectory\"]",
        );
    std::fs::write(dir.path().join("agreement.toml"), &text).unwrap();
    let agreement = Agreement::from_str(&text).unwrap();
    partnergate::policy::write_compiled(&compile(&agreement), dir.path()).unwrap();
    let err = Policy::load(dir.path()).unwrap_err();
    let PolicyError::Unsafe(findings) = err else {
        panic!("expected Unsafe, got {err}")
    };
    assert!(findings[0].message.contains("unknown category `healthh`"));
}

/// Regenerates policies/model.conf and policy.csv: `cargo test --test policy_compiled -- --ignored`.
#[test]
#[ignore]
fn regenerate_committed_policies() {
    partnergate::policy::compile_dir(policies_dir()).unwrap();
}
