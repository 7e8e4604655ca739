use std::sync::{Arc, OnceLock};

use serde_json::json;
use time::macros::date;

use super::*;

const DEMO: &str = include_str!("../../../../policies/agreement.toml");

fn demo() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| Policy::from_agreement_str(DEMO).expect("demo agreement loads"))
}

fn roles(p: &Policy, names: &[&str]) -> RoleSet {
    names.iter().map(|n| p.role(n).unwrap()).collect()
}

fn cats(p: &Policy, names: &[&str]) -> CategorySet {
    names.iter().map(|n| p.category(n).unwrap()).collect()
}

fn scopes(p: &Policy, names: &[&str]) -> ScopeSet {
    names.iter().map(|n| p.scope(n).unwrap()).collect()
}

#[test]
fn policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<Decision>();
}

#[test]
fn empty_role_set_is_denied_everything() {
    let p = demo();
    let d = p.decide(RoleSet::empty(), p.purpose("trajectory_guidance").unwrap());
    assert!(d.is_empty());
    assert!(d.readable(ScopeSet(u64::MAX)).is_empty());
    assert!(d.writable(ScopeSet(u64::MAX)).is_empty());
    assert!(!d.may_lookup() && !d.may_read_audit() && !d.may_handle_dsr());
}

#[test]
fn purpose_id_outside_the_agreement_is_denied_everything() {
    let p = demo();
    let d = p.decide(p.all_roles(), PurposeId(200));
    assert!(d.is_empty());
}

#[test]
fn unknown_names_resolve_to_none() {
    let p = demo();
    assert!(p.purpose("marketing").is_none());
    assert!(p.role("admin").is_none());
    assert!(p.scope("everything").is_none());
    assert!(p.field("health.blood_type").is_none());
    assert!(p.client_roles("crm.unknown").is_empty());
}

#[test]
fn role_without_grant_for_the_purpose_gets_nothing() {
    let p = demo();
    // The DPO reads no content, whatever consents are in force.
    let d = p.decide(
        roles(p, &["dpo"]),
        p.purpose("trajectory_guidance").unwrap(),
    );
    assert!(d.is_empty());
    let d = p.decide(
        roles(p, &["stuurgroep"]),
        p.purpose("case_discussion").unwrap(),
    );
    assert!(d.readable(ScopeSet(u64::MAX)).is_empty());
}

#[test]
fn decisions_are_cached_per_role_set_and_purpose() {
    let p = demo();
    let tg = p.purpose("trajectory_guidance").unwrap();
    let a = p.decide(roles(p, &["co_coach", "brugfiguur"]), tg);
    let b = p.decide(roles(p, &["brugfiguur", "co_coach"]), tg);
    assert!(Arc::ptr_eq(&a.0, &b.0), "second call must hit the cache");
    let c = p.decide(roles(p, &["co_coach"]), tg);
    assert!(!Arc::ptr_eq(&a.0, &c.0));
}

#[test]
fn role_sets_union_their_grants() {
    let p = demo();
    let tg = p.purpose("trajectory_guidance").unwrap();
    let d = p.decide(roles(p, &["spoc_vdab", "co_coach"]), tg);
    assert_eq!(
        d.readable(ScopeSet::empty()),
        cats(p, &["identity", "contact", "esf", "trajectory", "measure"])
    );
    assert_eq!(
        d.writable(ScopeSet::empty()),
        cats(p, &["trajectory", "measure"])
    );
}

#[test]
fn consent_conditioned_categories_need_the_consent_in_force() {
    let p = demo();
    let tg = p.purpose("trajectory_guidance").unwrap();
    let d = p.decide(roles(p, &["brugfiguur"]), tg);
    let base = cats(p, &["identity", "contact", "trajectory", "life"]);
    assert_eq!(d.readable(ScopeSet::empty()), base);
    assert_eq!(
        d.readable(scopes(p, &["health_sharing"])),
        base.union(cats(p, &["health"]))
    );
    assert_eq!(
        d.readable(scopes(p, &["caw_professional_secrecy"])),
        base.union(cats(p, &["notes"]))
    );
    // A consent for another purpose's scope changes nothing here.
    assert_eq!(d.readable(scopes(p, &["group_case_discussion"])), base);
    // Consent never widens writing.
    assert_eq!(d.writable(ScopeSet(u64::MAX)), cats(p, &["life"]));
    assert_eq!(
        d.consent_scopes(),
        scopes(p, &["health_sharing", "caw_professional_secrecy"])
    );
}

#[test]
fn pseudo_object_permissions() {
    let p = demo();
    let purpose = |n| p.purpose(n).unwrap();
    let tg = p.decide(roles(p, &["trajectgezel"]), purpose("trajectory_guidance"));
    assert!(tg.may_record_consent());
    assert!(tg.may_assign(p.role("co_coach").unwrap()));
    assert!(!tg.may_assign(p.role("dossierbeheerder").unwrap()));
    assert!(tg.may_end(p.role("dossierbeheerder").unwrap()));
    assert!(!tg.may_lookup(), "lookup belongs to duplicate_check");
    let dc = p.decide(roles(p, &["spoc_vdab"]), purpose("duplicate_check"));
    assert!(dc.may_lookup());
    assert!(dc.readable(ScopeSet(u64::MAX)).is_empty());
    let dpo = roles(p, &["dpo"]);
    assert!(p.decide(dpo, purpose("audit")).may_read_audit());
    assert!(!p.decide(dpo, purpose("dsr_handling")).may_read_audit());
    assert!(p.decide(dpo, purpose("dsr_handling")).may_handle_dsr());
    assert!(p.decide(dpo, purpose("dsr_handling")).may_read_dsr());
    let coord = roles(p, &["teamleider", "stuurgroep"]);
    assert!(p.decide(coord, purpose("esf_reporting")).may_read_reports());
    assert!(!p.decide(coord, purpose("audit")).may_read_reports());
}

#[test]
fn decision_table_agrees_with_the_casbin_enforcer_everywhere() {
    let p = demo();
    let n = p.verify_against_enforcer().unwrap();
    // 10 roles × 6 purposes × (10 categories × 2 actions × (1 + 3 scopes) + 6 pseudo
    // + 10 roles × 3 involvement actions: assign, end, self_assign)
    assert_eq!(n, 10 * 6 * (10 * 2 * 4 + 6 + 30));
}

#[test]
fn widening_counts_what_a_role_adds_under_any_consent() {
    let p = demo();
    let tg = p.purpose("trajectory_guidance").unwrap();
    // toeleider -> dossierbeheerder: contact, esf, measure become readable for guidance.
    let w = p.widening(roles(p, &["toeleider"]), roles(p, &["dossierbeheerder"]));
    let g = w.iter().find(|w| w.purpose == tg).unwrap();
    assert_eq!(g.reads, cats(p, &["contact", "esf", "measure"]));
    assert!(g.writes.is_empty());
    // dossierbeheerder -> trajectgezel widens (health, justice, life, notes, ...).
    let w = p.widening(roles(p, &["dossierbeheerder"]), roles(p, &["trajectgezel"]));
    let g = w.iter().find(|w| w.purpose == tg).unwrap();
    assert!(g.reads.contains(p.category("health").unwrap()));
    assert!(g.writes.contains(p.category("notes").unwrap()));
    // VDAB as dossierbeheerder taking spoc_vdab widens nothing, for any purpose.
    assert!(
        p.widening(roles(p, &["dossierbeheerder"]), roles(p, &["spoc_vdab"]))
            .is_empty()
    );
    // A consent-conditioned grant counts as widening: brugfiguur over co_coach reads health
    // under health_sharing.
    let w = p.widening(roles(p, &["co_coach"]), roles(p, &["brugfiguur"]));
    let g = w.iter().find(|w| w.purpose == tg).unwrap();
    assert!(g.reads.contains(p.category("health").unwrap()));
}

#[test]
fn only_the_named_self_assignment_is_an_allowed_escalation_path() {
    let p = demo();
    let paths = p.escalation_paths();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert_eq!(paths[0].from, vec!["toeleider".to_string()]);
    assert_eq!(paths[0].to, "dossierbeheerder");
    assert_eq!(
        paths[0].partners,
        vec!["ocmw-gent".to_string(), "vdab".to_string()]
    );
    let toeleider = roles(p, &["toeleider"]);
    let d = p.decide(toeleider, p.purpose("trajectory_guidance").unwrap());
    assert!(d.may_self_assign(p.role("dossierbeheerder").unwrap()));
    assert!(!d.may_self_assign(p.role("trajectgezel").unwrap()));
}

#[test]
fn consents_that_unlock_the_recorders_own_reading_are_listed_and_marked() {
    let p = demo();
    let list = p.self_widening_consents();
    let find = |scope: &str, role: &str| {
        list.iter()
            .find(|c| c.scope == scope && c.role == role)
            .unwrap_or_else(|| panic!("{scope} by {role} missing from {list:?}"))
    };
    assert!(find("health_sharing", "brugfiguur").refused);
    assert!(find("caw_professional_secrecy", "brugfiguur").refused);
    assert!(!find("group_case_discussion", "trajectgezel").refused);
    // The trajectgezel already reads health: recording health_sharing unlocks nothing for it.
    assert!(
        !list
            .iter()
            .any(|c| c.scope == "health_sharing" && c.role == "trajectgezel")
    );
}

#[test]
fn a_wrong_decision_table_is_caught_by_the_enforcer_cross_check() {
    let mut p = Policy::from_agreement_str(DEMO).unwrap();
    let spoc = p.role("spoc_vdab").unwrap().index();
    let tg = p.purpose("trajectory_guidance").unwrap().index();
    let health = p.category("health").unwrap();
    let n = p.purposes.len();
    p.base[spoc * n + tg].read.insert(health);
    let err = p.verify_against_enforcer().unwrap_err();
    assert!(
        err.to_string()
            .contains("spoc_vdab, trajectory_guidance, health, read"),
        "{err}"
    );
}

#[test]
fn validate_value_accepts_well_typed_values_and_null() {
    let p = demo();
    let ok = [
        ("identity.given_name", json!("An")),
        ("identity.birth_date", json!("1985-07-30")),
        ("identity.gender", json!("x")),
        ("identity.insz", json!("85.07.30-033.28")),
        ("contact.phone", json!("+32 9 123 45 67")),
        ("contact.email", json!("an@example.be")),
        ("esf.third_country_national", json!(false)),
        ("esf_special.disability", json!("declined")),
        ("measure.empowerment", json!(0)),
        ("measure.empowerment", json!(100)),
        ("notes.text", json!("line\nline\twith tab")),
        ("health.addiction", json!(null)),
    ];
    for (f, v) in ok {
        assert_eq!(p.validate_value(f, &v), Ok(()), "{f}");
    }
}

#[test]
fn validate_value_errors_never_contain_the_value() {
    let p = demo();
    let secret = "Jansens-85073003328";
    let bad = [
        ("identity.birth_date", json!(secret)),
        ("identity.gender", json!(secret)),
        ("identity.insz", json!(secret)),
        ("contact.phone", json!(secret)),
        ("contact.email", json!(format!("{secret}@@x"))),
        ("esf.third_country_national", json!(secret)),
        ("esf_special.minority", json!(secret)),
        ("measure.empowerment", json!(secret)),
        ("trajectory.goals", json!(format!("{secret}\u{1b}[31m"))),
        ("life.housing", json!({ "nested": secret })),
    ];
    for (f, v) in bad {
        let err = p.validate_value(f, &v).unwrap_err();
        let msg = err.to_string();
        assert!(
            !msg.contains("Jansens") && !msg.contains("85073003328"),
            "{msg}"
        );
        assert!(msg.contains(f), "message must name the field: {msg}");
        assert!(matches!(err, FieldError::Invalid { .. }));
    }
    let err = p
        .validate_value("health.blood_type", &json!(secret))
        .unwrap_err();
    assert!(!err.to_string().contains("Jansens"));
    assert!(matches!(err, FieldError::UnknownField { .. }));
}

#[test]
fn integer_range_and_enum_values_are_enforced() {
    let p = demo();
    assert!(p.validate_value("measure.let_go_scale", &json!(0)).is_err());
    assert!(
        p.validate_value("measure.let_go_scale", &json!(11))
            .is_err()
    );
    assert!(
        p.validate_value("measure.empowerment", &json!(101))
            .is_err()
    );
    assert!(
        p.validate_value("trajectory.status", &json!("Active"))
            .is_err()
    );
    assert!(
        p.validate_value("identity.birth_date", &json!("2023-02-29"))
            .is_err()
    );
    let e = p
        .validate_value("measure.let_go_scale", &json!(11))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `measure.let_go_scale` expects an integer from 1 to 10"
    );
}

#[test]
fn fields_are_listed_per_category_in_agreement_order() {
    let p = demo();
    let f: Vec<&str> = p.fields_in(cats(p, &["justice", "notes"])).collect();
    assert_eq!(
        f,
        [
            "justice.referral_by_justice",
            "justice.justice_notes",
            "notes.text"
        ]
    );
    let fr = p.field("measure.empowerment").unwrap();
    assert_eq!(fr.category, p.category("measure").unwrap());
    assert_eq!(fr.ty, &FieldType::Integer { min: 0, max: 100 });
    assert_eq!(
        p.all_fields().count(),
        7 + 4 + 10 + 2 + 9 + 10 + 5 + 2 + 3 + 1
    );
}

#[test]
fn clients_map_to_partners_and_roles() {
    let p = demo();
    let a = p.agreement();
    let c = a.client("crm.ocmw-gent").unwrap();
    assert_eq!(c.partner.value, "ocmw-gent");
    assert_eq!(p.client_roles("dpo.stad-gent"), roles(p, &["dpo"]));
    assert_eq!(
        p.role_names(p.client_roles("coord.stad-gent")),
        "teamleider,stuurgroep"
    );
    assert_eq!(
        a.partner("vdab").unwrap().kind.value,
        "public_employment_service"
    );
    assert!(a.client("crm.nobody").is_none());
    assert_eq!(p.role_level(p.role("dpo").unwrap()), RoleLevel::Client);
}

#[test]
fn membership_decides_who_is_a_member_and_who_may_take_new_roles() {
    let a = demo().agreement();
    let gent = a.partner("stad-gent").unwrap();
    assert!(gent.is_member_on(date!(2026 - 11 - 23)));
    assert!(!gent.is_member_on(date!(2023 - 12 - 31)));
    assert!(gent.may_take_new_roles_on(date!(2026 - 11 - 23)));
    let voluit = a.partner("voluit").unwrap();
    assert!(voluit.is_member_on(date!(2027 - 05 - 31)));
    assert!(!voluit.is_member_on(date!(2027 - 06 - 01)));
    assert!(!voluit.may_take_new_roles_on(date!(2026 - 11 - 23)));
    let amal = a.partner("amal").unwrap();
    assert!(amal.is_member_on(date!(2026 - 11 - 23)));
    assert!(amal.may_take_new_roles_on(date!(2026 - 11 - 23)));
    assert!(!amal.is_controller());
    let exited = Partner {
        membership: Membership::Exited {
            since: date!(2026 - 01 - 01),
        },
        ..gent.clone()
    };
    assert!(!exited.is_member_on(date!(2026 - 01 - 01)));
    assert!(exited.is_member_on(date!(2025 - 12 - 31)));
    assert!(!exited.may_take_new_roles_on(date!(2025 - 06 - 01)));
}

#[test]
fn esf_retention_blocks_erasure_and_others_do_not() {
    let p = demo();
    let reason = p
        .retention_blocks_erasure(p.category("esf").unwrap())
        .unwrap();
    assert!(reason.contains("10 years"));
    for c in [
        "identity",
        "contact",
        "trajectory",
        "life",
        "health",
        "justice",
        "measure",
        "notes",
    ] {
        assert_eq!(
            p.retention_blocks_erasure(p.category(c).unwrap()),
            None,
            "{c}"
        );
    }
    assert!(p.agreement().retention_blocks_erasure("nope").is_none());
}

#[test]
fn explain_filters_by_role_and_purpose_and_renders_a_table() {
    let a = demo().agreement();
    let rows = explain(a, Some("brugfiguur"), Some("trajectory_guidance"));
    assert!(
        rows.iter()
            .all(|r| r.role == "brugfiguur" && r.purpose == "trajectory_guidance")
    );
    let health: Vec<_> = rows.iter().filter(|r| r.object == "health").collect();
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].consent.as_deref(), Some("health_sharing"));
    let table = render_table(&rows);
    assert!(table.starts_with("ROLE"));
    assert!(table.contains("consent health_sharing"));
    let json = serde_json::to_value(&rows).unwrap();
    assert_eq!(json[0]["role"], "brugfiguur");
    assert_eq!(explain(a, Some("nobody"), None), vec![]);
}

#[test]
fn version_is_the_hash_of_the_compiled_text() {
    let p = demo();
    let c = p.compiled();
    let want = agreement::sha256_hex(format!("{}{}", c.model_conf, c.policy_csv).as_bytes());
    assert_eq!(p.version(), want);
}
