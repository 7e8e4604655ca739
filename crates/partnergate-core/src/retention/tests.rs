use time::macros::date;

use super::*;

fn agreement() -> Agreement {
    Agreement::from_str(include_str!("../../../../policies/agreement.toml")).unwrap()
}

fn holding(end: Option<Date>) -> Holding {
    Holding {
        id: ParticipantId::generate().unwrap(),
        fields: [
            "contact.phone",
            "esf.education_level",
            "health.addiction",
            "identity.given_name",
            "notes.text",
            "trajectory.end_date",
        ]
        .map(String::from)
        .to_vec(),
        trajectory_end: end,
    }
}

#[test]
fn a_category_is_due_on_its_day_and_not_the_day_before() {
    let a = agreement();
    let h = holding(Some(date!(2026 - 03 - 31)));
    // health: 6 months after the end of the trajectory.
    assert_eq!(
        due(&a, "health", h.trajectory_end),
        Some(date!(2026 - 09 - 30))
    );
    assert!(expired_fields(&a, &h, date!(2026 - 09 - 29)).is_empty());
    assert_eq!(
        expired_fields(&a, &h, date!(2026 - 09 - 30)),
        vec!["health.addiction".to_string()]
    );
    // contact and notes: 12 months; identity and trajectory: 24.
    assert_eq!(
        expired_fields(&a, &h, date!(2027 - 03 - 31)),
        ["contact.phone", "health.addiction", "notes.text"].map(String::from)
    );
    assert_eq!(expired_fields(&a, &h, date!(2028 - 03 - 31)).len(), 5);
    // ESF evidence counts from the end of the programme: 120 months after 2029-12-31.
    assert_eq!(due(&a, "esf", None), Some(date!(2039 - 12 - 31)));
    assert_eq!(expired_fields(&a, &h, date!(2039 - 12 - 31)).len(), 6);
}

#[test]
fn a_running_trajectory_keeps_everything_but_programme_bound_categories() {
    let a = agreement();
    let h = holding(None);
    assert!(expired_fields(&a, &h, date!(2039 - 12 - 30)).is_empty());
    assert_eq!(
        expired_fields(&a, &h, date!(2040 - 01 - 01)),
        vec!["esf.education_level".to_string()]
    );
}

#[test]
fn the_plan_counts_participants_per_category_and_month() {
    let a = agreement();
    let hs = [
        holding(Some(date!(2026 - 01 - 15))),
        holding(Some(date!(2026 - 05 - 20))),
        holding(None),
    ];
    let p = plan(&a, &hs, date!(2026 - 08 - 01));
    let health = p.iter().find(|c| c.category == "health").unwrap();
    assert_eq!(health.due_now, 1);
    assert_eq!(health.later.get("2026-11"), Some(&1));
    assert_eq!(health.no_date_yet, 1);
    let esf = p.iter().find(|c| c.category == "esf").unwrap();
    assert_eq!((esf.due_now, esf.later.get("2039-12")), (0, Some(&3)));
    let json = serde_json::to_string(&p).unwrap();
    assert!(!json.contains("2026-01-15"), "no dates of a person: {json}");
}
