//! Golden test of the demo agreement: every (role, purpose, category, action), written out by
//! hand below, against both the runtime decision (`Policy::decide`) and the casbin enforcer.
//! Change this table only together with policies/agreement.toml, after DPO review.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use partnergate::policy::{Policy, RoleSet, ScopeSet};

/// Cells: `-` nothing, `r` read, `w` write, `rw` both, `r?<scope>` read only while that
/// consent is in force. Categories in this column order:
const CATEGORIES: [&str; 10] = [
    "identity",
    "contact",
    "esf",
    "esf_special",
    "trajectory",
    "life",
    "health",
    "justice",
    "measure",
    "notes",
];

const MATRIX: &str = "
# role            purpose              identity contact esf esf_special trajectory life health                  justice measure notes
toeleider         trajectory_guidance  rw       w       w   -           rw         -    -                       -       -       -
dossierbeheerder  trajectory_guidance  rw       rw      rw  -           rw         -    -                       -       r       -
trajectgezel      trajectory_guidance  rw       rw      rw  rw          rw         rw   rw                      rw      rw      rw
co_coach          trajectory_guidance  r        -       -   -           r          -    -                       -       rw      -
brugfiguur        trajectory_guidance  r        r       -   -           r          rw   r?health_sharing        -       -       r?caw_professional_secrecy
spoc_vdab         trajectory_guidance  r        r       r   -           rw         -    -                       -       -       -
dpo               trajectory_guidance  -        -       -   -           -          -    -                       -       -       -
administrator     trajectory_guidance  -        -       -   -           -          -    -                       -       -       -
teamleider        trajectory_guidance  -        -       -   -           -          -    -                       -       -       -
stuurgroep        trajectory_guidance  -        -       -   -           -          -    -                       -       -       -

toeleider         case_discussion      -        -       -   -           -          -    -                       -       -       -
dossierbeheerder  case_discussion      -        -       -   -           r          r    r?group_case_discussion -       r       -
trajectgezel      case_discussion      -        -       -   -           r          r    r?group_case_discussion -       r       -
co_coach          case_discussion      -        -       -   -           r          r    r?group_case_discussion -       r       -
brugfiguur        case_discussion      -        -       -   -           r          r    r?group_case_discussion -       r       -
spoc_vdab         case_discussion      -        -       -   -           r          -    -                       -       -       -
dpo               case_discussion      -        -       -   -           -          -    -                       -       -       -
administrator     case_discussion      -        -       -   -           -          -    -                       -       -       -
teamleider        case_discussion      -        -       -   -           r          -    -                       -       -       -
stuurgroep        case_discussion      -        -       -   -           -          -    -                       -       -       -

toeleider         duplicate_check      -        -       -   -           -          -    -                       -       -       -
dossierbeheerder  duplicate_check      -        -       -   -           -          -    -                       -       -       -
trajectgezel      duplicate_check      -        -       -   -           -          -    -                       -       -       -
co_coach          duplicate_check      -        -       -   -           -          -    -                       -       -       -
brugfiguur        duplicate_check      -        -       -   -           -          -    -                       -       -       -
spoc_vdab         duplicate_check      -        -       -   -           -          -    -                       -       -       -
dpo               duplicate_check      -        -       -   -           -          -    -                       -       -       -
administrator     duplicate_check      -        -       -   -           -          -    -                       -       -       -
teamleider        duplicate_check      -        -       -   -           -          -    -                       -       -       -
stuurgroep        duplicate_check      -        -       -   -           -          -    -                       -       -       -

toeleider         esf_reporting        -        -       -   -           -          -    -                       -       -       -
dossierbeheerder  esf_reporting        -        -       -   -           -          -    -                       -       -       -
trajectgezel      esf_reporting        -        -       -   -           -          -    -                       -       -       -
co_coach          esf_reporting        -        -       -   -           -          -    -                       -       -       -
brugfiguur        esf_reporting        -        -       -   -           -          -    -                       -       -       -
spoc_vdab         esf_reporting        -        -       -   -           -          -    -                       -       -       -
dpo               esf_reporting        -        -       -   -           -          -    -                       -       -       -
administrator     esf_reporting        -        -       r   r           -          -    -                       -       -       -
teamleider        esf_reporting        -        -       -   -           -          -    -                       -       -       -
stuurgroep        esf_reporting        -        -       -   -           -          -    -                       -       -       -

toeleider         dsr_handling         -        -       -   -           -          -    -                       -       -       -
dossierbeheerder  dsr_handling         -        -       -   -           -          -    -                       -       -       -
trajectgezel      dsr_handling         -        -       -   -           -          -    -                       -       -       -
co_coach          dsr_handling         -        -       -   -           -          -    -                       -       -       -
brugfiguur        dsr_handling         -        -       -   -           -          -    -                       -       -       -
spoc_vdab         dsr_handling         -        -       -   -           -          -    -                       -       -       -
dpo               dsr_handling         -        -       -   -           -          -    -                       -       -       -
administrator     dsr_handling         -        -       -   -           -          -    -                       -       -       -
teamleider        dsr_handling         -        -       -   -           -          -    -                       -       -       -
stuurgroep        dsr_handling         -        -       -   -           -          -    -                       -       -       -

toeleider         audit                -        -       -   -           -          -    -                       -       -       -
dossierbeheerder  audit                -        -       -   -           -          -    -                       -       -       -
trajectgezel      audit                -        -       -   -           -          -    -                       -       -       -
co_coach          audit                -        -       -   -           -          -    -                       -       -       -
brugfiguur        audit                -        -       -   -           -          -    -                       -       -       -
spoc_vdab         audit                -        -       -   -           -          -    -                       -       -       -
dpo               audit                -        -       -   -           -          -    -                       -       -       -
administrator     audit                -        -       -   -           -          -    -                       -       -       -
teamleider        audit                -        -       -   -           -          -    -                       -       -       -
stuurgroep        audit                -        -       -   -           -          -    -                       -       -       -
";

/// Pseudo-object permissions; every (role, purpose) not listed has none.
const PSEUDO: &[(&str, &str, &str)] = &[
    (
        "toeleider",
        "trajectory_guidance",
        "consent:record assign:dossierbeheerder assign:trajectgezel assign:spoc_vdab end:toeleider",
    ),
    (
        "dossierbeheerder",
        "trajectory_guidance",
        "consent:record assign:dossierbeheerder assign:trajectgezel assign:spoc_vdab end:dossierbeheerder end:trajectgezel end:spoc_vdab",
    ),
    (
        "trajectgezel",
        "trajectory_guidance",
        "consent:record assign:co_coach assign:brugfiguur assign:spoc_vdab end:toeleider end:dossierbeheerder end:trajectgezel end:co_coach end:brugfiguur end:spoc_vdab",
    ),
    ("brugfiguur", "trajectory_guidance", "consent:record"),
    ("toeleider", "duplicate_check", "participant:lookup"),
    ("dossierbeheerder", "duplicate_check", "participant:lookup"),
    ("trajectgezel", "duplicate_check", "participant:lookup"),
    ("co_coach", "duplicate_check", "participant:lookup"),
    ("brugfiguur", "duplicate_check", "participant:lookup"),
    ("spoc_vdab", "duplicate_check", "participant:lookup"),
    ("administrator", "esf_reporting", "reports:read"),
    ("teamleider", "esf_reporting", "reports:read"),
    ("stuurgroep", "esf_reporting", "reports:read"),
    ("dpo", "dsr_handling", "dsr:read dsr:write"),
    ("dpo", "audit", "audit:read"),
];

fn policy() -> Policy {
    Policy::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))).unwrap()
}

fn expected_matrix() -> Vec<(String, String, Vec<String>)> {
    MATRIX
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cols.len(), 2 + CATEGORIES.len(), "bad golden row: {l}");
            (
                cols[0].to_string(),
                cols[1].to_string(),
                cols[2..].iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

/// The cell for one category, from a decision function `(consents) -> (readable, writable)`.
fn cell(
    readable: impl Fn(Option<&str>) -> bool,
    writable: impl Fn(Option<&str>) -> bool,
    scopes: &[&str],
) -> String {
    let mut s = String::new();
    if readable(None) {
        s.push('r');
    }
    if writable(None) {
        s.push('w');
    }
    let mut parts = vec![];
    if !s.is_empty() {
        parts.push(s);
    }
    for scope in scopes {
        if !readable(None) && readable(Some(scope)) {
            parts.push(format!("r?{scope}"));
        }
        if !writable(None) && writable(Some(scope)) {
            parts.push(format!("w?{scope}"));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

#[test]
fn golden_table_covers_every_role_and_purpose_of_the_demo() {
    let p = policy();
    let a = p.agreement();
    let listed: BTreeSet<(String, String)> = expected_matrix()
        .into_iter()
        .map(|(r, pu, _)| (r, pu))
        .collect();
    let all: BTreeSet<(String, String)> = a
        .roles
        .iter()
        .flat_map(|r| {
            a.purposes
                .iter()
                .map(move |pu| (r.id.value.clone(), pu.id.value.clone()))
        })
        .collect();
    assert_eq!(listed, all);
    let cats: Vec<&str> = a.categories.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(cats, CATEGORIES);
}

#[test]
fn runtime_decisions_match_the_golden_table() {
    let p = policy();
    let scopes: Vec<&str> = p.agreement().scopes.iter().map(|s| s.id.as_str()).collect();
    let mut mismatches = vec![];
    for (role, purpose, cells) in expected_matrix() {
        let d = p.decide(
            RoleSet::of(p.role(&role).unwrap()),
            p.purpose(&purpose).unwrap(),
        );
        let consents = |s: Option<&str>| {
            s.map(|s| ScopeSet::of(p.scope(s).unwrap()))
                .unwrap_or_default()
        };
        for (cat, want) in CATEGORIES.iter().zip(&cells) {
            let c = p.category(cat).unwrap();
            let got = cell(
                |s| d.readable(consents(s)).contains(c),
                |s| d.writable(consents(s)).contains(c),
                &scopes,
            );
            if &got != want {
                mismatches.push(format!(
                    "{role} {purpose} {cat}: expected {want}, got {got}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
}

#[test]
fn casbin_enforcer_matches_the_golden_table() {
    let p = policy();
    let scopes: Vec<&str> = p.agreement().scopes.iter().map(|s| s.id.as_str()).collect();
    let mut mismatches = vec![];
    for (role, purpose, cells) in expected_matrix() {
        for (cat, want) in CATEGORIES.iter().zip(&cells) {
            let ask = |act: &str, s: Option<&str>| {
                let cond = s
                    .map(|s| format!("consent:{s}"))
                    .unwrap_or_else(|| "always".into());
                // Unconditional grants hold whatever consents are in force.
                p.enforce_uncached(&role, &purpose, cat, act, "always")
                    .unwrap()
                    || p.enforce_uncached(&role, &purpose, cat, act, &cond)
                        .unwrap()
            };
            let got = cell(|s| ask("read", s), |s| ask("write", s), &scopes);
            if &got != want {
                mismatches.push(format!(
                    "{role} {purpose} {cat}: expected {want}, got {got}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
}

#[test]
fn pseudo_object_permissions_match_the_golden_table() {
    let p = policy();
    let expected: HashMap<(&str, &str), BTreeSet<&str>> = PSEUDO
        .iter()
        .map(|(r, pu, s)| ((*r, *pu), s.split_whitespace().collect()))
        .collect();
    let a = p.agreement();
    for role in &a.roles {
        for purpose in &a.purposes {
            let d = p.decide(
                RoleSet::of(p.role(&role.id).unwrap()),
                p.purpose(&purpose.id).unwrap(),
            );
            let mut got: BTreeSet<String> = BTreeSet::new();
            for (ok, name) in [
                (d.may_lookup(), "participant:lookup"),
                (d.may_record_consent(), "consent:record"),
                (d.may_read_audit(), "audit:read"),
                (d.may_read_dsr(), "dsr:read"),
                (d.may_handle_dsr(), "dsr:write"),
                (d.may_read_reports(), "reports:read"),
            ] {
                if ok {
                    got.insert(name.to_string());
                }
            }
            for target in &a.roles {
                let t = p.role(&target.id).unwrap();
                if d.may_assign(t) {
                    got.insert(format!("assign:{}", target.id.value));
                }
                if d.may_end(t) {
                    got.insert(format!("end:{}", target.id.value));
                }
            }
            let want: BTreeSet<String> = expected
                .get(&(role.id.as_str(), purpose.id.as_str()))
                .map(|s| s.iter().map(|x| x.to_string()).collect())
                .unwrap_or_default();
            assert_eq!(got, want, "{} / {}", role.id.value, purpose.id.value);
        }
    }
}

#[test]
fn spoc_vdab_never_sees_welfare_health_justice_or_notes_under_any_purpose_or_consent() {
    let p = policy();
    let spoc = RoleSet::of(p.role("spoc_vdab").unwrap());
    let forbidden: Vec<_> = ["life", "health", "justice", "notes"]
        .iter()
        .map(|c| p.category(c).unwrap())
        .collect();
    for purpose in p.all_purposes() {
        let all_consents = p
            .agreement()
            .scopes
            .iter()
            .map(|s| p.scope(&s.id).unwrap())
            .collect();
        let seen = p.decide(spoc, purpose).readable(all_consents);
        for c in &forbidden {
            assert!(
                !seen.contains(*c),
                "{} under {}",
                p.category_name(*c),
                p.purpose_name(purpose)
            );
        }
    }
}
