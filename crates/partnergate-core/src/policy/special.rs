//! Field names that give away a GDPR Art. 9 or Art. 10 category, so that `policy check` can
//! flag a category whose class says it is ordinary while its fields say otherwise.
//!
//! A list of the obvious words, matched against the parts of a field name split on `_`
//! (`mental_health` matches `health`; `healthy_meals` does not). It catches the mistake of
//! putting `disability` next to `education_level`; it is no substitute for the DPIA.

use super::agreement::{Agreement, Class};

/// Name parts that point at an Art. 9 special category (health, disability, ethnic origin,
/// religion, sex life, genetics, biometrics, politics, union membership).
pub const ART9_WORDS: &[&str] = &[
    "health",
    "disability",
    "disabled",
    "handicap",
    "illness",
    "diagnosis",
    "medical",
    "medication",
    "psychiatric",
    "addiction",
    "neurodiversity",
    "minority",
    "ethnic",
    "ethnicity",
    "race",
    "racial",
    "religion",
    "religious",
    "belief",
    "sexual",
    "sexuality",
    "orientation",
    "genetic",
    "biometric",
    "political",
    "union",
];

/// Name parts that point at Art. 10 data (criminal convictions and offences).
pub const ART10_WORDS: &[&str] = &[
    "justice",
    "criminal",
    "conviction",
    "offence",
    "offense",
    "prison",
    "detention",
    "probation",
];

/// The Art. 9 / Art. 10 class a field name points at, if any.
pub fn class_suggested_by(field: &str) -> Option<Class> {
    let parts: Vec<&str> = field.split('_').collect();
    if parts.iter().any(|p| ART10_WORDS.contains(p)) {
        Some(Class::Art10)
    } else if parts.iter().any(|p| ART9_WORDS.contains(p)) {
        Some(Class::Art9)
    } else {
        None
    }
}

/// (line, category, field, suggested class) for every field whose name suggests a special
/// category that its category's class does not have.
pub fn misclassified(a: &Agreement) -> Vec<(usize, String, String, Class)> {
    let mut out = Vec::new();
    for c in &a.categories {
        for f in &c.fields {
            let Some(suggested) = class_suggested_by(&f.name) else {
                continue;
            };
            // An Art. 10 category may mention health (e.g. a prison's care); an Art. 9
            // category holding justice data is still wrong.
            let ok = c.class == suggested || (c.class == Class::Art10 && suggested == Class::Art9);
            if !ok {
                out.push((
                    f.name.line,
                    c.id.value.clone(),
                    f.name.value.clone(),
                    suggested,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_parts_not_substrings_decide() {
        assert_eq!(class_suggested_by("disability"), Some(Class::Art9));
        assert_eq!(class_suggested_by("mental_health"), Some(Class::Art9));
        assert_eq!(
            class_suggested_by("referral_by_justice"),
            Some(Class::Art10)
        );
        assert_eq!(class_suggested_by("healthy_meals"), None);
        assert_eq!(class_suggested_by("education_level"), None);
    }

    #[test]
    fn the_demo_agreement_classes_every_special_field_as_special() {
        let a = Agreement::from_str(include_str!("../../../../policies/agreement.toml")).unwrap();
        assert_eq!(misclassified(&a), vec![]);
        let esf = a.category("esf").unwrap();
        assert!(
            esf.fields
                .iter()
                .all(|f| class_suggested_by(&f.name).is_none())
        );
    }
}
