//! Safety and consistency rules for an agreement. Every finding names the line of
//! `agreement.toml` to fix.
//!
//! # The special-category rule (GDPR Art. 9 and Art. 10)
//! A grant that gives read or write access to an `art9` or `art10` category to role R for
//! purpose P is accepted only if one of these holds:
//! 1. the grant is conditioned on a consent scope (`consent = "<scope>"`): the gateway then
//!    only applies it while the participant's explicit consent for that scope is recorded
//!    (Art. 9(2)(a); for Art. 10 data, explicit written consent as allowed by the Belgian
//!    framework act of 30 July 2018, art. 10); or
//! 2. for **every** partner kind that may hold R, the agreement gives P a legal basis for that
//!    kind, and that basis is `public_task`, `legal_obligation` or `consent`. Public task and
//!    legal obligation stand for the national-law grounds of Art. 9(2)(b)/(g)/(h) and the
//!    "authorised by law" clause of Art. 10 (OCMW, VDAB, CAW decrees); `consent` stands for the
//!    explicit, written participation agreement signed at intake.
//!
//! `legitimate_interest` never suffices (Art. 9 has no legitimate-interest exception), and a
//! kind without any basis for P fails too: the rule must hold for whoever can hold the role,
//! not just for today's clients.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use super::PolicyError;
use super::agreement::{Agreement, Class, LegalBasis, Located, RoleLevel};
use super::compile::{PSEUDO_ACTIONS, RESERVED_OBJECTS};
use super::sets::{MAX_CATEGORIES, MAX_PURPOSES, MAX_ROLES, MAX_SCOPES};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The agreement must not be compiled or loaded.
    Error,
    /// Worth a look; does not block.
    Warning,
}

/// One problem in the agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// 1-based line in agreement.toml.
    pub line: usize,
    /// Stable machine-readable code, e.g. `unknown-category`.
    pub code: &'static str,
    /// Human message (without the line; [`fmt::Display`] adds it).
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "agreement.toml line {}: {sev}[{}]: {}",
            self.line, self.code, self.message
        )
    }
}

/// Refuses the agreement with [`PolicyError::Unsafe`] if [`check`] finds any error.
pub fn ensure_safe(agreement: &Agreement) -> Result<(), PolicyError> {
    let errors: Vec<Finding> = check(agreement)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::Unsafe(errors))
    }
}

/// Runs every rule; findings are sorted by line.
pub fn check(a: &Agreement) -> Vec<Finding> {
    let mut c = Checker { out: Vec::new() };
    c.identifiers(a);
    c.duplicates(a);
    c.limits(a);
    c.partners_and_clients(a);
    c.purposes_and_roles(a);
    c.grants(a);
    c.retention(a);
    c.special_names(a);
    c.report_rules(a);
    c.out.sort_by_key(|f| f.line);
    c.out
}

struct Checker {
    out: Vec<Finding>,
}

impl Checker {
    fn err(&mut self, line: usize, code: &'static str, message: String) {
        self.out.push(Finding {
            severity: Severity::Error,
            line,
            code,
            message,
        });
    }

    fn warn(&mut self, line: usize, code: &'static str, message: String) {
        self.out.push(Finding {
            severity: Severity::Warning,
            line,
            code,
            message,
        });
    }

    /// Ids end up in casbin CSV rows and HTTP headers: keep them to a safe alphabet.
    fn identifiers(&mut self, a: &Agreement) {
        let mut ids: Vec<(&str, &Located<String>)> = Vec::new();
        ids.extend(a.kinds.iter().map(|k| ("kind", &k.id)));
        ids.extend(a.partners.iter().map(|p| ("partner", &p.id)));
        ids.extend(a.purposes.iter().map(|p| ("purpose", &p.id)));
        ids.extend(a.categories.iter().map(|c| ("category", &c.id)));
        ids.extend(
            a.categories
                .iter()
                .flat_map(|c| c.fields.iter().map(|f| ("field", &f.name))),
        );
        ids.extend(a.roles.iter().map(|r| ("role", &r.id)));
        ids.extend(a.scopes.iter().map(|s| ("consent scope", &s.id)));
        for (what, id) in ids {
            if !is_identifier(&id.value) {
                self.err(
                    id.line,
                    "bad-identifier",
                    format!(
                        "{what} id `{}` must start with a lowercase letter and contain only a-z, 0-9, `_` and `-`",
                        id.value
                    ),
                );
            }
        }
        for c in &a.clients {
            let ok = !c.cn.is_empty()
                && c.cn
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch));
            if !ok {
                self.err(
                    c.cn.line,
                    "bad-identifier",
                    format!(
                        "client CN `{}` may contain only a-z, 0-9, `.`, `_` and `-`",
                        c.cn.value
                    ),
                );
            }
        }
        for cat in &a.categories {
            if RESERVED_OBJECTS.contains(&cat.id.as_str()) {
                self.err(
                    cat.id.line,
                    "reserved-name",
                    format!(
                        "category `{}` uses a name reserved for a pseudo-object ({})",
                        cat.id.value,
                        RESERVED_OBJECTS.join(", ")
                    ),
                );
            }
        }
    }

    fn duplicates(&mut self, a: &Agreement) {
        let dup = |what: &str, items: Vec<&Located<String>>, this: &mut Checker| {
            let mut first: HashMap<&str, usize> = HashMap::new();
            for id in items {
                if let Some(line) = first.get(id.as_str()) {
                    this.err(
                        id.line,
                        "duplicate-id",
                        format!(
                            "duplicate {what} `{}` (first declared on line {line})",
                            id.value
                        ),
                    );
                } else {
                    first.insert(id.as_str(), id.line);
                }
            }
        };
        dup("kind", a.kinds.iter().map(|k| &k.id).collect(), self);
        dup("partner", a.partners.iter().map(|p| &p.id).collect(), self);
        dup("client", a.clients.iter().map(|c| &c.cn).collect(), self);
        dup("purpose", a.purposes.iter().map(|p| &p.id).collect(), self);
        dup(
            "category",
            a.categories.iter().map(|c| &c.id).collect(),
            self,
        );
        dup("role", a.roles.iter().map(|r| &r.id).collect(), self);
        dup(
            "consent scope",
            a.scopes.iter().map(|s| &s.id).collect(),
            self,
        );
        for cat in &a.categories {
            dup(
                &format!("field in category `{}`", cat.id.value),
                cat.fields.iter().map(|f| &f.name).collect(),
                self,
            );
        }
    }

    fn limits(&mut self, a: &Agreement) {
        let limits = [
            (
                "roles",
                a.roles.len(),
                MAX_ROLES,
                a.roles.get(MAX_ROLES).map(|r| r.id.line),
            ),
            (
                "categories",
                a.categories.len(),
                MAX_CATEGORIES,
                a.categories.get(MAX_CATEGORIES).map(|c| c.id.line),
            ),
            (
                "consent scopes",
                a.scopes.len(),
                MAX_SCOPES,
                a.scopes.get(MAX_SCOPES).map(|s| s.id.line),
            ),
            (
                "purposes",
                a.purposes.len(),
                MAX_PURPOSES,
                a.purposes.get(MAX_PURPOSES).map(|p| p.id.line),
            ),
        ];
        for (what, n, max, line) in limits {
            if n > max {
                self.err(
                    line.unwrap_or(1),
                    "too-many",
                    format!("the agreement declares {n} {what}; at most {max} are supported"),
                );
            }
        }
    }

    fn partners_and_clients(&mut self, a: &Agreement) {
        let kinds: HashSet<&str> = a.kinds.iter().map(|k| k.id.as_str()).collect();
        if a.partner(&a.meta.promotor).is_none() {
            self.err(
                a.meta.promotor.line,
                "unknown-partner",
                format!(
                    "promotor `{}` is not a declared partner",
                    a.meta.promotor.value
                ),
            );
        }
        for p in &a.partners {
            if !kinds.contains(p.kind.as_str()) {
                self.err(
                    p.kind.line,
                    "unknown-kind",
                    format!(
                        "partner `{}` has unknown kind `{}`",
                        p.id.value, p.kind.value
                    ),
                );
            }
            if let Some(kbo) = &p.kbo
                && !valid_kbo(kbo)
            {
                self.err(
                    kbo.line,
                    "bad-kbo",
                    format!(
                        "KBO number `{}` of partner `{}` is not a valid enterprise number (0123.456.789 with mod-97 check)",
                        kbo.value, p.id.value
                    ),
                );
            }
        }
        for c in &a.clients {
            let Some(partner) = a.partner(&c.partner) else {
                self.err(
                    c.partner.line,
                    "unknown-partner",
                    format!(
                        "client `{}` names unknown partner `{}`",
                        c.cn.value, c.partner.value
                    ),
                );
                continue;
            };
            if c.roles.is_empty() {
                self.warn(
                    c.line,
                    "client-without-roles",
                    format!("client `{}` has no roles and can do nothing", c.cn.value),
                );
            }
            for r in &c.roles {
                let Some(role) = a.role(r) else {
                    self.err(
                        r.line,
                        "unknown-role",
                        format!("client `{}` lists unknown role `{}`", c.cn.value, r.value),
                    );
                    continue;
                };
                if !role.kinds.iter().any(|k| k.value == partner.kind.value) {
                    self.err(
                        r.line,
                        "role-not-allowed-for-kind",
                        format!(
                            "client `{}` may not hold role `{}`: partner `{}` is of kind `{}`, and the role may only be held by {}",
                            c.cn.value,
                            r.value,
                            partner.id.value,
                            partner.kind.value,
                            list(role.kinds.iter().map(|k| k.as_str()))
                        ),
                    );
                }
            }
        }
    }

    fn purposes_and_roles(&mut self, a: &Agreement) {
        let kinds: HashSet<&str> = a.kinds.iter().map(|k| k.id.as_str()).collect();
        for p in &a.purposes {
            for (kind, basis) in &p.legal_basis {
                if !kinds.contains(kind.as_str()) {
                    self.err(
                        basis.line,
                        "unknown-kind",
                        format!(
                            "purpose `{}` gives a legal basis for unknown kind `{kind}`",
                            p.id.value
                        ),
                    );
                }
            }
        }
        for r in &a.roles {
            if r.one_per_case && r.level != RoleLevel::Case {
                self.err(
                    r.id.line,
                    "one-per-case-client-role",
                    format!(
                        "role `{}` is a client-level role; `one_per_case` applies to case roles only",
                        r.id.value
                    ),
                );
            }
            if r.kinds.is_empty() {
                self.warn(
                    r.id.line,
                    "role-without-kinds",
                    format!("role `{}` may be held by no partner kind", r.id.value),
                );
            }
            for k in &r.kinds {
                if !kinds.contains(k.as_str()) {
                    self.err(
                        k.line,
                        "unknown-kind",
                        format!("role `{}` names unknown kind `{}`", r.id.value, k.value),
                    );
                }
            }
        }
    }

    fn grants(&mut self, a: &Agreement) {
        // (role, purpose, category, condition) that are readable, for the write-needs-read rule.
        let mut readable: HashSet<(&str, &str, &str, String)> = HashSet::new();
        for g in &a.grants {
            for r in &g.roles {
                for c in &g.read {
                    readable.insert((r.as_str(), g.purpose.as_str(), c.as_str(), g.condition()));
                }
            }
        }

        for g in &a.grants {
            let purpose = a.purpose(&g.purpose);
            if purpose.is_none() {
                self.err(
                    g.purpose.line,
                    "unknown-purpose",
                    format!("grant names unknown purpose `{}`", g.purpose.value),
                );
            }
            if g.roles.is_empty() {
                self.err(g.line, "grant-without-role", "grant lists no roles".into());
            }
            for r in &g.roles {
                if a.role(r).is_none() {
                    self.err(
                        r.line,
                        "unknown-role",
                        format!("grant names unknown role `{}`", r.value),
                    );
                }
            }
            if let Some(s) = &g.consent
                && a.scope(s).is_none()
            {
                self.err(
                    s.line,
                    "unknown-scope",
                    format!(
                        "grant is conditioned on unknown consent scope `{}`",
                        s.value
                    ),
                );
            }
            let cats = g
                .read
                .iter()
                .map(|c| (c, "read"))
                .chain(g.write.iter().map(|c| (c, "write")))
                .chain(g.write_only.iter().map(|c| (c, "write_only")));
            for (c, list_name) in cats {
                if a.category(c).is_none() {
                    self.err(
                        c.line,
                        "unknown-category",
                        format!(
                            "grant names unknown category `{}` in `{list_name}`",
                            c.value
                        ),
                    );
                }
            }
            for al in &g.allow {
                let known = al
                    .split_once(':')
                    .is_some_and(|(o, act)| PSEUDO_ACTIONS.contains(&(o, act)));
                if !known {
                    self.err(
                        al.line,
                        "unknown-action",
                        format!(
                            "unknown pseudo-object action `{}` (expected one of: {})",
                            al.value,
                            list(PSEUDO_ACTIONS.iter().map(|(o, act)| format!("{o}:{act}")))
                        ),
                    );
                }
            }
            for r in g.assign.iter().chain(g.end.iter()) {
                match a.role(r) {
                    None => self.err(
                        r.line,
                        "unknown-role",
                        format!("grant may assign or end unknown role `{}`", r.value),
                    ),
                    Some(role) if role.level != RoleLevel::Case => self.err(
                        r.line,
                        "not-a-case-role",
                        format!(
                            "role `{}` is a client-level role; only case roles are assigned or ended through involvements",
                            r.value
                        ),
                    ),
                    Some(_) => {}
                }
            }
            for r in &g.self_assign {
                if !g.assign.iter().any(|x| x.value == r.value) {
                    self.err(
                        r.line,
                        "self-assign-not-assigned",
                        format!(
                            "`self_assign` names `{}`, which this grant may not assign; add it to `assign` too",
                            r.value
                        ),
                    );
                }
            }
            if g.consent.is_some()
                && (!g.allow.is_empty()
                    || !g.assign.is_empty()
                    || !g.end.is_empty()
                    || !g.self_assign.is_empty())
            {
                self.err(
                    g.line,
                    "conditional-pseudo-action",
                    "a consent condition applies to data categories only; put `allow`, `assign`, `self_assign` and `end` in an unconditional grant".into(),
                );
            }
            // A write must be matched by a read of the same category under the same role and
            // purpose, unconditionally or under the same consent scope; `write_only` is the
            // explicit, reviewable exception.
            let cond = g.condition();
            for c in &g.write {
                for r in &g.roles {
                    let ok = readable.contains(&(
                        r.as_str(),
                        g.purpose.as_str(),
                        c.as_str(),
                        cond.clone(),
                    )) || readable.contains(&(
                        r.as_str(),
                        g.purpose.as_str(),
                        c.as_str(),
                        "always".to_string(),
                    ));
                    if !ok {
                        self.err(
                            c.line,
                            "write-without-read",
                            format!(
                                "role `{}` may write category `{}` for purpose `{}` but not read it; add it to `read` (or to `write_only` if blind writing is intended)",
                                r.value, c.value, g.purpose.value
                            ),
                        );
                    }
                }
            }
            if let Some(purpose) = purpose {
                self.special_categories(a, g, purpose);
            }
        }
    }

    fn special_categories(
        &mut self,
        a: &Agreement,
        g: &super::agreement::Grant,
        purpose: &super::agreement::Purpose,
    ) {
        // Rule 1: consent-conditioned grants carry explicit consent.
        if g.consent.is_some() {
            return;
        }
        let cats = g
            .read
            .iter()
            .map(|c| (c, "read"))
            .chain(g.write.iter().map(|c| (c, "write")))
            .chain(g.write_only.iter().map(|c| (c, "write")));
        for (c, action) in cats {
            let Some(cat) = a.category(c) else { continue };
            let article = match cat.class {
                Class::Art9 => "Art. 9",
                Class::Art10 => "Art. 10",
                _ => continue,
            };
            for r in &g.roles {
                let Some(role) = a.role(r) else { continue };
                for kind in &role.kinds {
                    let basis = purpose.legal_basis.get(kind.as_str()).map(|b| b.value);
                    let ok = matches!(
                        basis,
                        Some(
                            LegalBasis::PublicTask
                                | LegalBasis::LegalObligation
                                | LegalBasis::Consent
                        )
                    );
                    if !ok {
                        let why = match basis {
                            Some(b) => format!(
                                "whose legal basis for kind `{}` is {}",
                                kind.value,
                                b.as_str()
                            ),
                            None => format!("which gives no legal basis for kind `{}`", kind.value),
                        };
                        self.err(
                            c.line,
                            "special-category-basis",
                            format!(
                                "{article} category `{}` may not be granted ({action}) to role `{}` for purpose `{}`, {why}; needs public_task, legal_obligation or consent for every kind that may hold the role, or a `consent = \"<scope>\"` condition",
                                c.value, r.value, g.purpose.value
                            ),
                        );
                    }
                }
            }
        }
    }

    fn retention(&mut self, a: &Agreement) {
        let mut covered: HashMap<&str, usize> = HashMap::new();
        for r in &a.retention {
            if a.category(&r.category).is_none() {
                self.err(
                    r.category.line,
                    "unknown-category",
                    format!(
                        "retention rule names unknown category `{}`",
                        r.category.value
                    ),
                );
            }
            if let Some(first) = covered.insert(r.category.as_str(), r.line) {
                self.err(
                    r.category.line,
                    "duplicate-id",
                    format!(
                        "second retention rule for category `{}` (first on line {first})",
                        r.category.value
                    ),
                );
            }
            if r.months == 0 && r.blocks_erasure {
                self.warn(
                    r.line,
                    "retention-zero",
                    format!(
                        "retention of `{}` is 0 months but blocks erasure",
                        r.category.value
                    ),
                );
            }
        }
        for c in &a.categories {
            if !covered.contains_key(c.id.as_str()) {
                self.err(
                    c.id.line,
                    "missing-retention",
                    format!(
                        "category `{}` has no retention rule; the DPO must set one",
                        c.id.value
                    ),
                );
            }
        }
    }
}

impl Checker {
    /// Small cells re-identify: at least 1 (5 by default), and at least 10 for Art. 9 data.
    fn report_rules(&mut self, a: &Agreement) {
        let r = a.reports;
        if r.min_cell < 1 || r.min_cell_special < 10 || r.min_cell_special < r.min_cell {
            self.err(
                r.line,
                "report-min-cell",
                format!(
                    "reports: min_cell must be at least 1 and min_cell_special at least 10 and at least min_cell (found {} and {})",
                    r.min_cell, r.min_cell_special
                ),
            );
        }
    }

    /// A category whose fields are named like Art. 9/10 data but whose class says otherwise.
    fn special_names(&mut self, a: &Agreement) {
        for (line, category, field, class) in super::special::misclassified(a) {
            let article = if class == Class::Art10 {
                "Art. 10"
            } else {
                "Art. 9"
            };
            self.err(
                line,
                "special-category-class",
                format!(
                    "field `{category}.{field}` looks like {article} data, but category `{category}` is not classed `{}`; move it to a category of that class",
                    class.as_str()
                ),
            );
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Belgian enterprise number: `0123.456.789` (or 10 digits), last two digits = 97 − (first
/// eight mod 97).
fn valid_kbo(s: &str) -> bool {
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 10
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ' ')
    {
        return false;
    }
    let (Ok(base), Ok(check)) = (digits[..8].parse::<u64>(), digits[8..].parse::<u64>()) else {
        return false;
    };
    97 - base % 97 == check
}

fn list<I, T>(items: I) -> String
where
    I: Iterator<Item = T>,
    T: fmt::Display,
{
    items
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kbo_checksum() {
        assert!(valid_kbo("0207.451.227"));
        assert!(!valid_kbo("0207.451.228"));
        assert!(!valid_kbo("207.451.227"));
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("trajectory_guidance"));
        assert!(is_identifier("caw-oost-vlaanderen"));
        assert!(!is_identifier("a,b"));
        assert!(!is_identifier("Health"));
        assert!(!is_identifier("involvement:x"));
    }
}
