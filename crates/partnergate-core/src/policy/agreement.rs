//! The joint-controller agreement as data: parsing `policies/agreement.toml` into typed,
//! line-annotated structures. Structure errors (bad TOML, unknown keys, missing fields, bad
//! dates) fail [`Agreement::from_str`]; the safety rules live in [`super::check`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::Path;

use ring::digest;
use serde::{Deserialize, Serialize};
use time::Date;
use toml::Spanned;

use super::PolicyError;

/// A value together with the 1-based line of `agreement.toml` it was written on, so that
/// findings can name the line a DPO has to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located<T> {
    /// The value as written.
    pub value: T,
    /// 1-based line in the agreement source (0 when built in code).
    #[serde(skip)]
    pub line: usize,
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Display> fmt::Display for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// The parsed joint-controller agreement.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Partnership-wide settings (name, promotor, DPO contact, programme end).
    pub meta: Meta,
    /// Kinds of partner organisation (city, ocmw, ...), referenced by partners, roles and
    /// legal bases.
    pub kinds: Vec<Kind>,
    /// The partner organisations (joint controllers, or subcontractors).
    pub partners: Vec<Partner>,
    /// The certificate clients: CN → partner and the roles it may use.
    pub clients: Vec<Client>,
    /// The purposes every access must state.
    pub purposes: Vec<Purpose>,
    /// Data categories with their fields.
    pub categories: Vec<Category>,
    /// Case-level and client-level roles.
    pub roles: Vec<Role>,
    /// Consent scopes a participant can give or withdraw.
    pub scopes: Vec<ConsentScope>,
    /// Role × purpose → categories × actions.
    pub grants: Vec<Grant>,
    /// Retention rules per category.
    pub retention: Vec<Retention>,
    /// Small-cell suppression of the aggregate reports.
    pub reports: ReportRules,
    #[serde(skip)]
    source: String,
    #[serde(skip)]
    sha256: String,
}

/// Partnership-wide settings from the `[agreement]` table.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    /// Name of the partnership.
    pub name: String,
    /// Partner id of the promotor (final administrative responsibility, appoints the DPO).
    pub promotor: Located<String>,
    /// Programme the partnership runs under, e.g. "ESF+ 2024-2029".
    pub programme: String,
    /// Last day of the programme (retention of ESF evidence counts from here).
    pub programme_end: Date,
    /// Name of the partnership's data-protection officer.
    pub dpo_name: String,
    /// E-mail address of the DPO (participants' contact point).
    pub dpo_email: String,
    /// Postal address of the DPO.
    pub dpo_address: String,
    /// Supervisory authority participants may complain to.
    pub authority: String,
    /// Technical and organisational security measures, listed in the Art. 30 register.
    pub security_measures: Vec<String>,
}

/// A kind of partner organisation.
#[derive(Debug, Clone, Serialize)]
pub struct Kind {
    /// Identifier, e.g. `ocmw`.
    pub id: Located<String>,
    /// Human description.
    pub description: String,
}

/// A partner organisation.
#[derive(Debug, Clone, Serialize)]
pub struct Partner {
    /// Identifier, e.g. `ocmw-gent`.
    pub id: Located<String>,
    /// Legal name.
    pub name: String,
    /// Belgian enterprise (KBO/BCE) number `0123.456.789`, where public.
    pub kbo: Option<Located<String>>,
    /// Kind of organisation (refers to a [`Kind`]).
    pub kind: Located<String>,
    /// Membership of the partnership and its date.
    pub membership: Membership,
    /// Line of the `[[partner]]` entry.
    #[serde(skip)]
    pub line: usize,
}

/// Membership status of a partner in the partnership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Membership {
    /// A joint controller since the date.
    Active {
        /// First day of membership.
        since: Date,
    },
    /// Has given notice; still a member up to and including `until`.
    Notice {
        /// Last day of membership.
        until: Date,
    },
    /// Left the partnership on `since` (no longer a member from that day).
    Exited {
        /// First day no longer a member.
        since: Date,
    },
    /// A processor working for the partnership (not a controller) since the date.
    Subcontractor {
        /// First day as subcontractor.
        since: Date,
    },
}

impl Partner {
    /// Whether the partner belongs to the partnership on `date`: active (from `since`), in
    /// notice (up to `until`), or subcontractor (from `since`); an exited partner is not.
    pub fn is_member_on(&self, date: Date) -> bool {
        match self.membership {
            Membership::Active { since } | Membership::Subcontractor { since } => date >= since,
            Membership::Notice { until } => date <= until,
            // Before the exit date it was still a member: records of that time stay valid.
            Membership::Exited { since } => date < since,
        }
    }

    /// Whether the partner may start new roles in cases on `date`: only active members and
    /// subcontractors; a partner in notice winds down and takes no new cases.
    pub fn may_take_new_roles_on(&self, date: Date) -> bool {
        matches!(
            self.membership,
            Membership::Active { .. } | Membership::Subcontractor { .. }
        ) && self.is_member_on(date)
    }

    /// Whether the partner is a joint controller (not a subcontractor/processor).
    pub fn is_controller(&self) -> bool {
        !matches!(self.membership, Membership::Subcontractor { .. })
    }
}

/// A certificate client: the CN of a partner's CRM (or DPO/coordination tool).
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    /// Certificate subject CN, e.g. `crm.ocmw-gent`.
    pub cn: Located<String>,
    /// The partner this client acts for.
    pub partner: Located<String>,
    /// Roles this client may hold (case roles through involvements, client roles directly).
    pub roles: Vec<Located<String>>,
    /// Line of the `[[client]]` entry.
    #[serde(skip)]
    pub line: usize,
}

/// GDPR Art. 6 legal basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// Art. 6(1)(e): task carried out in the public interest / official authority.
    PublicTask,
    /// Art. 6(1)(c): legal obligation of the controller.
    LegalObligation,
    /// Art. 6(1)(a): consent of the participant.
    Consent,
    /// Art. 6(1)(f): legitimate interests of the controller.
    LegitimateInterest,
}

impl LegalBasis {
    /// Identifier as written in the agreement.
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::Consent => "consent",
            LegalBasis::LegitimateInterest => "legitimate_interest",
        }
    }

    /// English label with the GDPR article.
    pub fn label_en(self) -> &'static str {
        match self {
            LegalBasis::PublicTask => "task in the public interest (GDPR Art. 6(1)(e))",
            LegalBasis::LegalObligation => "legal obligation (GDPR Art. 6(1)(c))",
            LegalBasis::Consent => "consent (GDPR Art. 6(1)(a))",
            LegalBasis::LegitimateInterest => "legitimate interest (GDPR Art. 6(1)(f))",
        }
    }

    /// Dutch label with the GDPR article.
    pub fn label_nl(self) -> &'static str {
        match self {
            LegalBasis::PublicTask => "taak van algemeen belang (AVG art. 6.1.e)",
            LegalBasis::LegalObligation => "wettelijke verplichting (AVG art. 6.1.c)",
            LegalBasis::Consent => "toestemming (AVG art. 6.1.a)",
            LegalBasis::LegitimateInterest => "gerechtvaardigd belang (AVG art. 6.1.f)",
        }
    }
}

/// A purpose of processing.
#[derive(Debug, Clone, Serialize)]
pub struct Purpose {
    /// Identifier, e.g. `trajectory_guidance` (the `X-Purpose` header value).
    pub id: Located<String>,
    /// English description.
    pub description: String,
    /// Dutch description for the participant summary.
    pub description_nl: String,
    /// Legal basis per partner kind.
    pub legal_basis: BTreeMap<String, Located<LegalBasis>>,
}

/// Sensitivity class of a data category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Ordinary personal data.
    Ordinary,
    /// Personal data that needs extra care (identity, welfare situation) but is not Art. 9/10.
    Sensitive,
    /// GDPR Art. 9 special category (health, ...).
    Art9,
    /// GDPR Art. 10 data on criminal convictions and offences.
    Art10,
}

impl Class {
    /// Identifier as written in the agreement.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ordinary => "ordinary",
            Class::Sensitive => "sensitive",
            Class::Art9 => "art9",
            Class::Art10 => "art10",
        }
    }
}

/// The value type of a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldType {
    /// String, at most 4000 characters, no control characters except newline and tab.
    Text,
    /// `YYYY-MM-DD`, a real calendar date.
    Date,
    /// One of the listed values.
    Enum {
        /// The allowed values.
        values: Vec<String>,
    },
    /// `true` or `false`.
    Bool,
    /// A whole number within `min..=max`.
    Integer {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A Belgian national number (INSZ); the vault validates the checksum.
    Insz,
    /// Digits, spaces and `+`, at most 20 characters.
    Phone,
    /// Exactly one `@`, at most 254 characters.
    Email,
}

impl FieldType {
    /// Short human description of the expected value, used in error messages.
    pub fn expected(&self) -> String {
        match self {
            FieldType::Text => {
                "text (at most 4000 characters, no control characters except newline and tab)"
                    .into()
            }
            FieldType::Date => "a date YYYY-MM-DD".into(),
            FieldType::Enum { values } => format!("one of: {}", values.join(", ")),
            FieldType::Bool => "true or false".into(),
            FieldType::Integer { min, max } => format!("an integer from {min} to {max}"),
            FieldType::Insz => "a national number (INSZ, 11 digits)".into(),
            FieldType::Phone => {
                "a phone number (digits, spaces and +, at most 20 characters)".into()
            }
            FieldType::Email => "an e-mail address (one @, at most 254 characters)".into(),
        }
    }

    /// Short type name (`text`, `date`, `enum`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Date => "date",
            FieldType::Enum { .. } => "enum",
            FieldType::Bool => "bool",
            FieldType::Integer { .. } => "integer",
            FieldType::Insz => "insz",
            FieldType::Phone => "phone",
            FieldType::Email => "email",
        }
    }
}

/// A field inside a category.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    /// Short name, e.g. `given_name` (the full name is `identity.given_name`).
    pub name: Located<String>,
    /// Value type.
    #[serde(flatten)]
    pub ty: FieldType,
    /// Optional description.
    pub description: Option<String>,
}

/// A data category: the unit policies grant.
#[derive(Debug, Clone, Serialize)]
pub struct Category {
    /// Identifier, e.g. `health`.
    pub id: Located<String>,
    /// Sensitivity class.
    pub class: Class,
    /// For an Art. 9/10 category: the exception of Art. 9(2) (or the Art. 10 authorisation)
    /// the partnership relies on, shown in the Art. 30 register.
    pub special_basis: Option<String>,
    /// English description.
    pub description: String,
    /// Dutch description for the participant summary.
    pub description_nl: String,
    /// The fields of this category.
    pub fields: Vec<Field>,
}

/// Whether a role is held per case (through an involvement) or per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleLevel {
    /// Held in one participant's case through an involvement.
    Case,
    /// Held by the client itself, without involvement (aggregates, audit, ESF).
    Client,
}

/// A role.
#[derive(Debug, Clone, Serialize)]
pub struct Role {
    /// Identifier, e.g. `trajectgezel`.
    pub id: Located<String>,
    /// Case or client level.
    pub level: RoleLevel,
    /// Partner kinds that may hold this role.
    pub kinds: Vec<Located<String>>,
    /// English description.
    pub description: String,
    /// Dutch description for the participant summary.
    pub description_nl: String,
    /// At most one partner holds this role in a case at a time (the trajectgezel): a second
    /// assignment is refused, a change of holder is an explicit handover.
    pub one_per_case: bool,
}

/// A consent scope the participant can give or withdraw.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentScope {
    /// Identifier, e.g. `health_sharing`.
    pub id: Located<String>,
    /// English description.
    pub description: String,
    /// Dutch description.
    pub description_nl: String,
    /// A role whose own reading this consent would widen may not record it: another role has
    /// to (so nobody unlocks data for themselves).
    pub independent_recorder: bool,
}

/// Role(s) × purpose → what may be done, optionally only under a consent scope.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    /// Roles this grant applies to.
    pub roles: Vec<Located<String>>,
    /// Purpose.
    pub purpose: Located<String>,
    /// Categories that may be read.
    pub read: Vec<Located<String>>,
    /// Categories that may be written (each must also be readable under the same role and
    /// purpose, see [`super::check`]).
    pub write: Vec<Located<String>>,
    /// Categories that may be written but deliberately not read back (e.g. a referrer who
    /// registers contact details it has no need to see afterwards).
    pub write_only: Vec<Located<String>>,
    /// Pseudo-object actions `object:action`: `participant:lookup`, `consent:record`,
    /// `audit:read`, `dsr:read`, `dsr:write`, `reports:read`.
    pub allow: Vec<Located<String>>,
    /// Roles this grant may assign in a case (pseudo-object `involvement:<role>`, `assign`).
    pub assign: Vec<Located<String>>,
    /// Roles this grant may end in a case (pseudo-object `involvement:<role>`, `end`).
    pub end: Vec<Located<String>>,
    /// Roles of `assign` that the holder may also give to its own partner although they widen
    /// its own view (pseudo-object `involvement:<role>`, `self_assign`). Any other assignment
    /// to one's own partner that would read or write more is refused.
    pub self_assign: Vec<Located<String>>,
    /// Consent scope that must be in force for this grant to apply.
    pub consent: Option<Located<String>>,
    /// Why the grant exists (shown in the register).
    pub why: Option<String>,
    /// Line of the `[[grant]]` entry.
    #[serde(skip)]
    pub line: usize,
}

impl Grant {
    /// The casbin condition string: `always` or `consent:<scope>`.
    pub fn condition(&self) -> String {
        match &self.consent {
            Some(s) => format!("consent:{}", s.value),
            None => "always".to_string(),
        }
    }
}

/// The `[reports]` table: smallest published cell counts of the aggregate reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReportRules {
    /// Cells with fewer participants than this are suppressed (default 5).
    pub min_cell: u32,
    /// The same for cells of Art. 9 indicators (default 10; `policy check` refuses less).
    pub min_cell_special: u32,
    /// Line of the `[reports]` table (0 when absent).
    #[serde(skip)]
    pub line: usize,
}

impl ReportRules {
    /// The default: 5, and 10 for Art. 9 indicators.
    pub const DEFAULT: ReportRules = ReportRules {
        min_cell: 5,
        min_cell_special: 10,
        line: 0,
    };
}

/// From when retention counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionStart {
    /// End of the participant's trajectory (closing of the case).
    TrajectoryEnd,
    /// End of the ESF+ programme (`programme_end`).
    ProgrammeEnd,
}

/// Retention rule for one category.
#[derive(Debug, Clone, Serialize)]
pub struct Retention {
    /// Category it applies to.
    pub category: Located<String>,
    /// From when the period counts.
    pub after: RetentionStart,
    /// Length of the period in months.
    pub months: u32,
    /// Whether an erasure request must leave this category in place until the period ends.
    pub blocks_erasure: bool,
    /// Why (legal ground for keeping, or for the length).
    pub reason: String,
    /// Line of the `[[retention]]` entry.
    #[serde(skip)]
    pub line: usize,
}

impl Retention {
    /// Human text, e.g. "120 months after the end of the programme (2029-12-31)".
    pub fn describe(&self, meta: &Meta) -> String {
        let period = if self.months.is_multiple_of(12) {
            format!("{} years", self.months / 12)
        } else {
            format!("{} months", self.months)
        };
        match self.after {
            RetentionStart::TrajectoryEnd => format!("{period} after the end of the trajectory"),
            RetentionStart::ProgrammeEnd => {
                format!(
                    "{period} after the end of the programme ({})",
                    meta.programme_end
                )
            }
        }
    }

    /// Dutch text of [`Retention::describe`].
    pub fn describe_nl(&self, meta: &Meta) -> String {
        let period = if self.months.is_multiple_of(12) {
            format!("{} jaar", self.months / 12)
        } else {
            format!("{} maanden", self.months)
        };
        match self.after {
            RetentionStart::TrajectoryEnd => format!("{period} na het einde van het traject"),
            RetentionStart::ProgrammeEnd => {
                format!(
                    "{period} na het einde van het programma ({})",
                    meta.programme_end
                )
            }
        }
    }
}

impl Agreement {
    /// Reads and parses an agreement file (structure only; run [`super::check`] for the
    /// safety rules).
    pub fn load(path: &Path) -> Result<Agreement, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Agreement::from_str(&text)
    }

    /// Parses agreement text (structure only).
    #[allow(clippy::should_implement_trait)] // returns our own error type; FromStr would hide it
    pub fn from_str(text: &str) -> Result<Agreement, PolicyError> {
        let raw: RawAgreement = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            PolicyError::Parse {
                line,
                message: e.message().to_string(),
            }
        })?;
        raw.into_agreement(text)
    }

    /// The exact source text this agreement was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Hex SHA-256 of the source text (recorded in the compiled model).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The client with this certificate CN.
    pub fn client(&self, cn: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.cn.value == cn)
    }

    /// The partner with this id.
    pub fn partner(&self, id: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.id.value == id)
    }

    /// The purpose with this id.
    pub fn purpose(&self, id: &str) -> Option<&Purpose> {
        self.purposes.iter().find(|p| p.id.value == id)
    }

    /// The category with this id.
    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id.value == id)
    }

    /// The role with this id.
    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id.value == id)
    }

    /// The consent scope with this id.
    pub fn scope(&self, id: &str) -> Option<&ConsentScope> {
        self.scopes.iter().find(|s| s.id.value == id)
    }

    /// The retention rule of a category.
    pub fn retention_of(&self, category: &str) -> Option<&Retention> {
        self.retention.iter().find(|r| r.category.value == category)
    }

    /// If the retention rule of `category` forbids erasing it now, the reason (for the
    /// data-subject-request code to record and tell the participant); `None` when it may be
    /// erased.
    pub fn retention_blocks_erasure(&self, category: &str) -> Option<&str> {
        self.retention_of(category)
            .filter(|r| r.blocks_erasure)
            .map(|r| r.reason.as_str())
    }
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

// ---------------------------------------------------------------------------------------
// Raw serde structures (with spans), converted into the public types above.

type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgreement {
    agreement: RawMeta,
    #[serde(default, rename = "kind")]
    kinds: Vec<RawKind>,
    #[serde(default, rename = "partner")]
    partners: Vec<Spanned<RawPartner>>,
    #[serde(default, rename = "client")]
    clients: Vec<Spanned<RawClient>>,
    #[serde(default, rename = "purpose")]
    purposes: Vec<RawPurpose>,
    #[serde(default, rename = "category")]
    categories: Vec<RawCategory>,
    #[serde(default, rename = "role")]
    roles: Vec<RawRole>,
    #[serde(default, rename = "scope")]
    scopes: Vec<RawScope>,
    #[serde(default, rename = "grant")]
    grants: Vec<Spanned<RawGrant>>,
    #[serde(default)]
    retention: Vec<Spanned<RawRetention>>,
    reports: Option<Spanned<RawReports>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReports {
    min_cell: Option<u32>,
    min_cell_special: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: String,
    promotor: S,
    programme: String,
    programme_end: Spanned<toml::value::Datetime>,
    dpo_name: String,
    dpo_email: String,
    dpo_address: String,
    authority: String,
    #[serde(default)]
    security_measures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    id: S,
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    id: S,
    name: String,
    kbo: Option<S>,
    kind: S,
    status: S,
    since: Option<Spanned<toml::value::Datetime>>,
    until: Option<Spanned<toml::value::Datetime>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    cn: S,
    partner: S,
    roles: Vec<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    id: S,
    description: String,
    description_nl: Option<String>,
    legal_basis: BTreeMap<String, Spanned<LegalBasis>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    id: S,
    class: Class,
    special_basis: Option<String>,
    description: String,
    description_nl: Option<String>,
    fields: Vec<Spanned<RawField>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: S,
    #[serde(rename = "type")]
    ty: S,
    values: Option<Vec<String>>,
    min: Option<i64>,
    max: Option<i64>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    id: S,
    level: RoleLevel,
    kinds: Vec<S>,
    description: String,
    description_nl: Option<String>,
    #[serde(default)]
    one_per_case: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    id: S,
    description: String,
    description_nl: Option<String>,
    #[serde(default)]
    independent_recorder: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    roles: Vec<S>,
    purpose: S,
    #[serde(default)]
    read: Vec<S>,
    #[serde(default)]
    write: Vec<S>,
    #[serde(default)]
    write_only: Vec<S>,
    #[serde(default)]
    allow: Vec<S>,
    #[serde(default)]
    assign: Vec<S>,
    #[serde(default)]
    end: Vec<S>,
    #[serde(default)]
    self_assign: Vec<S>,
    consent: Option<S>,
    why: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    category: S,
    after: RetentionStart,
    months: u32,
    #[serde(default)]
    blocks_erasure: bool,
    reason: String,
}

impl RawAgreement {
    fn into_agreement(self, text: &str) -> Result<Agreement, PolicyError> {
        let loc = |s: S| Located {
            line: line_of(text, s.span().start),
            value: s.into_inner(),
        };
        let locs = |v: Vec<S>| v.into_iter().map(loc).collect::<Vec<_>>();
        let date = |d: Spanned<toml::value::Datetime>, what: &str| -> Result<Date, PolicyError> {
            let line = line_of(text, d.span().start);
            let dt = d.into_inner();
            match (dt.date, dt.time, dt.offset) {
                (Some(dd), None, None) => time::Month::try_from(dd.month)
                    .ok()
                    .and_then(|m| Date::from_calendar_date(dd.year as i32, m, dd.day).ok())
                    .ok_or_else(|| PolicyError::Parse {
                        line,
                        message: format!("{what}: not a valid date"),
                    }),
                _ => Err(PolicyError::Parse {
                    line,
                    message: format!("{what}: expected a date like 2025-01-31 (no time)"),
                }),
            }
        };

        let m = self.agreement;
        let meta = Meta {
            name: m.name,
            promotor: loc(m.promotor),
            programme: m.programme,
            programme_end: date(m.programme_end, "programme_end")?,
            dpo_name: m.dpo_name,
            dpo_email: m.dpo_email,
            dpo_address: m.dpo_address,
            authority: m.authority,
            security_measures: m.security_measures,
        };

        let kinds = self
            .kinds
            .into_iter()
            .map(|k| Kind {
                id: loc(k.id),
                description: k.description,
            })
            .collect();

        let mut partners = Vec::new();
        for sp in self.partners {
            let line = line_of(text, sp.span().start);
            let p = sp.into_inner();
            let status_line = line_of(text, p.status.span().start);
            let status = p.status.into_inner();
            let need = |d: Option<Spanned<toml::value::Datetime>>, key: &str| {
                d.ok_or_else(|| PolicyError::Parse {
                    line: status_line,
                    message: format!("partner status `{status}` needs a `{key}` date"),
                })
            };
            let membership = match status.as_str() {
                "active" => Membership::Active {
                    since: date(need(p.since, "since")?, "since")?,
                },
                "notice" => Membership::Notice {
                    until: date(need(p.until, "until")?, "until")?,
                },
                "exited" => Membership::Exited {
                    since: date(need(p.since, "since")?, "since")?,
                },
                "subcontractor" => Membership::Subcontractor {
                    since: date(need(p.since, "since")?, "since")?,
                },
                other => {
                    return Err(PolicyError::Parse {
                        line: status_line,
                        message: format!(
                            "unknown partner status `{other}` (expected active, notice, exited or subcontractor)"
                        ),
                    });
                }
            };
            partners.push(Partner {
                id: loc(p.id),
                name: p.name,
                kbo: p.kbo.map(loc),
                kind: loc(p.kind),
                membership,
                line,
            });
        }

        let clients = self
            .clients
            .into_iter()
            .map(|sc| {
                let line = line_of(text, sc.span().start);
                let c = sc.into_inner();
                Client {
                    cn: loc(c.cn),
                    partner: loc(c.partner),
                    roles: locs(c.roles),
                    line,
                }
            })
            .collect();

        let purposes = self
            .purposes
            .into_iter()
            .map(|p| Purpose {
                description_nl: p.description_nl.unwrap_or_else(|| p.description.clone()),
                id: loc(p.id),
                description: p.description,
                legal_basis: p
                    .legal_basis
                    .into_iter()
                    .map(|(k, v)| {
                        let line = line_of(text, v.span().start);
                        (
                            k,
                            Located {
                                value: v.into_inner(),
                                line,
                            },
                        )
                    })
                    .collect(),
            })
            .collect();

        let mut categories = Vec::new();
        for c in self.categories {
            let mut fields = Vec::new();
            for sf in c.fields {
                let fline = line_of(text, sf.span().start);
                let f = sf.into_inner();
                let tname = f.ty.into_inner();
                let ty = match tname.as_str() {
                    "text" => FieldType::Text,
                    "date" => FieldType::Date,
                    "bool" => FieldType::Bool,
                    "insz" => FieldType::Insz,
                    "phone" => FieldType::Phone,
                    "email" => FieldType::Email,
                    "enum" => match f.values {
                        Some(values) if !values.is_empty() => FieldType::Enum { values },
                        _ => {
                            return Err(PolicyError::Parse {
                                line: fline,
                                message: format!(
                                    "enum field `{}` needs a non-empty `values` list",
                                    f.name.get_ref()
                                ),
                            });
                        }
                    },
                    "integer" => match (f.min, f.max) {
                        (Some(min), Some(max)) if min <= max => FieldType::Integer { min, max },
                        _ => {
                            return Err(PolicyError::Parse {
                                line: fline,
                                message: format!(
                                    "integer field `{}` needs `min` and `max` with min <= max",
                                    f.name.get_ref()
                                ),
                            });
                        }
                    },
                    other => {
                        return Err(PolicyError::Parse {
                            line: fline,
                            message: format!(
                                "unknown field type `{other}` (expected text, date, enum, bool, integer, insz, phone or email)"
                            ),
                        });
                    }
                };
                fields.push(Field {
                    name: loc(f.name),
                    ty,
                    description: f.description,
                });
            }
            categories.push(Category {
                description_nl: c.description_nl.unwrap_or_else(|| c.description.clone()),
                id: loc(c.id),
                class: c.class,
                special_basis: c.special_basis,
                description: c.description,
                fields,
            });
        }

        let roles = self
            .roles
            .into_iter()
            .map(|r| Role {
                description_nl: r.description_nl.unwrap_or_else(|| r.description.clone()),
                id: loc(r.id),
                level: r.level,
                kinds: locs(r.kinds),
                description: r.description,
                one_per_case: r.one_per_case,
            })
            .collect();

        let scopes = self
            .scopes
            .into_iter()
            .map(|s| ConsentScope {
                description_nl: s.description_nl.unwrap_or_else(|| s.description.clone()),
                id: loc(s.id),
                description: s.description,
                independent_recorder: s.independent_recorder,
            })
            .collect();

        let grants = self
            .grants
            .into_iter()
            .map(|sg| {
                let line = line_of(text, sg.span().start);
                let g = sg.into_inner();
                Grant {
                    roles: locs(g.roles),
                    purpose: loc(g.purpose),
                    read: locs(g.read),
                    write: locs(g.write),
                    write_only: locs(g.write_only),
                    allow: locs(g.allow),
                    assign: locs(g.assign),
                    end: locs(g.end),
                    self_assign: locs(g.self_assign),
                    consent: g.consent.map(loc),
                    why: g.why,
                    line,
                }
            })
            .collect();

        let retention = self
            .retention
            .into_iter()
            .map(|sr| {
                let line = line_of(text, sr.span().start);
                let r = sr.into_inner();
                Retention {
                    category: loc(r.category),
                    after: r.after,
                    months: r.months,
                    blocks_erasure: r.blocks_erasure,
                    reason: r.reason,
                    line,
                }
            })
            .collect();

        let reports = match self.reports {
            None => ReportRules::DEFAULT,
            Some(sr) => {
                let line = line_of(text, sr.span().start);
                let r = sr.into_inner();
                ReportRules {
                    min_cell: r.min_cell.unwrap_or(ReportRules::DEFAULT.min_cell),
                    min_cell_special: r
                        .min_cell_special
                        .unwrap_or(ReportRules::DEFAULT.min_cell_special),
                    line,
                }
            }
        };

        Ok(Agreement {
            meta,
            kinds,
            partners,
            clients,
            purposes,
            categories,
            roles,
            scopes,
            grants,
            retention,
            reports,
            source: text.to_string(),
            sha256: sha256_hex(text.as_bytes()),
        })
    }
}
