//! The joint-controller agreement as code: parsing (`agreement`), safety checks (`check`),
//! compilation to casbin (`compile`), explanation and processing registers, and the runtime
//! [`Policy`] the API asks on every request.
//!
//! The request path never touches casbin or strings: [`Policy::load`] turns the casbin
//! policy, each row confirmed by the enforcer, into bitsets per (role, purpose); [`Policy::decide`] unions them per role set and caches the result.

mod agreement;
mod check;
mod compile;
mod escalation;
mod explain;
mod fields;
mod register;
mod sets;
pub mod special;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi, StringAdapter};
use serde_json::Value;

pub use agreement::ReportRules;
pub use agreement::{
    Agreement, Category, Class, Client, ConsentScope, Field, FieldType, Grant, Kind, LegalBasis,
    Located, Membership, Meta, Partner, Purpose, Retention, RetentionStart, Role, RoleLevel,
};
pub use check::{Finding, Severity, check, ensure_safe};
pub use compile::{
    AGREEMENT_FILE, ALWAYS, Compiled, MODEL_FILE, POLICY_FILE, PSEUDO_ACTIONS, Rule, compile,
    compile_dir, rules, write_compiled,
};
pub use escalation::{EscalationPath, SelfWideningConsent};
pub use explain::{ExplainRow, explain, render_table};
pub use fields::{EMAIL_MAX_CHARS, FieldError, PHONE_MAX_CHARS, TEXT_MAX_CHARS};
pub use register::{RegisterFile, register, register_files};
pub use sets::{
    CategoryId, CategorySet, MAX_CATEGORIES, MAX_PURPOSES, MAX_ROLES, MAX_SCOPES, PurposeId,
    RoleId, RoleSet, ScopeId, ScopeSet,
};

/// Everything that can go wrong loading or compiling a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// agreement.toml is not well-formed.
    #[error("agreement.toml line {line}: {message}")]
    Parse {
        /// 1-based line (0 if unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The agreement fails safety checks; the findings say where.
    #[error("the agreement is refused ({} error(s)):\n{}", .0.len(), .0.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n"))]
    Unsafe(Vec<Finding>),
    /// model.conf / policy.csv do not match a fresh compile of agreement.toml.
    #[error(
        "{file} is out of date with agreement.toml (or was edited by hand); run `partnergate policy compile` and commit the result"
    )]
    OutOfDate {
        /// The stale file name.
        file: &'static str,
    },
    /// casbin refused the compiled model or policy.
    #[error("casbin: {0}")]
    Casbin(String),
}

/// A field as the policy knows it.
#[derive(Debug, Clone, Copy)]
pub struct FieldRef<'a> {
    /// Full name `category.name`.
    pub name: &'a str,
    /// The category that governs it.
    pub category: CategoryId,
    /// Its value type.
    pub ty: &'a FieldType,
}

/// Bits for pseudo-object permissions in a [`Grants`] entry.
mod flag {
    pub const LOOKUP: u32 = 1;
    pub const RECORD_CONSENT: u32 = 1 << 1;
    pub const READ_AUDIT: u32 = 1 << 2;
    pub const READ_DSR: u32 = 1 << 3;
    pub const WRITE_DSR: u32 = 1 << 4;
    pub const READ_REPORTS: u32 = 1 << 5;
}

/// What a role set may do for one purpose, as bitsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Grants {
    read: CategorySet,
    write: CategorySet,
    /// Per consent scope: categories readable/writable only while that consent is in force.
    cond: Vec<(ScopeId, CategorySet, CategorySet)>,
    flags: u32,
    assign: RoleSet,
    self_assign: RoleSet,
    end: RoleSet,
}

impl Grants {
    fn merge(&mut self, other: &Grants) {
        self.read = self.read.union(other.read);
        self.write = self.write.union(other.write);
        self.flags |= other.flags;
        self.assign = self.assign.union(other.assign);
        self.self_assign = self.self_assign.union(other.self_assign);
        self.end = self.end.union(other.end);
        for &(s, r, w) in &other.cond {
            match self.cond.iter_mut().find(|(t, _, _)| *t == s) {
                Some(e) => {
                    e.1 = e.1.union(r);
                    e.2 = e.2.union(w);
                }
                None => self.cond.push((s, r, w)),
            }
        }
    }
}

/// The decision for one (role set, purpose): cheap to clone (an `Arc`), deny by default.
#[derive(Debug, Clone)]
pub struct Decision(Arc<Grants>);

impl Decision {
    /// A decision that allows nothing.
    pub fn deny() -> Decision {
        Decision(Arc::new(Grants::default()))
    }

    /// Categories readable while the given consents are in force.
    pub fn readable(&self, consents: ScopeSet) -> CategorySet {
        let mut s = self.0.read;
        for &(scope, r, _) in &self.0.cond {
            if consents.contains(scope) {
                s = s.union(r);
            }
        }
        s
    }

    /// Categories writable while the given consents are in force.
    pub fn writable(&self, consents: ScopeSet) -> CategorySet {
        let mut s = self.0.write;
        for &(scope, _, w) in &self.0.cond {
            if consents.contains(scope) {
                s = s.union(w);
            }
        }
        s
    }

    /// Whether this decision allows nothing at all (for this purpose the participant does
    /// not exist for the caller).
    pub fn is_empty(&self) -> bool {
        *self.0 == Grants::default()
    }

    /// Whether any category could become readable with some consent.
    pub fn consent_scopes(&self) -> ScopeSet {
        self.0.cond.iter().map(|(s, _, _)| *s).collect()
    }

    /// Duplicate check by INSZ (`participant`, `lookup`).
    pub fn may_lookup(&self) -> bool {
        self.0.flags & flag::LOOKUP != 0
    }

    /// Start an involvement with `role` in a case (`involvement:<role>`, `assign`).
    pub fn may_assign(&self, role: RoleId) -> bool {
        self.0.assign.contains(role)
    }

    /// End an involvement with `role` in a case (`involvement:<role>`, `end`).
    pub fn may_end(&self, role: RoleId) -> bool {
        self.0.end.contains(role)
    }

    /// Roles this decision may assign.
    pub fn assignable(&self) -> RoleSet {
        self.0.assign
    }

    /// Give `role` to one's own partner even though it widens its view: only where the
    /// agreement names the self-assignment (`involvement:<role>`, `self_assign`).
    pub fn may_self_assign(&self, role: RoleId) -> bool {
        self.0.self_assign.contains(role)
    }

    /// Categories this decision reads, under some combination of consents, that `base` does
    /// not read under the same consents. Checking no consent and each single scope suffices:
    /// both sides are unions over the scopes in force.
    pub fn reads_beyond(&self, base: &Decision) -> CategorySet {
        let mut out = self.0.read.difference(base.0.read);
        for &(scope, r, _) in &self.0.cond {
            out = out.union(r.difference(base.readable(ScopeSet::of(scope))));
        }
        out
    }

    /// Like [`Decision::reads_beyond`], for writes.
    pub fn writes_beyond(&self, base: &Decision) -> CategorySet {
        let mut out = self.0.write.difference(base.0.write);
        for &(scope, _, w) in &self.0.cond {
            out = out.union(w.difference(base.writable(ScopeSet::of(scope))));
        }
        out
    }

    /// Record or withdraw a participant's consent (`consent`, `record`).
    pub fn may_record_consent(&self) -> bool {
        self.0.flags & flag::RECORD_CONSENT != 0
    }

    /// Read the audit log (`audit`, `read`).
    pub fn may_read_audit(&self) -> bool {
        self.0.flags & flag::READ_AUDIT != 0
    }

    /// Read data-subject requests (`dsr`, `read`).
    pub fn may_read_dsr(&self) -> bool {
        self.0.flags & flag::READ_DSR != 0
    }

    /// Create and execute data-subject requests (`dsr`, `write`).
    pub fn may_handle_dsr(&self) -> bool {
        self.0.flags & flag::WRITE_DSR != 0
    }

    /// Read aggregate reports (`reports`, `read`).
    pub fn may_read_reports(&self) -> bool {
        self.0.flags & flag::READ_REPORTS != 0
    }
}

/// What a change of roles adds for one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widening {
    /// The purpose.
    pub purpose: PurposeId,
    /// Categories readable after but not before.
    pub reads: CategorySet,
    /// Categories writable after but not before.
    pub writes: CategorySet,
}

struct FieldDef {
    name: String,
    category: CategoryId,
    ty: FieldType,
}

/// The loaded, checked and compiled policy. `Send + Sync`; hold it in an `Arc`.
pub struct Policy {
    agreement: Agreement,
    compiled: Compiled,
    version: String,
    roles: Vec<String>,
    purposes: Vec<String>,
    categories: Vec<String>,
    scopes: Vec<String>,
    fields: Vec<FieldDef>,
    field_index: HashMap<String, usize>,
    /// Indexed by `role * purposes + purpose`.
    base: Vec<Grants>,
    cache: RwLock<HashMap<(RoleSet, PurposeId), Decision>>,
    enforcer: Enforcer,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.version)
            .field("roles", &self.roles)
            .field("purposes", &self.purposes)
            .finish_non_exhaustive()
    }
}

/// Upper bound of cached (role set, purpose) decisions; beyond it decisions are computed
/// without caching (they are cheap to compute, the cache just saves the unions).
const CACHE_CAP: usize = 16_384;

impl Policy {
    /// Loads `agreement.toml`, `model.conf` and `policy.csv` from `dir`. Refuses an agreement
    /// with check errors ([`PolicyError::Unsafe`]) and compiled files that differ from a
    /// fresh compile ([`PolicyError::OutOfDate`]).
    pub fn load(dir: &Path) -> Result<Policy, PolicyError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| PolicyError::Io {
                path: path.display().to_string(),
                source: e,
            })
        };
        let agreement = Agreement::from_str(&read(AGREEMENT_FILE)?)?;
        ensure_safe(&agreement)?;
        let fresh = compile(&agreement);
        if read(MODEL_FILE)? != fresh.model_conf {
            return Err(PolicyError::OutOfDate { file: MODEL_FILE });
        }
        if read(POLICY_FILE)? != fresh.policy_csv {
            return Err(PolicyError::OutOfDate { file: POLICY_FILE });
        }
        Policy::build(agreement, fresh)
    }

    /// Builds a policy straight from agreement text, compiling in memory (tests, tools).
    pub fn from_agreement_str(text: &str) -> Result<Policy, PolicyError> {
        let agreement = Agreement::from_str(text)?;
        ensure_safe(&agreement)?;
        let compiled = compile(&agreement);
        Policy::build(agreement, compiled)
    }

    fn build(agreement: Agreement, compiled: Compiled) -> Result<Policy, PolicyError> {
        let enforcer = build_enforcer(&compiled)?;
        let version = agreement::sha256_hex(
            format!("{}{}", compiled.model_conf, compiled.policy_csv).as_bytes(),
        );
        let ids = |v: Vec<&Located<String>>| v.into_iter().map(|s| s.value.clone()).collect();
        let roles: Vec<String> = ids(agreement.roles.iter().map(|r| &r.id).collect());
        let purposes: Vec<String> = ids(agreement.purposes.iter().map(|p| &p.id).collect());
        let categories: Vec<String> = ids(agreement.categories.iter().map(|c| &c.id).collect());
        let scopes: Vec<String> = ids(agreement.scopes.iter().map(|s| &s.id).collect());

        let mut fields = Vec::new();
        for (ci, c) in agreement.categories.iter().enumerate() {
            for f in &c.fields {
                fields.push(FieldDef {
                    name: format!("{}.{}", c.id.value, f.name.value),
                    category: CategoryId(ci as u8),
                    ty: f.ty.clone(),
                });
            }
        }
        let field_index = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();

        // The decision table is built from casbin's own view of the loaded policy, each row
        // confirmed by the enforcer. With the generated exact-equality matcher (guaranteed by
        // the byte-for-byte up-to-date check) nothing outside these rows can be allowed; the
        // unit tests cross-check every other combination against `enforce` as well. Asking
        // for every combination at start-up instead costs seconds in debug builds.
        let n_purposes = purposes.len();
        let mut base = vec![Grants::default(); roles.len() * n_purposes];
        let find = |list: &[String], x: &str| list.iter().position(|y| y == x);
        for row in enforcer.get_policy() {
            let [r, p, o, a, c] = row.as_slice() else {
                return Err(PolicyError::Casbin(format!(
                    "policy row with {} fields, expected 5",
                    row.len()
                )));
            };
            let allowed = enforcer
                .enforce((r, p, o, a, c))
                .map_err(|e| PolicyError::Casbin(e.to_string()))?;
            let unknown = || {
                PolicyError::Casbin(format!(
                    "policy row `{}` does not match the agreement",
                    row.join(", ")
                ))
            };
            let (Some(ri), Some(pi)) = (find(&roles, r), find(&purposes, p)) else {
                return Err(unknown());
            };
            if !allowed {
                continue;
            }
            let g = &mut base[ri * n_purposes + pi];
            let scope = match c.strip_prefix("consent:") {
                None if c == ALWAYS => None,
                Some(s) => Some(ScopeId(find(&scopes, s).ok_or_else(unknown)? as u8)),
                None => return Err(unknown()),
            };
            if let Some(ci) = find(&categories, o) {
                let cid = CategoryId(ci as u8);
                match (scope, a.as_str()) {
                    (None, "read") => g.read.insert(cid),
                    (None, "write") => g.write.insert(cid),
                    (Some(s), "read" | "write") => {
                        let mut rs = CategorySet::empty();
                        rs.insert(cid);
                        let (rd, wr) = if a == "read" {
                            (rs, CategorySet::empty())
                        } else {
                            (CategorySet::empty(), rs)
                        };
                        g.merge(&Grants {
                            cond: vec![(s, rd, wr)],
                            ..Grants::default()
                        });
                    }
                    _ => return Err(unknown()),
                }
                continue;
            }
            if scope.is_some() {
                return Err(unknown());
            }
            if let Some(target) = o.strip_prefix("involvement:") {
                let t = RoleId(find(&roles, target).ok_or_else(unknown)? as u8);
                match a.as_str() {
                    "assign" => g.assign.insert(t),
                    "self_assign" => g.self_assign.insert(t),
                    "end" => g.end.insert(t),
                    _ => return Err(unknown()),
                }
                continue;
            }
            g.flags |= match (o.as_str(), a.as_str()) {
                ("participant", "lookup") => flag::LOOKUP,
                ("consent", "record") => flag::RECORD_CONSENT,
                ("audit", "read") => flag::READ_AUDIT,
                ("dsr", "read") => flag::READ_DSR,
                ("dsr", "write") => flag::WRITE_DSR,
                ("reports", "read") => flag::READ_REPORTS,
                _ => return Err(unknown()),
            };
        }
        for g in &mut base {
            // Scope order, so that equal decisions compare equal.
            g.cond.sort_by_key(|(s, _, _)| *s);
        }

        Ok(Policy {
            agreement,
            compiled,
            version,
            roles,
            purposes,
            categories,
            scopes,
            fields,
            field_index,
            base,
            cache: RwLock::new(HashMap::new()),
            enforcer,
        })
    }

    /// The agreement this policy was compiled from.
    pub fn agreement(&self) -> &Agreement {
        &self.agreement
    }

    /// The compiled casbin text.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// Hex SHA-256 of `model.conf` followed by `policy.csv` (recorded in audit records).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The purpose with this id (e.g. the `X-Purpose` header).
    pub fn purpose(&self, name: &str) -> Option<PurposeId> {
        self.purposes
            .iter()
            .position(|p| p == name)
            .map(|i| PurposeId(i as u8))
    }

    /// The role with this id.
    pub fn role(&self, name: &str) -> Option<RoleId> {
        self.roles
            .iter()
            .position(|r| r == name)
            .map(|i| RoleId(i as u8))
    }

    /// The category with this id.
    pub fn category(&self, name: &str) -> Option<CategoryId> {
        self.categories
            .iter()
            .position(|c| c == name)
            .map(|i| CategoryId(i as u8))
    }

    /// The consent scope with this id.
    pub fn scope(&self, name: &str) -> Option<ScopeId> {
        self.scopes
            .iter()
            .position(|s| s == name)
            .map(|i| ScopeId(i as u8))
    }

    /// Name of a purpose.
    pub fn purpose_name(&self, id: PurposeId) -> &str {
        &self.purposes[id.index()]
    }

    /// Name of a role.
    pub fn role_name(&self, id: RoleId) -> &str {
        &self.roles[id.index()]
    }

    /// Name of a category.
    pub fn category_name(&self, id: CategoryId) -> &str {
        &self.categories[id.index()]
    }

    /// Name of a consent scope.
    pub fn scope_name(&self, id: ScopeId) -> &str {
        &self.scopes[id.index()]
    }

    /// Whether a role is held per case or per client.
    pub fn role_level(&self, id: RoleId) -> RoleLevel {
        self.agreement.roles[id.index()].level
    }

    /// Whether at most one partner may hold this role in a case (the trajectgezel).
    pub fn one_per_case(&self, id: RoleId) -> bool {
        self.agreement.roles[id.index()].one_per_case
    }

    /// Whether a consent scope must be recorded by a role whose reading it does not widen.
    pub fn needs_independent_recorder(&self, id: ScopeId) -> bool {
        self.agreement.scopes[id.index()].independent_recorder
    }

    /// What adding `extra` to the roles `held` in a case would read or write beyond what
    /// `held` already does, per purpose (only purposes where it widens), for any consents.
    pub fn widening(&self, held: RoleSet, extra: RoleSet) -> Vec<Widening> {
        let more = held.union(extra);
        self.all_purposes()
            .filter_map(|purpose| {
                let (before, after) = (self.decide(held, purpose), self.decide(more, purpose));
                let w = Widening {
                    purpose,
                    reads: after.reads_beyond(&before),
                    writes: after.writes_beyond(&before),
                };
                (!w.reads.is_empty() || !w.writes.is_empty()).then_some(w)
            })
            .collect()
    }

    /// Categories that recording consent `scope` would make readable for `roles`, over every
    /// purpose, on top of the consents already in force.
    pub fn consent_widens(
        &self,
        roles: RoleSet,
        in_force: ScopeSet,
        scope: ScopeId,
    ) -> CategorySet {
        let mut with = in_force;
        with.insert(scope);
        self.all_purposes()
            .map(|p| {
                let d = self.decide(roles, p);
                d.readable(with).difference(d.readable(in_force))
            })
            .fold(CategorySet::empty(), CategorySet::union)
    }

    /// All declared roles.
    pub fn all_roles(&self) -> RoleSet {
        (0..self.roles.len()).map(|i| RoleId(i as u8)).collect()
    }

    /// All declared purposes, in order.
    pub fn all_purposes(&self) -> impl Iterator<Item = PurposeId> + '_ {
        (0..self.purposes.len()).map(|i| PurposeId(i as u8))
    }

    /// All declared categories.
    pub fn all_categories(&self) -> CategorySet {
        (0..self.categories.len())
            .map(|i| CategoryId(i as u8))
            .collect()
    }

    /// The roles a client CN may use (empty for an unknown CN; unknown role names, which
    /// `check` refuses anyway, are skipped).
    pub fn client_roles(&self, cn: &str) -> RoleSet {
        self.agreement
            .client(cn)
            .map(|c| c.roles.iter().filter_map(|r| self.role(r)).collect())
            .unwrap_or_default()
    }

    /// Names of a role set, comma-separated (for audit records).
    pub fn role_names(&self, roles: RoleSet) -> String {
        roles
            .iter()
            .map(|r| self.role_name(r))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What `roles` may do for `purpose`. Cached per (role set, purpose); an empty role set
    /// or a purpose id from another policy yields a decision that allows nothing.
    pub fn decide(&self, roles: RoleSet, purpose: PurposeId) -> Decision {
        if roles.is_empty() || purpose.index() >= self.purposes.len() {
            return Decision::deny();
        }
        if let Some(d) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(roles, purpose))
        {
            return d.clone();
        }
        let d = self.compute(roles, purpose);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() < CACHE_CAP {
            cache.insert((roles, purpose), d.clone());
        }
        d
    }

    fn compute(&self, roles: RoleSet, purpose: PurposeId) -> Decision {
        let mut g = Grants::default();
        for r in roles.iter() {
            if r.index() < self.roles.len() {
                g.merge(&self.base[r.index() * self.purposes.len() + purpose.index()]);
            }
        }
        g.cond.sort_by_key(|(s, _, _)| *s);
        Decision(Arc::new(g))
    }

    /// Asks the casbin enforcer directly, bypassing the decision table (benchmarks, tests).
    pub fn enforce_uncached(
        &self,
        role: &str,
        purpose: &str,
        object: &str,
        action: &str,
        condition: &str,
    ) -> Result<bool, PolicyError> {
        self.enforcer
            .enforce((role, purpose, object, action, condition))
            .map_err(|e| PolicyError::Casbin(e.to_string()))
    }

    /// Asks the casbin enforcer every (role, purpose, object, action, condition) of the
    /// agreement and compares each answer with the decision table; returns how many
    /// combinations agreed. Slow (seconds in debug builds): for `policy check` and tests,
    /// not for start-up.
    pub fn verify_against_enforcer(&self) -> Result<usize, PolicyError> {
        let mut n = 0;
        let mut compare = |r: RoleId, p: PurposeId, o: &str, a: &str, c: &str, table: bool| {
            n += 1;
            let casbin = self.enforce_uncached(self.role_name(r), self.purpose_name(p), o, a, c)?;
            if casbin == table {
                Ok(())
            } else {
                Err(PolicyError::Casbin(format!(
                    "decision table disagrees with the enforcer on ({}, {}, {o}, {a}, {c}): table {table}, casbin {casbin}",
                    self.role_name(r),
                    self.purpose_name(p)
                )))
            }
        };
        for r in self.all_roles().iter() {
            for p in self.all_purposes() {
                let g = &self.base[r.index() * self.purposes.len() + p.index()];
                for c in self.all_categories().iter() {
                    let name = self.category_name(c);
                    compare(r, p, name, "read", ALWAYS, g.read.contains(c))?;
                    compare(r, p, name, "write", ALWAYS, g.write.contains(c))?;
                    for (si, s) in self.scopes.iter().enumerate() {
                        let cond = format!("consent:{s}");
                        let entry = g.cond.iter().find(|(id, _, _)| id.index() == si);
                        let rd = entry.is_some_and(|e| e.1.contains(c));
                        let wr = entry.is_some_and(|e| e.2.contains(c));
                        compare(r, p, name, "read", &cond, rd)?;
                        compare(r, p, name, "write", &cond, wr)?;
                    }
                }
                for (o, a, bit) in [
                    ("participant", "lookup", flag::LOOKUP),
                    ("consent", "record", flag::RECORD_CONSENT),
                    ("audit", "read", flag::READ_AUDIT),
                    ("dsr", "read", flag::READ_DSR),
                    ("dsr", "write", flag::WRITE_DSR),
                    ("reports", "read", flag::READ_REPORTS),
                ] {
                    compare(r, p, o, a, ALWAYS, g.flags & bit != 0)?;
                }
                for t in self.all_roles().iter() {
                    let obj = format!("involvement:{}", self.role_name(t));
                    compare(r, p, &obj, "assign", ALWAYS, g.assign.contains(t))?;
                    compare(r, p, &obj, "end", ALWAYS, g.end.contains(t))?;
                    let self_assign = g.self_assign.contains(t);
                    compare(r, p, &obj, "self_assign", ALWAYS, self_assign)?;
                }
            }
        }
        Ok(n)
    }

    /// The field with this full name (`category.name`).
    pub fn field(&self, name: &str) -> Option<FieldRef<'_>> {
        self.field_index.get(name).map(|&i| {
            let f = &self.fields[i];
            FieldRef {
                name: &f.name,
                category: f.category,
                ty: &f.ty,
            }
        })
    }

    /// Checks a value against the field's type; `null` (clear) is always allowed. The error
    /// names the field and the expected type, never the value.
    pub fn validate_value(&self, field: &str, value: &Value) -> Result<(), FieldError> {
        let f = self.field(field).ok_or_else(|| FieldError::UnknownField {
            field: truncate_name(field),
        })?;
        fields::validate(f.name, f.ty, value)
    }

    /// Full names of the fields in the given categories, in agreement order.
    pub fn fields_in(&self, categories: CategorySet) -> impl Iterator<Item = &str> + '_ {
        self.fields
            .iter()
            .filter(move |f| categories.contains(f.category))
            .map(|f| f.name.as_str())
    }

    /// All fields, in agreement order.
    pub fn all_fields(&self) -> impl Iterator<Item = FieldRef<'_>> + '_ {
        self.fields.iter().map(|f| FieldRef {
            name: &f.name,
            category: f.category,
            ty: &f.ty,
        })
    }

    /// If the retention rule of the category forbids erasing it, the reason.
    pub fn retention_blocks_erasure(&self, category: CategoryId) -> Option<&str> {
        self.agreement
            .retention_blocks_erasure(self.category_name(category))
    }
}

/// Field names come from callers: keep error messages short and free of control characters.
fn truncate_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Builds a casbin enforcer from the compiled strings. casbin's constructors are async but
/// do no I/O with these adapters; a private current-thread runtime on a scoped thread keeps
/// `Policy::load` synchronous and safe to call inside or outside a tokio runtime.
fn build_enforcer(compiled: &Compiled) -> Result<Enforcer, PolicyError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| PolicyError::Casbin(e.to_string()))?;
            rt.block_on(async {
                let model = DefaultModel::from_str(&compiled.model_conf)
                    .await
                    .map_err(|e| PolicyError::Casbin(e.to_string()))?;
                let adapter = StringAdapter::new(compiled.policy_csv.clone());
                Enforcer::new(model, adapter)
                    .await
                    .map_err(|e| PolicyError::Casbin(e.to_string()))
            })
        })
        .join()
        .unwrap_or_else(|_| Err(PolicyError::Casbin("enforcer construction panicked".into())))
    })
}

#[cfg(test)]
mod tests;
